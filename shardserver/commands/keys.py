"""Keyspace commands, run inside shards (Redis's ``db.c`` and ``expire.c``).

Single-key handlers take ``(shard, db, argv, enc)`` like the string commands and return the
encoded reply. Parts of fan-out commands (``*_part``) take ``(shard, db, argv)`` and return a
plain value that the acceptor merges across shards (``merge_*``, run in the acceptor with the
client's session).

Time is the shard's batch clock (``shard.now``, Unix ms), so every command of a batch sees the
same instant, as every command of one Redis event-loop iteration does.
"""

from __future__ import annotations

import random
import sys
from itertools import islice

from shardserver import values
from shardserver.commands import merges
from shardserver.commands.spec import Command, Route, local
from shardserver.errors import DB_INDEX, NOT_INTEGER, SYNTAX, error, error_bytes, invalid_expire
from shardserver.glob import compile_glob
from shardserver.numbers import LLONG_MAX, parse_int

SAME_OBJECT = b"-ERR source and destination objects are the same\r\n"
NX_INCOMPATIBLE = error("ERR NX and XX, GT or LT options at the same time are not compatible")
GT_LT_INCOMPATIBLE = error("ERR GT and LT options at the same time are not compatible")
#: getIntFromObjectOrReply's range error, for a MOVE database index beyond a C int.
INT_RANGE = error("ERR value is out of range, value must between -2147483648 and 2147483647")

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
#: Bounds on EXPIRE's seconds before the conversion to ms would overflow (C's LLONG_MAX/1000,
#: which truncates toward zero on both sides).
_SECONDS_MAX = LLONG_MAX // 1000
_SECONDS_MIN = -(2**63 // 1000)

_NX, _XX, _GT, _LT = 1, 2, 4, 8
_EXPIRE_OPTIONS = {b"nx": _NX, b"xx": _XX, b"gt": _GT, b"lt": _LT}

_NONE = b"+none\r\n"

#: RANDOMKEY draws a key at random this many times (dropping expired ones it meets, as Redis
#: does) before it lists the live keys to choose among.
_RANDOM_TRIES = 8
_rng = random.Random()


def type_(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return _NONE
    return b"+%b\r\n" % values.type_name(value)


def _unsupported_option(option: bytes) -> bytes:
    """Redis formats the option with ``%s`` (it stops at a NUL) and trims trailing CR/LF."""
    shown = option.partition(b"\0")[0].rstrip(b"\r\n")
    return error_bytes(b"ERR Unsupported option " + shown)


def _parse_expire_flags(argv: list[bytes]) -> int | bytes:
    """NX/XX/GT/LT after the time, as Redis parses them: the flags, or the error reply.

    Redis compares with ``strcasecmp``, so an option is read up to its first NUL byte; an
    unknown option is refused at once, incompatible ones only after all were read.
    """
    flags = 0
    for option in argv[3:]:
        flag = _EXPIRE_OPTIONS.get(option.partition(b"\0")[0].lower())
        if flag is None:
            return _unsupported_option(option)
        flags |= flag
    if flags & _NX and flags & (_XX | _GT | _LT):
        return NX_INCOMPATIBLE
    if flags & _GT and flags & _LT:
        return GT_LT_INCOMPATIBLE
    return flags


def _expire_generic(shard, db, argv: list[bytes], relative: bool, seconds: bool) -> bytes:
    """EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT (Redis's ``expireGenericCommand``).

    The checks come in Redis's order (options, the number, overflow, then the key), so a
    command with several faults gets the same error. A deadline already past deletes the key
    and still answers 1.
    """
    flags = _parse_expire_flags(argv)
    if isinstance(flags, bytes):
        return flags
    when = parse_int(argv[2])
    if when is None:
        return NOT_INTEGER
    if seconds:
        if when > _SECONDS_MAX or when < _SECONDS_MIN:
            return invalid_expire(argv[0].decode())
        when *= 1000
    clock = shard.clock()
    base = clock if relative else 0
    if when > LLONG_MAX - base:
        return invalid_expire(argv[0].decode())
    when += base
    key = argv[1]
    if db.lookup(key, shard.now) is None:
        return b":0\r\n"
    if flags:
        current = db.deadline_of(key)
        if flags & _NX and current is not None:
            return b":0\r\n"
        if flags & _XX and current is None:
            return b":0\r\n"
        # No deadline counts as an infinite TTL: nothing is greater, everything is less.
        if flags & _GT and (current is None or when <= current):
            return b":0\r\n"
        if flags & _LT and current is not None and when >= current:
            return b":0\r\n"
    if when <= clock:
        db.delete(key)
    else:
        db.set_deadline(key, when)
    return b":1\r\n"


def expire(shard, db, argv: list[bytes], enc) -> bytes:
    return _expire_generic(shard, db, argv, relative=True, seconds=True)


def pexpire(shard, db, argv: list[bytes], enc) -> bytes:
    return _expire_generic(shard, db, argv, relative=True, seconds=False)


def expireat(shard, db, argv: list[bytes], enc) -> bytes:
    return _expire_generic(shard, db, argv, relative=False, seconds=True)


def pexpireat(shard, db, argv: list[bytes], enc) -> bytes:
    return _expire_generic(shard, db, argv, relative=False, seconds=False)


def propagate_deadline(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """The EXPIRE family logs the absolute deadline it set (or the deletion of a key whose
    new deadline had already passed), never a relative time."""
    if reply == b":0\r\n":
        return []
    key = argv[1]
    deadline = db.deadline_of(key) if key in db.data else None
    if deadline is None:
        return [[b"DEL", key]]
    return [[b"PEXPIREAT", key, b"%d" % deadline]]


def _ttl_generic(shard, db, key: bytes, in_ms: bool, absolute: bool) -> bytes:
    """TTL, PTTL, EXPIRETIME and PEXPIRETIME (Redis's ``ttlGenericCommand``).

    -2 for a missing key, -1 for one without deadline; seconds are rounded to the nearest
    (``(ms + 500) / 1000``), as Redis does, so a fresh ``EXPIRE k 10`` reads back as 10.
    """
    if db.lookup(key, shard.now) is None:
        return b":-2\r\n"
    deadline = db.deadline_of(key)
    if deadline is None:
        return b":-1\r\n"
    ttl = max(deadline if absolute else deadline - shard.clock(), 0)
    return b":%d\r\n" % (ttl if in_ms else (ttl + 500) // 1000)


def ttl(shard, db, argv: list[bytes], enc) -> bytes:
    return _ttl_generic(shard, db, argv[1], in_ms=False, absolute=False)


def pttl(shard, db, argv: list[bytes], enc) -> bytes:
    return _ttl_generic(shard, db, argv[1], in_ms=True, absolute=False)


def expiretime(shard, db, argv: list[bytes], enc) -> bytes:
    return _ttl_generic(shard, db, argv[1], in_ms=False, absolute=True)


def pexpiretime(shard, db, argv: list[bytes], enc) -> bytes:
    return _ttl_generic(shard, db, argv[1], in_ms=True, absolute=True)


def persist(shard, db, argv: list[bytes], enc) -> bytes:
    key = argv[1]
    if db.lookup(key, shard.now) is None or db.deadline_of(key) is None:
        return b":0\r\n"
    db.set_deadline(key, None)
    return b":1\r\n"


def move(shard, db, argv: list[bytes], enc) -> bytes:
    """MOVE key db: to another database of this same shard (a key's slot, hence its shard,
    does not depend on the database), keeping its deadline; 0 if the target has the key."""
    index = parse_int(argv[2])
    if index is None:
        return NOT_INTEGER
    if index < _INT_MIN or index > _INT_MAX:
        return INT_RANGE
    if index < 0 or index >= len(shard.dbs):
        return DB_INDEX
    target = shard.dbs[index]
    if target is db:
        return SAME_OBJECT
    key = argv[1]
    now = shard.now
    value = db.lookup(key, now)
    if value is None or target.lookup(key, now) is not None:
        return b":0\r\n"
    target.store(key, value, db.deadline_of(key))
    db.delete(key)
    return b":1\r\n"


def keys_part(shard, db, argv: list[bytes]) -> list[bytes]:
    """This shard's live keys that match the pattern (expired ones are skipped, not removed,
    as Redis's KEYS does)."""
    pattern = argv[1]
    if pattern == b"*":
        return list(db.live_keys(shard.now))
    matches = list(filter(compile_glob(pattern), db.data))
    deadlines = db.expires.deadline
    if not deadlines:
        return matches
    now = shard.now
    return [key for key in matches if (when := deadlines.get(key)) is None or when > now]


def merge_keys(session, argv: list[bytes], parts: list[list[bytes]]) -> bytes:
    """The shards' matches in one array (Redis's order is its hash table's: any order)."""
    return session.enc.bulk_array([key for part in parts for key in part])


def randomkey_part(shard, db, argv: list[bytes]) -> tuple[int, bytes | None]:
    """(live keys here, one of them drawn uniformly), so the merge can weigh shards by size.

    A dict has no random access, so a draw walks to a random position; an expired key drawn
    is removed (Redis's RANDOMKEY does the same) and the draw repeats, which keeps the choice
    uniform over live keys. Mostly-expired databases fall back to listing the live keys.
    """
    data = db.data
    now = shard.now
    deadlines = db.expires.deadline
    stale = sum(1 for when in deadlines.values() if when <= now) if deadlines else 0
    live = len(data) - stale
    if live <= 0:
        return 0, None
    for _ in range(_RANDOM_TRIES):
        key = next(islice(data, _rng.randrange(len(data)), None))
        if db.lookup(key, now) is not None:
            return live, key
    return live, _rng.choice(list(db.live_keys(now)))


def merge_randomkey(session, argv: list[bytes], parts: list[tuple[int, bytes | None]]) -> bytes:
    """Pick a shard with probability proportional to its live keys, then take its key: a
    uniform choice over the whole database. Nil when every shard is empty."""
    total = sum(count for count, _ in parts)
    if not total:
        return session.enc.NULL
    point = _rng.randrange(total)
    for count, key in parts:
        if point < count:
            return session.enc.bulk(key)
        point -= count
    raise AssertionError("unreachable: point < total")


def dbsize_part(shard, db, argv) -> int:
    """Keys in the client's database on this shard (expired-but-present keys count, as in Redis)."""
    return len(db)


def flushdb_part(shard, db, argv: list[bytes]) -> int:
    """Empty the client's database on this shard; how many keys were removed."""
    return db.clear()


def flushall_part(shard, db, argv) -> int:
    """Empty every database of this shard; how many keys were removed."""
    return sum(db.clear() for db in shard.dbs)


def _flushed(session, argv: list[bytes], parts: list) -> bytes:
    """FLUSHDB, FLUSHALL: every tracking client gets the null invalidation, as in Redis."""
    session.server.tracking.flushed()
    return merges.ok(session, argv, parts)


def memory_usage(shard, db, argv: list[bytes], enc) -> bytes:
    """MEMORY USAGE key [SAMPLES count]: this process's bytes for the key, or nil.

    The size of the key and value objects, the dict entry that holds them, and the deadline
    entries when the key has one: what deleting the key would give back to this shard.
    SAMPLES is checked as Redis checks it and otherwise ignored (values are not sampled).
    """
    if len(argv) > 3:
        if len(argv) != 5 or argv[3].lower() != b"samples":
            return SYNTAX
        if parse_int(argv[4]) is None:
            return NOT_INTEGER
    key = argv[2]
    value = db.lookup(key, shard.now)
    if value is None:
        return enc.NULL
    size = sys.getsizeof(key) + values.memory_usage(value) + _DICT_ENTRY
    if db.deadline_of(key) is not None:
        size += _DEADLINE_ENTRY
    return enc.integer(size)


# -- OBJECT ---------------------------------------------------------------------------------

#: Redis's refcount of a shared object (small integers are shared when no eviction policy
#: needs per-key metadata).
_SHARED_REFCOUNT = 2147483647
_SHARED_INTEGERS = 10000
_LFU_POLICIES = ("allkeys-lfu", "volatile-lfu")
_POLICY_NOTE = (
    " Please note that when switching between policies at runtime LRU and LFU data will take "
    "some time to adjust."
)
_NOT_LFU = error(
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked." + _POLICY_NOTE
)
_IS_LFU = error("ERR An LFU maxmemory policy is selected, idle time not tracked." + _POLICY_NOTE)


def object_encoding(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[2], shard.now)
    if value is None:
        return enc.NULL
    return enc.bulk(values.encoding(value).encode())


def object_refcount(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[2], shard.now)
    if value is None:
        return enc.NULL
    if value.__class__ is bytes and not _lfu(shard):
        number = parse_int(value) if len(value) <= 20 else None
        if number is not None and 0 <= number < _SHARED_INTEGERS:
            return enc.integer(_SHARED_REFCOUNT)
    return enc.ONE


def object_idletime(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[2], shard.now)
    if value is None:
        return enc.NULL
    if _lfu(shard):
        return _IS_LFU
    return enc.ZERO


def object_freq(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[2], shard.now)
    if value is None:
        return enc.NULL
    if not _lfu(shard):
        return _NOT_LFU
    return enc.ZERO


def _lfu(shard) -> bool:
    return str(shard.settings.get("maxmemory-policy", "noeviction")) in _LFU_POLICIES


_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]


def object_help(session, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _OBJECT_HELP])


#: A dict entry (hash, key, value) plus its share of the index, in a dict about 2/3 full.
_DICT_ENTRY = 3 * 8 + 8
#: A deadline: an entry in the deadline dict, one in the slot dict, and a list slot.
_DEADLINE_ENTRY = 2 * _DICT_ENTRY + 8 + 32


K = Route.KEY
ROWS = [
    Command("type", K, type_),
    Command("object|encoding", K, object_encoding),
    Command("object|refcount", K, object_refcount),
    Command(
        "object|idletime",
        K,
        object_idletime,
        notes="access times are not tracked yet: 0 (the refusal under an LFU policy is Redis's)",
    ),
    Command(
        "object|freq",
        K,
        object_freq,
        notes="access frequencies are not tracked yet: 0 under an LFU policy, else Redis's error",
    ),
    local("object|help", object_help),
    Command(
        "memory|usage",
        K,
        memory_usage,
        notes="this process's bytes for the key (Python objects), not jemalloc's figure",
    ),
    Command("expire", K, expire, propagate=propagate_deadline),
    Command("pexpire", K, pexpire, propagate=propagate_deadline),
    Command("expireat", K, expireat, propagate=propagate_deadline),
    Command("pexpireat", K, pexpireat, propagate=propagate_deadline),
    Command("ttl", K, ttl),
    Command("pttl", K, pttl),
    Command("expiretime", K, expiretime),
    Command("pexpiretime", K, pexpiretime),
    Command("persist", K, persist),
    Command("move", K, move),
    Command("keys", Route.ALL, part=keys_part, merge=merge_keys),
    Command("randomkey", Route.ALL, part=randomkey_part, merge=merge_randomkey),
    Command("dbsize", Route.ALL, part=dbsize_part, merge=merges.total),
    Command("flushdb", Route.ALL, part=flushdb_part, merge=_flushed, check=merges.check_flush),
    Command("flushall", Route.ALL, part=flushall_part, merge=_flushed, check=merges.check_flush),
]
