"""Commands over several keys, atomic across shards (MGET, MSET, DEL, RENAME, COPY, SCAN ...).

Every such command runs natively in one shard when all its keys live there. Otherwise:

* blind multi-key commands (KEYS route: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH) send each
  shard a part with its keys, all in one step of the acceptor, and merge the parts; since
  every shard executes its pipe in arrival order, every shard sees the command at the same
  point of the global order, so no client sees half of it;
* conditional ones (COORD route: MSETNX, RENAME, RENAMENX, COPY) plan two phases: phase one
  reads on the shards involved, which the acceptor then *holds* (nothing queued after the
  read is sent to them); the plan's decision yields the replies and the phase-two writes,
  which go first on each held shard before it is released.

See docs/architecture.md for why this is serializable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shardserver import values
from shardserver.commands import merges, scanning
from shardserver.commands.spec import Command, Route
from shardserver.errors import DB_INDEX, NOT_INTEGER, SYNTAX, error
from shardserver.glob import compile_glob
from shardserver.numbers import parse_int

# -- blind multi-key commands -------------------------------------------------------------


def _live_value(shard, db, key: bytes) -> bytes | None:
    """A key's string value for MGET: None if missing, expired or not a string."""
    value = db.lookup(key, shard.now)
    return value if value.__class__ is bytes else None


def mget_part(shard, db, argv: list[bytes]) -> list[bytes | None]:
    return [_live_value(shard, db, key) for key in argv[1:]]


def mget(shard, db, argv: list[bytes], enc) -> bytes:
    return enc.bulk_array(mget_part(shard, db, argv))


def merge_mget(session, argv: list[bytes], parts: list[list], layout: list[list[int]]) -> bytes:
    values: list[bytes | None] = [None] * (len(argv) - 1)
    for part, positions in zip(parts, layout, strict=True):
        for value, position in zip(part, positions, strict=True):
            values[position] = value
    return session.enc.bulk_array(values)


def mset_part(shard, db, argv: list[bytes]) -> None:
    store = db.store
    for i in range(1, len(argv), 2):
        store(argv[i], argv[i + 1])


def mset(shard, db, argv: list[bytes], enc) -> bytes:
    if len(argv) % 2 == 0:
        return error("ERR wrong number of arguments for 'mset' command")
    mset_part(shard, db, argv)
    return b"+OK\r\n"


def check_pairs(session, argv: list[bytes]) -> bytes | None:
    if len(argv) % 2 == 0:
        name = argv[0].decode("utf-8", "replace").lower()
        return error(f"ERR wrong number of arguments for '{name}' command")
    return None


def del_part(shard, db, argv: list[bytes]) -> int:
    removed = 0
    for key in argv[1:]:
        if db.lookup(key, shard.now) is not None and db.delete(key):
            removed += 1
    return removed


def del_(shard, db, argv: list[bytes], enc) -> bytes:
    return enc.integer(del_part(shard, db, argv))


def exists_part(shard, db, argv: list[bytes]) -> int:
    """Existing keys among the arguments, repeats counted (EXISTS and TOUCH)."""
    return sum(1 for key in argv[1:] if db.lookup(key, shard.now) is not None)


def exists(shard, db, argv: list[bytes], enc) -> bytes:
    return enc.integer(exists_part(shard, db, argv))


# -- conditional commands: plans for two phases ----------------------------------------


@dataclass
class Step:
    """One part of a plan: argv for a shard, in a database (None: the client's)."""

    key: bytes
    argv: list[Any]
    db: int | None = None


@dataclass
class Plan:
    """Phase one's reads, and how to decide from their results.

    ``decide(results)`` gets the reads' plain values in order and returns the reply and the
    phase-two writes, or another Plan: a further round of reads, decided the same way, while
    the same shards stay held (SORT ... BY/GET learns which keys to read from its first
    read). The shards held are those of the first round's reads, or every shard when
    ``hold_all`` is set; later reads and the writes must stay within them.
    """

    reads: list[Step]
    decide: Callable[[list[Any]], tuple[bytes, list[Step]] | Plan]
    hold_all: bool = False


