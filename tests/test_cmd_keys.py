"""Keyspace commands (TYPE, the EXPIRE and TTL families, PERSIST, MOVE, KEYS, RANDOMKEY, FLUSHDB)
run on plain :class:`Shard` objects and compared byte for byte with a real redis-server.

No redis-clone process is involved: :class:`Cluster` does what the acceptor does for these
commands (route a key's command to the shard of its slot; run an ALL command's check, its part
on every shard, and the merge), so the handlers, the parts and the merges are all exercised,
with parts crossing ``marshal`` as they cross the pipe.

Time: replies that read a clock (TTL, PTTL, EXPIRETIME and PEXPIRETIME of relative deadlines)
are compared within a tolerance. Every future deadline in a generated sequence is at least 100 s
away and differs from every other by at least 10 s, so comparisons between deadlines (GT, LT)
never depend on how many milliseconds passed between two commands.
"""

from __future__ import annotations

import marshal
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from types import SimpleNamespace

import pytest
from conftest import (
    RawConnection,
    ServerPool,
    parse_reply,
    require_redis_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.commands import keys
from shardserver.commands.spec import Route
from shardserver.commands.table import COMMANDS
from shardserver.keyspace import now_ms
from shardserver.resp import Resp2, encoder_for
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

HYPOTHESIS = settings(
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Keys of the generated sequences: they fall on all three shards of :class:`Cluster`.
KEY_POOL = [b"a", b"b", b"c", b"{a}c", b"k\x00"]
#: The database the glob test fills (the sequences use 0 and 1, and flush everything).
GLOB_DB = 9


def _no_tracking() -> SimpleNamespace:
    return SimpleNamespace(tracking=SimpleNamespace(flushed=lambda: None))


@dataclass
class Session:
    """The part of an acceptor's client that merges and checks read: its reply encoder, and
    its acceptor's tracking clients (none here), which FLUSHDB and FLUSHALL tell."""

    enc: type[Resp2]
    server: SimpleNamespace = field(default_factory=_no_tracking)


class Cluster:
    """Shards driven as the acceptor drives them, without processes or pipes."""

    def __init__(self, shard_count: int = 3) -> None:
        self.shards = [Shard(index) for index in range(shard_count)]
        self.owner = shard_table(shard_count)

    def call(self, *argv: bytes, db: int = 0, protocol: int = 2) -> bytes:
        """One command's encoded reply; ``argv[0]`` in any case, arity as Redis demands."""
        spec = COMMANDS[argv[0].lower().decode()]
        ctx = db * 2 + (1 if protocol == 3 else 0)
        wire = [spec.wire_name, *argv[1:]]
        if spec.route is not Route.ALL:
            shard = self.shards[self.owner[slot_for_key(argv[1])]]
            [reply] = shard.execute_batch([[ctx, wire]])
            return reply
        session = Session(encoder_for(protocol))
        if spec.check is not None:
            problem = spec.check(session, wire)
            if problem is not None:
                return problem
        part = [b"@" + spec.wire_name, *argv[1:]]
        parts = [
            marshal.loads(marshal.dumps(shard.execute_batch([[ctx, part]])[0]))
            for shard in self.shards
        ]
        assert spec.merge is not None
        return spec.merge(session, wire, parts)

    def database(self, key: bytes, db: int = 0):
        """The Database that holds ``key``."""
        return self.shards[self.owner[slot_for_key(key)]].dbs[db]


class Oracle:
    """A real redis-server, over one RESP2 and one RESP3 connection, each tracking its SELECT."""

    def __init__(self, port: int) -> None:
        self.connections = {2: RawConnection(port), 3: RawConnection(port)}
        self.connections[3].command("HELLO", "3")
        self.selected = {2: 0, 3: 0}

    def call(self, *argv: bytes, db: int = 0, protocol: int = 2) -> bytes:
        connection = self.connections[protocol]
        if self.selected[protocol] != db:
            assert connection.command("SELECT", db) == b"+OK\r\n"
            self.selected[protocol] = db
        return connection.command(*argv)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """redis-server 7.0 on a free port (no persistence), stopped by PID with the module."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    oracle.close()


def compare(oracle: Oracle, commands: list[list[bytes]], protocol: int = 2) -> None:
    """Run ``commands`` on a fresh Cluster and on the flushed oracle; replies must be equal."""
    oracle.call(b"FLUSHALL")
    cluster = Cluster()
    for argv in commands:
        theirs = oracle.call(*argv, protocol=protocol)
        ours = cluster.call(*argv, protocol=protocol)
        assert ours == theirs, argv


# -- Exact scenarios against Redis ------------------------------------------------------------

FAR = b"99999999999999"  # a PXAT/EXPIREAT in year 5138: exact, no clock involved

SCENARIOS: dict[str, list[list[bytes]]] = {
    "expire option errors, in Redis's order": [
        [b"set", b"a", b"1"],
        [b"expire", b"a", b"100", b"foo"],
        [b"expire", b"a", b"100", b"nx", b"foo"],
        [b"expire", b"a", b"x", b"foo"],
        [b"expire", b"a", b"x", b"nx", b"xx"],
        [b"expire", b"a", b"100", b"nx", b"gt"],
        [b"expire", b"a", b"100", b"NX", b"lt"],
        [b"expire", b"a", b"100", b"gt", b"lt"],
        [b"expire", b"a", b"100", b"xx", b"gt", b"lt"],
        [b"expire", b"a", b"100", b"bad\r\n"],
        [b"expire", b"a", b"100", b"a\rb\nc"],
        [b"expire", b"a", b"100", b"x\x00y"],
        [b"expire", b"a", b"100", b""],
        [b"expire", b"a", b"1.5"],
        [b"expire", b"a", b" 1"],
        [b"expire", b"a", b"01"],
        [b"ttl", b"a"],
    ],
    "an option is read up to a NUL, as strcasecmp reads it": [
        [b"set", b"a", b"1"],
        [b"pexpireat", b"a", FAR, b"nx\x00junk"],
        [b"pexpiretime", b"a"],
        [b"pexpireat", b"a", b"99999999999990", b"gT\x00"],
        [b"pexpiretime", b"a"],
    ],
    "overflow": [
        [b"set", b"a", b"1"],
        [b"expire", b"a", b"9223372036854775"],
        [b"expire", b"a", b"9223372036854776"],
        [b"expire", b"a", b"-9223372036854776"],
        [b"expire", b"a", b"-9223372036854775808"],
        [b"pexpire", b"a", b"9223372036854775807"],
        [b"pexpire", b"a", b"9223372036854775808"],
        [b"expireat", b"a", b"9223372036854776"],
        [b"expireat", b"nokey", b"9223372036854776"],
        [b"pexpireat", b"a", b"9223372036854775807"],
        [b"expiretime", b"a"],
        [b"pexpiretime", b"a"],
        [b"expireat", b"a", b"9223372036854775"],
        [b"expiretime", b"a"],
        [b"pexpiretime", b"a"],
        [b"expire", b"a", b"-9223372036854775"],
        [b"get", b"a"],
    ],
    "NX XX GT LT, a key without TTL counting as infinite": [
        [b"set", b"a", b"1"],
        [b"expireat", b"a", b"99999999999", b"xx"],
        [b"expireat", b"a", b"99999999999", b"gt"],
        [b"expireat", b"a", b"99999999999", b"lt"],
        [b"expiretime", b"a"],
        [b"expireat", b"a", b"99999999990", b"nx"],
        [b"expireat", b"a", b"99999999990", b"XX", b"GT"],
        [b"expireat", b"a", b"99999999999", b"gt"],
        [b"expireat", b"a", b"99999999999", b"gt", b"gt"],
        [b"pexpireat", b"a", b"99999999999001", b"xx", b"gt"],
        [b"pexpiretime", b"a"],
        [b"pexpireat", b"a", b"99999999999001", b"lt"],
        [b"pexpireat", b"a", b"99999999999000", b"lt", b"xx"],
        [b"pexpiretime", b"a"],
        [b"expiretime", b"a"],
        [b"expireat", b"a", b"1", b"gt"],
        [b"expireat", b"a", b"1", b"lt"],
        [b"get", b"a"],
        [b"expire", b"nokey", b"100", b"nx"],
        [b"expire", b"nokey", b"100", b"gt", b"lt"],
    ],
    "a deadline in the past deletes the key and answers 1": [
        [b"set", b"a", b"1"],
        [b"expire", b"a", b"0"],
        [b"get", b"a"],
        [b"set", b"a", b"1"],
        [b"pexpire", b"a", b"-1"],
        [b"get", b"a"],
        [b"set", b"a", b"1"],
        [b"expireat", b"a", b"1"],
        [b"type", b"a"],
        [b"set", b"a", b"1"],
        [b"pexpireat", b"a", b"0"],
        [b"ttl", b"a"],
        [b"expire", b"a", b"0"],
    ],
    "TTL family, PERSIST and TYPE": [
        [b"ttl", b"a"],
        [b"pttl", b"a"],
        [b"expiretime", b"a"],
        [b"pexpiretime", b"a"],
        [b"type", b"a"],
        [b"persist", b"a"],
        [b"set", b"a", b"1"],
        [b"ttl", b"a"],
        [b"pttl", b"a"],
        [b"expiretime", b"a"],
        [b"pexpiretime", b"a"],
        [b"type", b"a"],
        [b"persist", b"a"],
        [b"set", b"a", b"1", b"pxat", FAR],
        [b"expiretime", b"a"],
        [b"pexpiretime", b"a"],
        [b"persist", b"a"],
        [b"persist", b"a"],
        [b"pttl", b"a"],
        [b"set", b"a", b"1", b"pxat", b"1"],
        [b"type", b"a"],
        [b"persist", b"a"],
        [b"ttl", b"a"],
    ],
    "MOVE": [
        [b"set", b"a", b"1", b"pxat", FAR],
        [b"move", b"a", b"0"],
        [b"move", b"a", b"16"],
        [b"move", b"a", b"-1"],
        [b"move", b"a", b"x"],
        [b"move", b"a", b"01"],
        [b"move", b"a", b"2147483648"],
        [b"move", b"a", b"-2147483649"],
        [b"move", b"a", b"99999999999999999999"],
        [b"move", b"nokey", b"0"],
        [b"move", b"nokey", b"3"],
        [b"move", b"a", b"3"],
        [b"move", b"a", b"3"],
        [b"pexpiretime", b"a"],
        [b"set", b"a", b"2"],
        [b"move", b"a", b"3"],
        [b"get", b"a"],
        [b"set", b"b", b"1", b"pxat", b"1"],
        [b"move", b"b", b"3"],
    ],
    "FLUSHDB arguments": [
        [b"set", b"a", b"1"],
        [b"flushdb", b"x"],
        [b"flushdb", b"sync", b"async"],
        [b"get", b"a"],
        [b"flushdb", b"ASYNC"],
        [b"get", b"a"],
        [b"set", b"a", b"1"],
        [b"flushdb", b"Sync"],
        [b"flushdb"],
        [b"randomkey"],
        [b"keys", b"*"],
    ],
}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_match_redis(oracle: Oracle, name: str, protocol: int) -> None:
    compare(oracle, SCENARIOS[name], protocol)


def test_move_keeps_deadline_and_databases_apart(oracle: Oracle) -> None:
    """MOVE seen from both databases: the key, its deadline, a target that already has it."""
    oracle.call(b"FLUSHALL")
    cluster = Cluster()
    script = [
        (0, [b"set", b"a", b"v", b"pxat", FAR]),
        (1, [b"set", b"b", b"w"]),
        (0, [b"move", b"a", b"1"]),
        (1, [b"pexpiretime", b"a"]),
        (0, [b"get", b"a"]),
        (1, [b"move", b"a", b"0"]),
        (0, [b"pexpiretime", b"a"]),
        (0, [b"set", b"b", b"x"]),
        (1, [b"move", b"b", b"0"]),
        (1, [b"keys", b"*"]),
        (0, [b"flushdb"]),
        (1, [b"keys", b"*"]),
        (0, [b"keys", b"*"]),
    ]
    for db, argv in script:
        assert cluster.call(*argv, db=db) == oracle.call(*argv, db=db), (db, argv)


# -- Differential sequences -------------------------------------------------------------------


@dataclass(frozen=True)
class Future:
    """A deadline at least 100 s ahead, rendered when the command runs.

    ``offset`` seconds from now for relative commands, from the example's start (whole
    seconds) for absolute ones; offsets are multiples of 10 s and unique in a sequence.
    """

    offset: int


@dataclass(frozen=True)
class Past:
    """An absolute time ``ago`` seconds before the example's start."""

    ago: int


Arg = bytes | Future | Past
INVALID_TIMES = [
    b"abc",
    b"",
    b"1.5",
    b"+5",
    b"05",
    b"9223372036854775807",
    b"9223372036854775808",
    b"9223372036854775",
    b"9223372036854776",
    b"-9223372036854775",
    b"-9223372036854776",
    b"-9223372036854775808",
]
EXPIRE_OPTIONS = st.sampled_from(
    [b"nx", b"xx", b"gt", b"lt", b"NX", b"Xx", b"GT", b"lT", b"foo", b"nx\x00", b""]
)
TIME_READS = {b"ttl": 1, b"pttl": 1000, b"expiretime": 1, b"pexpiretime": 1000}


@st.composite
def sequences(draw: st.DrawFn) -> list[tuple[int, list[Arg]]]:
    """Commands on a few keys in databases 0 and 1, each with the database it runs in."""
    used: set[int] = set()

    def future() -> Future:
        offset = draw(st.integers(10, 100_000).filter(lambda n: n not in used))
        used.add(offset)
        return Future(offset * 10)

    def when(absolute: bool) -> Arg:
        kind = draw(st.sampled_from(["future", "future", "past", "invalid"]))
        if kind == "future":
            return future()
        if kind == "invalid":
            return draw(st.sampled_from(INVALID_TIMES))
        if absolute:
            return draw(st.sampled_from([b"1", b"0", Past(100)]))
        return draw(st.sampled_from([b"0", b"-1", b"-100"]))

    # Two or three keys per sequence, so that commands meet on the same key often.
    pool = draw(st.lists(st.sampled_from(KEY_POOL), min_size=2, max_size=3, unique=True))
    commands: list[tuple[int, list[Arg]]] = []
    for _ in range(draw(st.integers(1, 25))):
        key = draw(st.sampled_from(pool))
        kind = draw(
            st.sampled_from(
                ["set"] * 4
                + ["expire"] * 5
                + ["read"] * 3
                + ["persist", "type", "move", "move", "get"]
                + ["keys", "randomkey", "flushdb"]
            )
        )
        argv: list[Arg]
        if kind == "set":
            argv = [b"set", key, draw(st.sampled_from([b"1", b"v"]))]
            option = draw(st.sampled_from([None, b"px", b"ex", b"exat", b"pxat", b"keepttl"]))
            if option == b"keepttl":
                argv.append(option)
            elif option is not None:
                argv += [option, future() if draw(st.booleans()) else Past(100)]
        elif kind == "expire":
            name = draw(st.sampled_from([b"expire", b"pexpire", b"expireat", b"pexpireat"]))
            argv = [name, key, when(name.endswith(b"at"))]
            argv += draw(st.lists(EXPIRE_OPTIONS, max_size=3))
        elif kind == "read":
            argv = [draw(st.sampled_from(list(TIME_READS))), key]
        elif kind == "move":
            target = st.sampled_from([b"0", b"1"] * 3 + [b"2", b"16", b"-1", b"x"])
            argv = [b"move", key, draw(target)]
        elif kind == "keys":
            argv = [b"keys", draw(st.sampled_from([b"*", b"?", b"*c", b"{*", b"[ab]", b"k*"]))]
        elif kind == "randomkey":
            argv = [b"randomkey"]
        elif kind == "flushdb":
            argv = [
                b"flushdb",
                *draw(st.lists(st.sampled_from([b"sync", b"ASYNC", b"x"]), max_size=1)),
            ]
        else:
            argv = [kind.encode(), key]
        commands.append((draw(st.sampled_from([0, 0, 1])), argv))
    return commands


def render(argv: list[Arg], start_s: int) -> list[bytes]:
    """Concrete arguments: times in the unit and reference of the command or SET option."""
    out: list[bytes] = []
    for index, arg in enumerate(argv):
        if isinstance(arg, bytes):
            out.append(arg)
            continue
        unit = argv[0] if index == 2 else argv[index - 1]
        assert isinstance(unit, bytes)
        in_ms = unit.startswith(b"p")
        absolute = unit.endswith(b"at")
        if isinstance(arg, Past):
            seconds = start_s - arg.ago
        else:
            seconds = arg.offset + (start_s if absolute else 0)
        out.append(b"%d" % (seconds * 1000 if in_ms else seconds))
    return out


def assert_equivalent(argv: list[bytes], ours: bytes, theirs: bytes) -> None:
    """Equal replies, except for clock readings (within a tolerance) and unordered choices."""
    name = argv[0]
    if name in TIME_READS and theirs[:1] == b":" and int(theirs[1:-2]) >= 0:
        assert ours[:1] == b":", (argv, ours, theirs)
        assert abs(int(ours[1:-2]) - int(theirs[1:-2])) <= TIME_READS[name], (argv, ours, theirs)
    elif name == b"keys":
        assert ours[:1] == theirs[:1]
        assert sorted(parse_reply(ours)) == sorted(parse_reply(theirs)), argv
    elif name == b"randomkey":
        assert (ours in (b"$-1\r\n", b"_\r\n")) == (theirs in (b"$-1\r\n", b"_\r\n")), argv
        assert ours[:1] == theirs[:1], (ours, theirs)
    else:
        assert ours == theirs, (argv, ours, theirs)


@settings(HYPOTHESIS, max_examples=200)
@given(script=sequences(), protocol=st.sampled_from([2, 3]))
def test_sequences_match_redis(oracle: Oracle, script: list, protocol: int) -> None:
    oracle.call(b"FLUSHALL")
    cluster = Cluster()
    start_s = int(time.time())
    for db, template in script:
        argv = render(template, start_s)
        theirs = oracle.call(*argv, db=db, protocol=protocol)
        ours = cluster.call(*argv, db=db, protocol=protocol)
        assert_equivalent(argv, ours, theirs)
    # The final state, key by key: what each sequence left, deadlines included.
    final = [[b"keys", b"*"]] + [[name, key] for key in KEY_POOL for name in (b"get", b"pttl")]
    for db, argv in product((0, 1), final):
        ours = cluster.call(*argv, db=db, protocol=protocol)
        assert_equivalent(argv, ours, oracle.call(*argv, db=db, protocol=protocol))


# -- Glob patterns, through KEYS --------------------------------------------------------------

GLOB_ALPHABET = b"ab-^][\\*?"
GLOB_KEYS = [
    bytes(chars) for size in (1, 2, 3) for chars in product(GLOB_ALPHABET, repeat=size)
] + [b"abc", b"a-b", b"[ab]", b"\\", b"\\\\", b"aaaa", b"ab*ab", b"^^", b"c"]


@pytest.fixture(scope="module")
def glob_pair(oracle: Oracle) -> tuple[Cluster, Oracle]:
    """A Cluster and the oracle holding the same keys in :data:`GLOB_DB`."""
    cluster = Cluster()
    pairs = [arg for key in GLOB_KEYS for arg in (key, b"1")]
    oracle.call(b"FLUSHDB", db=GLOB_DB)
    assert oracle.call(b"MSET", *pairs, db=GLOB_DB) == b"+OK\r\n"
    for key in GLOB_KEYS:
        cluster.call(b"set", key, b"1", db=GLOB_DB)
    return cluster, oracle


def keys_both(pair: tuple[Cluster, Oracle], pattern: bytes) -> tuple[list, list]:
    cluster, oracle = pair
    ours = parse_reply(cluster.call(b"keys", pattern, db=GLOB_DB))
    theirs = parse_reply(oracle.call(b"keys", pattern, db=GLOB_DB))
    return sorted(ours), sorted(theirs)


@settings(HYPOTHESIS, max_examples=400)
@given(pattern=st.lists(st.sampled_from(list(GLOB_ALPHABET + b"cz")), max_size=8).map(bytes))
def test_keys_glob_matches_redis(glob_pair: tuple[Cluster, Oracle], pattern: bytes) -> None:
    ours, theirs = keys_both(glob_pair, pattern)
    assert ours == theirs, pattern


def test_keys_empty_key_matches_only_star_and_empty(oracle: Oracle) -> None:
    """Redis's matcher never matches an empty key except with '' or KEYS's lone '*'."""
    compare(oracle, [[b"set", b"", b"1"], [b"keys", b"**"], [b"keys", b"*"], [b"keys", b"?*"]])


def test_keys_range_bounds_are_signed_chars(oracle: Oracle) -> None:
    """Redis compares class range ends as signed chars: '[a-\\xff]' is 0xff and 0x00-0x61."""
    compare(
        oracle,
        [
            [b"set", b"k", b"1"],
            [b"set", b"\x01", b"1"],
            [b"keys", b"[a-\xff]"],
            [b"set", b"\x80", b"1"],
            [b"keys", b"[\xff-\x00]"],
        ],
    )


# -- Unit tests that need no Redis ------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining_ms", "ttl"), [(1, 0), (499, 0), (500, 1), (1499, 1), (1500, 2), (10_000, 10)]
)
def test_ttl_rounds_to_nearest_second(remaining_ms: int, ttl: int) -> None:
    """Redis answers (ms + 500) / 1000: the clock is frozen here to hit the boundaries."""
    shard = Shard(0)
    db = shard.dbs[0]
    shard.now = 1_000_000
    db.store(b"k", b"v", shard.now + remaining_ms)
    assert keys.ttl(shard, db, [b"ttl", b"k"], Resp2) == b":%d\r\n" % ttl
    assert keys.pttl(shard, db, [b"pttl", b"k"], Resp2) == b":%d\r\n" % remaining_ms
    assert keys.expiretime(shard, db, [b"expiretime", b"k"], Resp2) == (b":%d\r\n" % (1000 + ttl))


