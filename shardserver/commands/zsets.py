"""Sorted sets (Redis's ``t_zset.c``): the sorted-set value class and every Z command.

The value is a :class:`SortedSet`: a dict of member -> score (O(1) ZSCORE, membership for
ZINTER, the score to find a member by) plus ``ranked``, a ``sortedcontainers.SortedList`` of
``(score, member)`` pairs in Redis's rank order (score, then member bytes as ``memcmp``).
Redis keeps the same pair of structures (a dict and a skiplist); a SortedList gives what the
skiplist gives, each in O(log N): insert, delete, the rank of a pair (``bisect``), the pair at
a rank (positional index), and the start of a score range (``bisect`` on ``(score,)``). It is
a list of sorted sublists of about a thousand pairs with an index over them, far lighter per
member in Python than a skiplist's nodes. The encoding Redis would report is kept apart from
the structure (``big``): ``listpack`` while the thresholds allow, then ``skiplist`` for ever.
A listpack cannot hold -0 (Redis stores an integral score as an integer), so a score of -0
becomes 0 while a sorted set is small and stays -0 once it is big, as in Redis.

Members enter a sorted set only through :meth:`SortedSet.insert` (one member, ZADD, ZINCRBY,
ZRANGESTORE) and :meth:`SortedSet.build` (a whole new value: the STORE commands, loading,
COPY), so the blocking pops to come have one place to hook.

Scores are parsed as Redis 7.0 parses them: members' scores and weights as
``getDoubleFromObject`` (C's ``strtod`` over the whole argument, no leading space, no NaN, no
overflow), range bounds as ``zslParseRange`` (leading space allowed, up to a NUL byte,
overflow to infinity); and written as Redis 7.0 writes them, ``%.17g`` (``1.1`` is
``1.1000000000000001``), ``inf`` and ``-inf``, a double in RESP3.

Commands over several keys (ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD,
ZRANGESTORE, ZMPOP) run natively when one shard owns every key; otherwise they are
coordinated: their plans read the sources (``@zsource``, ``@zrangeread``, ``@zpeek``), compute
the same result in the acceptor with the same functions, and write it with ``@put``/``@del``
(or ZPOPMIN/ZPOPMAX for ZMPOP, as Redis propagates it). The argument errors Redis reports
before it looks at any key are refused by the rows' ``check``.

Every write here replays to the same effect from its arguments and the state it ran on
(ZINCRBY's sum and ZUNIONSTORE's aggregates are the same doubles computed in the same order;
pops take the ends), so no row needs ``propagate``. ZRANDMEMBER, the one random command, is
read-only.
"""

from __future__ import annotations

import math
import random
import re
import sys
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, ClassVar

from sortedcontainers import SortedList

from shardserver import values
from shardserver.commands import scanning
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.commands.strings import NOT_FLOAT
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error
from shardserver.numbers import LLONG_MAX, parse_int

NAN_RESULT = error("ERR resulting score is not a number (NaN)")
NOT_FLOAT_BOUND = error("ERR min or max is not a float")
NOT_LEX_BOUND = error("ERR min or max not valid string range item")
WEIGHT_NOT_FLOAT = error("ERR weight value is not a float")
NOT_POSITIVE = error("ERR value is out of range, must be positive")
XX_AND_NX = error("ERR XX and NX options at the same time are not compatible")
GT_LT_NX = error("ERR GT, LT, and/or NX options at the same time are not compatible")
INCR_PAIRS = error("ERR INCR option supports a single increment-element pair")
LIMIT_WITH_RANK = error(
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
)
WITHSCORES_WITH_LEX = error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
EMPTY_ARRAY = b"*0\r\n"

_INF = math.inf


def _word(arg: bytes) -> bytes:
    """An option word as Redis compares it (``strcasecmp``): lower-cased, cut at a NUL."""
    return arg.partition(b"\0")[0].lower()


# -- scores: parsing and formatting -------------------------------------------------------

