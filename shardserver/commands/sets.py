"""Sets (Redis's ``t_set.c``): the set value class and its commands.

A set is a :class:`SetValue`, a Python ``set`` of member bytes that also knows which encoding
Redis would report for it: ``intset`` while every member is an integer that Redis's
``string2ll`` accepts and there are at most ``set-max-intset-entries`` of them, else
``hashtable``, for ever (Redis 7.0 converts once and never back; it has no listpack sets).
Where Redis's reply order is deterministic (an intset iterates in ascending numeric order) the
replies here follow it; elsewhere the order is the hash table's, as in Redis.

Random picks (SPOP, SRANDMEMBER) are O(1), as Redis's are: a Python set has no random access,
so a set that has been sampled keeps a *pool*, a list of its members to draw from (see
:meth:`SetValue.pick`).

Commands over several keys stay atomic when the keys live on different shards (and run
natively when one shard holds them all): SUNION sends each shard a part that reads its keys,
all in one step of the acceptor, and merges them (route KEYS); SINTER, SDIFF, SINTERCARD, the
STORE forms and SMOVE are coordinated (route COORD): they read on every shard involved, in as
many rounds as Redis's algorithm needs, while the acceptor holds those shards, decide in the
acceptor, and write before the shards are released (see "across shards" below). The algebra
of the native paths (:func:`inter_members`, :func:`union_members`, :func:`diff_members`) works
on *sources*: ``(big, members)`` pairs, or None for a missing key.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterable, Iterator, Set
from itertools import islice
from typing import Any

from shardserver import values
from shardserver.commands import scanning
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error
from shardserver.numbers import LLONG_MAX, LLONG_MIN, parse_int

#: Redis caps ``set-max-intset-entries`` at 2**30 (an intset's internals).
INTSET_HARD_LIMIT = 1 << 30
DEFAULT_INTSET_ENTRIES = 512
#: Members per SADD when a set is rebuilt (the append-only log's rewrite).
REBUILD_CHUNK = 64
#: Members per SREM when SPOP is logged as the removal of what it popped.
PROPAGATE_CHUNK = 64

NOT_POSITIVE = error("ERR value is out of range, must be positive")
SRANDMEMBER_RANGE = error(
    f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}"
)
NUMKEYS = error("ERR numkeys should be greater than 0")
TOO_MANY_KEYS = error("ERR Number of keys can't be greater than number of args")
LIMIT_NEGATIVE = error("ERR LIMIT can't be negative")
#: Not Redis's: Redis streams any reply, even one of 2**63 random members, until memory runs
#: out. A shard builds its reply whole, so SRANDMEMBER with a negative count refuses one that
#: would pass ``proto-max-bulk-len`` bytes.
REPLY_TOO_LARGE = error("ERR SRANDMEMBER reply would exceed proto-max-bulk-len bytes")

#: What a read part says of a key holding another type (missing keys read as None).
WRONG_TYPE = "wrongtype"

#: A set as the algebra sees it: (whether Redis holds it as a hashtable, its members).
Source = tuple[bool, Set[bytes]] | None

_rng = random.Random()


def is_intset_member(member: bytes) -> bool:
    """Whether an intset can hold the member: an integer as Redis's ``string2ll`` reads it."""
    return parse_int(member) is not None


def fits_intset(members: Set[bytes] | list[bytes], limit: int) -> bool:
    """Whether a set built from nothing by adding these members stays an intset."""
    return len(members) <= limit and all(parse_int(member) is not None for member in members)