def test_type_names_every_container() -> None:
    """TYPE reads the value class's ``redis_type``, so a family's class needs nothing more."""

    class Value:
        def __init__(self, name: str) -> None:
            self.redis_type = name

    shard = Shard(0)
    db = shard.dbs[0]
    stored = {b"s": b"x", b"l": Value("list"), b"h": Value("hash"), b"z": Value("zset")}
    for key, value in stored.items():
        db.store(key, value)
    replies = {key: shard.execute_batch([[0, [b"type", key]]])[0] for key in stored}
    assert replies == {
        b"s": b"+string\r\n",
        b"l": b"+list\r\n",
        b"h": b"+hash\r\n",
        b"z": b"+zset\r\n",
    }


def test_scan_type_filters_by_each_value_type() -> None:
    """SCAN ... TYPE names each value's own type (it once read every key as a string)."""

    class Value:
        def __init__(self, name: str) -> None:
            self.redis_type = name

    shard = Shard(0)
    db = shard.dbs[0]
    db.store(b"s", b"x")
    db.store(b"h", Value("hash"))
    db.store(b"z", Value("zset"))

    def scan(type_name: bytes) -> list[bytes]:
        [(cursor, page)] = shard.execute_batch([[0, [b"@scan", 0, 100, None, type_name]]])
        assert cursor == 0
        return sorted(page)

    assert scan(b"string") == [b"s"]
    assert scan(b"hash") == [b"h"]
    assert scan(b"zset") == [b"z"]
    assert scan(b"list") == []


