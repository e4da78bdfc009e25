"""The bit commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO) run on
plain :class:`Shard` objects: their helpers against naive bit-by-bit references, and their
replies byte for byte against a real redis-server.

No redis-clone process runs here. :class:`Cluster` drives shards as the acceptor does (a
command to the shard of its key; a COORD command natively when one shard holds its keys,
else its plan, round after round, with every part crossing ``marshal`` as it crosses the
pipe), so BITOP's plan across shards is exercised too; ``test_cmd_sort`` reuses it.

Both sides run with ``proto-max-bulk-len`` at 1 MiB (Redis's minimum), so the offset limits
are reached with small strings. A key of another type is a list in redis-server and a Python
list in the shard (the bit commands only ask whether a value is ``bytes``).
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import RawConnection, ServerPool, encode_command, require_redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.commands import bitmaps
from shardserver.commands.multikey import Plan
from shardserver.commands.spec import Route, key_positions
from shardserver.commands.table import COMMANDS
from shardserver.resp import Resp2, encoder_for
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

MAX_BULK = 1024 * 1024
LIST = b"list"
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def c(*args: bytes | str | int) -> list[bytes]:
    """One command: str and int arguments become bytes."""
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


# -- an in-process cluster ----------------------------------------------------------------


@dataclass
class Server:
    """What plans ask of the acceptor: where a key lives."""

    owner: list[int]

    @property
    def links(self) -> range:
        return range(max(self.owner) + 1)

    def shard_of_key(self, key: bytes) -> int:
        return self.owner[slot_for_key(key)]


@dataclass
class Session:
    """The part of an acceptor's client that plans and checks read."""

    enc: type[Resp2]
    server: Server
    db: int = 0
    in_script: bool = False


class Cluster:
    """Shards driven as the acceptor drives them, without processes or pipes."""

    def __init__(self, shard_count: int = 4, settings: dict | None = None) -> None:
        self.shards = [Shard(index, settings) for index in range(shard_count)]
        self.server = Server(shard_table(shard_count))
        #: Coordinated command lines run through a plan, and how many rounds of reads each.
        self.planned: list[int] = []

    def shard_of(self, key: bytes) -> Shard:
        return self.shards[self.server.shard_of_key(key)]

    def database(self, key: bytes, db: int = 0):
        return self.shard_of(key).dbs[db]

    def _run(self, shard: Shard, ctx: int, argv: list) -> Any:
        """One part on one shard, its value crossing marshal as it crosses the pipe."""
        [value] = shard.execute_batch([[ctx, argv]])
        return marshal.loads(marshal.dumps(value))

    def call(self, *argv: bytes, protocol: int = 2) -> bytes:
        spec = COMMANDS[argv[0].lower().decode()]
        ctx = 1 if protocol == 3 else 0
        wire = [spec.wire_name, *argv[1:]]
        if spec.route is not Route.COORD:
            positions = key_positions(spec, wire) if spec.route is Route.KEYS else [1]
            [shard] = {self.server.shard_of_key(wire[p]) for p in positions}
            return self._run(self.shards[shard], ctx, wire)
        session = Session(encoder_for(protocol), self.server)
        if spec.check is not None:
            checked = spec.check(session, list(argv))
            if checked.__class__ is bytes:
                return checked
        if spec.undeclared_keys is not None and spec.undeclared_keys(wire):
            shards = set(range(len(self.shards)))
        else:
            shards = {self.server.shard_of_key(wire[p]) for p in key_positions(spec, wire)}
        if len(shards) == 1:
            return self._run(self.shards[shards.pop()], ctx, wire)
        plan = spec.plan(session, list(argv))
        rounds = 0
        while isinstance(plan, Plan):
            rounds += 1
            results = [self._run(self.shard_of(s.key), ctx, s.argv) for s in plan.reads]
            plan = plan.decide(results)
        self.planned.append(rounds)
        reply, writes = plan
        for step in writes:
            self._run(self.shard_of(step.key), ctx, step.argv)
        return reply


# -- the oracle ---------------------------------------------------------------------------


