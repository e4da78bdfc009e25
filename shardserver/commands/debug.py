"""DEBUG (Redis's ``debug.c``): the subcommands test suites and tools use.

DEBUG reaches every shard in one step (a fan-out): SLEEP stalls them all, as Redis stalls;
RELOAD [MERGE] [NOFLUSH] [NOSAVE] saves, flushes and loads at that one point of the order
(see :func:`_reload`); SET-ACTIVE-EXPIRE turns the shards' expiry
sweeps off and on; DIGEST and DIGEST-VALUE compute Redis's own digests (the same hex for the
same data as redis-server, so two servers can be compared); OBJECT describes one key as
Redis's ``debugCommand`` does; SET-DISABLE-DENY-SCRIPTS lets scripts call DEBUG (each shard
keeps it for the scripts it runs, the acceptors in their shared words for the held ones).
HELP and PROTOCOL (a test value of each RESP type, for clients' and scripts' parsers) are
answered by the acceptor.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import time
from typing import Any

from shardserver import values
from shardserver.commands.spec import Command, Route
from shardserver.errors import error, subcommand_syntax
from shardserver.numbers import parse_int
from shardserver.persistence import rdb
from shardserver.slots import slot_for_key, slot_ranges

_HELP = [
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys make the load fail (nothing is changed then).",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
]
#: The prefix of an argument that C's ``strtod`` reads, as Redis parses DEBUG SLEEP's seconds.
_STRTOD = re.compile(
    rb"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE
)
_ATOI = re.compile(rb"\s*[+-]?\d+")
#: Subcommands that reach the shards, and how many arguments each takes (negative: at least).
_SHARD_SUBCOMMANDS = {
    b"sleep": 3,
    b"reload": -2,
    b"set-active-expire": 3,
    b"digest": 2,
    b"digest-value": -2,
    b"object": 3,
    b"set-disable-deny-scripts": 3,
}
_RELOAD_OPTIONS = {b"merge", b"noflush", b"nosave"}
#: What a shard's load found (its part's status).
_LOADED, _DUPLICATE, _FAILED, _SAVE_ERROR = b"loaded", b"duplicate", b"failed", b"unsaved"
_LOAD_FAILED = error("ERR Error trying to load the RDB dump")
#: Redis's ``shared.err``: a save that failed.
_SAVE_FAILED = b"-ERR\r\n"
_ZERO_DIGEST = "0" * 40
_TYPE_CODES = {"string": 0, "list": 1, "set": 2, "zset": 3, "hash": 4}
_SHARED_INTEGERS = 10000
_WRONG_TYPE_NAME = error(
    "ERR Wrong protocol type name. Please use one of the following: "
    "string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"
)


def check(session: Any, argv: list[bytes]) -> bytes | None:
    """Answer HELP and PROTOCOL, refuse what Redis refuses; the rest reaches the shards.
    (``enable-debug-command`` is checked where Redis checks it, as the client's command is
    dispatched: :mod:`shardserver.protection`.)"""
    sub = argv[1].lower()
    if sub == b"help" and len(argv) == 2:
        return session.enc.array([session.enc.simple(line) for line in _HELP])
    if sub == b"protocol" and len(argv) == 3:
        return protocol_reply(session, argv[2].lower())
    arity = _SHARD_SUBCOMMANDS.get(sub)
    if arity is not None and (len(argv) == arity if arity > 0 else len(argv) >= -arity):
        if sub == b"reload":
            return _reload_check(session, argv)
        return None
    return subcommand_syntax(argv)


def protocol_reply(session: Any, name: bytes) -> bytes:
    """DEBUG PROTOCOL's test value of a type, as ``debugCommand`` writes it in the client's
    protocol (a RESP2 client gets each RESP3 type as Redis downgrades it)."""
    enc = session.enc
    resp3 = enc.version == 3
    if name == b"string":
        return enc.bulk(b"Hello World")
    if name == b"integer":
        return enc.integer(12345)
    if name == b"double":
        return enc.double(b"3.141")
    if name == b"bignum":
        digits = b"1234567999999999999999999999999999999"
        return b"(%b\r\n" % digits if resp3 else enc.bulk(digits)
    if name == b"null":
        return enc.NULL
    if name == b"array" or name == b"set":
        numbers = [enc.integer(j) for j in range(3)]
        return enc.array(numbers) if name == b"array" else enc.set(numbers)
    if name == b"map":
        return enc.map([(enc.integer(j), _boolean(enc, j == 1)) for j in range(3)])
    if name == b"attrib":
        real = enc.bulk(b"Some real reply following the attribute")
        if not resp3:  # attributes exist only in RESP3: the reply alone
            return real
        popularity = enc.array([enc.bulk(b"key:123"), enc.integer(90)])
        return b"|1\r\n" + enc.bulk(b"key-popularity") + popularity + real
    if name == b"push":
        if not resp3:
            return error("ERR RESP2 is not supported by this command")
        if getattr(session, "in_script", False):
            # Redis's script client drops the push, and its Lua reply is nil
            return enc.NULL
        push = b">2\r\n" + enc.bulk(b"server-cpu-usage") + enc.integer(42)
        return push + enc.bulk(b"Some real reply following the push reply")
    if name == b"verbatim":
        return enc.verbatim(b"This is a verbatim\nstring")
    if name == b"true" or name == b"false":
        return _boolean(enc, name == b"true")
    return _WRONG_TYPE_NAME


def _boolean(enc: Any, value: bool) -> bytes:
    """Redis's ``addReplyBool``: ``#t``/``#f`` in RESP3, 1 or 0 in RESP2."""
    if enc.version == 3:
        return b"#t\r\n" if value else b"#f\r\n"
    return b":1\r\n" if value else b":0\r\n"