def test_keys_skips_expired_keys_without_removing_them() -> None:
    cluster = Cluster()
    cluster.call(b"set", b"a", b"1")
    cluster.call(b"set", b"b", b"1", b"pxat", b"1")
    cluster.call(b"set", b"c", b"1", b"px", b"100000")
    assert sorted(parse_reply(cluster.call(b"keys", b"*"))) == [b"a", b"c"]
    assert parse_reply(cluster.call(b"keys", b"[b]")) == []
    assert cluster.call(b"dbsize") == b":3\r\n"  # as in Redis, until something touches b


def test_keys_merges_every_shard_in_both_protocols() -> None:
    cluster = Cluster()
    for key in KEY_POOL:
        cluster.call(b"set", key, b"1")
    assert len({id(cluster.database(key)) for key in KEY_POOL}) == 3
    for protocol in (2, 3):
        reply = cluster.call(b"keys", b"*", protocol=protocol)
        assert reply.startswith(b"*5\r\n")
        assert sorted(parse_reply(reply)) == sorted(KEY_POOL)


def test_randomkey_is_uniform_across_unequal_shards() -> None:
    """Shards of 1, 4 and 10 keys: each of the 15 keys should come up about equally often."""
    cluster = Cluster()
    sizes = [1, 4, 10]
    for shard, size in zip(cluster.shards, sizes, strict=True):
        for index in range(size):
            shard.dbs[0].store(b"s%d-%d" % (shard.index, index), b"v")
    draws = 15_000
    counts = Counter(parse_reply(cluster.call(b"randomkey")) for _ in range(draws))
    assert len(counts) == sum(sizes)
    # Each count is Binomial(15000, 1/15): mean 1000, sd about 31; 200 is over 6 sd.
    assert all(abs(count - draws / 15) < 200 for count in counts.values()), counts