class Oracle:
    """A real redis-server (RESP2 and RESP3 connections) and an in-process cluster."""

    def __init__(self, port: int) -> None:
        self.connections = {2: RawConnection(port), 3: RawConnection(port)}
        assert self.connections[3].command(b"HELLO", b"3").startswith(b"%")
        reply = self.connections[2].command(
            b"CONFIG", b"SET", b"proto-max-bulk-len", b"%d" % MAX_BULK
        )
        assert reply == b"+OK\r\n"
        self.cluster = Cluster(4, {"proto-max-bulk-len": MAX_BULK})

    def reset(self) -> None:
        assert self.connections[2].command(b"FLUSHALL") == b"+OK\r\n"
        self.cluster = Cluster(4, {"proto-max-bulk-len": MAX_BULK})
        assert self.connections[2].command(b"RPUSH", LIST, b"x") == b":1\r\n"
        self.cluster.database(LIST).data[LIST] = [b"x"]

    def check(self, commands: Sequence[list[bytes]], protocol: int = 2) -> list[bytes]:
        """Pipeline the commands to redis-server, run them on the cluster; replies equal."""
        conn = self.connections[protocol]
        conn.send(b"".join(encode_command(*argv) for argv in commands))
        expected = [conn.read_reply() for _ in commands]
        got = [self.cluster.call(*argv, protocol=protocol) for argv in commands]
        wrong = [
            f"{argv!r:.200}: redis {want!r:.200} != ours {have!r:.200}"
            for argv, want, have in zip(commands, expected, got, strict=True)
            if want != have
        ]
        assert not wrong, "\n".join(wrong)
        return got

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """A redis-server of this module's own; skipped when absent, unless CI is set."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    oracle.close()
    server.stop()


# -- helpers against naive references -----------------------------------------------------


def bits_of(data: bytes) -> str:
    """The string's bits as text, bit 0 first."""
    return "".join(f"{byte:08b}" for byte in data)


@given(st.binary(max_size=64), st.integers(0, 70), st.integers(0, 70))
def test_popcount_matches_naive(data: bytes, start: int, end: int) -> None:
    end = min(end, len(data))
    start = min(start, end)
    assert bitmaps.popcount(data, start, end) == bits_of(data[start:end]).count("1")


def test_popcount_spans_chunks() -> None:
    data = b"\xff" * (bitmaps._CHUNK + 3) + b"\x01"
    assert bitmaps.popcount(data) == 8 * (bitmaps._CHUNK + 3) + 1
    assert bitmaps.popcount(data, bitmaps._CHUNK - 1, bitmaps._CHUNK + 1) == 16


@given(st.binary(min_size=1, max_size=40), st.integers(0, 1), st.data())
def test_first_bit_matches_naive(data: bytes, bit: int, draw: st.DataObject) -> None:
    total = len(data) * 8
    start = draw.draw(st.integers(0, total - 1))
    end = draw.draw(st.integers(start, total - 1))
    found = bits_of(data).find(str(bit), start, end + 1)
    assert bitmaps.first_bit(data, bit, start, end) == found


@pytest.mark.parametrize("at", [9, bitmaps._SKIP_BLOCK * 8, bitmaps._SKIP_BLOCK * 8 * 3 + 13])
def test_first_bit_skips_blocks(at: int) -> None:
    size = bitmaps._SKIP_BLOCK * 4 + 5
    data = bytearray(size)
    data[at >> 3] = 0x80 >> (at & 7)
    assert bitmaps.first_bit(bytes(data), 1, 0, size * 8 - 1) == at
    assert bitmaps.first_bit(bytes(data), 1, at + 1, size * 8 - 1) == -1
    inverted = bytes(data).translate(bitmaps._INVERT)
    assert bitmaps.first_bit(inverted, 0, 3, size * 8 - 2) == at
    assert bitmaps.first_bit(inverted, 0, 3, at - 1) == -1


@given(
    st.sampled_from([b"and", b"or", b"xor"]),
    st.lists(st.binary(max_size=20), min_size=1, max_size=4),
)
def test_bitop_matches_naive(op: bytes, sources: list[bytes]) -> None:
    size = max(map(len, sources))
    expected = bytearray(sources[0].ljust(size, b"\0"))
    for source in sources[1:]:
        padded = source.ljust(size, b"\0")
        for i in range(size):
            if op == b"and":
                expected[i] &= padded[i]
            elif op == b"or":
                expected[i] |= padded[i]
            else:
                expected[i] ^= padded[i]
    assert bitmaps.bitop_result(op, sources) == bytes(expected)


