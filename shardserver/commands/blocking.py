"""The blocking commands (Redis's ``blocking.c`` with the list, sorted-set and stream halves
of ``t_list.c``, ``t_zset.c`` and ``t_stream.c``): BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP,
BZPOPMIN, BZPOPMAX, BZMPOP, and XREAD and XREADGROUP with BLOCK.

Each is its non-blocking twin (LMPOP, LMOVE, RPOPLPUSH, ZMPOP and the pops of one element)
plus a wait. What is here is the twin: the native handler a shard runs when every key is
its own (inside MULTI, where nothing blocks, that is the whole command), the plan that runs
it across shards, the timeout's parsing, and what "nothing to pop" looks like. The waiting
is :mod:`shardserver.waiters` (the shard's queues of waiting clients, served in arrival
order as soon as a write gives a key something to pop) and :mod:`shardserver.blocked` (the
acceptor's side: timeouts, CLIENT UNBLOCK, and the waits whose keys span shards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from shardserver.commands import lists, streams, zsets
from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route
from shardserver.errors import WRONGTYPE, error
from shardserver.numbers import parse_int

TIMEOUT_NOT_FLOAT = error("ERR timeout is not a float or out of range")
TIMEOUT_NEGATIVE = error("ERR timeout is negative")

#: What a waiting client gets when its timeout passes: the null array for every kind, as
#: Redis's ``replyToBlockedClientTimedOut`` answers (BLMOVE's too, though it answers a
#: null bulk inside MULTI).
TIMED_OUT = {2: b"*-1\r\n", 3: b"_\r\n"}


def parse_timeout(arg: bytes) -> float | bytes:
    """A timeout in seconds as ``getTimeoutFromObjectOrReply`` reads it: how many
    milliseconds to wait (0: for ever), or the error reply. The milliseconds are rounded up
    (0.0000001 waits 1 ms), and a value past what a long long holds reads as negative, as
    the C cast makes it."""
    if not arg or b"_" in arg or arg[:1].isspace() or arg[-1:].isspace():
        return TIMEOUT_NOT_FLOAT  # strtold takes no spaces around nor digit separators
    try:
        value = float(arg)
    except ValueError:
        return TIMEOUT_NOT_FLOAT
    if math.isnan(value):
        return TIMEOUT_NOT_FLOAT
    milliseconds = value * 1000.0
    if not -(2.0**63) <= milliseconds < 2.0**63:
        return TIMEOUT_NEGATIVE
    wait = math.ceil(milliseconds)
    if wait < 0:
        return TIMEOUT_NEGATIVE
    return wait


# -- the shapes of the eight commands -------------------------------------------------------


class Shape:
    """Where a blocking command keeps its keys and timeout, and its non-blocking twin."""

    def __init__(self, name: str, value: type, empty_is_null_bulk: bool = False) -> None:
        self.name = name
        #: The value class a key must hold for a waiting client to be served from it.
        self.value = value
        #: Whether the twin answers "nothing" with a null bulk (the moves) rather than the
        #: null array.
        self.empty_is_null_bulk = empty_is_null_bulk

    def timeout_arg(self, argv: list[bytes]) -> bytes:
        return argv[-1]

    def wait_ms(self, argv: list[bytes]) -> int:
        """How long to wait, in milliseconds (0: for ever), once the check has passed."""
        return parse_timeout(self.timeout_arg(argv))  # type: ignore[return-value]

    def blocks(self, argv: list[bytes]) -> bool:
        """Whether the command waits when there is nothing (XREAD only with BLOCK)."""
        return True

    def to_wait(self, shard: Any, db: Any, argv: list[bytes]) -> list[bytes]:
        """The command as it waits, once it found nothing (XREAD's ``$`` made the last ID
        it saw, so what comes later is new)."""
        return argv

    def keys(self, argv: list[bytes]) -> list[bytes]:
        """The keys waited on, in the order they are tried."""
        return argv[1:-1]

    def narrowed(self, argv: list[bytes], key: bytes) -> list[bytes]:
        """The command line that pops from ``key`` alone (a waiting client served from the
        key that became ready, as Redis serves it)."""
        return [argv[0], key, argv[-1]]

    def nothing(self, enc: Any) -> bytes:
        """The twin's reply when there is nothing to pop."""
        return enc.NULL if self.empty_is_null_bulk else enc.NULL_ARRAY

    def gone(self, enc: Any) -> bytes | None:
        """The reply of a waiter whose key no longer holds its type (None: it waits on)."""
        return None

    def served(self, reply: bytes) -> bytes:
        """The reply of a waiter served after it waited (the twin's, as a rule)."""
        return reply

    def serve(self, handler: Any, shard: Any, db: Any, argv: list[bytes], enc: Any) -> bytes:
        """Run the narrowed command for a waiter whose key became ready."""
        return handler(shard, db, argv, enc)

    def plan(self, spec: Any, session: Any, argv: list[bytes], first: bool) -> Plan:
        """The twin's plan for a look of a wait over several shards (``first``: the look
        before it waits)."""
        return spec.plan(session, argv)