# -- in each shard --------------------------------------------------------------------------


def part(shard: Any, db: Any, argv: list[bytes]) -> Any:
    """Every shard's share of a DEBUG subcommand."""
    sub = argv[1].lower()
    if sub == b"sleep":
        time.sleep(int(sleep_seconds(argv[2]) * 1_000_000) / 1_000_000)
        return 0
    if sub == b"reload":
        return _reload(shard, _reload_options(argv))
    if sub == b"set-active-expire":
        shard.active_expire = _atoi(argv[2])
        return 0
    if sub == b"set-disable-deny-scripts":
        shard.scripts.deny_disabled = _atoi(argv[2])
        return 0
    if sub == b"digest":
        return [(index, _keys_digest(db_)) for index, db_ in enumerate(shard.dbs) if db_.data]
    if sub == b"digest-value":
        return [_value_digest(db, key) if key in db.data else None for key in argv[2:]]
    return _describe(shard, db, argv[2])


def _atoi(text: bytes) -> bool:
    """A 0|1 flag as Redis's ``atoi`` reads it: ``x`` is 0."""
    match = _ATOI.match(text)
    return bool(match and int(match.group()))


def sleep_seconds(text: bytes) -> float:
    """DEBUG SLEEP's argument as Redis reads it: strtod's prefix, so ``x`` is 0 and ``1x`` 1."""
    match = _STRTOD.match(text)
    seconds = float(match.group()) if match else 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _reload(shard: Any, options: set[bytes]) -> tuple[tuple[str, int, int] | None, bytes]:
    """This shard's share of DEBUG RELOAD, at one point of the order: the fragment it saved
    (path, size, crc; None with NOSAVE) and what its load found. After a save the dump holds
    exactly this shard's keys, so loading it back is done in place (each value re-encoded),
    which gives what reading the file would; with NOSAVE the dump on disk is read."""
    if b"nosave" not in options:
        try:
            written = _write_fragment(shard)
        except OSError:
            # Redis answers a failed save with its bare error and loads nothing
            return None, _SAVE_ERROR
        if b"noflush" in options and b"merge" not in options and shard.key_count():
            # Loading the dump just saved onto the same keys: each one is a duplicate,
            # where Redis panics; we change nothing and say so.
            return written, _DUPLICATE
        _reencode(shard)
        return written, _LOADED
    if b"noflush" not in options:
        for db in shard.dbs:
            db.clear()
    return None, _load_keys(shard, b"merge" in options)


def _write_fragment(shard: Any) -> tuple[str, int, int]:
    """This shard's part of the dump, written here and now (Redis's DEBUG RELOAD saves in
    the foreground too), to a temporary file the acceptor joins."""
    directory = shard.settings.get("dir", ".")
    # unique per call: two acceptors' reloads may each be joining their fragments
    path = os.path.join(directory, f"temp-reload-{os.getpid()}-{time.time_ns()}.rdbpart")
    try:
        with open(path, "wb") as out:
            size, crc = shard.persistence.write_fragment(out.write)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return path, size, crc


def _reencode(shard: Any) -> None:
    """Every value through its RDB encoding and back, with this shard's thresholds (what a
    save and a load would do to it); keys already past their deadline go, as a load drops
    them."""
    limits = rdb.Limits.of(shard.settings)
    fill = shard.settings.get("list-max-listpack-size", -2)
    now = shard.now
    for db in shard.dbs:
        for key in list(db.data):
            value = db.lookup(key, now)
            if value is None:
                continue
            kind, payload = rdb.encode_value(value, fill)
            db.store(key, rdb.decode_value(kind, payload, limits), db.deadline_of(key))