def test_bitop_not_and_chunks() -> None:
    assert bitmaps.bitop_result(b"not", [b"\x00\x0f\xff"]) == b"\xff\xf0\x00"
    big = b"\x0f" * (bitmaps._CHUNK + 5)
    assert bitmaps.bitop_result(b"or", [big, b"\xf0"]) == b"\xff" + big[1:]


@given(st.binary(max_size=12), st.integers(0, 100), st.integers(1, 64), st.booleans())
def test_read_field_matches_naive(data: bytes, offset: int, bits: int, signed: bool) -> None:
    text = bits_of(data).ljust(offset + bits, "0")[offset : offset + bits]
    expected = int(text, 2)
    if signed and text[0] == "1":
        expected -= 1 << bits
    assert bitmaps._read_field(data, offset, bits, signed) == expected


@given(st.binary(min_size=9, max_size=12), st.integers(0, 30), st.integers(1, 64), st.data())
def test_write_field_matches_naive(data: bytes, offset: int, bits: int, draw) -> None:
    offset = min(offset, len(data) * 8 - bits)
    value = draw.draw(st.integers(0, (1 << bits) - 1))
    buffer = bytearray(data)
    bitmaps._write_field(buffer, offset, bits, value)
    text = bits_of(data)
    expected = text[:offset] + f"{value:0{bits}b}" + text[offset + bits :]
    assert bits_of(bytes(buffer)) == expected


def test_overflow_policies() -> None:
    wrap, sat, fail = bitmaps._WRAP, bitmaps._SAT, bitmaps._FAIL
    assert bitmaps._overflowed(128, True, 8, wrap) == -128
    assert bitmaps._overflowed(-129, True, 8, wrap) == 127
    assert bitmaps._overflowed(128, True, 8, sat) == 127
    assert bitmaps._overflowed(-1000, True, 8, sat) == -128
    assert bitmaps._overflowed(128, True, 8, fail) is None
    assert bitmaps._overflowed(127, True, 8, fail) == 127
    assert bitmaps._overflowed(256, False, 8, wrap) == 0
    assert bitmaps._overflowed(-1, False, 8, wrap) == 255
    assert bitmaps._overflowed(-1, False, 8, sat) == 0
    assert bitmaps._overflowed(2**64 - 1, False, 8, sat) == 255  # SET u8 -1, as uint64_t
    assert bitmaps._overflowed(2**63, True, 64, wrap) == -(2**63)


def test_bit_offsets() -> None:
    limit = 512 * 1024 * 1024
    parse = bitmaps.parse_bit_offset
    assert parse(b"0", limit) == 0
    assert parse(b"4294967295", limit) == 2**32 - 1
    assert parse(b"4294967296", limit) is None
    assert parse(b"-1", limit) is None
    assert parse(b"+1", limit) is None
    assert parse(b"#2", limit) is None
    assert parse(b"#2", limit, 8) == 16
    assert parse(b"#-1", limit, 8) is None
    # C multiplies in 64 bits: 2**61 * 8 wraps round to 0.
    assert parse(b"#2305843009213693952", limit, 8) == 0
    assert parse(b"#536870912", limit, 8) is None


def test_setbit_keeps_deadline_and_writes_only_changes() -> None:
    shard = Shard(0)
    db = shard.dbs[0]
    db.store(b"k", b"\x80", 10**15)
    assert shard.execute_batch([[0, c("setbit", "k", 0, 1)]]) == [b":1\r\n"]
    assert shard.execute_batch([[0, c("setbit", "k", 9, 1)]]) == [b":0\r\n"]
    assert db.data[b"k"] == b"\x80\x40" and db.deadline_of(b"k") == 10**15
    assert shard.execute_batch([[0, c("setbit", "k", 0, 0)]]) == [b":1\r\n"]
    assert shard.execute_batch([[0, c("setbit", "k", 0, 1)]]) == [b":0\r\n"]
    assert db.data[b"k"] == b"\x80\x40" and db.deadline_of(b"k") == 10**15
    assert shard.execute_batch([[0, c("bitfield", "k", "incrby", "u8", 0, 1)]]) == [
        b"*1\r\n:129\r\n"
    ]
    assert db.data[b"k"] == b"\x81\x40" and db.deadline_of(b"k") == 10**15