def test_randomkey_skips_expired_keys_and_answers_nil_when_empty() -> None:
    cluster = Cluster()
    assert cluster.call(b"randomkey") == b"$-1\r\n"
    assert cluster.call(b"randomkey", protocol=3) == b"_\r\n"
    db = cluster.database(b"live")
    for index in range(50):
        db.store(b"dead%d" % index, b"v", 1)
    db.store(b"live", b"v")
    assert {cluster.call(b"randomkey") for _ in range(20)} == {b"$4\r\nlive\r\n"}
    for key in list(db.data):
        if key != b"live":
            db.store(key, b"v", 1)
    db.delete(b"live")
    assert cluster.call(b"randomkey", protocol=3) == b"_\r\n"


def test_randomkey_part_counts_only_live_keys() -> None:
    shard = Shard(0)
    db = shard.dbs[0]
    db.store(b"dead", b"v", 1)
    db.store(b"live", b"v", now_ms() + 100_000)
    db.store(b"plain", b"v")
    shard.now = now_ms()
    count, key = keys.randomkey_part(shard, db, [b"@randomkey"])
    assert count == 2 and key in (b"live", b"plain")


def test_flushdb_empties_only_the_clients_database() -> None:
    cluster = Cluster()
    for db in (0, 1):
        for key in KEY_POOL:
            cluster.call(b"set", key, b"1", db=db)
    assert cluster.call(b"flushdb", b"async", db=1) == b"+OK\r\n"
    assert cluster.call(b"dbsize", db=1) == b":0\r\n"
    assert cluster.call(b"dbsize", db=0) == b":5\r\n"
    assert cluster.call(b"flushdb", b"lazy", db=0) == b"-ERR syntax error\r\n"
    assert cluster.call(b"dbsize", db=0) == b":5\r\n"