#: What C's ``isspace`` accepts in the C locale: ``strtod`` skips it before a number.
_SPACE = b" \t\n\v\f\r"
#: The longest prefix C's ``strtod`` converts (after the spaces): hexadecimal or decimal
#: floats, infinities, NaNs. An exponent without digits is not part of the number.
_STRTOD = re.compile(
    rb"""[+-]?(?:
        0x(?P<hex>[0-9a-f]+(?:\.[0-9a-f]*)?|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?
      | (?P<dec>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?
      | (?P<inf>inf(?:inity)?)
      | (?P<nan>nan(?:\([0-9a-z_]*\))?)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def _strtod(text: bytes, start: int) -> tuple[float, int, bool]:
    """C's ``strtod`` on ``text[start:]``: (value, end of the number, out of range).

    ``end`` is ``start`` when nothing converts (then the value is 0). Out of range is
    ``ERANGE``'s overflow to an infinity or underflow to zero of a non-zero number.
    """
    pos = start
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    match = _STRTOD.match(text, pos)
    if match is None:
        return 0.0, start, False
    number = match.group()
    negative = number[:1] == b"-"
    if match["inf"] is not None:
        return (-_INF if negative else _INF), match.end(), False
    if match["nan"] is not None:
        return math.nan, match.end(), False
    if match["hex"] is not None:
        digits = match["hex"]
        try:
            value = float.fromhex(number.decode())
        except OverflowError:
            value = -_INF if negative else _INF
    else:
        digits = match["dec"]
        value = float(number)
    nonzero = digits.strip(b"0.") != b""
    return value, match.end(), math.isinf(value) or (value == 0.0 and nonzero)


#: A score written as a plain decimal (``12``, ``-3.25``, ``.5``): up to 300 characters,
#: such a number can neither overflow nor underflow, and C's ``strtod`` and Python's
#: ``float`` (both correctly rounded) read it as the same double.
_PLAIN_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def parse_score(arg: bytes) -> float | None:
    """A score, increment or weight as Redis's ``getDoubleFromObject`` reads it, or None
    where Redis refuses it: empty, a leading space, anything after the number (a NUL byte
    too), NaN, or a finite number out of the double's range.

    Plain decimals, what clients nearly always send, skip the general ``strtod`` emulation
    (630 ns): an integer costs 60 ns, a decimal with a point 230 ns."""
    if len(arg) <= 300 and (arg.isdigit() or _PLAIN_DECIMAL.fullmatch(arg)):
        return float(arg)
    if not arg or arg[0] in _SPACE:
        return None
    value, end, out_of_range = _strtod(arg, 0)
    if end != len(arg) or out_of_range or value != value:
        return None
    return value


def parse_bound(arg: bytes) -> tuple[float, bool] | None:
    """A score range bound as ``zslParseRange`` reads it: (value, exclusive), or None.

    A leading ``(`` makes it exclusive. Redis hands the rest to ``strtod`` as a C string
    and checks only that the number ends the string: so leading spaces pass, a NUL byte ends
    the argument, an empty bound is 0, and overflow gives an infinity; NaN is refused.
    """
    exclusive = arg[:1] == b"("
    text = arg.partition(b"\0")[0]
    value, end, _ = _strtod(text, 1 if exclusive else 0)
    if end != len(text) or value != value:
        return None
    return value, exclusive


def format_score(score: float) -> bytes:
    """A score as Redis 7.0 writes it: ``%.17g``, and ``inf``/``-inf``."""
    return b"%.17g" % score


#: Scores a listpack holds as integers (Redis's ``double2ll``): integral, within 2**62.
_LISTPACK_INTEGRAL = float(LLONG_MAX // 2)


def listpack_score_text(score: float) -> bytes:
    """A score as a listpack stores it, which ZSCAN of a small set returns: an integral
    score within 2**62 as an integer (``1e17`` is ``100000000000000000``), else ``%.17g``."""
    if -_LISTPACK_INTEGRAL <= score <= _LISTPACK_INTEGRAL and score == int(score):
        return b"%d" % score
    return b"%.17g" % score


class ScoreRange:
    """``min``..``max`` with exclusive ends, over a SortedList of ``(score, member)``."""

    __slots__ = ("min", "minex", "max", "maxex")

    def __init__(self, low: tuple[float, bool], high: tuple[float, bool]) -> None:
        (self.min, self.minex), (self.max, self.maxex) = low, high

    def start(self, ranked: SortedList) -> int:
        """The rank of the first pair with a score >= min (> min when exclusive)."""
        if not self.minex:
            return ranked.bisect_left((self.min,))
        if self.min == _INF:
            return len(ranked)
        return ranked.bisect_left((math.nextafter(self.min, _INF),))

    def stop(self, ranked: SortedList) -> int:
        """The rank after the last pair with a score <= max (< max when exclusive)."""
        if self.maxex:
            return ranked.bisect_left((self.max,))
        if self.max == _INF:
            return len(ranked)
        return ranked.bisect_left((math.nextafter(self.max, _INF),))


def parse_score_range(low: bytes, high: bytes) -> ScoreRange | None:
    first, last = parse_bound(low), parse_bound(high)
    if first is None or last is None:
        return None
    return ScoreRange(first, last)


# -- lexicographic ranges -----------------------------------------------------------------


class LexRange:
    """A ZRANGEBYLEX range: each end a string, exclusive or not, or ``-``/``+`` (kind -1 and
    1: below and above every string, as Redis's shared min and max strings)."""

    __slots__ = ("min_kind", "min", "minex", "max_kind", "max", "maxex")

    def __init__(self, low: tuple[int, bytes, bool], high: tuple[int, bytes, bool]) -> None:
        (self.min_kind, self.min, self.minex) = low
        (self.max_kind, self.max, self.maxex) = high

    def gte_min(self, member: bytes) -> bool:
        if self.min_kind:
            return self.min_kind < 0
        return member > self.min if self.minex else member >= self.min

    def lte_max(self, member: bytes) -> bool:
        if self.max_kind:
            return self.max_kind > 0
        return member < self.max if self.maxex else member <= self.max

    def empty(self) -> bool:
        """Redis's test for a range that can hold nothing (``sdscmplex(min, max)``)."""
        low, high = self.min_kind, self.max_kind
        if low and low == high:
            order = 0
        elif low < 0 or high > 0:
            order = -1
        elif low > 0 or high < 0:
            order = 1
        else:
            order = (self.min > self.max) - (self.min < self.max)
        return order > 0 or (order == 0 and (self.minex or self.maxex))


def _lex_bound(arg: bytes) -> tuple[int, bytes, bool] | None:
    """One end of a lex range as ``zslParseLexRangeItem`` reads it: ``(x`` or ``[x`` (the
    whole rest, NUL bytes included), or a lone ``-``/``+`` (a C string: a NUL ends it)."""
    first = arg[:1]
    if first in (b"-", b"+"):
        if len(arg) > 1 and arg[1] != 0:
            return None
        return (-1 if first == b"-" else 1), b"", True
    if first == b"(":
        return 0, arg[1:], True
    if first == b"[":
        return 0, arg[1:], False
    return None


def parse_lex_range(low: bytes, high: bytes) -> LexRange | None:
    first, last = _lex_bound(low), _lex_bound(high)
    if first is None or last is None:
        return None
    return LexRange(first, last)


def _transition(ranked: SortedList, holds: Callable[[bytes], bool]) -> int:
    """A rank where ``holds(member)`` turns true (the first rank of a monotone predicate),
    by bisection: what a skiplist's descent finds, O(log N) probes of O(log N) each."""
    low, high = 0, len(ranked)
    while low < high:
        middle = (low + high) // 2
        if holds(ranked[middle][1]):
            high = middle
        else:
            low = middle + 1
    return low


# -- the value ----------------------------------------------------------------------------


class Ranking(SortedList):
    """The ``(score, member)`` pairs of a sorted set in rank order, with :meth:`move`.

    A SortedList is a list of sorted sublists (``_lists``, each up to about two thousand
    pairs) with the last pair of each in ``_maxes``; :meth:`move` works on those two, as
    SortedList's own methods do (sortedcontainers has kept them since 1.0).
    """

    def move(self, before: tuple[float, bytes], after: tuple[float, bytes]) -> None:
        """Replace the pair ``before`` (which must be present) by ``after``.

        As Redis's ``zslUpdateScore`` does, a pair that still sorts between its neighbours
        is replaced where it is; one that stays within its sublist moves inside it. Only a
        pair that leaves its sublist costs a removal and an insertion, with the positions
        found once rather than by ``remove`` and ``add`` each.
        """
        lists, maxes = self._lists, self._maxes
        pos = bisect_left(maxes, before)
        sub = lists[pos]
        idx = bisect_left(sub, before)
        # Within the sublist's bounds (the last pairs of it and of the one before, which the
        # bisection has just read) the pair stays in the sublist.
        if (pos == 0 or maxes[pos - 1] < after) and (pos == len(maxes) - 1 or after < maxes[pos]):
            if (idx == 0 or sub[idx - 1] < after) and (idx == len(sub) - 1 or after < sub[idx + 1]):
                sub[idx] = after
            else:
                del sub[idx]
                insort(sub, after)
            maxes[pos] = sub[-1]
        else:
            self._delete(pos, idx)
            self.add(after)


@values.register
class SortedSet(dict):
    """A sorted set: this dict maps member -> score; ``ranked`` holds every ``(score,
    member)`` in rank order; ``big`` is Redis's encoding, False for listpack, True (for
    ever) for skiplist. Never empty in a keyspace."""

    __slots__ = ("ranked", "big")
    redis_type: ClassVar[str] = "zset"

    def __init__(self, big: bool = False) -> None:
        super().__init__()
        self.ranked = Ranking()
        self.big = big

    @classmethod
    def build(cls, pairs: Iterable[tuple[bytes, float]], big: bool) -> SortedSet:
        """A sorted set of ``(member, score)`` pairs (distinct members) in an encoding."""
        zset = cls(big)
        zset.update(pairs if big else ((member, score or 0.0) for member, score in pairs))
        # Pairs in rank order (as they usually come) sort in linear time.
        zset.ranked = Ranking([(score, member) for member, score in zset.items()])
        return zset

    def insert(self, member: bytes, score: float, limits: tuple[int, int] | None) -> None:
        """Add a member that is not in the set (Redis's ``zsetAdd`` of a new element).

        A small set turns big first if one more member, or this member's length, would pass
        ``limits`` (zset-max-listpack-entries, zset-max-listpack-value), which a big set
        never reads (None will do).
        """
        if not self.big:
            if len(self) >= limits[0] or len(member) > limits[1]:
                self.big = True
            else:
                score = score or 0.0
        self[member] = score
        self.ranked.add((score, member))

    def rescore(self, member: bytes, old: float, new: float) -> None:
        """Move a member from its score ``old`` to ``new``."""
        if not self.big:
            new = new or 0.0
        self.ranked.move((old, member), (new, member))
        self[member] = new

    def discard(self, member: bytes) -> bool:
        """Remove a member; whether it was there."""
        score = self.pop(member, None)
        if score is None:
            return False
        self.ranked.remove((score, member))
        return True

    def delete_ranks(self, start: int, stop: int) -> int:
        """Remove the members of ranks ``start`` to ``stop - 1``; how many went."""
        ranked = self.ranked
        for _, member in ranked.islice(start, stop):
            del self[member]
        del ranked[start:stop]
        return stop - start

    def pop_ends(self, count: int, highest: bool) -> list[tuple[bytes, float]]:
        """Remove and return up to ``count`` members from the low (or high) end, in the
        order they leave."""
        ranked = self.ranked
        if count == 1:  # ZPOPMIN/ZPOPMAX without a count: SortedList.pop takes an end directly
            score, member = ranked.pop(-1 if highest else 0)
            del self[member]
            return [(member, score)]
        count = min(count, len(ranked))
        if highest:
            taken = list(ranked.islice(len(ranked) - count, reverse=True))
            del ranked[len(ranked) - count :]
        else:
            taken = list(ranked.islice(0, count))
            del ranked[:count]
        for _, member in taken:
            del self[member]
        return [(member, score) for score, member in taken]

    def rank(self, member: bytes) -> int | None:
        score = self.get(member)
        return None if score is None else self.ranked.index((score, member))

    def pairs(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> list:
        """``(member, score)`` of ranks ``start`` to ``stop - 1``, highest first if reverse."""
        return [(m, s) for s, m in self.ranked.islice(start, stop, reverse=reverse)]

    # -- the value protocol (shardserver.values.StoredValue) ----------------------------

    def encoding(self) -> str:
        return "skiplist" if self.big else "listpack"

    def copy(self) -> SortedSet:
        zset = SortedSet(self.big)
        zset.update(self)
        zset.ranked = self.ranked.copy()
        return zset

    def to_plain(self) -> tuple[bool, list[tuple[bytes, float]]]:
        return self.big, [(member, score) for score, member in self.ranked]

    @classmethod
    def from_plain(cls, data: tuple[bool, list[tuple[bytes, float]]]) -> SortedSet:
        big, pairs = data
        return cls.build(pairs, big)

    def memory_usage(self) -> int:
        """The dict, the list of pairs, and per member its tuple, float and list slot;
        member sizes from a sample of up to 64 (MEMORY USAGE samples too)."""
        count = len(self)
        size = sys.getsizeof(self) + sys.getsizeof(self.ranked) + count * (56 + 24 + 8)
        if count:
            sample = [member for _, member in self.ranked.islice(0, 64)]
            size += sum(map(sys.getsizeof, sample)) * count // len(sample)
        return size

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        """ZADD commands of up to 64 members each, in rank order; each score written as
        ``repr`` writes it, the shortest text that parses back to the same double."""
        command = [b"ZADD", key]
        for score, member in self.ranked:
            command += (repr(score).encode(), member)
            if len(command) >= 2 + 2 * 64:
                yield command
                command = [b"ZADD", key]
        if len(command) > 2:
            yield command


def _limits(settings: Any) -> tuple[int, int]:
    """(zset-max-listpack-entries, zset-max-listpack-value) from a shard's settings or the
    acceptor's config."""
    return (
        settings.get("zset-max-listpack-entries", 128),
        settings.get("zset-max-listpack-value", 64),
    )


def _acceptor_limits(session: Any) -> tuple[int, int]:
    config = session.server.config
    return config["zset-max-listpack-entries"], config["zset-max-listpack-value"]


def _fits_small(pairs: list[tuple[bytes, float]], limits: tuple[int, int]) -> bool:
    """Whether a computed result is stored as a listpack (``zsetConvertToListpackIfNeeded``)."""
    return len(pairs) <= limits[0] and max(len(member) for member, _ in pairs) <= limits[1]


def _zset_or_error(shard, db, key: bytes) -> SortedSet | bytes | None:
    """The key's sorted set, None if missing, or the WRONGTYPE error."""
    value = db.lookup(key, shard.now)
    if value is None or value.__class__ is SortedSet:
        return value
    return WRONGTYPE


# -- replies -------------------------------------------------------------------------------


_first, _second = itemgetter(0), itemgetter(1)
#: A score as Redis 7.0 writes it (:func:`format_score`), for ``map``.
_score_text = b"%.17g".__mod__


def _members_reply(enc, pairs: list[tuple[bytes, float]], withscores: bool) -> bytes:
    """Members, or members and scores: one flat array in RESP2, ``[member, score]`` pairs
    in RESP3 (Redis does not use a map, whose order clients need not keep)."""
    if not withscores:
        return enc.bulk_array(list(map(_first, pairs)))
    if enc.version == 2:
        return enc.bulk_array(_flat_texts(pairs))
    return _array_header(enc, len(pairs), withscores) + _reply_items(enc, pairs, withscores)


def _flat_texts(pairs: list[tuple[bytes, float]]) -> list[bytes]:
    """Member, score, member, score ... with the scores written as Redis writes them: what
    a RESP2 reply holds as bulk strings."""
    flat = [b""] * (2 * len(pairs))
    flat[::2] = map(_first, pairs)
    flat[1::2] = map(_score_text, map(_second, pairs))
    return flat


def _array_header(enc, count: int, withscores: bool) -> bytes:
    return b"*%d\r\n" % (2 * count if withscores and enc.version == 2 else count)


def _reply_items(enc, pairs: list[tuple[bytes, float]], withscores: bool) -> bytes:
    """The elements of :func:`_members_reply`, without the array's header."""
    bulk = enc.bulk
    if not withscores:
        return b"".join([bulk(member) for member, _ in pairs])
    double = enc.double
    if enc.version == 3:
        return b"".join(
            [b"*2\r\n" + bulk(member) + double(b"%.17g" % score) for member, score in pairs]
        )
    return b"".join([bulk(member) + double(b"%.17g" % score) for member, score in pairs])


def _nested_pairs(enc, pairs: list[tuple[bytes, float]]) -> bytes:
    """``[member, score]`` pairs as nested arrays in both protocols (ZMPOP)."""
    bulk, double = enc.bulk, enc.double
    return b"*%d\r\n" % len(pairs) + b"".join(
        [b"*2\r\n" + bulk(member) + double(b"%.17g" % score) for member, score in pairs]
    )


def _score_or_null(enc, score: float | None) -> bytes:
    return enc.NULL if score is None else enc.double(b"%.17g" % score)


# -- ZADD, ZINCRBY, ZREM ------------------------------------------------------------------

_NX, _XX, _GT, _LT, _INCR, _CH = 1, 2, 4, 8, 16, 32
_ZADD_OPTIONS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT, b"incr": _INCR, b"ch": _CH}


def _zadd_generic(shard, db, argv: list[bytes], enc, flags: int) -> bytes:
    """ZADD and ZINCRBY, in Redis's order: options (repeatable, any case), the count of
    score-member arguments, incompatible options, every score, then the key's type.
    Nothing changes unless every argument is valid."""
    index = 2
    while index < len(argv):
        flag = _ZADD_OPTIONS.get(_word(argv[index]))
        if flag is None:
            break
        flags |= flag
        index += 1
    remaining = len(argv) - index
    if remaining % 2 or not remaining:
        return SYNTAX
    if flags & _NX and flags & _XX:
        return XX_AND_NX
    if flags & _NX and flags & (_GT | _LT) or flags & _GT and flags & _LT:
        return GT_LT_NX
    incr = flags & _INCR
    if incr and remaining > 2:
        return INCR_PAIRS
    scores = []
    for i in range(index, len(argv), 2):
        score = parse_score(argv[i])
        if score is None:
            return NOT_FLOAT
        scores.append(score)
    key = argv[1]
    zset = _zset_or_error(shard, db, key)
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    added = updated = processed = 0
    score = 0.0
    if zset is not None or not flags & _XX:
        if zset is None:
            zset = SortedSet()
            db.store(key, zset)
        # Only a listpack reads its limits: a big set (what a hot key is) never does.
        limits = None if zset.big else _limits(shard.settings)
        for score, member in zip(scores, argv[index + 1 :: 2], strict=True):
            old = zset.get(member)
            if old is None:
                if flags & _XX:
                    continue
                zset.insert(member, score, limits)
                added += 1
            else:
                if flags & _NX:
                    continue
                if incr:
                    score += old
                    if score != score:
                        return NAN_RESULT
                if flags & _LT and score >= old or flags & _GT and score <= old:
                    continue
                if score != old:
                    zset.rescore(member, old, score)
                    updated += 1
            processed += 1
    if incr:
        return enc.double(b"%.17g" % score) if processed else enc.NULL
    return enc.integer(added + updated if flags & _CH else added)


def zadd(shard, db, argv: list[bytes], enc) -> bytes:
    return _zadd_generic(shard, db, argv, enc, 0)


def zincrby(shard, db, argv: list[bytes], enc) -> bytes:
    """ZADD INCR with the increment and member in place of the pairs (so ``ZINCRBY k nx m``
    is ZADD's syntax error, as in Redis)."""
    return _zadd_generic(shard, db, argv, enc, _INCR)


def zrem(shard, db, argv: list[bytes], enc) -> bytes:
    key = argv[1]
    zset = _zset_or_error(shard, db, key)
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    removed = 0
    for member in argv[2:]:
        if zset.discard(member):
            removed += 1
            if not zset:
                db.delete(key)
                break
    return enc.integer(removed)


# -- single-member reads ------------------------------------------------------------------


def zcard(shard, db, argv: list[bytes], enc) -> bytes:
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    return enc.integer(len(zset))


def zscore(shard, db, argv: list[bytes], enc) -> bytes:
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.NULL
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    return _score_or_null(enc, zset.get(argv[2]))


def zmscore(shard, db, argv: list[bytes], enc) -> bytes:
    """A missing key answers like an empty set: a null per member."""
    zset = _zset_or_error(shard, db, argv[1])
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    found = {} if zset is None else zset
    return b"*%d\r\n" % (len(argv) - 2) + b"".join(
        [_score_or_null(enc, found.get(member)) for member in argv[2:]]
    )


def _zrank_generic(shard, db, argv: list[bytes], enc, reverse: bool) -> bytes:
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.NULL
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    rank = zset.rank(argv[2])
    if rank is None:
        return enc.NULL
    return enc.integer(len(zset) - 1 - rank if reverse else rank)


def zrank(shard, db, argv: list[bytes], enc) -> bytes:
    return _zrank_generic(shard, db, argv, enc, False)


def zrevrank(shard, db, argv: list[bytes], enc) -> bytes:
    return _zrank_generic(shard, db, argv, enc, True)


# -- counting and ranges ------------------------------------------------------------------


def zcount(shard, db, argv: list[bytes], enc) -> bytes:
    """Two bisections, as Redis takes two ranks: O(log N)."""
    scores = parse_score_range(argv[2], argv[3])
    if scores is None:
        return NOT_FLOAT_BOUND
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    ranked = zset.ranked
    return enc.integer(max(scores.stop(ranked) - scores.start(ranked), 0))


def _lex_first(zset: SortedSet, lex: LexRange) -> int | None:
    """The rank where a lex range starts, or None (``zzlFirstInLexRange`` /
    ``zslFirstInLexRange``). Lex ranges assume one score for all members; with several,
    a listpack is scanned from its head as Redis scans it, and a big set is bisected as
    its skiplist is descended."""
    ranked = zset.ranked
    if lex.empty() or not lex.gte_min(ranked[-1][1]) or not lex.lte_max(ranked[0][1]):
        return None
    if zset.big:
        first = _transition(ranked, lex.gte_min)
    else:
        first = next(i for i, (_, member) in enumerate(ranked) if lex.gte_min(member))
    return first if lex.lte_max(ranked[first][1]) else None


def _lex_last(zset: SortedSet, lex: LexRange) -> int | None:
    """The rank where a lex range ends (inclusive), or None (``zzlLastInLexRange`` /
    ``zslLastInLexRange``); a listpack is scanned from its tail."""
    ranked = zset.ranked
    if lex.empty() or not lex.gte_min(ranked[-1][1]) or not lex.lte_max(ranked[0][1]):
        return None
    if zset.big:
        last = _transition(ranked, lambda member: not lex.lte_max(member)) - 1
    else:
        last = len(ranked) - 1
        for _, member in ranked.islice(reverse=True):
            if lex.lte_max(member):
                break
            last -= 1
    return last if lex.gte_min(ranked[last][1]) else None


def zlexcount(shard, db, argv: list[bytes], enc) -> bytes:
    lex = parse_lex_range(argv[2], argv[3])
    if lex is None:
        return NOT_LEX_BOUND
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    first = _lex_first(zset, lex)
    if first is None:
        return enc.ZERO
    if zset.big:
        last = _lex_last(zset, lex)
        return enc.integer(0 if last is None else max(last - first + 1, 0))
    count = 0
    for _, member in zset.ranked.islice(first):
        if not lex.lte_max(member):
            break
        count += 1
    return enc.integer(count)


_RANK, _SCORE, _LEX = "rank", "score", "lex"


class RangeQuery:
    """A parsed ZRANGE-family command line: what to select and how to answer."""

    __slots__ = ("kind", "reverse", "withscores", "offset", "limit", "start", "end", "bounds")

    def __init__(self) -> None:
        self.kind = ""
        self.reverse = False
        self.withscores = False
        self.offset = 0
        self.limit = -1
        self.start = self.end = 0
        self.bounds: Any = None


def parse_range_query(
    argv: list[bytes], first: int, store: bool, kind: str | None, reverse: bool | None
) -> RangeQuery | bytes:
    """``<src> <min> <max> [BYSCORE|BYLEX] [REV] [WITHSCORES] [LIMIT offset count]`` from
    ``argv[first]`` on, as ``zrangeGenericCommand`` reads it; ``kind`` and ``reverse`` are
    fixed for the older commands (ZRANGEBYSCORE ...), None for ZRANGE and ZRANGESTORE.

    Redis's order: each option in turn (LIMIT's numbers parsed where they stand), then
    the conflicts, then the range itself. All of it before the key is looked at.
    """
    query = RangeQuery()
    index = first + 3
    while index < len(argv):
        word = _word(argv[index])
        if not store and word == b"withscores":
            query.withscores = True
        elif word == b"limit" and len(argv) - index - 1 >= 2:
            offset, limit = parse_int(argv[index + 1]), parse_int(argv[index + 2])
            if offset is None or limit is None:
                return NOT_INTEGER
            query.offset, query.limit = offset, limit
            index += 2
        elif reverse is None and word == b"rev":
            reverse = True
        elif kind is None and word == b"bylex":
            kind = _LEX
        elif kind is None and word == b"byscore":
            kind = _SCORE
        else:
            return SYNTAX
        index += 1
    query.kind = kind = kind or _RANK
    query.reverse = reverse = bool(reverse)
    if query.limit != -1 and kind == _RANK:
        return LIMIT_WITH_RANK
    if query.withscores and kind == _LEX:
        return WITHSCORES_WITH_LEX
    low, high = argv[first + 1], argv[first + 2]
    if reverse and kind != _RANK:
        low, high = high, low  # given as max, min
    if kind == _RANK:
        start, end = parse_int(low), parse_int(high)
        if start is None or end is None:
            return NOT_INTEGER
        query.start, query.end = start, end
    elif kind == _SCORE:
        query.bounds = parse_score_range(low, high)
        if query.bounds is None:
            return NOT_FLOAT_BOUND
    else:
        query.bounds = parse_lex_range(low, high)
        if query.bounds is None:
            return NOT_LEX_BOUND
    return query


def _rank_span(length: int, start: int, end: int) -> tuple[int, int] | None:
    """Redis's sanitised rank range ``start..end`` (negative from the end): half-open
    ``(start, stop)``, or None when empty."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    start = max(start, 0)
    if start > end or start >= length:
        return None
    return start, min(end, length - 1) + 1


def select_range(zset: SortedSet, query: RangeQuery) -> list[tuple[bytes, float]]:
    """The ``(member, score)`` pairs a query selects, in reply order: O(log N + M).

    LIMIT as Redis applies it: a negative count means all, a negative offset nothing
    (Redis walks off the end skipping it)."""
    length = len(zset)
    if query.kind == _RANK:
        span = _rank_span(length, query.start, query.end)
        if span is None:
            return []
        start, stop = span
        if query.reverse:
            return zset.pairs(length - stop, length - start, reverse=True)
        return zset.pairs(start, stop)
    offset, limit = query.offset, query.limit
    if offset < 0:
        return []
    if query.kind == _SCORE:
        low, high = query.bounds.start(zset.ranked), query.bounds.stop(zset.ranked)
        if query.reverse:
            high -= offset
            low = low if limit < 0 else max(low, high - limit)
            return zset.pairs(low, high, reverse=True) if low < high else []
        low += offset
        high = high if limit < 0 else min(high, low + limit)
        return zset.pairs(low, high) if low < high else []
    lex: LexRange = query.bounds
    if query.reverse:
        last = _lex_last(zset, lex)
        if last is None or last < offset:
            return []
        walk = zset.ranked.islice(0, last + 1 - offset, reverse=True)
        inside = lex.gte_min
    else:
        first = _lex_first(zset, lex)
        if first is None:
            return []
        walk = zset.ranked.islice(first + offset)
        inside = lex.lte_max
    taken = []
    for score, member in walk:
        if len(taken) == limit or not inside(member):
            break
        taken.append((member, score))
    return taken


def _range_command(kind: str | None, reverse: bool | None) -> Callable[..., bytes]:
    """A ZRANGE-family handler: the query parsed before the key is looked at."""

    def handler(shard, db, argv: list[bytes], enc) -> bytes:
        query = parse_range_query(argv, 1, False, kind, reverse)
        if query.__class__ is bytes:
            return query  # type: ignore[return-value]
        zset = _zset_or_error(shard, db, argv[1])
        if zset is None:
            return EMPTY_ARRAY
        if zset.__class__ is bytes:
            return zset  # type: ignore[return-value]
        return _members_reply(enc, select_range(zset, query), query.withscores)

    return handler


zrange = _range_command(None, None)
zrevrange = _range_command(_RANK, True)
zrangebyscore = _range_command(_SCORE, False)
zrevrangebyscore = _range_command(_SCORE, True)
zrangebylex = _range_command(_LEX, False)
zrevrangebylex = _range_command(_LEX, True)


def _range_as_value(pairs: list[tuple[bytes, float]], limits: tuple[int, int]) -> SortedSet:
    """ZRANGESTORE's result: the pairs added one by one to a new listpack, as Redis adds
    them (so it turns big where ZADD would)."""
    zset = SortedSet()
    for member, score in pairs:
        zset.insert(member, score, limits)
    return zset


def _store_result(db, key: bytes, zset: SortedSet | None, enc) -> bytes:
    """A STORE command's end: the destination replaced (its deadline dropped), or deleted
    when the result is empty; the reply is the result's size."""
    if not zset:
        db.delete(key)
        return enc.ZERO
    db.store(key, zset)
    return enc.integer(len(zset))


def zrangestore(shard, db, argv: list[bytes], enc) -> bytes:
    """ZRANGESTORE dst src ...: the destination is replaced whatever its type."""
    query = parse_range_query(argv, 2, True, None, None)
    if query.__class__ is bytes:
        return query  # type: ignore[return-value]
    zset = _zset_or_error(shard, db, argv[2])
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    pairs = [] if zset is None else select_range(zset, query)
    return _store_result(db, argv[1], _range_as_value(pairs, _limits(shard.settings)), enc)


def check_zrangestore(session, argv: list[bytes]) -> bytes | None:
    query = parse_range_query(argv, 2, True, None, None)
    return query if query.__class__ is bytes else None  # type: ignore[return-value]


def zrangeread_part(shard, db, argv: list[bytes]) -> list | bool | None:
    """Internal: ZRANGESTORE's selection from its source (argv: name, dst, src, the rest):
    the pairs, None if the source is missing, False if it is not a sorted set."""
    zset = _zset_or_error(shard, db, argv[2])
    if zset is None:
        return None
    if zset.__class__ is bytes:
        return False
    return select_range(zset, parse_range_query(argv, 2, True, None, None))  # type: ignore[arg-type]


def plan_zrangestore(session, argv: list[bytes]) -> Plan:
    dst, src = argv[1], argv[2]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        pairs = results[0]
        if pairs is False:
            return WRONGTYPE, []
        zset = _range_as_value(pairs or [], _acceptor_limits(session))
        return _planned_store(session, dst, zset, b"zrangestore")

    reads = [Step(src, [b"@zrangeread", *argv[1:]]), Step(dst, [b"@exists", dst])]
    return Plan(reads, decide)


def _planned_store(session, dst: bytes, zset: SortedSet, event: bytes) -> tuple[bytes, list[Step]]:
    """A coordinated STORE's reply and write: ``@put`` the result (``event`` names the
    command for keyspace notifications), or ``@del`` when empty."""
    if not zset:
        return session.enc.ZERO, [Step(dst, [b"@del", dst])]
    write = Step(dst, [b"@put", dst, values.to_plain(zset), None, event])
    return session.enc.integer(len(zset)), [write]


# -- removing ranges ----------------------------------------------------------------------


def _remove_span(db, key: bytes, zset: SortedSet, start: int, stop: int, enc) -> bytes:
    removed = zset.delete_ranks(start, stop) if start < stop else 0
    if not zset:
        db.delete(key)
    return enc.integer(removed)


def zremrangebyrank(shard, db, argv: list[bytes], enc) -> bytes:
    start, end = parse_int(argv[2]), parse_int(argv[3])
    if start is None or end is None:
        return NOT_INTEGER
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    span = _rank_span(len(zset), start, end)
    if span is None:
        return enc.ZERO
    return _remove_span(db, argv[1], zset, span[0], span[1], enc)


def zremrangebyscore(shard, db, argv: list[bytes], enc) -> bytes:
    scores = parse_score_range(argv[2], argv[3])
    if scores is None:
        return NOT_FLOAT_BOUND
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    start, stop = scores.start(zset.ranked), scores.stop(zset.ranked)
    return _remove_span(db, argv[1], zset, start, stop, enc)


def zremrangebylex(shard, db, argv: list[bytes], enc) -> bytes:
    """The run of members from where the range starts while they stay under its end (a
    big set's start found by bisection, as Redis's skiplist finds it, without the emptiness
    test its listpack makes first)."""
    lex = parse_lex_range(argv[2], argv[3])
    if lex is None:
        return NOT_LEX_BOUND
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return enc.ZERO
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    start = _transition(zset.ranked, lex.gte_min) if zset.big else _lex_first(zset, lex)
    if start is None:
        return enc.ZERO
    stop = start
    for _, member in zset.ranked.islice(start):
        if not lex.lte_max(member):
            break
        stop += 1
    return _remove_span(db, argv[1], zset, start, stop, enc)


# -- pops and random members --------------------------------------------------------------


def _positive(arg: bytes) -> int | None:
    """A count as ``getPositiveLongFromObjectOrReply`` reads it: 0 to LLONG_MAX."""
    value = parse_int(arg)
    return value if value is not None and value >= 0 else None


def _zpop(shard, db, argv: list[bytes], enc, highest: bool) -> bytes:
    """ZPOPMIN/ZPOPMAX key [count]: without a count a flat [member, score]; with one, a flat
    array in RESP2 and pairs in RESP3. A missing key is an empty array in both."""
    if len(argv) > 3:
        return SYNTAX
    count = -1
    if len(argv) == 3:
        count = _positive(argv[2])
        if count is None:
            return NOT_POSITIVE
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return EMPTY_ARRAY
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    if count == 0:
        return EMPTY_ARRAY
    pairs = zset.pop_ends(1 if count == -1 else count, highest)
    if not zset:
        db.delete(argv[1])
    return _members_reply(enc, pairs, True) if count != -1 else _pair_reply(enc, *pairs[0])


def _pair_reply(enc, member: bytes, score: float) -> bytes:
    """One member and its score as a flat array, in both protocols (a pop without count)."""
    return b"*2\r\n$%d\r\n%b\r\n" % (len(member), member) + enc.double(b"%.17g" % score)


def zpopmin(shard, db, argv: list[bytes], enc) -> bytes:
    return _zpop(shard, db, argv, enc, False)


def zpopmax(shard, db, argv: list[bytes], enc) -> bytes:
    return _zpop(shard, db, argv, enc, True)


_RANDOM = random.Random()
#: ZRANDMEMBER's count with WITHSCORES stays within half of LONG_MAX either way.
_HALF_LONG = LLONG_MAX // 2


def _random_repeats(enc, ranked: SortedList, count: int, withscores: bool) -> bytes:
    """``count`` members drawn with repetition. The reply can be far larger than the set,
    so it is encoded a thousand members at a time, never holding more than itself."""
    size, pick = len(ranked), _RANDOM.randrange
    chunks = [_array_header(enc, count, withscores)]
    for start in range(0, count, 1000):
        drawn = [ranked[pick(size)] for _ in range(min(1000, count - start))]
        chunks.append(_reply_items(enc, [(m, s) for s, m in drawn], withscores))
    return b"".join(chunks)


def zrandmember(shard, db, argv: list[bytes], enc) -> bytes:
    """ZRANDMEMBER key [count [WITHSCORES]], with Redis's cases: a negative count repeats
    members (random order); a count at least the size is the whole set, highest rank first
    (Redis iterates it backwards); otherwise distinct random members."""
    if len(argv) < 3:
        zset = _zset_or_error(shard, db, argv[1])
        if zset is None:
            return enc.NULL
        if zset.__class__ is bytes:
            return zset  # type: ignore[return-value]
        return enc.bulk(zset.ranked[_RANDOM.randrange(len(zset))][1])
    count = parse_int(argv[2])
    if count is None:
        return NOT_INTEGER
    if count < -LLONG_MAX:
        return error(f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}")
    if len(argv) > 4 or len(argv) == 4 and _word(argv[3]) != b"withscores":
        return SYNTAX
    withscores = len(argv) == 4
    if withscores and not -_HALF_LONG <= count <= _HALF_LONG:
        return error("ERR value is out of range")
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return EMPTY_ARRAY
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    size = len(zset)
    ranked = zset.ranked
    if count < 0:
        return _random_repeats(enc, ranked, -count, withscores)
    if count >= size:
        pairs = zset.pairs(reverse=True)
    else:
        pairs = [(ranked[i][1], ranked[i][0]) for i in _RANDOM.sample(range(size), count)]
    return _members_reply(enc, pairs, withscores)


# -- ZSCAN --------------------------------------------------------------------------------


def zscan(shard, db, argv: list[bytes], enc) -> bytes:
    """ZSCAN key cursor [MATCH pattern] [COUNT count]: the cursor checked before the key,
    the options after its type; a listpack comes back whole with cursor 0, MATCH applies
    to members, and scores are strings in both protocols, written as the encoding holds
    them."""
    if scanning.parse_cursor(argv[2]) is None:
        return scanning.INVALID_CURSOR
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return scanning.EMPTY_SCAN
    if zset.__class__ is bytes:
        return zset  # type: ignore[return-value]
    page = scanning.scan_container(
        shard,
        argv,
        not zset.big,
        lambda: [member for _, member in zset.ranked],
        zset.__contains__,
    )
    if page.__class__ is bytes:
        return page  # type: ignore[return-value]
    cursor, members = page  # type: ignore[misc]
    text = format_score if zset.big else listpack_score_text
    items = []
    for member in members:
        items += (member, text(zset[member]))
    return scanning.cursor_reply(enc, cursor, items)


# -- ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD ---------------------------------

_UNION, _INTER, _DIFF = "union", "inter", "diff"


def _numkeys(argv: list[bytes], index: int, name: str) -> int | bytes:
    """The ``numkeys`` argument, checked as Redis checks it before touching any key."""
    count = parse_int(argv[index])
    if count is None:
        return NOT_INTEGER
    if count < 1:
        return error(f"ERR at least 1 input key is needed for '{name}' command")
    if count > len(argv) - index - 1:
        return SYNTAX
    return count


def _key_span(index: int, extra: list[int]) -> Callable[[list[bytes]], list[int]]:
    """Key positions of a numkeys command: ``extra`` and the ``numkeys`` keys after
    ``argv[index]``; none when numkeys is not valid (COMMAND GETKEYS asks unchecked)."""

    def positions(argv: list[bytes]) -> list[int]:
        count = parse_int(argv[index]) if len(argv) > index else None
        if count is None or not 1 <= count <= len(argv) - index - 1:
            return []
        return [*extra, *range(index + 1, index + 1 + count)]

    return positions


class SetOptions:
    """WEIGHTS, AGGREGATE, WITHSCORES and LIMIT of a set operation."""

    __slots__ = ("weights", "aggregate", "withscores", "limit")

    def __init__(self, count: int) -> None:
        self.weights = [1.0] * count
        self.aggregate = _sum
        self.withscores = False
        self.limit = 0


def _sum(total: float, value: float) -> float:
    """SUM, where inf + -inf is 0 rather than NaN, as Redis has it."""
    total += value
    return 0.0 if total != total else total


def _min(total: float, value: float) -> float:
    return value if value < total else total


def _max(total: float, value: float) -> float:
    return value if value > total else total


_AGGREGATES = {b"sum": _sum, b"min": _min, b"max": _max}


def parse_set_options(
    argv: list[bytes], index: int, count: int, op: str, store: bool, card: bool
) -> SetOptions | bytes:
    """The options after the keys, as ``zunionInterDiffGenericCommand`` reads them (Redis
    does this after it has looked up every key): WEIGHTS needs a weight per key, later
    options override earlier ones, ZDIFF takes only WITHSCORES, ZINTERCARD only LIMIT."""
    options = SetOptions(count)
    while index < len(argv):
        remaining = len(argv) - index
        word = _word(argv[index])
        if op != _DIFF and not card and remaining >= count + 1 and word == b"weights":
            for i in range(count):
                weight = parse_score(argv[index + 1 + i])
                if weight is None:
                    return WEIGHT_NOT_FLOAT
                options.weights[i] = weight
            index += count + 1
        elif op != _DIFF and not card and remaining >= 2 and word == b"aggregate":
            aggregate = _AGGREGATES.get(_word(argv[index + 1]))
            if aggregate is None:
                return SYNTAX
            options.aggregate = aggregate
            index += 2
        elif not store and not card and word == b"withscores":
            options.withscores = True
            index += 1
        elif card and remaining >= 2 and word == b"limit":
            limit = _positive(argv[index + 1])
            if limit is None:
                return error("ERR LIMIT can't be negative")
            options.limit = limit
            index += 2
        else:
            return SYNTAX
    return options


#: A source of a set operation: None (missing), a dict of member -> score (a sorted set),
#: or a set of members (a Redis set, whose members score 1).
Source = dict | set | frozenset | None


def _entries(source: Source) -> Iterable[tuple[bytes, float]]:
    if isinstance(source, dict):
        return source.items()
    return ((member, 1.0) for member in source)  # type: ignore[union-attr]


def _finder(source: Source) -> Callable[[bytes], float | None]:
    if isinstance(source, dict):
        return source.get
    return lambda member: 1.0 if member in source else None  # type: ignore[operator]


def _by_size(sources: list[Source]) -> list[int]:
    """Source positions smallest first, ties in argument order (Redis's qsort here is
    glibc's merge sort): the order in which scores are aggregated."""
    return sorted(range(len(sources)), key=lambda i: len(sources[i] or ()))


def _union(sources: list[Source], options: SetOptions) -> dict[bytes, float]:
    aggregate = options.aggregate
    result: dict[bytes, float] = {}
    for i in _by_size(sources):
        if not sources[i]:
            continue
        weight = options.weights[i]
        for member, score in _entries(sources[i]):
            value = weight * score
            if value != value:
                value = 0.0
            total = result.get(member)
            result[member] = value if total is None else aggregate(total, value)
    return result


def _intersection(sources: list[Source], options: SetOptions, limit: int = 0) -> dict:
    """Members of every source, by probing the others for each member of the smallest:
    O(N*K). The first source's weighted score is made 0 if NaN; later weighted scores are
    aggregated as they are (Redis's order). With ``limit``, stop after that many."""
    order = _by_size(sources)
    smallest = sources[order[0]]
    result: dict[bytes, float] = {}
    if not smallest:
        return result
    aggregate = options.aggregate
    first_weight = options.weights[order[0]]
    others = [(_finder(sources[i]), options.weights[i]) for i in order[1:]]
    for member, score in _entries(smallest):
        total = first_weight * score
        if total != total:
            total = 0.0
        for find, weight in others:
            found = find(member)
            if found is None:
                break
            total = aggregate(total, found * weight)
        else:
            result[member] = total
            if len(result) == limit:
                break
    return result


def _difference(sources: list[Source]) -> dict[bytes, float]:
    """Members of the first source in none of the others, with their scores."""
    if not sources[0]:
        return {}
    others = [_finder(source) for source in sources[1:] if source]
    return {
        member: score
        for member, score in _entries(sources[0])
        if all(find(member) is None for find in others)
    }


def _rank_order(result: dict[bytes, float]) -> list[tuple[bytes, float]]:
    return sorted(result.items(), key=lambda pair: (pair[1], pair[0]))


def _setop_value(shard, db, key: bytes) -> Source | bytes:
    value = db.lookup(key, shard.now)
    if value is None or value.__class__ is SortedSet:
        return value
    if values.type_name(value) == b"set":
        return value
    return WRONGTYPE


class SetOperation:
    """One of ZUNION, ZINTER, ZDIFF, ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE, ZINTERCARD:
    its native handler, its check, its plan, its key positions."""

    def __init__(self, name: str, op: str, store: bool = False, card: bool = False) -> None:
        self.name, self.op, self.store, self.card = name, op, store, card
        self.index = 2 if store else 1  # where numkeys is
        self.keys = _key_span(self.index, [1] if store else [])

    def check(self, session, argv: list[bytes]) -> bytes | None:
        count = _numkeys(argv, self.index, self.name)
        return count if count.__class__ is bytes else None  # type: ignore[return-value]

    def _compute(self, sources: list[Source], argv: list[bytes], enc, limits):
        """(reply, value to store or None) from the sources, or (error, None)."""
        first_option = self.index + 1 + len(sources)
        options = parse_set_options(
            argv, first_option, len(sources), self.op, self.store, self.card
        )
        if options.__class__ is bytes:
            return options, None
        if self.card:
            return enc.integer(len(_intersection(sources, options, options.limit))), None
        if self.op == _UNION:
            result = _union(sources, options)
        elif self.op == _INTER:
            result = _intersection(sources, options)
        else:
            result = _difference(sources)
        pairs = _rank_order(result)
        if not self.store:
            return _members_reply(enc, pairs, options.withscores), None
        return None, SortedSet.build(pairs, bool(pairs) and not _fits_small(pairs, limits))

    def run(self, shard, db, argv: list[bytes], enc) -> bytes:
        count = _numkeys(argv, self.index, self.name)
        if count.__class__ is bytes:
            return count  # type: ignore[return-value]
        sources = []
        for key in argv[self.index + 1 : self.index + 1 + count]:  # type: ignore[operator]
            source = _setop_value(shard, db, key)
            if source.__class__ is bytes:
                return source  # type: ignore[return-value]
            sources.append(source)
        reply, result = self._compute(sources, argv, enc, _limits(shard.settings))
        if result is None:
            return reply
        return _store_result(db, argv[1], result, enc)

    def plan(self, session, argv: list[bytes]) -> Plan:
        count = int(argv[self.index])
        keys = argv[self.index + 1 : self.index + 1 + count]
        reads = [Step(key, [b"@zsource", key]) for key in keys]
        if self.store:  # hold the destination's shard too, for the write
            reads.append(Step(argv[1], [b"@exists", argv[1]]))

        def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
            sources: list[Source] = []
            for found in results[:count]:
                if found is None:
                    sources.append(None)
                elif found[0] == "zset":
                    sources.append(dict(found[1]))
                elif found[0] == "set":
                    sources.append(set(found[1]))
                else:
                    return WRONGTYPE, []
            reply, result = self._compute(sources, argv, session.enc, _acceptor_limits(session))
            if result is None:
                return reply, []
            return _planned_store(session, argv[1], result, self.name.encode())

        return Plan(reads, decide)

    def row(self) -> Command:
        return Command(
            self.name,
            Route.COORD,
            self.run,
            check=self.check,
            plan=self.plan,
            keys=self.keys,
            notes="across shards, the sources are read whole",
        )


def source_part(shard, db, argv: list[bytes]) -> tuple[str, Any] | None:
    """Internal: a set operation's source: ("zset", pairs), ("set", members), ("other",
    None) for another type, or None if missing."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return None
    if value.__class__ is SortedSet:
        return "zset", list(value.items())
    if values.type_name(value) == b"set":
        return "set", list(value)  # type: ignore[call-overload]
    return "other", None


# -- ZMPOP --------------------------------------------------------------------------------


def _parse_zmpop(argv: list[bytes]) -> tuple[int, bool, int] | bytes:
    """ZMPOP numkeys key... MIN|MAX [COUNT count]: (numkeys, highest, count) or the error,
    everything checked before any key (Redis's order)."""
    count = parse_int(argv[1])
    if count is None or count < 1:
        return error("ERR numkeys should be greater than 0")
    where = 2 + count
    if where >= len(argv):
        return SYNTAX
    side = _word(argv[where])
    if side not in (b"min", b"max"):
        return SYNTAX
    pop = -1
    index = where + 1
    while index < len(argv):
        if pop == -1 and _word(argv[index]) == b"count" and index + 1 < len(argv):
            pop = parse_int(argv[index + 1])  # type: ignore[assignment]
            if pop is None or pop < 1:
                return error("ERR count should be greater than 0")
            index += 2
        else:
            return SYNTAX
    return count, side == b"max", 1 if pop == -1 else pop


def _zmpop_reply(enc, key: bytes, pairs: list[tuple[bytes, float]]) -> bytes:
    return b"*2\r\n" + enc.bulk(key) + _nested_pairs(enc, pairs)


def zmpop(shard, db, argv: list[bytes], enc) -> bytes:
    """Pops from the first key that exists; a key of another type before it is an error."""
    parsed = _parse_zmpop(argv)
    if parsed.__class__ is bytes:
        return parsed  # type: ignore[return-value]
    count, highest, pop = parsed  # type: ignore[misc]
    for key in argv[2 : 2 + count]:
        zset = _zset_or_error(shard, db, key)
        if zset is None:
            continue
        if zset.__class__ is bytes:
            return zset  # type: ignore[return-value]
        pairs = zset.pop_ends(pop, highest)
        if not zset:
            db.delete(key)
        return _zmpop_reply(enc, key, pairs)
    return enc.NULL_ARRAY


def check_zmpop(session, argv: list[bytes]) -> bytes | None:
    parsed = _parse_zmpop(argv)
    return parsed if parsed.__class__ is bytes else None  # type: ignore[return-value]


def peek_end_part(shard, db, argv: list[Any]) -> list | bool | None:
    """Internal: what ZMPOP would pop from a key (argv: name, key, highest, count): the
    pairs, None if missing, False if not a sorted set."""
    zset = _zset_or_error(shard, db, argv[1])
    if zset is None:
        return None
    if zset.__class__ is bytes:
        return False
    count = min(argv[3], len(zset))
    if argv[2]:
        return zset.pairs(len(zset) - count, reverse=True)
    return zset.pairs(0, count)


def plan_zmpop(session, argv: list[bytes]) -> Plan:
    """Reads what each key would give, pops from the first that exists with the ZPOPMIN
    or ZPOPMAX Redis propagates, while the shards are held (so it pops what was read)."""
    count, highest, pop = _parse_zmpop(argv)  # type: ignore[misc]
    keys = argv[2 : 2 + count]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        for key, pairs in zip(keys, results, strict=True):
            if pairs is None:
                continue
            if pairs is False:
                return WRONGTYPE, []
            name = b"zpopmax" if highest else b"zpopmin"
            write = Step(key, [name, key, b"%d" % len(pairs)])
            return _zmpop_reply(session.enc, key, pairs), [write]
        return session.enc.NULL_ARRAY, []

    return Plan([Step(key, [b"@zpeek", key, highest, pop]) for key in keys], decide)


# -- the command table --------------------------------------------------------------------

K, C = Route.KEY, Route.COORD
ROWS = [
    Command("zadd", K, zadd),
    Command("zincrby", K, zincrby),
    Command("zrem", K, zrem),
    Command("zcard", K, zcard),
    Command("zscore", K, zscore),
    Command("zmscore", K, zmscore),
    Command("zrank", K, zrank),
    Command("zrevrank", K, zrevrank),
    Command("zcount", K, zcount),
    Command("zlexcount", K, zlexcount),
    Command("zrange", K, zrange),
    Command("zrevrange", K, zrevrange),
    Command("zrangebyscore", K, zrangebyscore),
    Command("zrevrangebyscore", K, zrevrangebyscore),
    Command("zrangebylex", K, zrangebylex),
    Command("zrevrangebylex", K, zrevrangebylex),
    Command("zrangestore", C, zrangestore, check=check_zrangestore, plan=plan_zrangestore),
    Command("zremrangebyrank", K, zremrangebyrank),
    Command("zremrangebyscore", K, zremrangebyscore),
    Command("zremrangebylex", K, zremrangebylex),
    Command("zpopmin", K, zpopmin),
    Command("zpopmax", K, zpopmax),
    Command("zmpop", C, zmpop, check=check_zmpop, plan=plan_zmpop, keys=_key_span(1, [])),
    Command("zrandmember", K, zrandmember),
    Command("zscan", K, zscan, notes="big sets: the cursor walks a member snapshot"),
    SetOperation("zunion", _UNION).row(),
    SetOperation("zinter", _INTER).row(),
    SetOperation("zdiff", _DIFF).row(),
    SetOperation("zunionstore", _UNION, store=True).row(),
    SetOperation("zinterstore", _INTER, store=True).row(),
    SetOperation("zdiffstore", _DIFF, store=True).row(),
    SetOperation("zintercard", _INTER, card=True).row(),
]

#: Internal parts of the coordinated commands, by wire name.
INTERNAL_PARTS = {
    b"@zsource": source_part,
    b"@zrangeread": zrangeread_part,
    b"@zpeek": peek_end_part,
}