class _Move(Shape):
    def keys(self, argv: list[bytes]) -> list[bytes]:
        return [argv[1]]

    def narrowed(self, argv: list[bytes], key: bytes) -> list[bytes]:
        return argv


class _Numkeys(Shape):
    """BLMPOP and BZMPOP: timeout first, then numkeys and the keys."""

    def timeout_arg(self, argv: list[bytes]) -> bytes:
        return argv[1]

    def keys(self, argv: list[bytes]) -> list[bytes]:
        count = parse_int(argv[2]) or 0
        return argv[3 : 3 + count]

    def narrowed(self, argv: list[bytes], key: bytes) -> list[bytes]:
        count = parse_int(argv[2]) or 0
        return [argv[0], argv[1], b"1", key, *argv[3 + count :]]


class _StreamRead(Shape):
    """XREAD and XREADGROUP: BLOCK in milliseconds among the options, keys after STREAMS."""

    def wait_ms(self, argv: list[bytes]) -> int:
        return streams.parse_read(argv).block or 0  # type: ignore[union-attr]

    def blocks(self, argv: list[bytes]) -> bool:
        parsed = streams.parse_read(argv)
        return parsed.__class__ is not bytes and parsed.block is not None  # type: ignore[union-attr]

    def keys(self, argv: list[bytes]) -> list[bytes]:
        return streams.parse_read(argv).keys  # type: ignore[union-attr]

    def narrowed(self, argv: list[bytes], key: bytes) -> list[bytes]:
        return streams.narrowed(argv, [key])

    def to_wait(self, shard: Any, db: Any, argv: list[bytes]) -> list[bytes]:
        return streams.resolved(shard, db, argv)

    def gone(self, enc: Any) -> bytes | None:
        """Redis 7.0 unblocks XREADGROUP whose stream is deleted, renamed or replaced
        (XREAD waits on)."""
        return streams.STREAM_GONE if self.name == "xreadgroup" else None

    def served(self, reply: bytes) -> bytes:
        """A group destroyed while XREADGROUP waited has Redis's own words."""
        return streams.GROUP_GONE if reply.startswith(b"-NOGROUP ") else reply

    def serve(self, handler: Any, shard: Any, db: Any, argv: list[bytes], enc: Any) -> bytes:
        return streams.serve_waiter(handler, shard, db, argv, enc)

    def plan(self, spec: Any, session: Any, argv: list[bytes], first: bool) -> Plan:
        return streams.plan_read(session, argv, waited=not first)


SHAPES: dict[bytes, Shape] = {
    b"blpop": Shape("blpop", lists.ListValue),
    b"brpop": Shape("brpop", lists.ListValue),
    b"blmove": _Move("blmove", lists.ListValue, empty_is_null_bulk=True),
    b"brpoplpush": _Move("brpoplpush", lists.ListValue, empty_is_null_bulk=True),
    b"blmpop": _Numkeys("blmpop", lists.ListValue),
    b"bzpopmin": Shape("bzpopmin", zsets.SortedSet),
    b"bzpopmax": Shape("bzpopmax", zsets.SortedSet),
    b"bzmpop": _Numkeys("bzmpop", zsets.SortedSet),
    b"xread": _StreamRead("xread", streams.Stream),
    b"xreadgroup": _StreamRead("xreadgroup", streams.Stream),
}