def test_plan_bitop_reads_sources_and_holds_destination() -> None:
    session = Session(Resp2, Server(shard_table(4)))
    plan = bitmaps.plan_bitop(session, c("bitop", "or", "dest", "a", "b"))
    assert [step.argv for step in plan.reads] == [
        c("@bitsource", "a"),
        c("@bitsource", "b"),
        c("@exists", "dest"),
    ]
    reply, writes = plan.decide([(b"\x01",), None, 0])
    assert reply == b":1\r\n"
    assert [step.argv for step in writes] == [[b"@put", b"dest", ("string", b"\x01"), None, b"set"]]
    reply, writes = plan.decide([None, (b"",), 1])
    assert reply == b":0\r\n" and [step.argv for step in writes] == [c("@del", "dest")]
    assert plan.decide([(b"x",), False, 0]) == (bitmaps.WRONGTYPE, [])


# -- against redis-server -----------------------------------------------------------------

#: Keys on all four shards of the cluster (two share a hash tag), for BITOP.
SPREAD = [b"a", b"b", b"c", b"d", b"{a}x"]

# Each scenario runs on empty databases (plus a list at LIST), in RESP2 and in RESP3.
SCENARIOS: dict[str, list[list[bytes]]] = {
    "setbit getbit": [
        c("setbit", "k", 7, 1),
        c("setbit", "k", 7, 1),
        c("setbit", "k", 7, 0),
        c("setbit", "k", 100, 1),
        c("get", "k"),
        c("getbit", "k", 100),
        c("getbit", "k", 101),
        c("getbit", "k", 10**9),
        c("getbit", "missing", 0),
        c("setbit", "k", 0, 2),
        c("setbit", "k", 0, -1),
        c("setbit", "k", 0, "x"),
        c("setbit", "k", 0, ""),
        c("setbit", "k", -1, 1),
        c("setbit", "k", "1.0", 1),
        c("setbit", "k", "+1", 1),
        c("setbit", "k", MAX_BULK * 8, 1),
        c("setbit", "k", MAX_BULK * 8 - 1, 0),
        c("strlen", "k"),
        c("getbit", "k", MAX_BULK * 8),
        c("getbit", "k", "x"),
        c("setbit", LIST, 0, 1),
        c("setbit", LIST, -1, 1),
        c("setbit", LIST, 0, 5),
        c("getbit", LIST, 0),
        c("getbit", LIST, "x"),
        c("set", "t", "x", "ex", 1000),
        c("setbit", "t", 0, 1),
        c("setbit", "t", 20, 1),
        c("ttl", "t"),
        c("set", "n", "123"),
        c("getbit", "n", 2),
        c("setbit", "n", 7, 0),
        c("get", "n"),
    ],
    "bitcount": [
        c("set", "s", "foobar"),
        c("bitcount", "s"),
        c("bitcount", "s", 0, 0),
        c("bitcount", "s", 1, 1),
        c("bitcount", "s", 1, -2),
        c("bitcount", "s", -3, -1),
        c("bitcount", "s", -1, -3),
        c("bitcount", "s", 4, 2),
        c("bitcount", "s", -100, 100),
        c("bitcount", "s", 5, 30, "bit"),
        c("bitcount", "s", 5, 30, "BIT"),
        c("bitcount", "s", 0, -1, "byte"),
        c("bitcount", "s", -7, -2, "bit"),
        c("bitcount", "s", 3, 3, "bit"),
        c("bitcount", "s", 1, 0, "bit"),
        c("bitcount", "s", 0, 47, "bit"),
        c("bitcount", "s", 0, 48, "bit"),
        c("bitcount", "s", 1),
        c("bitcount", "s", 1, 2, 3),
        c("bitcount", "s", 1, 2, "bits"),
        c("bitcount", "s", 1, 2, b"bit\x00x"),
        c("bitcount", "s", -1, -2, "bits"),
        c("bitcount", "s", -2, -1, "bits"),
        c("bitcount", "s", "a", 2),
        c("bitcount", "s", 1, "b", "x"),
        c("bitcount", "s", 1, 2, "bit", "x"),
        c("bitcount", "missing"),
        c("bitcount", "missing", "a", "b", "c", "d"),
        c("bitcount", LIST),
        c("bitcount", LIST, "x"),
        c("set", "e", ""),
        c("bitcount", "e"),
        c("bitcount", "e", 0, -1),
        c("bitcount", "e", 0, -1, "bit"),
        c("bitcount", "s", "-9223372036854775808", "9223372036854775807", "bit"),
    ],
    "bitpos": [
        c("set", "s", b"\xff\xf0\x00"),
        c("bitpos", "s", 0),
        c("bitpos", "s", 1),
        c("bitpos", "s", 0, 2),
        c("bitpos", "s", 1, 2),
        c("bitpos", "s", 1, 2, -1),
        c("bitpos", "s", 0, 0, 0),
        c("bitpos", "s", 0, 0, 1),
        c("bitpos", "s", 0, -1),
        c("bitpos", "s", 1, 3),
        c("bitpos", "s", 0, 3),
        c("bitpos", "s", 1, 7, 15, "bit"),
        c("bitpos", "s", 0, 7, 15, "bit"),
        c("bitpos", "s", 0, 0, 11, "bit"),
        c("bitpos", "s", 0, 3, 5, "bit"),
        c("bitpos", "s", 0, 12, 12, "bit"),
        c("bitpos", "s", 1, 12, 23, "BIT"),
        c("bitpos", "s", 1, -5, -1, "bit"),
        c("bitpos", "s", 0, 2, 1),
        c("bitpos", "s", 0, 0, -1, "byte"),
        c("bitpos", "s", 2),
        c("bitpos", "s", -1),
        c("bitpos", "s", "x"),
        c("bitpos", "s", 1, "x"),
        c("bitpos", "s", 1, 0, "x"),
        c("bitpos", "s", 1, 0, "x", "y"),
        c("bitpos", "s", 1, 0, 1, "y"),
        c("bitpos", "s", 1, 0, 1, "bit", "z"),
        c("bitpos", "missing", 0),
        c("bitpos", "missing", 1),
        c("bitpos", "missing", 0, "x", "y", "z", "w"),
        c("bitpos", "missing", 2),
        c("bitpos", LIST, 1),
        c("bitpos", LIST, 7),
        c("bitpos", LIST, 1, "x"),
        c("set", "ones", b"\xff\xff"),
        c("bitpos", "ones", 0),
        c("bitpos", "ones", 0, 1),
        c("bitpos", "ones", 0, 0, 1),
        c("bitpos", "ones", 0, 0, -1, "bit"),
        c("set", "zeros", b"\x00\x00\x00"),
        c("bitpos", "zeros", 1),
        c("bitpos", "zeros", 0, 1),
        c("set", "e", ""),
        c("bitpos", "e", 0),
        c("bitpos", "e", 1),
        c("bitpos", "e", 0, 0),
    ],
    "bitop": [
        c("set", "a", b"\x0f\xf0"),
        c("set", "b", b"\xff"),
        c("set", "{a}x", b"\x01\x02\x03"),
        c("bitop", "and", "c", "a", "b"),
        c("get", "c"),
        c("bitop", "OR", "c", "a", "b", "{a}x"),
        c("get", "c"),
        c("bitop", "xor", "d", "a", "{a}x", "a"),
        c("get", "d"),
        c("bitop", "not", "c", "a"),
        c("get", "c"),
        c("bitop", "and", "{a}x", "{a}x", "a"),
        c("get", "{a}x"),
        c("bitop", "not", "c", "a", "b"),
        c("bitop", "nand", "c", "a"),
        c("bitop", b"and\x00x", "c", "a"),
        c("bitop", "and", "c", "missing", "nothing"),
        c("exists", "c"),
        c("set", "c", "x", "ex", 1000),
        c("bitop", "or", "c", "a"),
        c("ttl", "c"),
        c("bitop", "or", "c", "a", LIST),
        c("bitop", "or", LIST, "a"),
        c("type", LIST),
        c("bitop", "not", "b", "missing"),
        c("exists", "b"),
        c("bitop", "and", "a", "a", "e"),
        c("get", "a"),
    ],
    "bitfield": [
        c("bitfield", "f", "set", "i8", 0, -1, "get", "u4", 0, "incrby", "u2", "#1", 5),
        c("get", "f"),
        c("bitfield", "f", "get", "i8", 0, "get", "u8", 0, "get", "i64", 0, "get", "u63", 1),
        c("bitfield", "f", "overflow", "sat", "incrby", "i8", 0, -200, "incrby", "u8", 8, 300),
        c("bitfield", "f", "overflow", "fail", "incrby", "i8", 0, -1, "incrby", "i8", 0, 1),
        c("bitfield", "f", "overflow", "wrap", "set", "u8", 0, -1, "set", "i8", 8, 300),
        c("bitfield", "f", "overflow", "sat", "set", "u8", 0, -1, "set", "i8", 8, -300),
        c("bitfield", "f", "OVERFLOW", "FAIL", "set", "u3", 0, 8, "set", "u3", 0, 7),
        c("bitfield", "f", "incrby", "i64", 0, "9223372036854775807"),
        c("bitfield", "f", "overflow", "sat", "incrby", "i64", 0, "9223372036854775807"),
        c("bitfield", "f", "overflow", "fail", "incrby", "i64", 0, "-9223372036854775808"),
        c("bitfield", "f", "incrby", "u63", 1, "-9223372036854775808"),
        c("get", "f"),
        c("bitfield", "g", "overflow", "fail", "incrby", "u2", 100, 8),
        c("get", "g"),
        c("bitfield", "g", "get", "u8", "#536870911"),
        c("bitfield", "g", "get", "u8", "#131072"),
        c("bitfield", "g", "get", "u8", "#2305843009213693953"),
        c("bitfield", "g", "get", "i8", "#-1"),
        c("bitfield", "g", "get", "I8", 0),
        c("bitfield", "g", "get", "u64", 0),
        c("bitfield", "g", "get", "i65", 0),
        c("bitfield", "g", "get", "i0", 0),
        c("bitfield", "g", "get", "i08", 0),
        c("bitfield", "g", "get", b"i8\x00x", 0),
        c("bitfield", "g", "get", "i", 0),
        c("bitfield", "g", "get", "i8"),
        c("bitfield", "g", "get", "i8", 0, "set", "i8", 0),
        c("bitfield", "g", "set", "i8", 0, "x"),
        c("bitfield", "g", "set", "i8", "x", "x"),
        c("bitfield", "g", "incrby", "x", "x", "x"),
        c("bitfield", "g", "overflow", "x"),
        c("bitfield", "g", "overflow"),
        c("bitfield", "g", "overflow", "wrap", "get"),
        c("bitfield", "g", "get", "i8", 0, "overflow", "wrap"),
        c("bitfield", "g", "foo", "i8", 0),
        c("bitfield", "g", b"get\x00", "i8", 0),
        c("bitfield", "g"),
        c("bitfield", "missing"),
        c("bitfield", "missing", "get", "i8", 0),
        c("exists", "missing"),
        c("bitfield", LIST),
        c("bitfield", LIST, "get", "i8", 0),
        c("bitfield", LIST, "set", "i8", 0, 1),
        c("bitfield", LIST, "get", "x", 0),
        c("set", "t", "x", "ex", 1000),
        c("bitfield", "t", "set", "u8", 0, 121),
        c("bitfield", "t", "set", "u8", 100, 1),
        c("ttl", "t"),
        c("strlen", "t"),
        c("bitfield", "h", "set", "u8", MAX_BULK * 8 - 8, 1),
        c("bitfield", "h", "set", "u8", MAX_BULK * 8 - 7, 1),
        c("strlen", "h"),
    ],
    "bitfield_ro": [
        c("set", "f", b"\xab\xcd"),
        c("bitfield_ro", "f", "get", "u4", 4, "get", "i12", 2),
        c("bitfield_ro", "f", "set", "u4", 4, 1),
        c("bitfield_ro", "f", "get", "u4", 4, "incrby", "u4", 4, 1),
        c("bitfield_ro", "f", "overflow", "sat", "get", "u4", 4),
        c("bitfield_ro", LIST, "set", "i8", 0, 1),
        c("bitfield_ro", LIST, "get", "i8", 0),
        c("bitfield_ro", "missing", "get", "i8", 0),
        c("bitfield_ro", "missing", "get", "x", 0),
        c("bitfield_ro", "f"),
        c("get", "f"),
    ],
}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(oracle: Oracle, name: str, protocol: int) -> None:
    oracle.reset()
    oracle.check(SCENARIOS[name], protocol)