def peek_part(shard, db, argv: list[bytes]) -> tuple[tuple[str, Any], int | None] | None:
    """Internal: a key's value (as :func:`shardserver.values.to_plain` gives it) and its
    deadline, or None."""
    value = db.lookup(argv[1], shard.now)
    if value is None:
        return None
    return values.to_plain(value), db.deadline_of(argv[1])


def put_part(shard, db, argv: list[Any]) -> int:
    """Internal: store a value with its deadline (argv: name, key, plain value as
    :func:`shardserver.values.to_plain` gives it or None to remove the key, deadline|None,
    and the keyspace notification's event name: ``rename_to``, ``sunionstore`` ...)."""
    if argv[2] is None:
        db.delete(argv[1])
    else:
        db.store(argv[1], values.from_plain(argv[2]), argv[3])
    return 1


def msetnx(shard, db, argv: list[bytes], enc) -> bytes:
    if len(argv) % 2 == 0:
        return error("ERR wrong number of arguments for 'msetnx' command")
    if any(db.lookup(argv[i], shard.now) is not None for i in range(1, len(argv), 2)):
        return enc.integer(0)
    mset_part(shard, db, argv)
    return enc.integer(1)


def plan_msetnx(session, argv: list[bytes]) -> Plan:
    pairs = [(argv[i], argv[i + 1]) for i in range(1, len(argv), 2)]
    reads = [Step(key, [b"@exists", key]) for key, _ in pairs]

    def decide(results: list[int]) -> tuple[bytes, list[Step]]:
        if any(results):
            return session.enc.integer(0), []
        writes = [Step(k, [b"@put", k, ("string", v), None, b"set"]) for k, v in pairs]
        return session.enc.integer(1), writes

    return Plan(reads, decide)


def _rename(shard, db, argv: list[bytes], enc, only_if_absent: bool) -> bytes:
    src, dst = argv[1], argv[2]
    value = db.lookup(src, shard.now)
    if value is None:
        return NO_SUCH_KEY
    if src == dst:
        return enc.integer(0) if only_if_absent else b"+OK\r\n"
    if only_if_absent and db.lookup(dst, shard.now) is not None:
        return enc.integer(0)
    deadline = db.deadline_of(src)
    db.delete(src)
    db.store(dst, value, deadline)
    return enc.integer(1) if only_if_absent else b"+OK\r\n"


NO_SUCH_KEY = error("ERR no such key")


def rename(shard, db, argv: list[bytes], enc) -> bytes:
    return _rename(shard, db, argv, enc, False)


def renamenx(shard, db, argv: list[bytes], enc) -> bytes:
    return _rename(shard, db, argv, enc, True)


def _plan_rename(session, argv: list[bytes], only_if_absent: bool) -> Plan:
    src, dst = argv[1], argv[2]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        found, dst_exists = results
        if found is None:
            return NO_SUCH_KEY, []
        if only_if_absent and dst_exists:
            return session.enc.integer(0), []
        value, deadline = found
        done = session.enc.integer(1) if only_if_absent else b"+OK\r\n"
        return done, [
            Step(src, [b"@put", src, None, None, b"rename_from"]),
            Step(dst, [b"@put", dst, value, deadline, b"rename_to"]),
        ]

    return Plan([Step(src, [b"@peek", src]), Step(dst, [b"@exists", dst])], decide)


def plan_rename(session, argv: list[bytes]) -> Plan:
    return _plan_rename(session, argv, False)


def plan_renamenx(session, argv: list[bytes]) -> Plan:
    return _plan_rename(session, argv, True)


