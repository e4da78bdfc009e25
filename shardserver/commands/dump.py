"""DUMP and RESTORE: one value in Redis's serialized format (Redis's ``cluster.c``).

The payload is the value's RDB encoding (:func:`shardserver.persistence.rdb.dump_payload`):
type byte, value, RDB version 10 as 2 bytes and the CRC-64 of all that as 8 bytes, both
little-endian, so a value dumped by redis-server restores here and the other way round.

RESTORE checks in Redis 7.0's order: the options one by one, then whether the key exists
(unless REPLACE), then the TTL, then the payload's footer, then its value. A TTL already
past deletes the key (with REPLACE) and creates nothing, as Redis does. IDLETIME and FREQ
are checked as Redis checks them and have no effect: this keyspace keeps no LRU or LFU
state. A relative TTL would replay later as another deadline, so the log records RESTORE's
effect (the key's final state), not the command.
"""

from __future__ import annotations

from shardserver.commands.spec import Command, Propagate, Route
from shardserver.errors import NOT_INTEGER, SYNTAX, error
from shardserver.numbers import LLONG_MAX, parse_int
from shardserver.persistence import rdb

BUSYKEY = b"-BUSYKEY Target key name already exists.\r\n"
BAD_TTL = error("ERR Invalid TTL value, must be >= 0")
BAD_IDLETIME = error("ERR Invalid IDLETIME value, must be >= 0")
BAD_FREQ = error("ERR Invalid FREQ value, must be >= 0 and <= 255")
BAD_PAYLOAD = error("ERR DUMP payload version or checksum are wrong")
BAD_FORMAT = error("ERR Bad data format")
OK = b"+OK\r\n"


def dump(shard, db, argv: list[bytes], enc) -> bytes:
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return enc.NULL
    return enc.bulk(rdb.dump_payload(value, shard.settings.get("list-max-listpack-size", -2)))


def _parse_restore_options(argv: list[bytes]) -> tuple[bool, bool] | bytes:
    """(REPLACE, ABSTTL), or the error reply. IDLETIME and FREQ exclude each other: the
    second one seen is a syntax error, as in Redis. Options are compared as C strings
    (up to a NUL byte)."""
    replace = absttl = False
    idle = freq = None
    index = 4
    while index < len(argv):
        option = argv[index].partition(b"\0")[0].lower()
        more = index + 1 < len(argv)
        if option == b"replace":
            replace = True
        elif option == b"absttl":
            absttl = True
        elif option == b"idletime" and more and freq is None:
            idle = parse_int(argv[index + 1])
            if idle is None:
                return NOT_INTEGER
            if idle < 0:
                return BAD_IDLETIME
            index += 1
        elif option == b"freq" and more and idle is None:
            freq = parse_int(argv[index + 1])
            if freq is None:
                return NOT_INTEGER
            if freq < 0 or freq > 255:
                return BAD_FREQ
            index += 1
        else:
            return SYNTAX
        index += 1
    return replace, absttl


def restore(shard, db, argv: list[bytes], enc) -> bytes:
    options = _parse_restore_options(argv)
    if options.__class__ is bytes:
        return options  # type: ignore[return-value]
    replace, absttl = options  # type: ignore[misc]
    key = argv[1]
    now = shard.now
    if not replace and db.lookup(key, now) is not None:
        return BUSYKEY
    ttl = parse_int(argv[2])
    if ttl is None:
        return NOT_INTEGER
    if ttl < 0:
        return BAD_TTL
    payload = argv[3]
    if not rdb.payload_intact(payload):
        return BAD_PAYLOAD
    try:
        value = rdb.load_payload(payload, rdb.Limits.of(shard.settings))
    except rdb.Unsupported as problem:  # Redis would take it; say why we do not
        return error(f"ERR Bad data format: {problem}")
    except rdb.RdbError:
        return BAD_FORMAT
    if value is None:  # an empty container: Redis never stores one
        return BAD_FORMAT
    if replace:
        db.delete(key)
    clock = shard.clock()
    if ttl and not absttl:
        ttl = _wrap(ttl + clock)
    if ttl and ttl <= clock:
        return OK
    db.store(key, value, ttl or None)
    return OK


def _wrap(number: int) -> int:
    """A 64-bit signed sum as C computes it: a relative TTL near LLONG_MAX overflows to a
    negative deadline, which Redis then takes as already past (a TTL is at most LLONG_MAX
    and the clock positive, so one wrap is all there can be)."""
    return number - 2**64 if number > LLONG_MAX else number


K = Route.KEY
ROWS = [
    Command(
        "dump",
        K,
        dump,
        notes="LZF-compressed as Redis does for values up to 64 KB; larger ones verbatim",
    ),
    Command(
        "restore",
        K,
        restore,
        propagate=Propagate.KEY_STATE,
        notes="IDLETIME and FREQ are checked but not kept (no LRU/LFU state); "
        "stream and module payloads are refused",
    ),
]
