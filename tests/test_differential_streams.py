"""Differential test of streams: random sequences against redis-clone and redis-server.

Hypothesis builds sequences of stream commands (XADD with explicit and ``ms-*`` IDs, MAXLEN
and MINID with ``=``/``~`` and LIMIT, NOMKSTREAM; XTRIM, XDEL, XRANGE/XREVRANGE with
exclusive bounds and COUNT, XREAD and XREADGROUP over several keys, every XGROUP
subcommand, XACK, XCLAIM and XAUTOCLAIM with their options, XPENDING, XSETID, XINFO
STREAM/GROUPS/CONSUMERS), often malformed, mixed with DEL and SET (WRONGTYPE), over keys on
every shard of a 4-shard server. Each example picks small or default node limits
(``stream-node-max-entries``/``-bytes``), so ``~`` trims whole nodes at different sizes and
XINFO's radix-tree counts are checked. The sequence is pipelined in one write, RESP2 or
RESP3, then the end state (XINFO STREAM and GROUPS, XPENDING of each group) is read.

IDs are explicit (no ``*``), so every reply must be byte-identical, except the numbers that
are times: idle times in XPENDING's extended form and XINFO CONSUMERS are zeroed first.
Minimum idle times are 0 or far beyond the test's length, so what XCLAIM and XAUTOCLAIM
claim never depends on the clock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from conftest import (
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    require_redis_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.slots import shard_table, slot_for_key

Command = tuple[bytes, ...]

EXAMPLES = int(os.environ.get("STREAM_EXAMPLES", "120"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY_POOL = [b"b", b"{b}y", b"c", b"d", b"a"]
KEYS = st.sampled_from([b"b"] * 5 + [b"{b}y"] * 2 + KEY_POOL)
GROUPS = st.sampled_from([b"g", b"g", b"h", b"nog"])
CONSUMERS = st.sampled_from([b"alice", b"bob", b"carol"])
FIELDS = st.sampled_from([b"f", b"f", b"g", b"0", b"a-longer-field"])
VALUES = st.sampled_from([b"v", b"", b"1", b"-5", b"12345678", b"x" * 80])
MS = st.integers(0, 40)
IDS = st.one_of(
    st.builds(lambda ms, seq: b"%d-%d" % (ms, seq), MS, st.integers(0, 3)),
    st.builds(lambda ms: b"%d" % ms, MS),
)
BOUNDS = st.one_of(
    IDS,
    st.sampled_from([b"-", b"+", b"(5-0", b"(0-0", b"(18446744073709551615-18446744073709551615"]),
    st.builds(lambda ms: b"(%d" % ms, MS),
    st.sampled_from([b"bad", b"(-", b"1-x"]),
)
COUNTS = st.sampled_from([b"0", b"1", b"2", b"3", b"10", b"-1", b"x"])
#: 0, or so long nothing delivered in the example is idle that long.
MIN_IDLE = st.sampled_from([b"0", b"0", b"100000000", b"-5"])
NODE_LIMITS = st.sampled_from([(100, 4096), (100, 4096), (3, 4096), (2, 0), (0, 120), (5, 200)])


def test_key_pool_spans_every_shard() -> None:
    assert {shard_table(4)[slot_for_key(key)] for key in KEY_POOL} == {0, 1, 2, 3}


@st.composite
def trim_args(draw: st.DrawFn) -> list[bytes]:
    strategy = draw(st.sampled_from([b"MAXLEN", b"MINID", b"maxlen"]))
    out = [strategy]
    out += draw(st.sampled_from([[], [b"="], [b"~"], [b"~"]]))
    out.append(draw(st.sampled_from([b"0", b"1", b"3", b"10", b"-1"])) if strategy != b"MINID"
               else draw(IDS))  # fmt: skip
    if draw(st.integers(0, 3)) == 0:
        out += [b"LIMIT", draw(st.sampled_from([b"0", b"1", b"5", b"100", b"-1"]))]
    return out


@st.composite
def xadd(draw: st.DrawFn, key: bytes) -> Command:
    args: list[bytes] = []
    if draw(st.integers(0, 8)) == 0:
        args.append(b"NOMKSTREAM")
    if draw(st.integers(0, 3)) == 0:
        args += draw(trim_args())
    entry_id = draw(st.one_of(IDS, IDS, st.builds(lambda ms: b"%d-*" % ms, MS)))
    pairs = draw(st.lists(st.tuples(FIELDS, VALUES), min_size=1, max_size=3))
    items = [x for pair in pairs for x in pair]
    if draw(st.integers(0, 10)) == 0:
        items.pop()
    return (b"XADD", key, *args, entry_id, *items)


@st.composite
def read_command(draw: st.DrawFn) -> Command:
    keys = draw(st.lists(st.sampled_from(KEY_POOL), min_size=1, max_size=3, unique=True))
    options: list[bytes] = []
    if draw(st.booleans()):
        options += [b"COUNT", draw(COUNTS)]
    if draw(st.booleans()):  # XREADGROUP
        options = [b"GROUP", draw(GROUPS), draw(CONSUMERS), *options]
        if draw(st.integers(0, 3)) == 0:
            options.append(b"NOACK")
        ids = [draw(st.sampled_from([b">", b">", b"0", b"5-0"])) for _ in keys]
        return (b"XREADGROUP", *options, b"STREAMS", *keys, *ids)
    ids = [draw(st.one_of(IDS, st.just(b"$"))) for _ in keys]
    return (b"XREAD", *options, b"STREAMS", *keys, *ids)


@st.composite
def commands(draw: st.DrawFn) -> Command:
    kind = draw(
        st.sampled_from(
            [b"xadd"] * 10
            + [b"xtrim", b"xdel", b"xdel", b"xrange", b"xrevrange", b"xlen", b"read", b"read"]
            + [b"create", b"create", b"setid", b"destroy", b"createconsumer", b"delconsumer"]
            + [b"xack", b"xclaim", b"xautoclaim", b"xpending", b"xsetid", b"info", b"del"]
            + [b"set", b"read", b"xclaim"]
        )
    )
    key = draw(KEYS)
    if kind == b"xadd":
        return draw(xadd(key))
    if kind == b"xtrim":
        return (b"XTRIM", key, *draw(trim_args()))
    if kind == b"xdel":
        return (b"XDEL", key, *draw(st.lists(IDS, min_size=1, max_size=3)))
    if kind in (b"xrange", b"xrevrange"):
        bounds = [draw(BOUNDS), draw(BOUNDS)]
        count = [b"COUNT", draw(COUNTS)] if draw(st.booleans()) else []
        return (kind.upper(), key, *bounds, *count)
    if kind == b"xlen":
        return (b"XLEN", key)
    if kind == b"read":
        return draw(read_command())
    group = draw(GROUPS)
    if kind == b"create":
        options = draw(st.sampled_from([[], [b"MKSTREAM"], [b"ENTRIESREAD", b"2"], [b"x"]]))
        return (b"XGROUP", b"CREATE", key, group, draw(st.one_of(IDS, st.just(b"$"))), *options)
    if kind == b"setid":
        options = draw(st.sampled_from([[], [b"ENTRIESREAD", b"1"], [b"ENTRIESREAD", b"-1"]]))
        return (b"XGROUP", b"SETID", key, group, draw(st.one_of(IDS, st.just(b"$"))), *options)
    if kind == b"destroy":
        return (b"XGROUP", b"DESTROY", key, group)
    if kind in (b"createconsumer", b"delconsumer"):
        return (b"XGROUP", kind.upper(), key, group, draw(CONSUMERS))
    if kind == b"xack":
        return (b"XACK", key, group, *draw(st.lists(IDS, min_size=1, max_size=3)))
    if kind == b"xclaim":
        ids = draw(st.lists(IDS, min_size=1, max_size=3))
        options = draw(
            st.lists(
                st.sampled_from(
                    [[b"FORCE"], [b"JUSTID"], [b"RETRYCOUNT", b"4"], [b"LASTID", b"30-0"]]
                    + [[b"IDLE", b"500"], [b"BAD"]]
                ),
                max_size=2,
            )
        )
        flat = [x for option in options for x in option]
        return (b"XCLAIM", key, group, draw(CONSUMERS), draw(MIN_IDLE), *ids, *flat)
    if kind == b"xautoclaim":
        options = draw(st.sampled_from([[], [b"COUNT", b"2"], [b"JUSTID"], [b"COUNT", b"0"]]))
        start = draw(st.sampled_from([b"0", b"-", b"(3-0", b"10-0"]))
        return (b"XAUTOCLAIM", key, group, draw(CONSUMERS), draw(MIN_IDLE), start, *options)
    if kind == b"xpending":
        if draw(st.booleans()):
            return (b"XPENDING", key, group)
        rest = [draw(BOUNDS), draw(BOUNDS), draw(COUNTS)]
        if draw(st.booleans()):
            rest.append(draw(CONSUMERS))
        return (b"XPENDING", key, group, *rest)
    if kind == b"xsetid":
        options = draw(st.sampled_from([[], [b"ENTRIESADDED", b"50"], [b"MAXDELETEDID", b"2-0"]]))
        return (b"XSETID", key, draw(st.sampled_from([b"45-0", b"10-0", b"0-1"])), *options)
    if kind == b"info":
        sub = draw(
            st.sampled_from([[b"STREAM", key], [b"GROUPS", key], [b"CONSUMERS", key, group]])
        )
        return (b"XINFO", *sub)
    if kind == b"del":
        return (b"DEL", key)
    return (b"SET", key, b"x")


def final_reads() -> list[Command]:
    reads: list[Command] = []
    for key in KEY_POOL:
        reads += [(b"TYPE", key), (b"XINFO", b"STREAM", key), (b"XINFO", b"GROUPS", key)]
        reads += [(b"XRANGE", key, b"-", b"+")]
        for group in (b"g", b"h"):
            reads += [(b"XPENDING", key, group), (b"XPENDING", key, group, b"-", b"+", b"100")]
            reads += [(b"XINFO", b"CONSUMERS", key, group)]
    return reads


_IDLE_IN_PENDING = re.compile(rb"(\*4\r\n\$\d+\r\n\d+-\d+\r\n\$\d+\r\n[^\r]*\r\n):\d+")
_IDLE_IN_CONSUMERS = re.compile(rb"(\$4\r\nidle\r\n):\d+")


def _timeless(command: Command, reply: bytes) -> bytes:
    """The reply with its idle times zeroed."""
    if command[0] == b"XPENDING":
        return _IDLE_IN_PENDING.sub(rb"\1:0", reply)
    if command[:2] == (b"XINFO", b"CONSUMERS"):
        return _IDLE_IN_CONSUMERS.sub(rb"\1:0", reply)
    return reply


def run(server: ServerProcess, limits: tuple[int, int], sent: list[Command], resp3: bool) -> list:
    entries, max_bytes = limits
    setup = [
        (b"HELLO", b"3" if resp3 else b"2"),
        (b"FLUSHALL",),
        (b"CONFIG", b"SET", b"stream-node-max-entries", b"%d" % entries),
        (b"CONFIG", b"SET", b"stream-node-max-bytes", b"%d" % max_bytes),
    ]
    with RawConnection(server.port, timeout=20.0) as conn:
        conn.send(b"".join(encode_command(*command) for command in [*setup, *sent]))
        for _ in setup:
            assert not conn.read_reply().startswith(b"-")
        return [_timeless(command, conn.read_reply()) for command in sent]


@pytest.fixture(scope="module")
def servers(module_servers: ServerPool) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    require_redis_server()
    yield module_servers.clone(4), module_servers.start_redis()


@SETTINGS
@given(
    sequence=st.lists(commands(), min_size=1, max_size=40),
    limits=NODE_LIMITS,
    resp3=st.booleans(),
)
def test_stream_sequences_match_redis(
    servers: tuple[ServerProcess, ServerProcess],
    sequence: list[Command],
    limits: tuple[int, int],
    resp3: bool,
) -> None:
    clone, oracle = servers
    sent = sequence + final_reads()
    ours = run(clone, limits, sent, resp3)
    theirs = run(oracle, limits, sent, resp3)
    for command, mine, expected in zip(sent, ours, theirs, strict=True):
        assert mine == expected, (command, sequence)