def test_expire_in_the_past_deletes_without_counting_an_expiry() -> None:
    """A past deadline is an explicit delete in Redis (DEL is propagated), not an expiry."""
    shard = Shard(0)
    shard.execute_batch([[0, [b"set", b"k", b"v"], [b"pexpire", b"k", b"-5"]]])
    assert b"k" not in shard.dbs[0].data
    assert shard.dbs[0].expired_keys == 0


def test_move_is_refused_when_the_target_database_holds_a_live_key() -> None:
    shard = Shard(0)
    shard.execute_batch([[0, [b"set", b"k", b"src"]], [2, [b"set", b"k", b"dst", b"pxat", b"1"]]])
    [reply] = shard.execute_batch([[0, [b"move", b"k", b"1"]]])
    assert reply == b":1\r\n"  # the target's copy had expired: it does not block the move
    assert shard.dbs[1].data == {b"k": b"src"}
    assert shard.dbs[1].deadline_of(b"k") is None
    shard.execute_batch([[0, [b"set", b"k", b"again"]]])
    assert shard.execute_batch([[0, [b"move", b"k", b"1"]]]) == [b":0\r\n"]


def test_command_table_routes() -> None:
    """The single-key commands run in one shard; the keyspace-wide ones fan out."""
    for name in ("type", "expire", "pexpire", "expireat", "pexpireat", "ttl", "pttl"):
        assert COMMANDS[name].route is Route.KEY
    for name in ("expiretime", "pexpiretime", "persist", "move"):
        assert COMMANDS[name].route is Route.KEY
    for name in ("keys", "randomkey", "flushdb", "flushall", "dbsize"):
        assert COMMANDS[name].route is Route.ALL