# -- the non-blocking twins, natively on one shard ------------------------------------------


def _pop_first(shard, db, argv: list[bytes], enc, left: bool) -> bytes:
    """BLPOP/BRPOP's twin: one element from the first key, in argument order, that holds a
    list; a key of another type met first is WRONGTYPE."""
    for key in argv[1:-1]:
        found = db.lookup(key, shard.now)
        if found is None:
            continue
        if found.__class__ is not lists.ListValue:
            return WRONGTYPE
        element = found.popleft() if left else found.pop()
        if not found:
            db.delete(key)
        return b"*2\r\n" + enc.bulk(key) + enc.bulk(element)
    return enc.NULL_ARRAY


def blpop(shard, db, argv: list[bytes], enc) -> bytes:
    return _pop_first(shard, db, argv, enc, True)


def brpop(shard, db, argv: list[bytes], enc) -> bytes:
    return _pop_first(shard, db, argv, enc, False)


def blmove(shard, db, argv: list[bytes], enc) -> bytes:
    return lists.lmove(shard, db, [b"lmove", *argv[1:5]], enc)


def brpoplpush(shard, db, argv: list[bytes], enc) -> bytes:
    return lists.rpoplpush(shard, db, [b"rpoplpush", argv[1], argv[2]], enc)


def blmpop(shard, db, argv: list[bytes], enc) -> bytes:
    return lists.lmpop(shard, db, [b"lmpop", *argv[2:]], enc)


def _zpop_first(shard, db, argv: list[bytes], enc, highest: bool) -> bytes:
    """BZPOPMIN/BZPOPMAX's twin: [key, member, score] from the first key holding a sorted
    set."""
    for key in argv[1:-1]:
        found = db.lookup(key, shard.now)
        if found is None:
            continue
        if found.__class__ is not zsets.SortedSet:
            return WRONGTYPE
        pair = zsets.zpopmax if highest else zsets.zpopmin
        popped = pair(shard, db, [b"zpop", key], enc)  # *2 member score
        return b"*3\r\n" + enc.bulk(key) + popped[4:]
    return enc.NULL_ARRAY


def bzpopmin(shard, db, argv: list[bytes], enc) -> bytes:
    return _zpop_first(shard, db, argv, enc, False)


def bzpopmax(shard, db, argv: list[bytes], enc) -> bytes:
    return _zpop_first(shard, db, argv, enc, True)


def bzmpop(shard, db, argv: list[bytes], enc) -> bytes:
    return zsets.zmpop(shard, db, [b"zmpop", *argv[2:]], enc)


# -- checks in the acceptor, and key positions ---------------------------------------------


def check_read(session, argv: list[bytes]) -> bytes | None:
    return streams.check_read(session, argv)


def _checked_timeout(argv: list[bytes]) -> bytes | None:
    wait = parse_timeout(SHAPES[argv[0].lower()].timeout_arg(argv))
    return wait if wait.__class__ is bytes else None


def check_pops(session, argv: list[bytes]) -> bytes | None:
    return _checked_timeout([argv[0].lower(), *argv[1:]])


def check_blmove(session, argv: list[bytes]) -> bytes | None:
    """LEFT/RIGHT first, then the timeout (``blmoveCommand``'s order)."""
    return lists.check_lmove(session, argv) or _checked_timeout([b"blmove", *argv[1:]])


def check_blmpop(session, argv: list[bytes]) -> bytes | None:
    return _checked_timeout([b"blmpop", *argv[1:]]) or lists.check_lmpop(session, argv[1:])


def check_bzmpop(session, argv: list[bytes]) -> bytes | None:
    return _checked_timeout([b"bzmpop", *argv[1:]]) or zsets.check_zmpop(session, argv[1:])


def numkeys_keys(argv: list[bytes]) -> list[int]:
    """BLMPOP/BZMPOP's keys: after the timeout and numkeys, as many as numkeys says."""
    count = parse_int(argv[2]) if len(argv) > 2 else None
    if count is None or not 1 <= count <= len(argv) - 3:
        return []
    return list(range(3, 3 + count))


# -- the twins across shards -----------------------------------------------------------------