def _load_keys(shard: Any, merge: bool) -> bytes:
    """This shard's keys from the dump on disk. Without MERGE a key that exists already
    makes Redis panic: here the shard loads none of its keys and says so, so no key is
    lost or half-replaced."""
    path = os.path.join(
        shard.settings.get("dir", "."), shard.settings.get("dbfilename", "dump.rdb")
    )
    first, last = slot_ranges(shard.settings.get("shards", 1))[shard.index]
    now = shard.now
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        loaded = list(
            rdb.read_dump(
                path,
                data,
                shard.settings,
                lambda key, deadline: (
                    (deadline is None or deadline > now) and first <= slot_for_key(key) <= last
                ),
            )
        )
    except (OSError, rdb.RdbError):
        return _FAILED
    dbs = shard.dbs
    if any(index >= len(dbs) for index, _key, _value, _deadline in loaded):
        return _FAILED
    if not merge and any(key in dbs[index].data for index, key, _value, _deadline in loaded):
        return _DUPLICATE
    for index, key, value, deadline in loaded:
        dbs[index].store(key, value, deadline)
    return _LOADED


def _reload_options(argv: list[bytes]) -> set[bytes]:
    return {option.lower() for option in argv[2:]}


def _reload_check(session: Any, argv: list[bytes]) -> bytes | None:
    """DEBUG RELOAD's options as Redis reads them; with NOSAVE, the dump's libraries are
    loaded here first (Redis loads them before the keys, and a library that exists already
    without MERGE stops the load before any key: then nothing changes)."""
    options = _reload_options(argv)
    if not options <= _RELOAD_OPTIONS:
        return error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.")
    if b"nosave" not in options:
        return None
    config = session.server.config
    path = os.path.join(config["dir"], config["dbfilename"])
    codes: list[bytes] = []
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        # every key stepped over, unbuilt: only the libraries are wanted here
        list(rdb.read_dump(path, data, None, _no_key, codes.append))
    except (OSError, rdb.RdbError):
        codes = []
    flush, merge = b"noflush" not in options, b"merge" in options
    if not session.server.scripts.functions.reload(codes, flush, merge):
        return _LOAD_FAILED
    return None


def _no_key(key: bytes, deadline: int | None) -> bool:
    return False


# -- Redis's digests (debug.c): SHA-1 mixed in order, xored where order does not matter --


def _xor(digest: bytearray, data: bytes) -> None:
    for index, byte in enumerate(hashlib.sha1(data).digest()):
        digest[index] ^= byte


def _mix(digest: bytearray, data: bytes) -> None:
    _xor(digest, data)
    digest[:] = hashlib.sha1(digest).digest()


def _object_digest(digest: bytearray, value: object, has_deadline: bool) -> None:
    """``xorObjectDigest``: the type, then the value's elements, then the expire mark."""
    kind, plain = values.to_plain(value)
    _mix(digest, _TYPE_CODES[kind].to_bytes(4, "big"))
    if kind == "string":
        _mix(digest, plain)
    elif kind == "list":
        for element in plain:
            _mix(digest, element)
    elif kind == "set":
        for member in plain[1]:
            _xor(digest, member)
    else:
        pairs = plain[1].items() if kind == "hash" else plain[1]
        for first, second in pairs:
            element = bytearray(20)
            _mix(element, first)
            _mix(element, b"%.17g" % second if kind == "zset" else second)
            _xor(digest, bytes(element))
    if has_deadline:
        _xor(digest, b"!!expire!!")


def _value_digest(db: Any, key: bytes) -> str:
    digest = bytearray(20)
    _object_digest(digest, db.data[key], key in db.expires.deadline)
    return digest.hex()


def _keys_digest(db: Any) -> bytes:
    """Every key's digest in a database, xored in as Redis does (through SHA-1 again);
    expired keys not removed yet count, as in Redis, which walks its dict."""
    total = bytearray(20)
    deadlines = db.expires.deadline
    for key, value in db.data.items():
        digest = bytearray(20)
        _mix(digest, key)
        _object_digest(digest, value, key in deadlines)
        _xor(total, bytes(digest))
    return bytes(total)