def test_bitop_crosses_shards(oracle: Oracle) -> None:
    """The BITOP scenario's keys are spread over the four shards: it ran through its plan."""
    assert len({oracle.cluster.server.shard_of_key(key) for key in SPREAD}) == 4
    oracle.reset()
    oracle.check(SCENARIOS["bitop"])
    assert oracle.cluster.planned and set(oracle.cluster.planned) == {1}


RANGE_ARG = st.one_of(
    st.integers(-30, 30).map(lambda n: str(n).encode()),
    st.sampled_from([b"x", b"-9223372036854775808", b"9223372036854775807", b"", b"1.0"]),
)
UNIT = st.sampled_from([b"bit", b"BYTE", b"byte", b"Bit", b"bits"])


@st.composite
def bit_reads(draw: st.DrawFn) -> list[bytes]:
    """A BITCOUNT or BITPOS, mostly well formed, with any range."""
    args = draw(st.lists(RANGE_ARG, max_size=2))
    if len(args) == 2 and draw(st.booleans()):
        args.append(draw(UNIT))
    key = draw(st.sampled_from([b"s", b"missing", LIST]))
    if draw(st.booleans()):
        return [b"bitcount", key, *args]
    bit = draw(st.sampled_from([b"0", b"1", b"0", b"1", b"2"]))
    return [b"bitpos", key, bit, *args]