@values.register
class SetValue(set):
    """A Redis set: its members, and whether Redis would hold it as a hashtable (``big``).

    ``big`` only ever turns on (Redis never converts a hashtable set back), except where
    Redis builds the set anew (SPOP's large-count path). Mutations that must keep the random
    pool right go through :meth:`add_members`, :meth:`remove_members` and :meth:`pop_random`.
    """

    __slots__ = ("big", "_pool", "_gone")

    redis_type = "set"

    def __init__(self, members: Iterable[bytes] = (), big: bool = False) -> None:
        super().__init__(members)
        self.big = big
        #: Members to draw from, or None until the first draw: every live member once, plus
        #: the members removed since, each once, which are exactly those in ``_gone`` (None
        #: with the pool, so that a set never drawn from carries nothing more).
        self._pool: list[bytes] | None = None
        self._gone: set[bytes] | None = None

    # -- the value protocol (values.StoredValue) --------------------------------------------

    def encoding(self) -> str:
        return "hashtable" if self.big else "intset"

    def copy(self) -> SetValue:
        return SetValue(self, self.big)

    def to_plain(self) -> tuple[bool, set[bytes]]:
        return self.big, set(self)

    @classmethod
    def from_plain(cls, data: tuple[bool, Iterable[bytes]]) -> SetValue:
        big, members = data
        return cls(members, big)

    def memory_usage(self) -> int:
        """The set object plus its members, estimated from a sample of up to 64 of them (as
        Redis's MEMORY USAGE samples), plus the random pool when there is one."""
        size = sys.getsizeof(self)
        count = len(self)
        if count:
            sample = list(islice(self, 64))
            size += sum(map(sys.getsizeof, sample)) * count // len(sample)
        if self._pool is not None:
            size += sys.getsizeof(self._pool) + sys.getsizeof(self._gone)
        return size

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        """SADD commands of at most :data:`REBUILD_CHUNK` members. As with Redis's own
        rewrite, the encoding is then chosen again from the members."""
        members = self.in_order()
        for start in range(0, len(members), REBUILD_CHUNK):
            yield [b"SADD", key, *members[start : start + REBUILD_CHUNK]]

    # -- order, additions, removals ---------------------------------------------------------

    def in_order(self) -> list[bytes]:
        """The members in Redis's iteration order: ascending numbers for an intset (at most
        ``set-max-intset-entries`` of them), the hash table's order otherwise."""
        return list(self) if self.big else sorted(self, key=int)

    def add_members(self, members: list[bytes], limit: int) -> int:
        """Add members as Redis's ``setTypeAdd`` does one by one; how many were new.

        An intset becomes a hashtable when a member is not an integer or the count passes
        ``limit``; since a member already present in an intset is an integer and the count
        only grows, checking after all the additions gives the same answer.
        """
        before = len(self)
        pool = self._pool
        if pool is None:
            self.update(members)
        else:
            gone = self._gone
            assert gone is not None
            for member in members:
                if member not in self:
                    self.add(member)
                    if member in gone:  # still in the pool, now live again
                        gone.discard(member)
                    else:
                        pool.append(member)
        added = len(self) - before
        if (
            added
            and not self.big
            and (len(self) > limit or not all(map(is_intset_member, members)))
        ):
            self.big = True
        return added

    def remove_members(self, members: Iterable[bytes]) -> int:
        """Remove members; how many were there. The caller deletes the key if now empty."""
        removed = 0
        gone = self._gone
        for member in members:
            if member in self:
                self.discard(member)
                removed += 1
                if gone is not None:
                    gone.add(member)
        return removed

    def replace_members(self, members: Iterable[bytes], limit: int) -> None:
        """Hold exactly ``members``, encoded as a set built anew from them."""
        self.clear()
        self.update(members)
        self.big = not fits_intset(self, limit)
        self._pool = None
        self._gone = None

    # -- random draws -----------------------------------------------------------------------

    def _draw_index(self) -> int:
        """The pool index of a member drawn uniformly (the set must not be empty).

        Draws land on a removed member at most half the time (the pool is rebuilt when more
        than half of it is stale), so a draw costs O(1) expected; a rebuild costs O(N) after
        at least N removals, O(1) amortized. Removed members met on the way leave the pool.
        """
        pool = self._pool
        gone = self._gone
        if pool is None or gone is None or len(gone) > len(self):
            pool = self._pool = list(self)
            gone = self._gone = set()
        random_ = _rng.random
        while True:
            index = int(random_() * len(pool))
            member = pool[index]
            if member not in gone:
                return index
            gone.discard(member)
            self._drop_from_pool(index)

    def _drop_from_pool(self, index: int) -> None:
        pool = self._pool
        assert pool is not None
        last = pool.pop()
        if index < len(pool):
            pool[index] = last

    def pick(self) -> bytes:
        """A member drawn uniformly, left in the set (O(1) expected)."""
        index = self._draw_index()
        assert self._pool is not None
        return self._pool[index]

    def pop_random(self) -> bytes:
        """Remove and return a member drawn uniformly (O(1) expected)."""
        index = self._draw_index()
        assert self._pool is not None
        member = self._pool[index]
        self._drop_from_pool(index)
        self.discard(member)
        return member


def intset_limit(settings: dict[str, Any]) -> int:
    """``set-max-intset-entries`` as Redis applies it (capped at 2**30)."""
    return min(settings.get("set-max-intset-entries", DEFAULT_INTSET_ENTRIES), INTSET_HARD_LIMIT)


def _acceptor_limit(session) -> int:
    return min(session.server.config["set-max-intset-entries"], INTSET_HARD_LIMIT)


def _members_reply(enc, members: Iterable[bytes]) -> bytes:
    """A set reply (an array in RESP2) of members."""
    return enc.bulk_set(list(members))


def _ordered(members: Iterable[bytes], big: bool) -> Iterable[bytes]:
    """Members in the order Redis iterates a result set: ascending for an intset."""
    return members if big else sorted(members, key=int)


# -- single-key commands ------------------------------------------------------------------