def _copy_options(session, argv: list[bytes]) -> tuple[int, bool] | bytes:
    """COPY's [DB index] [REPLACE]: (destination db, replace) or an error reply."""
    target_db = session.db
    replace = False
    i = 3
    while i < len(argv):
        option = argv[i].lower()
        if option == b"replace":
            replace = True
        elif option == b"db" and i + 1 < len(argv):
            index = parse_int(argv[i + 1])
            if index is None or not -(2**31) <= index < 2**31:
                return NOT_INTEGER
            if not 0 <= index < session.server.config["databases"]:
                return DB_INDEX
            target_db = index
            i += 1
        else:
            return SYNTAX
        i += 1
    if argv[1] == argv[2] and target_db == session.db:
        return error("ERR source and destination objects are the same")
    return target_db, replace


def copy_native(shard, db, argv: list[Any], enc) -> bytes:
    """COPY in one shard. The acceptor appends the parsed ``db`` and ``replace`` options."""
    src, dst, target_db, replace = argv[1], argv[2], argv[-2], argv[-1]
    target = shard.dbs[target_db]
    value = db.lookup(src, shard.now)
    if value is None:
        return enc.integer(0)
    if not replace and target.lookup(dst, shard.now) is not None:
        return enc.integer(0)
    target.store(dst, values.copy(value), db.deadline_of(src))
    return enc.integer(1)


def propagate_copy(shard, db, argv: list[Any], reply: bytes) -> list[list[bytes]]:
    """COPY's argv carries its parsed options (not a command line): it logs the state of the
    destination, in the destination's database."""
    if reply == b":0\r\n":
        return []
    dst, target_db = argv[2], argv[3]
    target = shard.dbs[target_db]
    deadline = target.deadline_of(dst)
    return [[b"SELECT", b"%d" % target_db], *values.state_commands(dst, target.data[dst], deadline)]


def plan_copy(session, argv: list[Any]) -> Plan:
    """COPY across shards; argv already carries the parsed (db, replace) from the check."""
    src, dst, target_db, replace = argv[1], argv[2], argv[3], argv[4]

    def decide(results: list[Any]) -> tuple[bytes, list[Step]]:
        found, dst_exists = results
        if found is None or (dst_exists and not replace):
            return session.enc.integer(0), []
        value, deadline = found
        write = [b"@put", dst, value, deadline, b"copy_to"]
        return session.enc.integer(1), [Step(dst, write, target_db)]

    return Plan(
        [Step(src, [b"@peek", src]), Step(dst, [b"@exists", dst], target_db)],
        decide,
    )


def native_copy_argv(session, argv: list[bytes]) -> list[Any] | bytes:
    """COPY's argv for a single shard: its options parsed, appended as (db, replace)."""
    options = _copy_options(session, argv)
    if isinstance(options, bytes):
        return options
    return [*argv[:3], options[0], options[1]]


# -- SWAPDB -------------------------------------------------------------------------------


def check_swapdb(session, argv: list[bytes]) -> bytes | None:
    first, second = parse_int(argv[1]), parse_int(argv[2])
    if first is None or not -(2**31) <= first < 2**31:
        return error("ERR invalid first DB index")
    if second is None or not -(2**31) <= second < 2**31:
        return error("ERR invalid second DB index")
    count = session.server.config["databases"]
    if not (0 <= first < count and 0 <= second < count):
        return DB_INDEX
    return None


def swapdb_part(shard, db, argv: list[bytes]) -> None:
    first, second = int(argv[1]), int(argv[2])
    shard.dbs[first], shard.dbs[second] = shard.dbs[second], shard.dbs[first]


# -- SCAN ---------------------------------------------------------------------------------

#: Bits of a client's cursor that name the shard being walked.
SHARD_BITS = 10