@HYPOTHESIS
@given(st.binary(max_size=6), st.lists(bit_reads(), min_size=1, max_size=12))
def test_random_bit_reads(oracle: Oracle, value: bytes, reads: list[list[bytes]]) -> None:
    oracle.reset()
    oracle.check([[b"set", b"s", value], *reads])


FIELD_TYPE = st.one_of(
    st.builds(lambda s, n: b"%s%d" % (s, n), st.sampled_from([b"i", b"u"]), st.integers(1, 64)),
    st.sampled_from([b"u64", b"i0", b"x8"]),
)
FIELD_OFFSET = st.one_of(
    st.integers(0, 80).map(lambda n: b"%d" % n),
    st.integers(0, 10).map(lambda n: b"#%d" % n),
    st.sampled_from([b"-1", b"x"]),
)
FIELD_VALUE = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(lambda n: b"%d" % n),
    st.integers(-300, 300).map(lambda n: b"%d" % n),
)


@st.composite
def bitfield_ops(draw: st.DrawFn) -> list[bytes]:
    """One BITFIELD subcommand (occasionally malformed)."""
    kind = draw(st.sampled_from(["get", "set", "incrby", "overflow"]))
    if kind == "overflow":
        return [b"OVERFLOW", draw(st.sampled_from([b"WRAP", b"sat", b"fail", b"FAIL"]))]
    args = [kind.encode(), draw(FIELD_TYPE), draw(FIELD_OFFSET)]
    if kind != "get":
        args.append(draw(FIELD_VALUE))
    return args