def _describe(shard: Any, db: Any, key: bytes) -> str | None:
    """DEBUG OBJECT's line for a key of this shard, or None."""
    value = db.data.get(key)
    if value is None:
        return None
    fill = shard.settings.get("list-max-listpack-size", -2)
    _kind, payload = rdb.encode_value(value, fill, compress=len(value) < 65536)
    refcount = 1
    if value.__class__ is bytes and len(value) <= 20:
        number = parse_int(value)
        refcount = 2147483647 if number is not None and 0 <= number < _SHARED_INTEGERS else 1
    line = (
        f"Value at:0x{id(value):x} refcount:{refcount} encoding:{values.encoding(value)} "
        f"serializedlength:{len(payload)} lru:{int(time.time()) & 0xFFFFFF} lru_seconds_idle:0"
    )
    if values.type_name(value) == b"list":
        nodes = rdb.quicklist_nodes(value, fill)
        size = sum(len(blob) for _container, blob in nodes)
        line += (
            f" ql_nodes:{len(nodes)} ql_avg_node:{len(value) / max(len(nodes), 1):.2f} "
            f"ql_listpack_max:{fill} ql_compressed:0 ql_uncompressed_size:{size}"
        )
    return line


# -- in the acceptor ------------------------------------------------------------------------


def merge(session: Any, argv: list[bytes], parts: list[Any]) -> bytes:
    """The reply from every shard's share."""
    sub = argv[1].lower()
    enc = session.enc
    if sub == b"digest":
        by_db: dict[int, bytearray] = {}
        for shard_part in parts:
            for index, digest in shard_part:
                total = by_db.setdefault(index, bytearray(20))
                for position, byte in enumerate(digest):
                    total[position] ^= byte
        final = bytearray(20)
        for index in sorted(by_db):
            _mix(final, index.to_bytes(4, "big"))
            for position, byte in enumerate(by_db[index]):
                final[position] ^= byte
        return enc.simple(final.hex() if by_db else _ZERO_DIGEST)
    if sub == b"digest-value":
        found = [
            next((p[i] for p in parts if p[i] is not None), None) for i in range(len(argv) - 2)
        ]
        return enc.array([enc.simple(digest or _ZERO_DIGEST) for digest in found])
    if sub == b"object":
        line = next((p for p in parts if p is not None), None)
        return error("ERR no such key") if line is None else enc.simple(line)
    if sub == b"reload":
        return _reload_reply(session, _reload_options(argv), parts)
    if sub == b"set-disable-deny-scripts":
        session.server.words.deny_scripts_disabled = _atoi(argv[2])
    return b"+OK\r\n"


def _reload_reply(session: Any, options: set[bytes], parts: list[Any]) -> bytes:
    """Join the shards' fragments into the dump (as SAVE does), then answer as Redis does
    from what their loads found (a shard's error reply, which its part never gives, counts
    as a failed save or load)."""
    shares = [part if part.__class__ is tuple else (None, _FAILED) for part in parts]
    written = [fragment for fragment, _status in shares if fragment is not None]
    statuses = {status for _fragment, status in shares}
    try:
        if _SAVE_ERROR in statuses:
            return _SAVE_FAILED
        if written:
            config = session.server.config
            rdb.write_dump(
                os.path.join(config["dir"], config["dbfilename"]),
                rdb.header(rdb.default_aux()),
                [path for path, _size, _crc in written],
                [(size, crc) for _path, size, crc in written],
            )
    except OSError:
        return _SAVE_FAILED
    finally:
        for path, _size, _crc in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if statuses != {_LOADED}:
        return _LOAD_FAILED
    # the dump just saved names the libraries that exist: each is a duplicate
    libraries = session.server.scripts.functions.libraries
    if written and b"noflush" in options and b"merge" not in options and libraries:
        return _LOAD_FAILED
    return b"+OK\r\n"


ROWS = [
    Command(
        "debug",
        Route.ALL,
        part=part,
        merge=merge,
        check=check,
        notes=(
            "enable-debug-command as in Redis 7.0 (default no: DEBUG refused; local: "
            "127.0.0.1 and ::1 only); SLEEP, RELOAD [MERGE] [NOFLUSH] [NOSAVE] (the dump is "
            "really saved, in the foreground, and NOSAVE really loads it; the save-then-load "
            "forms pass each value through its RDB encoding in place, the same result; a "
            "duplicate key without MERGE fails the load, changing nothing, where Redis "
            "panics), SET-ACTIVE-EXPIRE, DIGEST, DIGEST-VALUE (Redis's "
            "digests), OBJECT, PROTOCOL, SET-DISABLE-DENY-SCRIPTS (scripts may then call DEBUG, "
            "and no other command Redis refuses in scripts) and HELP; SLEEP stalls every shard "
            "but the acceptor still "
            "answers its own commands (PING, CLIENT ...)"
        ),
    ),
]