def _plan_first(
    session,
    argv: list[bytes],
    peek: list,
    pop: bytes,
    popped: Callable[[Any], bytes | None],
    size: int,
) -> Plan:
    """BLPOP/BRPOP/BZPOPMIN/BZPOPMAX's twin across shards: read each key (``peek`` part
    name and its arguments after the key), pop one element from the first that exists.
    ``popped(found)`` is the reply's elements after the key (``size`` in all, the key
    included), None for a key of another type."""
    keys = argv[1:-1]
    enc = session.enc

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        for key, found in zip(keys, results, strict=True):
            if found is None:
                continue
            elements = popped(found)
            if elements is None:
                return WRONGTYPE, []
            return b"*%d\r\n" % size + enc.bulk(key) + elements, [Step(key, [pop, key])]
        return enc.NULL_ARRAY, []

    return Plan([Step(key, [peek[0], key, *peek[1:]]) for key in keys], decide)


def _plan_pop_first(session, argv: list[bytes], left: bool) -> Plan:
    def popped(found: Any) -> bytes | None:
        is_list, _size, taken = found
        return session.enc.bulk(taken[0]) if is_list else None

    return _plan_first(session, argv, [b"@lpeek", left, 1], b"lpop" if left else b"rpop", popped, 2)


def plan_blpop(session, argv: list[bytes]) -> Plan:
    return _plan_pop_first(session, argv, True)


def plan_brpop(session, argv: list[bytes]) -> Plan:
    return _plan_pop_first(session, argv, False)


def plan_blmove(session, argv: list[bytes]) -> Plan:
    return lists.plan_lmove(session, [b"lmove", *argv[1:5]])


def plan_brpoplpush(session, argv: list[bytes]) -> Plan:
    return lists.plan_rpoplpush(session, [b"rpoplpush", argv[1], argv[2]])


def plan_blmpop(session, argv: list[bytes]) -> Plan:
    return lists.plan_lmpop(session, [b"lmpop", *argv[2:]])


def _plan_zpop_first(session, argv: list[bytes], highest: bool) -> Plan:
    enc = session.enc

    def popped(pairs: Any) -> bytes | None:
        if pairs is False:
            return None
        member, score = pairs[0]
        return enc.bulk(member) + enc.double(b"%.17g" % score)

    pop = b"zpopmax" if highest else b"zpopmin"
    return _plan_first(session, argv, [b"@zpeek", highest, 1], pop, popped, 3)


def plan_bzpopmin(session, argv: list[bytes]) -> Plan:
    return _plan_zpop_first(session, argv, False)


def plan_bzpopmax(session, argv: list[bytes]) -> Plan:
    return _plan_zpop_first(session, argv, True)


def plan_bzmpop(session, argv: list[bytes]) -> Plan:
    return zsets.plan_zmpop(session, [b"zmpop", *argv[2:]])


B = Route.BLOCK
ROWS = [
    Command("blpop", B, blpop, plan=plan_blpop, check=check_pops),
    Command("brpop", B, brpop, plan=plan_brpop, check=check_pops),
    Command("blmove", B, blmove, plan=plan_blmove, check=check_blmove),
    Command("brpoplpush", B, brpoplpush, plan=plan_brpoplpush, check=check_pops),
    Command("blmpop", B, blmpop, plan=plan_blmpop, check=check_blmpop, keys=numkeys_keys),
    Command("bzpopmin", B, bzpopmin, plan=plan_bzpopmin, check=check_pops),
    Command("bzpopmax", B, bzpopmax, plan=plan_bzpopmax, check=check_pops),
    Command("bzmpop", B, bzmpop, plan=plan_bzmpop, check=check_bzmpop, keys=numkeys_keys),
    Command(
        "xread",
        B,
        streams.xread,
        plan=streams.plan_read,
        check=check_read,
        keys=streams.read_keys,
    ),
    Command(
        "xreadgroup",
        B,
        streams.xreadgroup,
        plan=streams.plan_read,
        check=check_read,
        keys=streams.read_keys,
        propagate=streams.propagate_xreadgroup,
        notes="logged as the XCLAIMs and XGROUP SETID of its deliveries, as Redis propagates it",
    ),
]