def test_memory_usage_reports_this_processes_bytes() -> None:
    """MEMORY USAGE: nil for a missing key, more for a bigger value or a deadline; Redis's
    option errors (its byte counts are jemalloc's, so only their behaviour is compared)."""
    shard = Shard(0)

    def usage(*args: bytes) -> bytes:
        [reply] = shard.execute_batch([[0, [b"memory|usage", *args]]])
        return reply

    shard.execute_batch([[0, [b"set", b"small", b"v"], [b"set", b"big", b"v" * 1000]]])
    shard.execute_batch([[0, [b"set", b"timed", b"v", b"ex", b"100"]]])
    small, big, timed = (int(usage(b"memory", key)[1:-2]) for key in (b"small", b"big", b"timed"))
    assert 0 < small < big and small < timed
    assert usage(b"memory", b"missing") == b"$-1\r\n"
    assert usage(b"memory", b"small", b"SAMPLES", b"5") == b":%d\r\n" % small
    assert (
        usage(b"memory", b"small", b"SAMPLES", b"x")
        == b"-ERR value is not an integer or out of range\r\n"
    )
    assert usage(b"memory", b"small", b"foo") == b"-ERR syntax error\r\n"
    shard.execute_batch([[0, [b"set", b"gone", b"v", b"pxat", b"1"]]])
    assert usage(b"memory", b"gone") == b"$-1\r\n"