@HYPOTHESIS
@given(
    st.binary(max_size=10),
    st.lists(st.lists(bitfield_ops(), min_size=1, max_size=4), min_size=1, max_size=6),
)
def test_random_bitfields(oracle: Oracle, value: bytes, commands: list[list[list[bytes]]]) -> None:
    oracle.reset()
    script = [[b"set", b"f", value]]
    for ops in commands:
        script.append([b"bitfield", b"f", *[arg for op in ops for arg in op]])
    script.append([b"get", b"f"])
    oracle.check(script)


@pytest.mark.parametrize(
    ("field", "overflow", "value", "stored"),
    [
        (b"i1", b"SAT", b"-9223372036854775808", b"\x00"),  # Redis saturates it upwards
        (b"i8", b"SAT", b"-9223372036854775808", b"\x7f"),
        (b"i8", b"SAT", b"-9223372036854775681", b"\x7f"),  # the highest that wraps
        (b"i8", b"SAT", b"-9223372036854775680", b"\x80"),  # one above: downwards
        (b"i8", b"WRAP", b"-9223372036854775808", b"\x00"),
        (b"i64", b"SAT", b"-9223372036854775808", b"\x80" + bytes(7)),
    ],
)
def test_signed_set_of_the_lowest_values_overflows_as_redis_computes_it(
    field: bytes, overflow: bytes, value: bytes, stored: bytes
) -> None:
    # Found by test_random_bitfields against redis-server: Redis's `max - value` wraps.
    shard = Shard(0)
    shard.execute_batch(
        [[0, [b"bitfield", b"k", b"OVERFLOW", overflow, b"SET", field, b"0", value]]]
    )
    assert shard.execute_batch([[0, [b"get", b"k"]]]) == [b"$%d\r\n%b\r\n" % (len(stored), stored)]