def scan_part(shard, db, argv: list[Any]) -> tuple[int, list[bytes]]:
    """Internal: one page of this shard's keys (argv: name, cursor, count, pattern, type)."""
    cursor, count, pattern, type_filter = argv[1], argv[2], argv[3], argv[4]
    snapshots = shard.scratch.setdefault("scan", scanning.Snapshots())
    now = shard.now
    matches = compile_glob(pattern) if pattern is not None else None

    def alive(key: bytes) -> bool:
        value = db.lookup(key, now)
        if value is None or (matches is not None and not matches(key)):
            return False
        return type_filter is None or values.type_name(value) == type_filter

    return scanning.walk(snapshots, cursor, count, lambda: list(db.data), alive)


def parse_scan(
    session, argv: list[bytes]
) -> tuple[int, int, int, bytes | None, bytes | None] | bytes:
    """SCAN's arguments: (shard, shard cursor, count, pattern, type) or an error reply."""
    cursor = scanning.parse_cursor(argv[1])
    if cursor is None:
        return scanning.INVALID_CURSOR
    options = scanning.parse_options(argv, 2, allow_type=True)
    if isinstance(options, bytes):
        return options
    count, pattern, type_filter = options
    shard = cursor & ((1 << SHARD_BITS) - 1)
    if shard >= session.server.shard_count:
        shard, cursor = 0, 0
    return shard, cursor >> SHARD_BITS, count, pattern, type_filter


def plan_scan(session, argv: list[bytes]) -> tuple[int, list[Any]] | bytes:
    parsed = parse_scan(session, argv)
    if isinstance(parsed, bytes):
        return parsed
    shard, cursor, count, pattern, type_filter = parsed
    return shard, [b"@scan", cursor, count, pattern, type_filter]


def scan_reply(session, shard: int, page: tuple[int, list[bytes]]) -> bytes:
    """The client's reply for a shard's page: its next cursor names the next shard."""
    next_cursor, keys = page
    if next_cursor:
        cursor = (next_cursor << SHARD_BITS) | shard
    elif shard + 1 < session.server.shard_count:
        cursor = shard + 1
    else:
        cursor = 0
    enc = session.enc
    return b"*2\r\n" + enc.bulk(b"%d" % cursor) + enc.bulk_array(keys)


K, KS, A, C = Route.KEY, Route.KEYS, Route.ALL, Route.COORD
ROWS = [
    Command("mget", KS, mget, part=mget_part, merge=merge_mget),
    Command("mset", KS, mset, part=mset_part, merge=merges.ok, check=check_pairs),
    Command("del", KS, del_, part=del_part, merge=merges.total),
    Command(
        "unlink",
        KS,
        del_,
        part=del_part,
        merge=merges.total,
        notes="frees memory at once, like DEL",
    ),
    Command("exists", KS, exists, part=exists_part, merge=merges.total),
    Command(
        "touch",
        KS,
        exists,
        part=exists_part,
        merge=merges.total,
        notes="no LRU/LFU clock to update",
    ),
    Command("msetnx", C, msetnx, plan=plan_msetnx, check=check_pairs),
    Command("rename", C, rename, plan=plan_rename),
    Command("renamenx", C, renamenx, plan=plan_renamenx),
    Command(
        "copy", C, copy_native, plan=plan_copy, check=native_copy_argv, propagate=propagate_copy
    ),
    Command(
        "scan",
        Route.CURSOR,
        plan=plan_scan,
        merge=scan_reply,
        notes="the cursor names a shard and a key snapshot; no key present for the "
        "whole scan is missed",
    ),
    Command("swapdb", A, part=swapdb_part, merge=merges.ok, check=check_swapdb),
]


def barrier_part(shard, db, argv: list[bytes]) -> None:
    """Internal: reads nothing; a coordination's mark that it is first in line on a shard."""
    return None


#: Internal parts used by plans and SCAN, by wire name.
INTERNAL_PARTS = {
    b"@barrier": barrier_part,
    b"@peek": peek_part,
    b"@put": put_part,
    b"@del": del_part,
    b"@exists": exists_part,
    b"@scan": scan_part,
}