def sadd(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        value = SetValue()
        db.store(argv[1], value)
    elif value.__class__ is not SetValue:
        return WRONGTYPE
    return enc.integer(value.add_members(argv[2:], intset_limit(shard.settings)))


def srem(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not SetValue:
        return WRONGTYPE
    removed = value.remove_members(argv[2:])
    if not value:
        db.delete(argv[1])
    return enc.integer(removed)


def scard(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not SetValue:
        return WRONGTYPE
    return enc.integer(len(value))


def sismember(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.ZERO
    if value.__class__ is not SetValue:
        return WRONGTYPE
    return enc.ONE if argv[2] in value else enc.ZERO


def smismember(shard, db, argv: list[bytes], enc) -> bytes:
    """A missing key is an empty set: all zeros."""
    value = db.lookup(argv[1], shard.now)
    if value is not None and value.__class__ is not SetValue:
        return WRONGTYPE
    members = value if value is not None else ()
    one, zero = enc.ONE, enc.ZERO
    return enc.array([one if member in members else zero for member in argv[2:]])


def smembers(shard, db, argv: list[bytes], enc) -> bytes:
    """SMEMBERS is SINTER of one key in Redis 7.0: a set reply, in the set's order."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.set([])
    if value.__class__ is not SetValue:
        return WRONGTYPE
    return _members_reply(enc, value.in_order())


def spop(shard, db, argv: list[bytes], enc) -> bytes:
    """SPOP key [count]: the count is checked before the key (any bad count: "must be
    positive"), then the type, then a zero count answers an empty set."""
    if len(argv) > 3:
        return SYNTAX
    key = argv[1]
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < 0:
            return NOT_POSITIVE
        value = db.lookup(key, shard.now)
        if value is None:
            return enc.set([])
        if value.__class__ is not SetValue:
            return WRONGTYPE
        return _spop_count(shard, db, key, value, count, enc)
    value = db.lookup(key, shard.now)
    if value is None:
        return enc.NULL
    if value.__class__ is not SetValue:
        return WRONGTYPE
    member = value.pop_random()
    if not value:
        db.delete(key)
    return enc.bulk(member)


#: SPOP with a count keeps the members that stay, instead of drawing those that go, once
#: the set is at most this many times bigger than what remains (Redis's
#: SPOP_MOVE_STRATEGY_MUL).
_SPOP_MOVE_STRATEGY_MUL = 5


def _spop_count(shard, db, key: bytes, value: SetValue, count: int, enc) -> bytes:
    """Redis's three cases: the whole set (in the order of the set a union of it would
    build); ``count`` draws; or, when few members remain, draw those that stay and build
    the set anew from them (so its encoding is chosen again), answering the others in the
    old set's order."""
    if count == 0:
        return enc.set([])
    size = len(value)
    limit = intset_limit(shard.settings)
    if count >= size:
        db.delete(key)
        return _members_reply(enc, _ordered(value, not fits_intset(value, limit)))
    remaining = size - count
    if remaining * _SPOP_MOVE_STRATEGY_MUL > count:
        pop = value.pop_random
        return _members_reply(enc, [pop() for _ in range(count)])
    kept = set(_rng.sample(list(value), remaining))
    popped = [member for member in value.in_order() if member not in kept]
    value.replace_members(kept, limit)
    return _members_reply(enc, popped)


def propagate_spop(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """SPOP is random, so it is logged as what it did: the SREM of the members it popped
    (in commands of at most :data:`PROPAGATE_CHUNK`), or, as Redis logs it, a DEL when a
    count took the whole set."""
    members = reply_members(reply)
    if not members:
        return []
    key = argv[1]
    if len(argv) == 3 and db.lookup(key, shard.now) is None:
        return [[b"DEL", key]]
    return [
        [b"SREM", key, *members[start : start + PROPAGATE_CHUNK]]
        for start in range(0, len(members), PROPAGATE_CHUNK)
    ]


def reply_members(reply: bytes) -> list[bytes]:
    """The members in an encoded bulk, array or set reply of bulks (nothing for a null or
    an error)."""
    kind = reply[:1]
    if kind not in (b"$", b"*", b"~"):
        return []
    end = reply.index(b"\r\n")
    count = int(reply[1:end])
    if kind == b"$":
        return [] if count < 0 else [reply[end + 2 : end + 2 + count]]
    members = []
    position = end + 2
    for _ in range(count):
        end = reply.index(b"\r\n", position)
        size = int(reply[position + 1 : end])
        members.append(reply[end + 2 : end + 2 + size])
        position = end + 4 + size
    return members


#: SRANDMEMBER with a positive count copies the set and removes members at random once the
#: set is at most this many times bigger than the count (Redis's SRANDMEMBER_SUB_STRATEGY_MUL).
_SRANDMEMBER_SUB_STRATEGY_MUL = 3
#: Draws encoded at a time for a negative count, between checks of the reply's size.
_DRAW_CHUNK = 4096


def srandmember(shard, db, argv: list[bytes], enc) -> bytes:
    """SRANDMEMBER key [count]: one member (a bulk), or an array: a negative count draws
    with repeats, a positive one distinct members."""
    if len(argv) > 3:
        return SYNTAX
    key = argv[1]
    if len(argv) == 2:
        value = db.lookup(key, shard.now)
        if value is None:
            return enc.NULL
        if value.__class__ is not SetValue:
            return WRONGTYPE
        return enc.bulk(value.pick())
    count = parse_int(argv[2])
    if count is None:
        return NOT_INTEGER
    if count == LLONG_MIN:  # Redis reads the count within [-LONG_MAX, LONG_MAX]
        return SRANDMEMBER_RANGE
    value = db.lookup(key, shard.now)
    if value is None:
        return enc.EMPTY_ARRAY
    if value.__class__ is not SetValue:
        return WRONGTYPE
    if count == 0:
        return enc.EMPTY_ARRAY
    if count < 0 or count == 1:
        return _draws_reply(value, -count if count < 0 else 1, shard.settings, enc)
    size = len(value)
    if count >= size:
        members: Iterable[bytes] = value.in_order()
    elif count * _SRANDMEMBER_SUB_STRATEGY_MUL > size:
        members = _rng.sample(list(value), count)
    else:
        chosen: dict[bytes, None] = {}
        pick = value.pick
        while len(chosen) < count:
            chosen[pick()] = None
        members = chosen
    return enc.bulk_array(list(members))


def _draws_reply(value: SetValue, count: int, settings: dict[str, Any], enc) -> bytes:
    """An array of ``count`` independent draws, refused if it would pass
    ``proto-max-bulk-len`` bytes (each draw takes at least 6: ``$0\\r\\n\\r\\n``)."""
    budget = settings["proto-max-bulk-len"]
    if count * 6 > budget:
        return REPLY_TOO_LARGE
    pick, bulk = value.pick, enc.bulk
    chunks = [b"*%d\r\n" % count]
    size = 0
    left = count
    while left:
        step = min(left, _DRAW_CHUNK)
        chunk = b"".join([bulk(pick()) for _ in range(step)])
        size += len(chunk)
        if size > budget:
            return REPLY_TOO_LARGE
        chunks.append(chunk)
        left -= step
    return b"".join(chunks)


def sscan(shard, db, argv: list[bytes], enc) -> bytes:
    """SSCAN key cursor [MATCH pattern] [COUNT count]: the cursor is checked first, then the
    key and its type, then the options. An intset comes back whole, in order, cursor 0."""
    if scanning.parse_cursor(argv[2]) is None:
        return scanning.INVALID_CURSOR
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return scanning.EMPTY_SCAN
    if value.__class__ is not SetValue:
        return WRONGTYPE
    listing = value.in_order if not value.big else lambda: list(value)
    page = scanning.scan_container(shard, argv, not value.big, listing, value.__contains__)
    if page.__class__ is bytes:
        return page  # type: ignore[return-value]
    cursor, members = page  # type: ignore[misc]
    return scanning.cursor_reply(enc, cursor, members)


def smove(shard, db, argv: list[bytes], enc) -> bytes:
    """SMOVE source destination member, both keys on this shard. A missing source answers 0
    before the destination's type is checked, as in Redis."""
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = db.lookup(src_key, shard.now)
    dst = db.lookup(dst_key, shard.now)
    if src is None:
        return enc.ZERO
    if src.__class__ is not SetValue or (dst is not None and dst.__class__ is not SetValue):
        return WRONGTYPE
    if src is dst:
        return enc.ONE if member in src else enc.ZERO
    if not src.remove_members((member,)):
        return enc.ZERO
    if not src:
        db.delete(src_key)
    add_part(shard, db, [b"@set-add", dst_key, member])
    return enc.ONE


# -- the algebra: SINTER, SUNION, SDIFF over sources ----------------------------------------


def inter_members(sources: list[Source]) -> list[bytes]:
    """SINTER's members in Redis's order: those of the smallest set (the first of the
    smallest, in argument order) that every other set holds, in that set's iteration order.
    O(N*M), N the smallest set's size and M the number of sets."""
    if any(source is None for source in sources):
        return []
    by_size = sorted(sources, key=lambda source: len(source[1]))  # type: ignore[index]
    big, first = by_size[0]  # type: ignore[misc]
    others = [members for _, members in by_size[1:] if members is not first]  # type: ignore[misc]
    ordered = first if big else sorted(first, key=int)
    if not others:
        return list(ordered)
    return [member for member in ordered if all(member in other for other in others)]


def inter_card(sources: list[Source], limit: int) -> int:
    """SINTERCARD: the size of the intersection, counting stops at ``limit`` (0: none)."""
    if any(source is None for source in sources):
        return 0
    by_size = sorted((members for _, members in sources), key=len)  # type: ignore[misc]
    first, others = by_size[0], [members for members in by_size[1:] if members is not by_size[0]]
    if not limit:
        return len(set(first).intersection(*others)) if others else len(first)
    count = 0
    for member in first:
        if all(member in other for other in others):
            count += 1
            if count >= limit:
                break
    return count


def union_members(sources: list[Source], limit: int) -> tuple[set[bytes], bool]:
    """SUNION: the members, and whether Redis would build the result as a hashtable."""
    result: set[bytes] = set().union(*(source[1] for source in sources if source is not None))
    return result, not fits_intset(result, limit)


def diff_members(sources: list[Source], limit: int) -> tuple[set[bytes], bool]:
    """SDIFF: the first set's members that no other set holds, and whether Redis would
    build the result as a hashtable.

    Redis picks one of two algorithms by estimated work; the second copies the whole first
    set into the result before removing, so the result's encoding is then the first set's
    (built anew), whatever is removed afterwards.
    """
    if sources[0] is None:
        return set(), False
    first = sources[0][1]
    present = [source[1] for source in sources if source is not None]
    work_one = len(first) * len(present) // 2
    work_two = sum(map(len, present))
    result = set(first).difference(*present[1:])
    if work_one <= work_two:
        return result, not fits_intset(result, limit)
    return result, not fits_intset(first, limit)


def _inter_result(sources: list[Source], limit: int) -> tuple[list[bytes], bool]:
    members = inter_members(sources)
    return members, not fits_intset(members, limit)


def _native_sources(shard, db, keys: list[bytes]) -> list[Source] | bytes:
    """The sets under ``keys`` on this shard as sources; WRONGTYPE if any holds another type
    (Redis checks every key before computing, missing ones included)."""
    now = shard.now
    sources: list[Source] = []
    for key in keys:
        value = db.lookup(key, now)
        if value is None:
            sources.append(None)
        elif value.__class__ is not SetValue:
            return WRONGTYPE
        else:
            sources.append((value.big, value))
    return sources


def sinter(shard, db, argv: list[bytes], enc) -> bytes:
    sources = _native_sources(shard, db, argv[1:])
    if sources.__class__ is bytes:
        return sources  # type: ignore[return-value]
    return _members_reply(enc, inter_members(sources))  # type: ignore[arg-type]


def sunion(shard, db, argv: list[bytes], enc) -> bytes:
    sources = _native_sources(shard, db, argv[1:])
    if sources.__class__ is bytes:
        return sources  # type: ignore[return-value]
    members, big = union_members(sources, intset_limit(shard.settings))  # type: ignore[arg-type]
    return _members_reply(enc, _ordered(members, big))


def sdiff(shard, db, argv: list[bytes], enc) -> bytes:
    sources = _native_sources(shard, db, argv[1:])
    if sources.__class__ is bytes:
        return sources  # type: ignore[return-value]
    members, big = diff_members(sources, intset_limit(shard.settings))  # type: ignore[arg-type]
    return _members_reply(enc, _ordered(members, big))


# -- across shards ------------------------------------------------------------------------
#
# SUNION and SUNIONSTORE need every member of every set, so each shard sends its sets whole
# (``read_part``). SINTER and SDIFF need not: Redis's SINTER walks the smallest set and asks
# every other set about each member, O(N*M), and its SDIFF does the same with the first set
# when that is the cheaper of its two algorithms. Across shards they run as plans of up to
# three rounds, while the shards involved stay held: ``@set-info`` gives each key's type and
# size (and its members, when there are at most INLINE_MEMBERS); the set to walk is read if
# it was not inline; then ``@set-has`` asks each other set's shard which candidates it holds.
# What crosses the pipes is O(N*M), as Redis's work is.

#: Sets this small come back whole from a plan's first read (one round instead of three).
INLINE_MEMBERS = 64

#: A plan's last step: from the result's members (in reply order) and whether Redis would
#: build it as a hashtable, the reply and the writes.
Finish = Callable[[list[bytes], bool], "tuple[bytes, list[Step]] | Plan"]


def read_part(shard, db, argv: list[bytes]) -> list[Any]:
    """Part of SUNION across shards, and the ``@set-read`` step of plans: for each key, None
    (missing), :data:`WRONG_TYPE`, or the set as ``(big, members)``."""
    now = shard.now
    found: list[Any] = []
    for key in argv[1:]:
        value = db.lookup(key, now)
        if value is None:
            found.append(None)
        elif value.__class__ is not SetValue:
            found.append(WRONG_TYPE)
        else:
            found.append(value.to_plain())
    return found


def merge_sunion(session, argv: list[bytes], parts: list, layout: list[list[int]]) -> bytes:
    found: list[Any] = [None] * (len(argv) - 1)
    for part, positions in zip(parts, layout, strict=True):
        for value, position in zip(part, positions, strict=True):
            found[position] = value
    if WRONG_TYPE in found:
        return WRONGTYPE
    members, big = union_members(found, _acceptor_limit(session))
    return _members_reply(session.enc, _ordered(members, big))


def info_part(shard, db, argv: list[bytes]) -> Any:
    """Internal (``@set-info key``): None, :data:`WRONG_TYPE`, or ``(big, size, members)``,
    the members only when there are at most :data:`INLINE_MEMBERS` (else None)."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return None
    if value.__class__ is not SetValue:
        return WRONG_TYPE
    return value.big, len(value), set(value) if len(value) <= INLINE_MEMBERS else None


def has_part(shard, db, argv: list[bytes]) -> list[bytes]:
    """Internal (``@set-has key member ...``): the given members that the set holds."""
    value = db.lookup(argv[1], shard.now)
    if value is None or value.__class__ is not SetValue:
        return []
    return [member for member in argv[2:] if member in value]


def _members_then(key: bytes, info: tuple, then: Callable[[Set[bytes]], Any]) -> Any:
    """Go on with a set's members: at once when its first read brought them, else after one
    more read. (A key held across rounds changes only by expiring meanwhile: it then reads
    as empty.)"""
    if info[2] is not None:
        return then(info[2])

    def decide(results: list[list[Any]]) -> Any:
        found = results[0][0]
        return then(found[1] if isinstance(found, tuple) else set())

    return Plan([Step(key, [b"@set-read", key])], decide)


def _filter(
    candidates: list[bytes],
    others: list[tuple[bytes, Set[bytes] | None]],
    present: bool,
    then: Callable[[list[bytes]], Any],
) -> Any:
    """Keep the candidates, in order, that every other set holds (``present``: SINTER) or
    that none holds (SDIFF); ``others`` are (key, members or None when not read whole): the
    sets read whole are asked here, the rest on their shards, in one more round."""
    remote: dict[bytes, None] = {}
    for key, members in others:
        if members is None:
            remote[key] = None
        else:
            candidates = [member for member in candidates if (member in members) == present]
    if not remote or not candidates:
        return then(candidates)
    keys = list(remote)

    def decide(results: list[list[bytes]]) -> Any:
        answers = [set(result) for result in results]
        if present:
            return then([member for member in candidates if all(member in a for a in answers)])
        dropped = set().union(*answers)
        return then([member for member in candidates if member not in dropped])

    return Plan([Step(key, [b"@set-has", key, *candidates]) for key in keys], decide)


def _inter_plan(keys: list[bytes], extra: list[Step], limit: int, finish: Finish) -> Plan:
    """SINTER's walk across shards; ``extra`` reads hold more shards (a destination's)."""
    reads = [Step(key, [b"@set-info", key]) for key in keys] + extra

    def decide(results: list[Any]) -> Any:
        infos = results[: len(keys)]
        if WRONG_TYPE in infos:
            return WRONGTYPE, []
        if None in infos:
            return finish([], False)
        walked = min(range(len(keys)), key=lambda i: infos[i][1])  # the first of the smallest
        big = infos[walked][0]
        others = [(keys[i], infos[i][2]) for i in range(len(keys)) if i != walked]

        def then(members: Set[bytes]) -> Any:
            ordered = list(members) if big else sorted(members, key=int)
            return _filter(
                ordered, others, True, lambda kept: finish(kept, not fits_intset(kept, limit))
            )

        return _members_then(keys[walked], infos[walked], then)

    return Plan(reads, decide)


def _diff_plan(keys: list[bytes], extra: list[Step], limit: int, finish: Finish) -> Plan:
    """SDIFF across shards, by the algorithm Redis would pick from the sizes (see
    :func:`diff_members`): walk the first set, or read every set."""
    reads = [Step(key, [b"@set-info", key]) for key in keys] + extra

    def decide(results: list[Any]) -> Any:
        infos = results[: len(keys)]
        if WRONG_TYPE in infos:
            return WRONGTYPE, []
        if infos[0] is None:
            return finish([], False)
        present = [i for i, info in enumerate(infos) if info is not None]
        work_one = infos[0][1] * len(present) // 2
        work_two = sum(infos[i][1] for i in present)
        if work_one <= work_two:
            others = [(keys[i], infos[i][2]) for i in present[1:]]

            def then(members: Set[bytes]) -> Any:
                return _filter(
                    list(members),
                    others,
                    False,
                    lambda kept: finish(kept, not fits_intset(kept, limit)),
                )

            return _members_then(keys[0], infos[0], then)
        known = {i: infos[i][2] for i in present if infos[i][2] is not None}
        unread = [i for i in present if infos[i][2] is None]

        def compute(results: list[list[Any]]) -> Any:
            for i, result in zip(unread, results, strict=True):
                known[i] = result[0][1] if isinstance(result[0], tuple) else set()
            first = known[0]
            result = set(first).difference(*(known[i] for i in present[1:]))
            return finish(list(result), not fits_intset(first, limit))

        if not unread:
            return compute([])
        return Plan([Step(keys[i], [b"@set-read", keys[i]]) for i in unread], compute)

    return Plan(reads, decide)


def plan_sinter(session, argv: list[bytes]) -> Plan:
    def finish(members: list[bytes], big: bool) -> tuple[bytes, list[Step]]:
        return _members_reply(session.enc, members), []

    return _inter_plan(argv[1:], [], _acceptor_limit(session), finish)


def plan_sdiff(session, argv: list[bytes]) -> Plan:
    def finish(members: list[bytes], big: bool) -> tuple[bytes, list[Step]]:
        return _members_reply(session.enc, _ordered(members, big)), []

    return _diff_plan(argv[1:], [], _acceptor_limit(session), finish)


# -- SINTERCARD -----------------------------------------------------------------------------


def parse_sintercard(argv: list[bytes]) -> tuple[int, int] | bytes:
    """``numkeys key [key ...] [LIMIT limit]``: (numkeys, limit) or the error reply, checked
    in Redis's order (numkeys, their count, then the options); LIMIT may repeat."""
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        return NUMKEYS
    if numkeys > len(argv) - 2:
        return TOO_MANY_KEYS
    limit = 0
    position = 2 + numkeys
    while position < len(argv):
        # strcasecmp: the option is read as a C string, up to a NUL byte
        option = argv[position].partition(b"\0")[0].lower()
        if option == b"limit" and position + 1 < len(argv):
            limit = parse_int(argv[position + 1])
            if limit is None or limit < 0:
                return LIMIT_NEGATIVE
            position += 2
        else:
            return SYNTAX
    return numkeys, limit


def check_sintercard(session, argv: list[bytes]) -> bytes | None:
    """Refuse bad arguments in the acceptor, before any key is read (as Redis does)."""
    parsed = parse_sintercard(argv)
    return parsed if parsed.__class__ is bytes else None  # type: ignore[return-value]


def sintercard_keys(argv: list[bytes]) -> list[int]:
    """Key positions: the ``numkeys`` arguments after it (none if numkeys is invalid)."""
    parsed = parse_sintercard(argv)
    if parsed.__class__ is bytes:
        return []
    return list(range(2, 2 + parsed[0]))  # type: ignore[index]


def sintercard(shard, db, argv: list[bytes], enc) -> bytes:
    parsed = parse_sintercard(argv)
    if parsed.__class__ is bytes:
        return parsed  # type: ignore[return-value]
    numkeys, limit = parsed  # type: ignore[misc]
    sources = _native_sources(shard, db, argv[2 : 2 + numkeys])
    if sources.__class__ is bytes:
        return sources  # type: ignore[return-value]
    return enc.integer(inter_card(sources, limit))  # type: ignore[arg-type]


def plan_sintercard(session, argv: list[bytes]) -> Plan:
    numkeys, limit = parse_sintercard(argv)  # type: ignore[misc]

    def finish(members: list[bytes], big: bool) -> tuple[bytes, list[Step]]:
        count = len(members)
        return session.enc.integer(min(count, limit) if limit else count), []

    return _inter_plan(argv[2 : 2 + numkeys], [], _acceptor_limit(session), finish)


# -- SINTERSTORE, SUNIONSTORE, SDIFFSTORE ----------------------------------------------------

Combine = Callable[[list[Source], int], tuple[Iterable[bytes], bool]]


def _store_native(shard, db, argv: list[bytes], enc, combine: Combine) -> bytes:
    """A STORE form with every key on this shard. The destination is overwritten whatever
    its type, loses its deadline, and is deleted when the result is empty."""
    sources = _native_sources(shard, db, argv[2:])
    if sources.__class__ is bytes:
        return sources  # type: ignore[return-value]
    members, big = combine(sources, intset_limit(shard.settings))  # type: ignore[arg-type]
    result = SetValue(members, big)
    if not result:
        db.delete(argv[1])
        return enc.ZERO
    db.store(argv[1], result)
    return enc.integer(len(result))


def sinterstore(shard, db, argv: list[bytes], enc) -> bytes:
    return _store_native(shard, db, argv, enc, _inter_result)


def sunionstore(shard, db, argv: list[bytes], enc) -> bytes:
    return _store_native(shard, db, argv, enc, union_members)


def sdiffstore(shard, db, argv: list[bytes], enc) -> bytes:
    return _store_native(shard, db, argv, enc, diff_members)


def _stored(session, dst: bytes, event: bytes) -> Finish:
    """A STORE form's last step across shards: write the result to the destination (whose
    shard the plan's ``@exists`` read holds), or delete it when the result is empty;
    ``event`` names the command for keyspace notifications."""

    def finish(members: list[bytes], big: bool) -> tuple[bytes, list[Step]]:
        if not members:
            return session.enc.ZERO, [Step(dst, [b"@del", dst])]
        write = [b"@put", dst, ("set", (big, set(members))), None, event]
        return session.enc.integer(len(members)), [Step(dst, write)]

    return finish


def plan_sinterstore(session, argv: list[bytes]) -> Plan:
    dst = argv[1]
    hold = [Step(dst, [b"@exists", dst])]
    finish = _stored(session, dst, b"sinterstore")
    return _inter_plan(argv[2:], hold, _acceptor_limit(session), finish)


def plan_sdiffstore(session, argv: list[bytes]) -> Plan:
    dst = argv[1]
    hold = [Step(dst, [b"@exists", dst])]
    finish = _stored(session, dst, b"sdiffstore")
    return _diff_plan(argv[2:], hold, _acceptor_limit(session), finish)


def plan_sunionstore(session, argv: list[bytes]) -> Plan:
    """Every member of every source is needed: read them whole, and hold the destination."""
    dst, keys = argv[1], argv[2:]
    reads = [Step(key, [b"@set-read", key]) for key in keys] + [Step(dst, [b"@exists", dst])]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        found = [result[0] for result in results[:-1]]
        if WRONG_TYPE in found:
            return WRONGTYPE, []
        members, big = union_members(found, _acceptor_limit(session))
        return _stored(session, dst, b"sunionstore")(list(members), big)  # type: ignore[return-value]

    return Plan(reads, decide)


# -- SMOVE across shards ------------------------------------------------------------------

#: What ``@set-probe`` answers for a missing key.
PROBE_MISSING = None


def probe_part(shard, db, argv: list[bytes]) -> bool | str | None:
    """Internal (SMOVE's read): None if the key is missing, :data:`WRONG_TYPE`, or whether
    the set holds the member."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return PROBE_MISSING
    if value.__class__ is not SetValue:
        return WRONG_TYPE
    return argv[2] in value


def add_part(shard, db, argv: list[bytes]) -> int:
    """Internal: SADD of members to a key known to hold a set or nothing; how many were new."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        value = SetValue()
        db.store(argv[1], value)
    return value.add_members(argv[2:], intset_limit(shard.settings))


def remove_part(shard, db, argv: list[bytes]) -> int:
    """Internal: SREM of members from a key known to hold a set; deletes it when emptied."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return 0
    removed = value.remove_members(argv[2:])
    if not value:
        db.delete(argv[1])
    return removed


def plan_smove(session, argv: list[bytes]) -> Plan:
    src, dst, member = argv[1], argv[2], argv[3]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        in_src, in_dst = results
        enc = session.enc
        if in_src is PROBE_MISSING:
            return enc.ZERO, []
        if in_src == WRONG_TYPE or in_dst == WRONG_TYPE:
            return WRONGTYPE, []
        if not in_src:
            return enc.ZERO, []
        writes = [
            Step(src, [b"@set-rem", src, member]),
            Step(dst, [b"@set-add", dst, member]),
        ]
        return enc.ONE, writes

    return Plan(
        [Step(src, [b"@set-probe", src, member]), Step(dst, [b"@set-probe", dst, member])],
        decide,
    )


K, KS, C = Route.KEY, Route.KEYS, Route.COORD
ROWS = [
    Command("sadd", K, sadd),
    Command("scard", K, scard),
    Command("sdiff", C, sdiff, plan=plan_sdiff),
    Command("sdiffstore", C, sdiffstore, plan=plan_sdiffstore),
    Command("sinter", C, sinter, plan=plan_sinter),
    Command(
        "sintercard",
        C,
        sintercard,
        plan=plan_sintercard,
        check=check_sintercard,
        keys=sintercard_keys,
    ),
    Command("sinterstore", C, sinterstore, plan=plan_sinterstore),
    Command("sismember", K, sismember),
    Command("smembers", K, smembers),
    Command("smismember", K, smismember),
    Command("smove", C, smove, plan=plan_smove),
    Command("spop", K, spop, propagate=propagate_spop),
    Command(
        "srandmember",
        K,
        srandmember,
        notes="a negative count whose reply would pass proto-max-bulk-len bytes is refused",
    ),
    Command("srem", K, srem),
    Command(
        "sscan",
        K,
        sscan,
        notes="a hashtable set's cursor walks a snapshot of its members (see SCAN)",
    ),
    Command("sunion", KS, sunion, part=read_part, merge=merge_sunion),
    Command("sunionstore", C, sunionstore, plan=plan_sunionstore),
]

#: Internal parts of the coordinated set commands, by wire name.
INTERNAL_PARTS = {
    b"@set-read": read_part,
    b"@set-info": info_part,
    b"@set-has": has_part,
    b"@set-probe": probe_part,
    b"@set-add": add_part,
    b"@set-rem": remove_part,
}
