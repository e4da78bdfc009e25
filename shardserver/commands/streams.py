"""Streams (Redis's ``t_stream.c``): XADD, XRANGE, XREAD, consumer groups and the rest.

The value is :class:`shardserver.streams.Stream`; this module reads each command's
arguments in Redis 7.0's order (its errors come in the same order and words), runs it and
writes its reply. Every write knows its effect for the append-only log, as Redis propagates
it: XADD with its concrete ID and its trim as an exact XTRIM, XREADGROUP and XCLAIM as the
XCLAIMs (``FORCE JUSTID`` with the delivery's time and count) and XGROUP SETID of what they
changed, a consumer made on the way as XGROUP CREATECONSUMER.

XREAD and XREADGROUP are blocking commands (route BLOCK, see
:mod:`shardserver.commands.blocking`): what is here is their non-blocking twin, which is all
they do without BLOCK or inside MULTI; the waiting is the blocking pops' own machinery.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import hiredis

from shardserver.commands.multikey import Plan, Step
from shardserver.commands.spec import Command, Route, local
from shardserver.errors import NOT_INTEGER, SYNTAX, WRONGTYPE, error, error_bytes, wrong_arity
from shardserver.keyspace import now_ms
from shardserver.numbers import parse_int
from shardserver.streams import (
    INVALID_ENTRIES_READ,
    MAX_ID,
    SEQ_BITS,
    SEQ_MASK,
    Group,
    Pending,
    Stream,
    format_id,
    make_id,
)

INVALID_ID = error("ERR Invalid stream ID specified as stream command argument")
NO_KEY = error("ERR no such key")
ID_TOO_SMALL = error(
    "ERR The ID specified in XADD is equal or smaller than the target stream top item"
)
ID_ZERO = error("ERR The ID specified in XADD must be greater than 0-0")
EXHAUSTED = error("ERR The stream has exhausted the last possible ID, unable to add more items")
BOTH_STRATEGIES = error(
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
)
MAXLEN_NEGATIVE = error("ERR The MAXLEN argument must be >= 0.")
LIMIT_NEGATIVE = error("ERR The LIMIT argument must be >= 0.")
LIMIT_WITHOUT_STRATEGY = error(
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"
)
LIMIT_WITHOUT_APPROX = error("ERR syntax error, LIMIT cannot be used without the special ~ option")
XTRIM_WITHOUT_STRATEGY = error("ERR syntax error, XTRIM must be called with a trimming strategy")
BAD_START = error("ERR invalid start ID for the interval")
BAD_END = error("ERR invalid end ID for the interval")
ENTRIESREAD_RANGE = error("ERR value for ENTRIESREAD must be positive or -1")
BUSYGROUP = error("BUSYGROUP Consumer Group name already exists")
NEEDS_KEY = error(
    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
    "to use the MKSTREAM option to create an empty stream automatically."
)
MISSING_GROUP = error("ERR Missing GROUP option for XREADGROUP")
DOLLAR_IN_GROUP = error(
    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history "
    "of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ "
    "ID would just return an empty result set."
)
GT_WITHOUT_GROUP = error(
    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
    "<consumer> option."
)
GROUP_IN_XREAD = error(
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."
)
NOACK_IN_XREAD = error(
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."
)
AUTOCLAIM_COUNT = error("ERR COUNT must be > 0")
TIMEOUT_NOT_INTEGER = error("ERR timeout is not an integer or out of range")
TIMEOUT_NEGATIVE = error("ERR timeout is negative")
#: How Redis 7.0 ends a blocked XREADGROUP whose stream, or group, went meanwhile.
STREAM_GONE = error("UNBLOCKED the stream key no longer exists")
GROUP_GONE = error("NOGROUP the consumer group this client was blocked on no longer exists")
EMPTY_ARRAY = b"*0\r\n"

#: XAUTOCLAIM's COUNT bound: LONG_MAX / max(sizeof(streamID), attempts factor 10).
AUTOCLAIM_MAX_COUNT = (2**63 - 1) // 16

_XGROUP_HELP = [
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
]
_XINFO_HELP = [
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
]


# -- IDs ----------------------------------------------------------------------------------


def _u64(text: bytes) -> int | None:
    """``string2ull``: ``string2ll``'s strict form (a negative refused), else what
    ``strtoull`` reads whole: leading spaces, a sign (a minus wraps around, as in C),
    decimal digits, nothing after, at most 2^64 - 1."""
    number = parse_int(text)
    if number is not None:
        return number if number >= 0 else None
    digits = text.lstrip(b" \t\n\v\f\r")
    negative = digits[:1] == b"-"
    if digits[:1] in (b"+", b"-"):
        digits = digits[1:]
    if not digits.isdigit():
        return None
    number = int(digits)
    if number > SEQ_MASK:
        return None
    return -number & SEQ_MASK if negative else number


def parse_id(arg: bytes, missing_seq: int = 0, strict: bool = True) -> tuple[int, bool] | None:
    """``streamGenericParseIDOrReply``: (ID, whether the sequence was given), or None.
    Strict forbids ``-`` and ``+``; ``ms-*`` reads as the sequence not given."""
    if len(arg) > 127:
        return None
    if not strict and arg == b"-":
        return 0, True
    if not strict and arg == b"+":
        return MAX_ID, True
    ms_text, dash, seq_text = arg.partition(b"-")
    ms = _u64(ms_text)
    if ms is None:
        return None
    if not dash:
        return make_id(ms, missing_seq), True
    if seq_text == b"*":
        return make_id(ms, 0), False
    seq = _u64(seq_text)
    if seq is None:
        return None
    return make_id(ms, seq), True


def _strict_id(arg: bytes) -> int | None:
    parsed = parse_id(arg)
    return None if parsed is None or not parsed[1] else parsed[0]


def _interval_id(arg: bytes, missing_seq: int) -> tuple[int, bool] | None:
    """``streamParseIntervalIdOrReply``: (ID, exclusive) of a range end, ``(`` meaning
    exclusive (then ``-``/``+`` are not allowed)."""
    if len(arg) > 1 and arg[:1] == b"(":
        parsed = parse_id(arg[1:], missing_seq, strict=True)
        return None if parsed is None or not parsed[1] else (parsed[0], True)
    parsed = parse_id(arg, missing_seq, strict=False)
    return None if parsed is None or not parsed[1] else (parsed[0], False)


def _range_bounds(start_arg: bytes, end_arg: bytes) -> tuple[int, int] | bytes:
    start = _interval_id(start_arg, 0)
    if start is None:
        return INVALID_ID
    start_id, start_ex = start
    if start_ex:
        if start_id == MAX_ID:
            return BAD_START
        start_id += 1
    end = _interval_id(end_arg, SEQ_MASK)
    if end is None:
        return INVALID_ID
    end_id, end_ex = end
    if end_ex:
        if end_id == 0:
            return BAD_END
        end_id -= 1
    return start_id, end_id


# -- replies ------------------------------------------------------------------------------


def _entry(enc, entry_id: int, items: list[bytes]) -> bytes:
    bulk = enc.bulk
    return (
        b"*2\r\n"
        + bulk(format_id(entry_id))
        + b"*%d\r\n" % len(items)
        + b"".join([bulk(item) for item in items])
    )


def _entries(enc, entries: list[tuple[int, list[bytes] | None]]) -> bytes:
    out = [b"*%d\r\n" % len(entries)]
    for entry_id, items in entries:
        if items is None:  # a pending entry deleted since
            out.append(b"*2\r\n" + enc.bulk(format_id(entry_id)) + enc.NULL_ARRAY)
        else:
            out.append(_entry(enc, entry_id, items))
    return b"".join(out)


def _int_or_null(enc, number: int | None) -> bytes:
    return enc.NULL if number is None else enc.integer(number)


def _flat_map(enc, pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A map of bulk names to encoded values (a flat array in RESP2)."""
    return enc.map([(enc.bulk(name), value) for name, value in pairs])


# -- lookups ------------------------------------------------------------------------------


def _for_read(shard, db, key: bytes) -> Stream | bytes | None:
    found = db.lookup(key, shard.now)
    if found is not None and found.__class__ is not Stream:
        return WRONGTYPE
    return found


def _no_group(key: bytes, group: bytes) -> bytes:
    return error_bytes(b"NOGROUP No such key '%b' or consumer group '%b'" % (key, group))


def clock(shard) -> int:
    """The command's time in Unix ms. A replay of the log runs with the shard's clock
    stopped at 0 (so nothing expires meanwhile); consumer and delivery times then take the
    wall clock, as Redis's load does."""
    return shard.now or now_ms()


def _settings(shard) -> tuple[int, int]:
    settings = shard.settings
    return settings.get("stream-node-max-bytes", 4096), settings.get("stream-node-max-entries", 100)


# -- XADD and XTRIM -------------------------------------------------------------------------


class TrimArgs:
    """What ``streamParseAddOrTrimArgsOrReply`` reads."""

    __slots__ = ("maxlen", "minid", "approx", "limit", "nomkstream", "id", "seq_given", "at")

    def __init__(self) -> None:
        self.maxlen: int | None = None
        self.minid: int | None = None
        self.approx = False
        self.limit = 0
        self.nomkstream = False
        #: XADD's ID (None: ``*``), whether its sequence was given, and where it is.
        self.id: int | None = None
        self.seq_given = True
        self.at = 0


def _parse_trim(shard, argv: list[bytes], xadd: bool) -> TrimArgs | bytes:
    args = TrimArgs()
    limit_given = False
    strategy = False
    i = 2
    argc = len(argv)
    while i < argc:
        more = argc - 1 - i
        opt = argv[i].lower()
        if xadd and argv[i] == b"*":
            break
        if opt in (b"maxlen", b"minid") and more:
            if strategy:
                return BOTH_STRATEGIES
            args.approx = False
            following = argv[i + 1]
            if more >= 2 and following in (b"~", b"="):
                args.approx = following == b"~"
                i += 1
            if opt == b"maxlen":
                maxlen = parse_int(argv[i + 1])
                if maxlen is None:
                    return NOT_INTEGER
                if maxlen < 0:
                    return MAXLEN_NEGATIVE
                args.maxlen = maxlen
            else:
                minid = _strict_id(argv[i + 1])
                if minid is None:
                    return INVALID_ID
                args.minid = minid
            strategy = True
            i += 2
            continue
        if opt == b"limit" and more:
            limit = parse_int(argv[i + 1])
            if limit is None:
                return NOT_INTEGER
            if limit < 0:
                return LIMIT_NEGATIVE
            args.limit = limit
            limit_given = True
            i += 2
            continue
        if xadd and opt == b"nomkstream":
            args.nomkstream = True
            i += 1
            continue
        if xadd:
            parsed = parse_id(argv[i])
            if parsed is None:
                return INVALID_ID
            args.id, args.seq_given = parsed
            break
        return SYNTAX
    args.at = i
    if args.limit and not strategy:
        return LIMIT_WITHOUT_STRATEGY
    if not xadd and not strategy:
        return XTRIM_WITHOUT_STRATEGY
    if limit_given:
        if not args.approx:
            return LIMIT_WITHOUT_APPROX
    elif args.approx:
        limit = 100 * _settings(shard)[1]
        args.limit = limit if 0 < limit <= 1_000_000 else 10_000
    else:
        args.limit = 0
    return args


#: The options of ``XADD key * ...`` (none).
_PLAIN_ADD = TrimArgs()
_PLAIN_ADD.at = 2


def _trim(stream: Stream, args: TrimArgs) -> int:
    if args.maxlen is None and args.minid is None:
        return 0
    return stream.trim(args.maxlen, args.minid, args.approx, args.limit)


def xadd(shard, db, argv: list[bytes], enc) -> bytes:
    """XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ..."""
    if argv[2] == b"*":  # the usual form: no option to read
        args: TrimArgs | bytes = _PLAIN_ADD
    else:
        args = _parse_trim(shard, argv, True)
        if args.__class__ is bytes:
            return args  # type: ignore[return-value]
    at = args.at  # type: ignore[union-attr]
    if len(argv) - at < 3 or (len(argv) - at - 1) % 2:
        return wrong_arity("xadd")
    if args.id == 0 and args.seq_given:  # type: ignore[union-attr]
        return ID_ZERO
    key = argv[1]
    stream = db.lookup(key, shard.now)
    if stream is None:
        if args.nomkstream:  # type: ignore[union-attr]
            return enc.NULL
        stream = Stream()
        created = True
    elif stream.__class__ is not Stream:
        return WRONGTYPE
    else:
        created = False
    if stream.last_id == MAX_ID:
        return EXHAUSTED
    entry_id = _next_id(shard, stream, args)  # type: ignore[arg-type]
    if entry_id is None:
        return ID_TOO_SMALL
    if created:
        db.store(key, stream)
    max_bytes, max_entries = _settings(shard)
    stream.append(entry_id, argv[at + 1 :], max_bytes, max_entries)
    _trim(stream, args)  # type: ignore[arg-type]
    return enc.bulk(format_id(entry_id))


def _next_id(shard, stream: Stream, args: TrimArgs) -> int | None:
    """The new entry's ID (``streamAppendItem``'s choice), None if not above the last."""
    last = stream.last_id
    if args.id is None:
        ms = clock(shard)
        if ms > last >> SEQ_BITS:
            return make_id(ms, 0)
        return last + 1 if last < MAX_ID else None
    if args.seq_given:
        entry_id = args.id
    elif last >> SEQ_BITS == args.id >> SEQ_BITS:
        if last & SEQ_MASK == SEQ_MASK:
            return None
        entry_id = last + 1
    else:
        entry_id = args.id
    return entry_id if entry_id > last else None


def propagate_xadd(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """XADD as the entry it added (its concrete ID), then its trim as an exact XTRIM to
    the length (or first ID) it left, as Redis rewrites ``~`` and the ID."""
    if reply[:1] != b"$" or reply == b"$-1\r\n":
        return []
    entry_id = reply.split(b"\r\n")[1]
    args = _parse_trim(shard, argv, True)
    at = args.at  # type: ignore[union-attr]
    out = [[b"XADD", argv[1], entry_id, *argv[at + 1 :]]]
    stream = db.lookup(argv[1], shard.now)
    out += _trim_effect(argv[1], stream, args)  # type: ignore[arg-type]
    return out


def _trim_effect(key: bytes, stream: Stream, args: TrimArgs) -> list[list[bytes]]:
    if args.maxlen is not None:
        return [[b"XTRIM", key, b"MAXLEN", b"=", b"%d" % stream.length]]
    if args.minid is not None:
        first = stream.first_id if stream.length else stream.last_id + 1
        return [[b"XTRIM", key, b"MINID", b"=", format_id(min(first, MAX_ID))]]
    return []


def xtrim(shard, db, argv: list[bytes], enc) -> bytes:
    """XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]: the options, then the key."""
    args = _parse_trim(shard, argv, False)
    if args.__class__ is bytes:
        return args  # type: ignore[return-value]
    stream = _for_read(shard, db, argv[1])
    if stream is None:
        return enc.ZERO
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    return enc.integer(_trim(stream, args))  # type: ignore[arg-type]


def propagate_xtrim(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    if reply[:1] != b":" or reply == b":0\r\n":
        return []
    stream = db.lookup(argv[1], shard.now)
    return _trim_effect(argv[1], stream, _parse_trim(shard, argv, False))  # type: ignore[arg-type]


# -- reads ----------------------------------------------------------------------------------


def xlen(shard, db, argv: list[bytes], enc) -> bytes:
    stream = _for_read(shard, db, argv[1])
    if stream is None:
        return enc.ZERO
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    return enc.integer(stream.length)


def _xrange(shard, db, argv: list[bytes], enc, reverse: bool) -> bytes:
    """XRANGE key start end [COUNT n] (XREVRANGE key end start ...): the IDs, then COUNT,
    then the key; COUNT 0 answers the null array, as Redis does."""
    bounds = _range_bounds(argv[3], argv[2]) if reverse else _range_bounds(argv[2], argv[3])
    if bounds.__class__ is bytes:
        return bounds  # type: ignore[return-value]
    start, end = bounds  # type: ignore[misc]
    count = -1
    i = 4
    while i < len(argv):
        if argv[i].lower() == b"count" and i + 1 < len(argv):
            count = parse_int(argv[i + 1])
            if count is None:
                return NOT_INTEGER
            count = max(count, 0)
            i += 2
        else:
            return SYNTAX
    stream = _for_read(shard, db, argv[1])
    if stream is None:
        return EMPTY_ARRAY
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    if count == 0:
        return enc.NULL_ARRAY
    entries = []
    for entry in stream.range(start, end, reverse):
        entries.append(entry)
        if len(entries) == count:
            break
    return _entries(enc, entries)


def xrange(shard, db, argv: list[bytes], enc) -> bytes:
    return _xrange(shard, db, argv, enc, False)


def xrevrange(shard, db, argv: list[bytes], enc) -> bytes:
    return _xrange(shard, db, argv, enc, True)


def xdel(shard, db, argv: list[bytes], enc) -> bytes:
    """XDEL key id ...: the key, then every ID checked before any is deleted."""
    stream = _for_read(shard, db, argv[1])
    if stream is None:
        return enc.ZERO
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    ids = [_strict_id(arg) for arg in argv[2:]]
    if None in ids:
        return INVALID_ID
    return enc.integer(sum(1 for entry_id in ids if stream.delete(entry_id)))  # type: ignore[arg-type]


# -- XREAD and XREADGROUP -------------------------------------------------------------------


class ReadArgs:
    """XREAD/XREADGROUP's options, as ``xreadCommand`` reads them."""

    __slots__ = ("count", "block", "group", "consumer", "noack", "streams_at", "keys", "ids")

    def __init__(self) -> None:
        self.count = 0
        #: Milliseconds to block (0: for ever), None without BLOCK.
        self.block: int | None = None
        self.group: bytes | None = None
        self.consumer: bytes | None = None
        self.noack = False
        self.streams_at = 0
        self.keys: list[bytes] = []
        self.ids: list[bytes] = []


def parse_read(argv: list[bytes]) -> ReadArgs | bytes:
    """The options up to STREAMS and the balance of keys and IDs (the IDs themselves are
    read with the keys, in the key loop)."""
    group_form = argv[0].lower() == b"xreadgroup"
    args = ReadArgs()
    i = 1
    argc = len(argv)
    while i < argc:
        more = argc - i - 1
        opt = argv[i].lower()
        if opt == b"block" and more:
            i += 1
            timeout = parse_int(argv[i])
            if timeout is None:
                return TIMEOUT_NOT_INTEGER
            if timeout < 0:
                return TIMEOUT_NEGATIVE
            args.block = timeout
        elif opt == b"count" and more:
            i += 1
            count = parse_int(argv[i])
            if count is None:
                return NOT_INTEGER
            args.count = max(count, 0)
        elif opt == b"streams" and more:
            args.streams_at = i + 1
            rest = argc - args.streams_at
            if rest % 2:
                # XREADGROUP's text too, in Redis 7.0
                return error(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' "
                    "must be specified."
                )
            half = rest // 2
            args.keys = argv[args.streams_at : args.streams_at + half]
            args.ids = argv[args.streams_at + half :]
            break
        elif opt == b"group" and more >= 2:
            if not group_form:
                return GROUP_IN_XREAD
            args.group, args.consumer = argv[i + 1], argv[i + 2]
            i += 2
        elif opt == b"noack":
            if not group_form:
                return NOACK_IN_XREAD
            args.noack = True
        else:
            return SYNTAX
        i += 1
    if not args.streams_at:
        return SYNTAX
    if group_form and args.group is None:
        return MISSING_GROUP
    return args


def script_refusal(argv: list[bytes]) -> bytes | None:
    """A script's XREAD/XREADGROUP with BLOCK (an option before STREAMS): Redis refuses
    it, whatever the timeout."""
    for i in range(1, len(argv) - 1):
        word = argv[i].lower()
        if word == b"streams":
            return None
        if word == b"block":
            return error_bytes(
                b"ERR %b command is not allowed with BLOCK option from scripts" % argv[0]
            )
    return None


def read_keys(argv: list[bytes]) -> list[int]:
    """Where XREAD/XREADGROUP's keys are: the first half of what follows STREAMS."""
    for i in range(1, len(argv)):
        word = argv[i].lower()
        if word == b"streams":
            rest = len(argv) - i - 1
            return list(range(i + 1, i + 1 + rest // 2)) if rest % 2 == 0 else []
        if word in (b"block", b"count"):
            continue
    return []


def check_read(session, argv: list[bytes]) -> bytes | None:
    """The options' errors, before any key is looked at (the acceptor's check)."""
    parsed = parse_read(argv)
    return parsed if parsed.__class__ is bytes else None  # type: ignore[return-value]


#: A read's ID meaning "new entries for the group".
_NEW = -1


def _resolve_ids(
    shard, db, args: ReadArgs
) -> list[tuple[Stream | None, Group | None, int]] | bytes:
    """Each key's stream, group and the ID its entries must be above (``_NEW`` for ``>``),
    with Redis's checks in its order: type, group, then the ID."""
    resolved = []
    for key, arg in zip(args.keys, args.ids, strict=True):
        stream = _for_read(shard, db, key)
        if stream.__class__ is bytes:
            return stream  # type: ignore[return-value]
        group = None
        if args.group is not None:
            group = stream.groups.get(args.group) if stream is not None else None  # type: ignore[union-attr]
            if group is None:
                return error_bytes(
                    b"NOGROUP No such key '%b' or consumer group '%b' in XREADGROUP with GROUP "
                    b"option" % (key, args.group)
                )
        if arg == b"$":
            if args.group is not None:
                return DOLLAR_IN_GROUP
            resolved.append((stream, None, stream.last_id if stream is not None else 0))  # type: ignore[union-attr]
            continue
        if arg == b">":
            if args.group is None:
                return GT_WITHOUT_GROUP
            resolved.append((stream, group, _NEW))  # type: ignore[arg-type]
            continue
        entry_id = _strict_id(arg)
        if entry_id is None:
            return INVALID_ID
        resolved.append((stream, group, entry_id))  # type: ignore[arg-type]
    return resolved


#: Whether the read running is a blocked client's, served because its key became ready
#: (a shard runs one command at a time).
_serving_waiter = False


def serve_waiter(handler: Any, shard, db, argv: list[bytes], enc) -> bytes:
    """Run a blocked XREAD/XREADGROUP whose key became ready. Redis serves it when the
    stream's last ID passed the one it waits after, even if that entry is trimmed away
    already (it answers the key with no entries), where a read that does not wait looks
    at the last entry still there."""
    global _serving_waiter
    _serving_waiter = True
    try:
        return handler(shard, db, argv, enc)
    finally:
        _serving_waiter = False


def read_streams(shard, db, argv: list[bytes]) -> list[tuple[bytes, list]] | bytes:
    """The twin of XREAD/XREADGROUP: ``[(key, entries)]`` of the keys served now (an
    entry's items None for a pending entry since deleted), or an error reply."""
    args = parse_read(argv)
    if args.__class__ is bytes:
        return args  # type: ignore[return-value]
    resolved = _resolve_ids(shard, db, args)  # type: ignore[arg-type]
    if resolved.__class__ is bytes:
        return resolved  # type: ignore[return-value]
    now = clock(shard)
    served = []
    _GROUP_READ.clear()
    for key, (stream, group, after) in zip(args.keys, resolved, strict=True):  # type: ignore[union-attr]
        if stream is None:
            continue
        if group is None:
            if _newer(stream, after):
                served.append((key, _after(stream, after, args.count)))  # type: ignore[union-attr]
            continue
        consumer, made = group.consumer(args.consumer, now)  # type: ignore[union-attr,arg-type]
        consumer.seen_time = now
        if after != _NEW:
            entries = _history(stream, consumer, after, args.count, now)  # type: ignore[union-attr]
            served.append((key, entries))
            changed = [entry_id for entry_id, items in entries if items is not None]
        elif _newer(stream, group.last_id):
            entries = _deliver(stream, group, consumer, args, now)  # type: ignore[arg-type]
            served.append((key, entries))
            changed = [] if args.noack else [entry_id for entry_id, _items in entries]  # type: ignore[union-attr]
        else:
            changed = []
        _GROUP_READ.append((key, made, changed))
    return served


#: What the last group read changed, per key: (key, consumer made, IDs delivered), for its
#: propagation right after it (a shard runs one command at a time).
_GROUP_READ: list[tuple[bytes, bool, list[int]]] = []


def _newer(stream: Stream, after: int) -> bool:
    """Whether the stream has something after ``after`` for this read (see
    :func:`serve_waiter`)."""
    if _serving_waiter:
        return stream.last_id > after
    return bool(stream.length) and stream.last_entry()[0] > after  # type: ignore[index]


def _after(stream: Stream, after: int, count: int) -> list:
    entries = []
    if after == MAX_ID:
        return entries
    for entry in stream.range(after + 1, MAX_ID):
        entries.append(entry)
        if len(entries) == count:
            break
    return entries


def _history(stream: Stream, consumer: Any, after: int, count: int, now: int) -> list:
    """The consumer's own pending entries above ``after``: each delivered again (its time
    and count updated), a deleted one as its ID and a null."""
    entries: list = []
    if after == MAX_ID:
        return entries
    for entry_id in list(consumer.pending.between(after + 1, MAX_ID)):
        items = stream.get(entry_id)
        if items is not None:
            nack = consumer.pending.by_id[entry_id]
            nack.delivery_time = now
            nack.delivery_count += 1
        entries.append((entry_id, items))
        if len(entries) == count:
            break
    return entries


def _deliver(stream: Stream, group: Group, consumer: Any, args: ReadArgs, now: int) -> list:
    """New entries for the group: each moves its last ID and joins the pending lists
    (unless NOACK), taken from any consumer that had it (after XGROUP SETID)."""
    entries = []
    for entry_id, items in stream.range(group.last_id + 1, MAX_ID):
        if entry_id > group.last_id:
            stream.advance_group(group, entry_id)
        entries.append((entry_id, items))
        if not args.noack:
            old = group.pending.by_id.get(entry_id)
            if old is not None:
                group.consumers[old.consumer].pending.remove(entry_id)
            nack = Pending(now, 1, consumer.name)
            group.pending.add(entry_id, nack)
            consumer.pending.add(entry_id, nack)
        if len(entries) == args.count:
            break
    return entries


def _read_reply(enc, served: list) -> bytes:
    if not served:
        return enc.NULL_ARRAY
    if enc.version == 3:
        return b"%%%d\r\n" % len(served) + b"".join(
            [enc.bulk(key) + _entries(enc, entries) for key, entries in served]
        )
    return b"*%d\r\n" % len(served) + b"".join(
        [b"*2\r\n" + enc.bulk(key) + _entries(enc, entries) for key, entries in served]
    )


def xread(shard, db, argv: list[bytes], enc) -> bytes:
    served = read_streams(shard, db, argv)
    if served.__class__ is bytes:
        return served  # type: ignore[return-value]
    return _read_reply(enc, served)  # type: ignore[arg-type]


def xreadgroup(shard, db, argv: list[bytes], enc) -> bytes:
    return xread(shard, db, argv, enc)


def propagate_xreadgroup(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """What a group read changed, as Redis propagates it: a consumer it made (XGROUP
    CREATECONSUMER), each entry it delivered as XCLAIM ... FORCE JUSTID with its time and
    count, then, when it delivered new entries, the group's last ID and read counter."""
    if reply[:1] == b"-":
        return []
    args = parse_read(argv)
    out = []
    for key, made, delivered in _GROUP_READ:
        group = db.lookup(key, shard.now).groups[args.group]  # type: ignore[union-attr]
        if made:
            out.append([b"XGROUP", b"CREATECONSUMER", key, group.name, args.consumer])  # type: ignore[union-attr]
        out += _claims(key, group, delivered, group.pending.by_id)
        if delivered or reply != b"*-1\r\n" and reply != b"_\r\n":
            out.append(_setid(key, group))
    return out


def _claims(key: bytes, group: Group, ids: list[int], nacks: dict) -> list:
    """XCLAIM ... FORCE JUSTID commands that recreate these pending entries."""
    out = []
    for entry_id in ids:
        nack = nacks[entry_id]
        out.append(
            [
                b"XCLAIM", key, group.name, nack.consumer, b"0", format_id(entry_id),
                b"TIME", b"%d" % nack.delivery_time,
                b"RETRYCOUNT", b"%d" % nack.delivery_count, b"FORCE", b"JUSTID",
            ]
        )  # fmt: skip
    return out


def _setid(key: bytes, group: Group) -> list[bytes]:
    return [
        b"XGROUP", b"SETID", key, group.name, format_id(group.last_id),
        b"ENTRIESREAD", b"%d" % group.entries_read,
    ]  # fmt: skip


# -- across shards: the twins as plans -------------------------------------------------------


def narrowed(argv: list[bytes], keys: list[bytes]) -> list[bytes]:
    """The command narrowed to some of its keys (with their IDs)."""
    args = parse_read(argv)
    chosen = [i for i, key in enumerate(args.keys) if key in keys]  # type: ignore[union-attr]
    head = argv[: args.streams_at]  # type: ignore[union-attr]
    return [*head, *[args.keys[i] for i in chosen], *[args.ids[i] for i in chosen]]  # type: ignore[union-attr]


def resolved(shard, db, argv: list[bytes]) -> list[bytes]:
    """The command with each ``$`` made the ID it stands for now (the stream's last ID,
    0-0 for a missing key), as a blocked XREAD remembers it."""
    args = parse_read(argv)
    if args.__class__ is bytes or b"$" not in args.ids:  # type: ignore[union-attr]
        return argv
    ids = []
    for key, arg in zip(args.keys, args.ids, strict=True):  # type: ignore[union-attr]
        if arg == b"$":
            stream = db.lookup(key, shard.now)
            arg = format_id(stream.last_id if stream.__class__ is Stream else 0)
        ids.append(arg)
    return [*argv[: args.streams_at], *args.keys, *ids]  # type: ignore[union-attr]


def plan_read(session, argv: list[bytes], waited: bool = False) -> Plan:
    """XREAD/XREADGROUP with keys on several shards, the shards held: first a look on each
    shard for the errors its keys give (so a missing group anywhere fails the command
    before any delivery, as Redis checks every key first), then each shard runs the
    command narrowed to its keys (a plain command there: logged, watched and notified as
    any), and the reply merges theirs in the command's key order."""
    args = parse_read(argv)
    server = session.server
    by_shard: dict[int, list[bytes]] = {}
    for key in args.keys:  # type: ignore[union-attr]
        by_shard.setdefault(server.shard_of_key(key), []).append(key)
    command = [argv[0].lower(), *argv[1:]]
    shards = [narrowed(command, keys) for keys in by_shard.values()]
    checks = [Step(part[args.streams_at], [b"@xcheck", *part]) for part in shards]  # type: ignore[union-attr]
    enc = session.enc
    order = {key: i for i, key in enumerate(args.keys)}  # type: ignore[union-attr]

    def merged(replies: list[bytes]) -> tuple[bytes, list]:
        served = []
        for reply in replies:
            reader = hiredis.Reader()
            reader.feed(reply)
            parsed = reader.gets()
            if isinstance(parsed, dict):
                parsed = list(parsed.items())
            for key, entries in parsed or ():
                served.append((key, [(parse_id(e[0])[0], e[1]) for e in entries]))  # type: ignore[index]
        served.sort(key=lambda pair: order[pair[0]])
        return _read_reply(enc, served), []

    def decide(found: list) -> tuple[bytes, list] | Plan:
        failed = [(order.get(key, -1), e, gone) for e, _ids, key, gone in found if e is not None]
        if failed:
            _at, problem, gone = min(failed)
            if waited and gone:  # a blocked XREADGROUP's stream went
                return STREAM_GONE, []
            if waited and problem.startswith(b"-NOGROUP "):  # its group did
                return GROUP_GONE, []
            return problem, []
        # a "$" stands for the last ID now: the command keeps what it read (a blocked one
        # waits for what comes after; ``argv`` is the wait's own command line)
        ids = {
            key: arg
            for part, (_problem, got, _key, _gone) in zip(shards, found, strict=True)
            for key, arg in zip(part[args.streams_at :], got, strict=False)
        }  # type: ignore[union-attr]
        at = args.streams_at + len(args.keys)  # type: ignore[union-attr]
        for i, key in enumerate(args.keys):  # type: ignore[union-attr]
            argv[at + i] = ids[key]
        parts = [narrowed([argv[0].lower(), *argv[1:]], keys) for keys in by_shard.values()]
        return Plan([Step(part[args.streams_at], part) for part in parts], merged)  # type: ignore[union-attr]

    return Plan(checks, decide)


def check_part(shard, db, argv: list) -> list:
    """Internal (``@xcheck command...``): the first of the command's keys here that gives
    an error (Redis reports the first in key order) with the error and whether its stream
    is missing or of another type; or None and the IDs with each ``$`` made the last ID it
    stands for now."""
    command = list(argv[1:])
    args = parse_read(command)
    if args.__class__ is bytes:
        return [args, [], None, False]
    for key in args.keys:  # type: ignore[union-attr]
        found = _resolve_ids(shard, db, parse_read(narrowed(command, [key])))  # type: ignore[arg-type]
        if found.__class__ is bytes:
            gone = db.lookup(key, shard.now).__class__ is not Stream
            return [found, [], key, gone]
    return [None, parse_read(resolved(shard, db, command)).ids, None, False]  # type: ignore[union-attr]


# -- consumer groups ------------------------------------------------------------------------


def _group_target(shard, db, argv: list[bytes]) -> tuple[Stream | None, Group | None] | bytes:
    stream = db.lookup(argv[2], shard.now)
    if stream is not None and stream.__class__ is not Stream:
        return WRONGTYPE
    group = stream.groups.get(argv[3]) if stream is not None else None
    return stream, group


def _nogroup_named(key: bytes, group: bytes) -> bytes:
    return error_bytes(b"NOGROUP No such consumer group '%b' for key name '%b'" % (group, key))


def _subcommand_syntax(argv: list[bytes], container: bytes) -> bytes:
    return error_bytes(
        b"ERR unknown subcommand or wrong number of arguments for '%b'. Try %b HELP."
        % (argv[1], container)
    )


def _entries_read_arg(arg: bytes) -> int | bytes:
    number = parse_int(arg)
    if number is None:
        return NOT_INTEGER
    if number < 0 and number != INVALID_ENTRIES_READ:
        return ENTRIESREAD_RANGE
    return number


def xgroup_create(shard, db, argv: list[bytes], enc) -> bytes:
    """XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]."""
    mkstream = False
    entries_read = INVALID_ENTRIES_READ
    i = 5
    while i < len(argv):
        word = argv[i].lower()
        if word == b"mkstream":
            mkstream = True
            i += 1
        elif word == b"entriesread" and i + 1 < len(argv):
            parsed = _entries_read_arg(argv[i + 1])
            if parsed.__class__ is bytes:
                return parsed  # type: ignore[return-value]
            entries_read = parsed  # type: ignore[assignment]
            i += 2
        else:
            return _subcommand_syntax(argv, b"XGROUP")
    target = _group_target(shard, db, argv)
    if target.__class__ is bytes:
        return target  # type: ignore[return-value]
    stream, group = target  # type: ignore[misc]
    if stream is None and not mkstream:
        return NEEDS_KEY
    if len(argv) > 8:
        return _subcommand_syntax(argv, b"XGROUP")
    if argv[4] == b"$":
        last_id = stream.last_id if stream is not None else 0
    else:
        last_id = _strict_id(argv[4])
        if last_id is None:
            return INVALID_ID
    if stream is None:
        stream = Stream()
        db.store(argv[2], stream)
    if argv[3] in stream.groups:
        return BUSYGROUP
    stream.groups[argv[3]] = Group(argv[3], last_id, entries_read)
    return enc.OK


def _existing_group(shard, db, argv: list[bytes]) -> tuple[Stream, Group] | bytes:
    target = _group_target(shard, db, argv)
    if target.__class__ is bytes:
        return target  # type: ignore[return-value]
    stream, group = target  # type: ignore[misc]
    if stream is None:
        return NEEDS_KEY
    if group is None:
        return _nogroup_named(argv[2], argv[3])
    return stream, group


def xgroup_setid(shard, db, argv: list[bytes], enc) -> bytes:
    """XGROUP SETID key group id|$ [ENTRIESREAD n]."""
    entries_read = INVALID_ENTRIES_READ
    if len(argv) == 7:
        if argv[5].lower() != b"entriesread":
            return _subcommand_syntax(argv, b"XGROUP")
        parsed = _entries_read_arg(argv[6])
        if parsed.__class__ is bytes:
            return parsed  # type: ignore[return-value]
        entries_read = parsed  # type: ignore[assignment]
    found = _existing_group(shard, db, argv)
    if found.__class__ is bytes:
        return found  # type: ignore[return-value]
    stream, group = found  # type: ignore[misc]
    if len(argv) not in (5, 7):
        return _subcommand_syntax(argv, b"XGROUP")
    if argv[4] == b"$":
        last_id = stream.last_id
    else:
        parsed_id = parse_id(argv[4], 0, strict=False)
        if parsed_id is None or not parsed_id[1]:
            return INVALID_ID
        last_id = parsed_id[0]
    group.last_id = last_id
    group.entries_read = entries_read
    return enc.OK


def xgroup_destroy(shard, db, argv: list[bytes], enc) -> bytes:
    target = _group_target(shard, db, argv)
    if target.__class__ is bytes:
        return target  # type: ignore[return-value]
    stream, group = target  # type: ignore[misc]
    if stream is None:
        return NEEDS_KEY
    if group is None:
        return enc.ZERO
    del stream.groups[argv[3]]
    return enc.ONE


def xgroup_createconsumer(shard, db, argv: list[bytes], enc) -> bytes:
    found = _existing_group(shard, db, argv)
    if found.__class__ is bytes:
        return found  # type: ignore[return-value]
    _made = found[1].consumer(argv[4], clock(shard))[1]  # type: ignore[index]
    return enc.ONE if _made else enc.ZERO


def xgroup_delconsumer(shard, db, argv: list[bytes], enc) -> bytes:
    """The consumer goes with its pending entries (out of the group's list too); how many
    it had."""
    found = _existing_group(shard, db, argv)
    if found.__class__ is bytes:
        return found  # type: ignore[return-value]
    group = found[1]  # type: ignore[index]
    consumer = group.consumers.pop(argv[4], None)
    if consumer is None:
        return enc.ZERO
    for entry_id in consumer.pending.ids:
        group.pending.remove(entry_id)
    return enc.integer(len(consumer.pending))


def propagate_xgroup(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """An XGROUP subcommand as executed, under its container's name as Redis logs it."""
    return [[b"XGROUP", *argv[1:]]]


def xgroup_help(session, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _XGROUP_HELP])


def xack(shard, db, argv: list[bytes], enc) -> bytes:
    """XACK key group id ...: 0 for a missing key or group, before the IDs are read."""
    stream = _for_read(shard, db, argv[1])
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    group = stream.groups.get(argv[2]) if stream is not None else None  # type: ignore[union-attr]
    if group is None:
        return enc.ZERO
    ids = [_strict_id(arg) for arg in argv[3:]]
    if None in ids:
        return INVALID_ID
    acknowledged = 0
    for entry_id in ids:
        nack = group.pending.remove(entry_id)  # type: ignore[arg-type]
        if nack is not None:
            group.consumers[nack.consumer].pending.remove(entry_id)  # type: ignore[arg-type]
            acknowledged += 1
    return enc.integer(acknowledged)


def xpending(shard, db, argv: list[bytes], enc) -> bytes:
    """XPENDING key group [[IDLE min-idle] start end count [consumer]]."""
    argc = len(argv)
    if argc != 3 and not 6 <= argc <= 9:
        return SYNTAX
    min_idle = 0
    consumer_name = None
    if argc >= 6:
        at = 3
        if argv[3].lower() == b"idle":
            parsed = parse_int(argv[4])
            if parsed is None:
                return NOT_INTEGER
            min_idle = parsed
            if argc < 8:
                return SYNTAX
            at = 5
        count = parse_int(argv[at + 2])
        if count is None:
            return NOT_INTEGER
        count = max(count, 0)
        bounds = _range_bounds(argv[at], argv[at + 1])
        if bounds.__class__ is bytes:
            return bounds  # type: ignore[return-value]
        if at + 3 < argc:
            consumer_name = argv[at + 3]
    stream = _for_read(shard, db, argv[1])
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    group = stream.groups.get(argv[2]) if stream is not None else None  # type: ignore[union-attr]
    if group is None:
        return _no_group(argv[1], argv[2])
    pel = group.pending
    if argc == 3:
        if not pel:
            return b"*4\r\n:0\r\n" + enc.NULL + enc.NULL + enc.NULL_ARRAY
        owners = [c for c in group.sorted_consumers() if c.pending]
        return (
            b"*4\r\n"
            + enc.integer(len(pel))
            + enc.bulk(format_id(pel.ids[0]))
            + enc.bulk(format_id(pel.ids[-1]))
            + enc.array(
                [b"*2\r\n" + enc.bulk(c.name) + enc.bulk(b"%d" % len(c.pending)) for c in owners]
            )
        )
    if consumer_name is not None:
        consumer = group.consumers.get(consumer_name)
        if consumer is None:
            return EMPTY_ARRAY
        pel = consumer.pending
    now = clock(shard)
    start, end = bounds  # type: ignore[misc]
    rows = []
    for entry_id in pel.between(start, end):
        if not count:
            break
        nack = pel.by_id[entry_id]
        if min_idle and now - nack.delivery_time < min_idle:
            continue
        count -= 1
        rows.append(
            b"*4\r\n"
            + enc.bulk(format_id(entry_id))
            + enc.bulk(nack.consumer)
            + enc.integer(max(now - nack.delivery_time, 0))
            + enc.integer(nack.delivery_count)
        )
    return enc.array(rows)


def _claim_one(group: Group, entry_id: int, nack: Pending, consumer: Any) -> None:
    """Move a pending entry to ``consumer`` (its old consumer's list loses it)."""
    if nack.consumer != consumer.name:
        old = group.consumers.get(nack.consumer)
        if old is not None:
            old.pending.remove(entry_id)
        nack.consumer = consumer.name
        consumer.pending.add(entry_id, nack)


def _drop_pending(group: Group, entry_id: int) -> None:
    nack = group.pending.remove(entry_id)
    if nack is not None:
        owner = group.consumers.get(nack.consumer)
        if owner is not None:
            owner.pending.remove(entry_id)


def xclaim(shard, db, argv: list[bytes], enc) -> bytes:
    """XCLAIM key group consumer min-idle id ... [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
    [JUSTID] [LASTID id], in ``xclaimCommand``'s order: key and group, the idle time, the
    IDs up to the first that does not parse, then the options."""
    stream = _for_read(shard, db, argv[1])
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    group = stream.groups.get(argv[2]) if stream is not None else None  # type: ignore[union-attr]
    if group is None:
        return _no_group(argv[1], argv[2])
    min_idle = parse_int(argv[4])
    if min_idle is None:
        return error("ERR Invalid min-idle-time argument for XCLAIM")
    min_idle = max(min_idle, 0)
    ids = []
    j = 5
    while j < len(argv):
        entry_id = _strict_id(argv[j])
        if entry_id is None:
            break
        ids.append(entry_id)
        j += 1
    now = clock(shard)
    delivery = -1
    retry = -1
    force = justid = False
    last_id = 0
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"force":
            force = True
        elif opt == b"justid":
            justid = True
        elif opt in (b"idle", b"time", b"retrycount") and more:
            j += 1
            number = parse_int(argv[j])
            if number is None:
                return error(f"ERR Invalid {opt.upper().decode()} option argument for XCLAIM")
            if opt == b"idle":
                delivery = now - number
            elif opt == b"time":
                delivery = number
            else:
                retry = number
        elif opt == b"lastid" and more:
            j += 1
            parsed = _strict_id(argv[j])
            if parsed is None:
                return INVALID_ID
            last_id = parsed
        else:
            return error_bytes(b"ERR Unrecognized XCLAIM option '%b'" % argv[j])
        j += 1
    if last_id > group.last_id:
        group.last_id = last_id
    if delivery == -1 or delivery < 0 or delivery > now:
        delivery = now
    consumer = None
    out = []
    _CLAIMED.clear()
    _DROPPED.clear()
    for entry_id in ids:
        nack = group.pending.by_id.get(entry_id)
        items = stream.get(entry_id)  # type: ignore[union-attr]
        if items is None:
            if nack is not None:
                _drop_pending(group, entry_id)
                _DROPPED.append(entry_id)
            continue
        fresh = False
        if force and nack is None:
            nack = Pending(now, 1, b"")
            group.pending.add(entry_id, nack)
            fresh = True
        if nack is None:
            continue
        if not fresh and min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer = group.consumer(argv[3], now)[0]
            consumer.seen_time = now
        if fresh:
            nack.consumer = consumer.name
            consumer.pending.add(entry_id, nack)
        else:
            _claim_one(group, entry_id, nack, consumer)
        nack.delivery_time = delivery
        if retry >= 0:
            nack.delivery_count = retry
        elif not justid:
            nack.delivery_count += 1
        _CLAIMED.append(entry_id)
        out.append(enc.bulk(format_id(entry_id)) if justid else _entry(enc, entry_id, items))
    return enc.array(out)


#: What the last XCLAIM or XAUTOCLAIM did: the IDs it claimed and those it dropped from the
#: pending list (deleted entries), for its propagation right after it.
_CLAIMED: list[int] = []
_DROPPED: list[int] = []


def propagate_xclaim(shard, db, argv: list[bytes], reply: bytes) -> list[list[bytes]]:
    """XCLAIM and XAUTOCLAIM as what they did: the consumer, each claimed entry as an
    XCLAIM ... FORCE JUSTID of its time and count, entries dropped as XACK, and the
    group's last ID (LASTID may move it)."""
    if reply[:1] == b"-":
        return []
    key = argv[1]
    group = db.lookup(key, shard.now).groups[argv[2]]
    out = []
    if _CLAIMED:
        out.append([b"XGROUP", b"CREATECONSUMER", key, group.name, argv[3]])
        out += _claims(key, group, _CLAIMED, group.pending.by_id)
    if _DROPPED:
        out.append([b"XACK", key, group.name, *[format_id(i) for i in _DROPPED]])
    if argv[0].lower() == b"xclaim":
        out.append(_setid(key, group))
    return out


def xautoclaim(shard, db, argv: list[bytes], enc) -> bytes:
    """XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]: the cursor, the
    claimed entries, the IDs dropped from the pending list because they were deleted."""
    min_idle = parse_int(argv[4])
    if min_idle is None:
        return error("ERR Invalid min-idle-time argument for XAUTOCLAIM")
    min_idle = max(min_idle, 0)
    start = _interval_id(argv[5], 0)
    if start is None:
        return INVALID_ID
    start_id, exclusive = start
    if exclusive:
        if start_id == MAX_ID:
            return BAD_START
        start_id += 1
    count = 100
    justid = False
    j = 6
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"count" and more:
            parsed = parse_int(argv[j + 1])
            if parsed is None or not 1 <= parsed <= AUTOCLAIM_MAX_COUNT:
                return AUTOCLAIM_COUNT
            count = parsed
            j += 1
        elif opt == b"justid":
            justid = True
        else:
            return SYNTAX
        j += 1
    stream = _for_read(shard, db, argv[1])
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    group = stream.groups.get(argv[2]) if stream is not None else None  # type: ignore[union-attr]
    if group is None:
        return _no_group(argv[1], argv[2])
    attempts = count * 10
    _CLAIMED.clear()
    _DROPPED.clear()
    now = clock(shard)
    consumer = None
    claimed = []
    deleted = []
    ids = group.pending.ids
    from_id = start_id
    cursor = 0
    while True:
        position = _first_at(ids, from_id)
        if position == len(ids):
            cursor = 0
            break
        if not attempts or not count:
            cursor = ids[position]
            break
        attempts -= 1
        entry_id = ids[position]
        from_id = entry_id + 1
        items = stream.get(entry_id)  # type: ignore[union-attr]
        if items is None:
            _drop_pending(group, entry_id)
            deleted.append(entry_id)
            _DROPPED.append(entry_id)
            count -= 1
            continue
        nack = group.pending.by_id[entry_id]
        if min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer = group.consumer(argv[3], now)[0]
            consumer.seen_time = now
        _claim_one(group, entry_id, nack, consumer)
        nack.delivery_time = now
        if not justid:
            nack.delivery_count += 1
        _CLAIMED.append(entry_id)
        claimed.append(enc.bulk(format_id(entry_id)) if justid else _entry(enc, entry_id, items))
        count -= 1
    return (
        b"*3\r\n"
        + enc.bulk(format_id(cursor))
        + enc.array(claimed)
        + enc.array([enc.bulk(format_id(i)) for i in deleted])
    )


def _first_at(ids: list[int], from_id: int) -> int:
    return bisect_left(ids, from_id) if from_id <= MAX_ID else len(ids)


# -- XINFO and XSETID -----------------------------------------------------------------------


def _info_target(shard, db, argv: list[bytes]) -> Stream | bytes:
    stream = db.lookup(argv[2], shard.now)
    if stream is None:
        return NO_KEY
    if stream.__class__ is not Stream:
        return WRONGTYPE
    return stream


def xinfo_consumers(shard, db, argv: list[bytes], enc) -> bytes:
    stream = _info_target(shard, db, argv)
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    group = stream.groups.get(argv[3])  # type: ignore[union-attr]
    if group is None:
        return _nogroup_named(argv[2], argv[3])
    now = clock(shard)
    return enc.array(
        [
            _flat_map(
                enc,
                [
                    (b"name", enc.bulk(c.name)),
                    (b"pending", enc.integer(len(c.pending))),
                    (b"idle", enc.integer(now - c.seen_time)),
                ],
            )
            for c in group.sorted_consumers()
        ]
    )


def _group_counters(enc, stream: Stream, group: Group) -> list[tuple[bytes, bytes]]:
    entries_read = None if group.entries_read == INVALID_ENTRIES_READ else group.entries_read
    return [
        (b"entries-read", _int_or_null(enc, entries_read)),
        (b"lag", _int_or_null(enc, stream.lag(group))),
    ]


def xinfo_groups(shard, db, argv: list[bytes], enc) -> bytes:
    if len(argv) != 3:
        return _subcommand_syntax(argv, b"XINFO")
    stream = _info_target(shard, db, argv)
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    rows = []
    for name in sorted(stream.groups):  # type: ignore[union-attr]
        group = stream.groups[name]  # type: ignore[union-attr]
        rows.append(
            _flat_map(
                enc,
                [
                    (b"name", enc.bulk(name)),
                    (b"consumers", enc.integer(len(group.consumers))),
                    (b"pending", enc.integer(len(group.pending))),
                    (b"last-delivered-id", enc.bulk(format_id(group.last_id))),
                    *_group_counters(enc, stream, group),  # type: ignore[arg-type]
                ],
            )
        )
    return enc.array(rows)


def xinfo_stream(shard, db, argv: list[bytes], enc) -> bytes:
    """XINFO STREAM key [FULL [COUNT n]] (COUNT 0: everything; the default 10)."""
    stream = _info_target(shard, db, argv)
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    options = argv[3:]
    full = bool(options)
    count = 10
    if options:
        if len(options) not in (1, 3) or options[0].lower() != b"full":
            return _subcommand_syntax(argv, b"XINFO")
        if len(options) == 3:
            if options[1].lower() != b"count":
                return _subcommand_syntax(argv, b"XINFO")
            parsed = parse_int(options[2])
            if parsed is None:
                return NOT_INTEGER
            count = parsed if parsed >= 0 else 10
    s: Stream = stream  # type: ignore[assignment]
    pairs = [
        (b"length", enc.integer(s.length)),
        (b"radix-tree-keys", enc.integer(len(s.nodes))),
        (b"radix-tree-nodes", enc.integer(s.rax_nodes())),
        (b"last-generated-id", enc.bulk(format_id(s.last_id))),
        (b"max-deleted-entry-id", enc.bulk(format_id(s.max_deleted_id))),
        (b"entries-added", enc.integer(s.entries_added)),
        (b"recorded-first-entry-id", enc.bulk(format_id(s.first_id))),
    ]
    if not full:
        first, last = s.first_entry(), s.last_entry()
        pairs += [
            (b"groups", enc.integer(len(s.groups))),
            (b"first-entry", enc.NULL if first is None else _entry(enc, *first)),
            (b"last-entry", enc.NULL if last is None else _entry(enc, *last)),
        ]
        return _flat_map(enc, pairs)
    entries = []
    for entry in s.range(0, MAX_ID):
        if count and len(entries) == count:
            break
        entries.append(entry)
    pairs.append((b"entries", _entries(enc, entries)))
    groups = []
    for name in sorted(s.groups):
        group = s.groups[name]
        pel = group.pending
        shown = pel.ids[:count] if count else pel.ids
        pending = [
            b"*4\r\n"
            + enc.bulk(format_id(i))
            + enc.bulk(pel.by_id[i].consumer)
            + enc.integer(pel.by_id[i].delivery_time)
            + enc.integer(pel.by_id[i].delivery_count)
            for i in shown
        ]
        consumers = []
        for consumer in group.sorted_consumers():
            own = consumer.pending
            mine = own.ids[:count] if count else own.ids
            consumers.append(
                _flat_map(
                    enc,
                    [
                        (b"name", enc.bulk(consumer.name)),
                        (b"seen-time", enc.integer(consumer.seen_time)),
                        (b"pel-count", enc.integer(len(own))),
                        (
                            b"pending",
                            enc.array(
                                [
                                    b"*3\r\n"
                                    + enc.bulk(format_id(i))
                                    + enc.integer(own.by_id[i].delivery_time)
                                    + enc.integer(own.by_id[i].delivery_count)
                                    for i in mine
                                ]
                            ),
                        ),
                    ],
                )
            )
        groups.append(
            _flat_map(
                enc,
                [
                    (b"name", enc.bulk(name)),
                    (b"last-delivered-id", enc.bulk(format_id(group.last_id))),
                    *_group_counters(enc, s, group),
                    (b"pel-count", enc.integer(len(pel))),
                    (b"pending", enc.array(pending)),
                    (b"consumers", enc.array(consumers)),
                ],
            )
        )
    pairs.append((b"groups", enc.array(groups)))
    return _flat_map(enc, pairs)


def xinfo_help(session, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _XINFO_HELP])


def xsetid(shard, db, argv: list[bytes], enc) -> bytes:
    """XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]: the options, then the key."""
    last_id = _strict_id(argv[2])
    if last_id is None:
        return INVALID_ID
    entries_added = -1
    max_deleted = 0
    i = 3
    while i < len(argv):
        more = len(argv) - 1 - i
        opt = argv[i].lower()
        if opt == b"entriesadded" and more:
            parsed = parse_int(argv[i + 1])
            if parsed is None:
                return NOT_INTEGER
            if parsed < 0:
                return error("ERR entries_added must be positive")
            entries_added = parsed
        elif opt == b"maxdeletedid" and more:
            parsed_id = _strict_id(argv[i + 1])
            if parsed_id is None:
                return INVALID_ID
            if last_id < parsed_id:
                return error(
                    "ERR The ID specified in XSETID is smaller than the provided "
                    "max_deleted_entry_id"
                )
            max_deleted = parsed_id
        else:
            return SYNTAX
        i += 2
    stream = _for_read(shard, db, argv[1])
    if stream is None:
        return NO_KEY
    if stream.__class__ is bytes:
        return stream  # type: ignore[return-value]
    s: Stream = stream  # type: ignore[assignment]
    if s.length:
        if last_id < s.last_entry()[0]:  # type: ignore[index]
            return error(
                "ERR The ID specified in XSETID is smaller than the target stream top item"
            )
        if entries_added != -1 and s.length > entries_added:
            return error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length"
            )
    if last_id < s.max_deleted_id:
        return error("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id")
    s.last_id = last_id
    if entries_added != -1:
        s.entries_added = entries_added
    if max_deleted:
        s.max_deleted_id = max_deleted
    return enc.OK


K = Route.KEY
ROWS = [
    Command("xadd", K, xadd, propagate=propagate_xadd, notes="logged with its concrete ID"),
    Command("xtrim", K, xtrim, propagate=propagate_xtrim, notes="logged as the exact trim"),
    Command("xlen", K, xlen),
    Command("xrange", K, xrange),
    Command("xrevrange", K, xrevrange),
    Command("xdel", K, xdel),
    Command("xack", K, xack),
    Command("xpending", K, xpending),
    Command("xclaim", K, xclaim, propagate=propagate_xclaim),
    Command("xautoclaim", K, xautoclaim, propagate=propagate_xclaim),
    Command("xsetid", K, xsetid),
    Command("xgroup|create", K, xgroup_create, propagate=propagate_xgroup),
    Command("xgroup|setid", K, xgroup_setid, propagate=propagate_xgroup),
    Command("xgroup|destroy", K, xgroup_destroy, propagate=propagate_xgroup),
    Command("xgroup|createconsumer", K, xgroup_createconsumer, propagate=propagate_xgroup),
    Command("xgroup|delconsumer", K, xgroup_delconsumer, propagate=propagate_xgroup),
    local("xgroup|help", xgroup_help),
    Command("xinfo|stream", K, xinfo_stream),
    Command("xinfo|groups", K, xinfo_groups),
    Command("xinfo|consumers", K, xinfo_consumers),
    local("xinfo|help", xinfo_help),
]

INTERNAL_PARTS = {b"@xcheck": check_part}
