"""SORT and SORT_RO against a real redis-server, byte for byte, in RESP2 and RESP3.

Two layers share the same scenarios:

* on shard objects (``test_bitmaps_unit.Cluster``: four in-process shards driven as the
  acceptor drives them, plans and all), with tiny stand-in classes for lists, sets, sorted
  sets and hashes registered under their type names for the test only, so that SORT is
  tested without the other families: its parsing, weights (C's ``strtod``), ordering rules,
  patterns, STORE, and the coordinated rounds when patterns name keys on other shards;
* through a running redis-clone at 1 and 4 shards (the ``clone`` fixtures), which needs the
  real list, set, sorted-set and hash families on the server.

Where Redis's answer depends on its hash tables' order (BY nosort on a hashtable set, ties
between ALPHA weights of a set or sorted set, and ties under BY with LIMIT, which Redis
sorts with an unstable partial quicksort), the scenarios and generated commands avoid it;
sets of integers are intsets, whose order (ascending) is known.

Redis 7.0 reads weights with ``strtod`` without clearing ``errno`` first, so after one
weight out of range every later non-integer weight fails too, until some other command
clears ``errno``: the scenarios follow each such weight with an INCRBYFLOAT, which does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RawConnection, ServerPool, ServerProcess, encode_command, require_redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bitmaps_unit import Cluster, Server, Session, c

from shardserver import values
from shardserver.commands import sort
from shardserver.keyspace import now_ms
from shardserver.numbers import parse_int
from shardserver.resp import Resp2, Resp3
from shardserver.slots import shard_table, slot_for_key

EXAMPLES = int(os.environ.get("SORT_EXAMPLES", "80"))
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ERRNO_RESET = c("incrbyfloat", "errno-reset", "0")

# -- stand-in values ----------------------------------------------------------------------


class StandInList(list):
    redis_type = "list"

    def encoding(self) -> str:
        return "quicklist"

    def copy(self) -> StandInList:
        return StandInList(self)

    def to_plain(self) -> list[bytes]:
        return list(self)

    @classmethod
    def from_plain(cls, data: list[bytes]) -> StandInList:
        return cls(data)

    def memory_usage(self) -> int:
        return 0

    def rebuild(self, key: bytes) -> Iterator[list[bytes]]:
        yield [b"RPUSH", key, *self]


class StandInSet(set):
    redis_type = "set"

    def __init__(self, members: Any = (), big: bool = True) -> None:
        super().__init__(members)
        self.big = big

    def to_plain(self) -> tuple[bool, set[bytes]]:
        return self.big, set(self)

    @classmethod
    def from_plain(cls, data: tuple[bool, set[bytes]]) -> StandInSet:
        return cls(data[1], data[0])


class StandInZset:
    redis_type = "zset"

    def __init__(self, items: list[tuple[bytes, float]], big: bool) -> None:
        self.items = sorted(items, key=lambda item: (item[1], item[0]))
        self.big = big

    def to_plain(self) -> tuple[bool, list[tuple[bytes, float]]]:
        return self.big, list(self.items)

    @classmethod
    def from_plain(cls, data: tuple[bool, list]) -> StandInZset:
        return cls(data[1], data[0])


class StandInHash(dict):
    redis_type = "hash"

    def to_plain(self) -> tuple[bool, dict[bytes, bytes]]:
        return False, dict(self)

    @classmethod
    def from_plain(cls, data: tuple[bool, dict]) -> StandInHash:
        return cls(data[1])


STAND_INS = {"list": StandInList, "set": StandInSet, "zset": StandInZset, "hash": StandInHash}


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in classes as the families of their types, for one test."""
    for name, cls in STAND_INS.items():
        monkeypatch.setitem(values.TYPES, name, cls)


# -- data, loaded the same into redis-server and the shards --------------------------------

Data = dict[bytes, tuple[str, Any]]


def is_intset(members: set[bytes]) -> bool:
    return len(members) <= 512 and all(parse_int(m) is not None for m in members)


def stand_in(kind: str, content: Any) -> object:
    if kind == "string":
        return content
    if kind == "list":
        return StandInList(content)
    if kind == "set":
        return StandInSet(content, big=not is_intset(content))
    if kind == "zset":
        compact = len(content) <= 128 and all(len(m) <= 64 for m, _ in content)
        return StandInZset(content, big=not compact)
    return StandInHash(content)


def loading_commands(data: Data) -> list[list[bytes]]:
    """What builds the data in a server (empty containers do not exist)."""
    commands = []
    for key, (kind, content) in data.items():
        if kind != "string" and not content:
            continue
        if kind == "string":
            commands.append([b"SET", key, content])
        elif kind == "list":
            commands.append([b"RPUSH", key, *content])
        elif kind == "set":
            commands.append([b"SADD", key, *sorted(content)])
        elif kind == "zset":
            pairs = [arg for member, score in content for arg in (repr(score).encode(), member)]
            commands.append([b"ZADD", key, *pairs])
        else:
            commands.append([b"HSET", key, *[x for pair in content.items() for x in pair]])
    return commands


def weights(prefix: bytes, numbers: dict[bytes, bytes]) -> Data:
    return {prefix + element: ("string", weight) for element, weight in numbers.items()}


DATA: Data = {
    b"nums": ("list", [b"3", b"1", b"2", b"10", b"-5", b"1.5", b"1e2", b"2", b" 7", b"0x10"]),
    b"words": ("list", [b"banana", b"apple", b"Cherry", b"apple", b"", b"a\x00z", b"a\x00b"]),
    b"iset": ("set", {b"5", b"3", b"10", b"-1", b"200"}),
    b"hset": ("set", {b"x", b"y", b"z", b"w"}),
    b"z": ("zset", [(b"a", 1.0), (b"b", 2.0), (b"c", 2.0), (b"d", -math.inf), (b"e", 9.5)]),
    b"znum": ("zset", [(b"10", 3.0), (b"9", 2.0), (b"100", 1.0), (b"-2", 5.0)]),
    b"bad": ("list", [b"1", b"x", b"2"]),
    b"str": ("string", b"x"),
    b"hash": ("hash", {b"f": b"1"}),
    **weights(b"w_", {b"3": b"30", b"1": b"-1", b"2": b"2.5", b"x": b"4", b"y": b"1", b"z": b"4"}),
    **weights(b"w_", {b"banana": b"1", b"apple": b"2", b"Cherry": b"0", b"a": b"inf"}),
    **weights(b"w_", {b"b": b"-inf", b"c": b"nan", b"5": b"abc", b"10": b"3"}),
    **weights(b"n_", {b"x": b"ex", b"y": b"why", b"z": b"zed", b"w": b"wx"}),
    b"h_x": ("hash", {b"f": b"3", b"name": b"X", b"": b"empty"}),
    b"h_y": ("hash", {b"f": b"1", b"name": b"Y"}),
    b"h_z": ("hash", {b"f": b"2"}),
    b"h_w": ("string", b"not a hash"),
    b"h_1": ("hash", {b"f": b"7", b"name": b"one"}),
    b"h_3": ("hash", {b"f": b"-7", b"name": b"three"}),
    b"dst": ("string", b"old"),
    b"{nums}w_1": ("string", b"5"),
}

#: Scenarios on DATA; each runs on a fresh copy of it.
SCENARIOS: dict[str, list[list[bytes]]] = {
    "numeric": [
        c("sort", "nums"),
        c("sort", "nums", "desc"),
        c("sort", "nums", "asc", "DESC", "asc"),
        c("sort", "nums", "limit", 1, 3),
        c("sort", "nums", "limit", 0, 0),
        c("sort", "nums", "limit", -5, 2),
        c("sort", "nums", "limit", 3, -1),
        c("sort", "nums", "limit", 9, 5),
        c("sort", "nums", "limit", 10, 5),
        c("sort", "nums", "limit", 100, 5),
        c("sort", "nums", "limit", "9223372036854775807", "9223372036854775807"),
        c("sort", "nums", "desc", "limit", 2, 2),
        c("sort", "iset"),
        c("sort", "iset", "desc", "limit", 1, 2),
        c("sort", "znum"),
        c("sort", "znum", "desc"),
        c("sort", "bad"),
        c("sort", "words"),
        c("sort", "z"),
        c("sort", "missing"),
        c("sort", "missing", "limit", 1, 1),
    ],
    "alpha": [
        c("sort", "words", "alpha"),
        c("sort", "words", "alpha", "desc"),
        c("sort", "words", "alpha", "limit", 1, 4),
        c("sort", "nums", "alpha"),
        c("sort", "iset", "alpha", "desc"),
        c("sort", "hset", "alpha"),
        c("sort", "hset", "alpha", "desc", "limit", 1, 2),
        c("sort", "z", "alpha", "desc"),
        c("sort", "bad", "ALPHA"),
    ],
    "by": [
        c("sort", "nums", "by", "w_*"),
        c("sort", "nums", "by", "w_*", "desc"),
        c("sort", "nums", "by", "w_*", "limit", 1, 2),
        c("sort", "words", "by", "w_*"),
        c("sort", "z", "by", "w_*"),
        c("sort", "hset", "by", "w_*"),
        c("sort", "hset", "by", "h_*->f"),
        c("sort", "hset", "by", "h_*->f", "desc", "limit", 0, 2),
        c("sort", "iset", "by", "w_*"),
        c("sort", "nums", "by", "h_*->f"),
        c("sort", "nums", "by", "h_*->"),
        c("sort", "nums", "by", "{nums}w_*"),
        c("sort", "words", "by", "w_*", "alpha"),
        c("sort", "words", "by", "w_*", "alpha", "desc"),
        c("sort", "words", "by", "nothing_*", "alpha"),
        c("sort", "words", "by", "nothing_*"),
        c("sort", "hset", "by", "n_*", "alpha"),
        c("sort", "nums", "by", b"w_\x00*"),
        c("sort", "nums", "by", b"w_*\x00junk"),
    ],
    "nosort": [
        c("sort", "nums", "by", "nosort"),
        c("sort", "nums", "by", "nosort", "desc"),
        c("sort", "nums", "by", "nosort", "limit", 2, 3),
        c("sort", "nums", "by", "nosort", "desc", "limit", 2, 3),
        c("sort", "nums", "by", "nosort", "limit", 20, 3),
        c("sort", "z", "by", "nosort"),
        c("sort", "z", "by", "nosort", "desc", "limit", 1, 3),
        c("sort", "z", "by", "nosort", "limit", 4, 10),
        c("sort", "iset", "by", "nosort"),
        c("sort", "iset", "by", "nosort", "desc", "limit", 1, 2),
        c("sort", "bad", "by", "nosort"),
        c("sort", "hset", "by", "nosort", "store", "dst"),
        c("lrange", "dst", 0, -1),
        c("sort", "hset", "by", "nosort", "desc", "limit", 1, 2, "store", "dst"),
        c("lrange", "dst", 0, -1),
        c("sort", "nums", "by", "w_*", "by", "nosort"),
        c("sort", "nums", "by", "nosort", "by", "w_*"),
    ],
    "get": [
        c("sort", "nums", "get", "#"),
        c("sort", "nums", "get", "w_*", "get", "#", "get", "h_*->name"),
        c("sort", "hset", "by", "w_*", "get", "h_*->name", "get", "n_*"),
        c("sort", "hset", "by", "w_*", "get", "h_*->"),
        c("sort", "hset", "by", "w_*", "get", "h_*->name", "limit", 1, 2),
        c("sort", "iset", "get", "w_*", "get", "nothing"),
        c("sort", "z", "by", "nosort", "get", "w_*", "desc"),
        c("sort", "nums", "by", "nosort", "get", "w_*", "limit", 0, 3),
        c("sort", "nums", "get", b"#\x00x"),
        c("sort", "nums", "get", "##"),
        c("sort", "nums", "get", "w_*->f"),
        c("sort", "nums", "get", "h_*->f->"),
        c("sort", "hset", "get", "h_*->f", "alpha"),
        c("sort", "hset", "by", "w_*", "get", "h_*"),
        c("sort", "missing", "get", "w_*"),
    ],
    "store": [
        c("sort", "nums", "store", "dst"),
        c("lrange", "dst", 0, -1),
        c("type", "dst"),
        c("sort", "hset", "by", "w_*", "get", "#", "get", "h_*->name", "store", "dst"),
        c("lrange", "dst", 0, -1),
        c("sort", "words", "alpha", "store", "dst"),
        c("lrange", "dst", 0, -1),
        c("sort", "nums", "limit", 0, 0, "store", "dst"),
        c("exists", "dst"),
        c("set", "dst", "x", "ex", 1000),
        c("sort", "z", "alpha", "store", "dst"),
        c("ttl", "dst"),
        c("lrange", "dst", 0, -1),
        c("sort", "missing", "store", "dst"),
        c("exists", "dst"),
        c("sort", "nums", "store", "dst", "store", "h_w"),
        c("lrange", "h_w", 0, -1),
        c("exists", "dst"),
        c("sort", "bad", "store", "dst"),
        c("sort", "str", "store", "dst"),
        c("sort", "nums", "store", "nums", "desc"),
        c("lrange", "nums", 0, -1),
        c("sort", "iset", "store", "{nums}w_1", "limit", 1, 1),
        c("lrange", "{nums}w_1", 0, -1),
        c("sort", "hash", "store", "dst"),
    ],
    "errors": [
        c("sort", "str"),
        c("sort", "hash"),
        c("sort", "str", "foo"),
        c("sort", "str", "limit", 1),
        c("sort", "str", "limit", "x", 1),
        c("sort", "nums", "limit", 1, "1.5"),
        c("sort", "nums", "limit", 1, 2, "foo"),
        c("sort", "nums", "by"),
        c("sort", "nums", "get"),
        c("sort", "nums", "store"),
        c("sort", "nums", b"desc\x00x"),
        c("sort", "str", "by", "w_*", "get", "#"),
        c("sort_ro", "nums", "store", "dst"),
        c("sort_ro", "nums", "by", "w_*", "get", "h_*->name", "desc", "alpha"),
        c("sort_ro", "str"),
        c("sort_ro", "missing", "limit", "x", "y"),
        c("sort", "bad", "limit", 0, 1),
        c("sort", "nums", "by", "w_*", "alpha", "get", "#"),
        c("sort", "z", "by", "w_*"),
        c("sort", "iset", "by", "w_*"),
    ],
}


# -- scores -------------------------------------------------------------------------------

#: Weights and what redis-server 7.0 makes of them (checked against it below).
SCORES: dict[bytes, float | None] = {
    b"1.5": 1.5,
    b"-2.5e3": -2500.0,
    b"inf": math.inf,
    b"-Infinity": -math.inf,
    b" \t1": 1.0,
    b"1 ": None,
    b"+1": 1.0,
    b"0x10": 16.0,
    b"0x1.8p1": 3.0,
    b"0x": None,
    b"1e": None,
    b".5": 0.5,
    b"5.": 5.0,
    b".": None,
    b"": 0.0,
    b"1\x00x": 1.0,
    b"1_0": None,
    b"nan": None,
    b"-nan": None,
    b"infinit": None,
    b"   ": None,
    b"2.2250738585072014e-308": 2.2250738585072014e-308,
    b"0x1p-1074": 5e-324,
    b"1e-310": None,
    b"4.9e-324": None,
    b"2.2250738585072012e-308": None,
    b"1e-999999": None,
    b"0e-999999": 0.0,
    b"1.7976931348623158e308": 1.7976931348623157e308,
    b"1.7976931348623159e308": None,
    b"0x1p1024": None,
}


def test_parse_score() -> None:
    wrong = {text: sort.parse_score(text) for text, want in SCORES.items()}
    wrong = {text: got for text, got in wrong.items() if got != SCORES[text]}
    assert not wrong


def test_pattern_lookup() -> None:
    lookup = sort.pattern_lookup
    assert lookup(b"w_*", b"x") == (b"w_x", None)
    assert lookup(b"*-*", b"x") == (b"x-*", None)
    assert lookup(b"h_*->f", b"x") == (b"h_x", b"f")
    assert lookup(b"h_*->", b"x") == (b"h_x->", None)
    assert lookup(b"h->*", b"x") == (b"h->x", None)
    assert lookup(b"h_*->f->g", b"x") == (b"h_x", b"f->g")
    assert lookup(b"h_*->\x00f", b"x") == (b"h_x->\x00f", None)
    assert lookup(b"h_*->f\x00g", b"x") == (b"h_x", b"f\x00g")
    assert lookup(b"nothing", b"x") is None
    assert lookup(b"a\x00*", b"x") is None


def test_options_and_keys() -> None:
    argv = c("sort", "k", "by", "w_*", "limit", 1, 2, "get", "#", "store", "d", "STORE", "e")
    options = sort.parse_options(argv)
    assert (options.by, options.limit_start, options.limit_count) == (b"w_*", 1, 2)
    assert (options.gets, options.store, options.store_at) == ([b"#"], b"e", 12)
    assert sort.sort_keys(argv) == [1, 12]
    assert sort.sort_keys(c("sort_ro", "k", "get", "store")) == [1]
    assert sort.check_sort(None, c("sort_ro", "k", "store", "d")) == sort.SYNTAX
    assert sort.uses_patterns(argv)
    assert not sort.uses_patterns(c("sort", "k", "by", "nosort", "get", "#", "get", "x"))
    assert sort.uses_patterns(c("sort", "k", "by", "nosort", "get", "#", "get", "x*"))


def test_plan_reads_source_then_pattern_keys(stand_ins: None) -> None:
    """With patterns, SORT holds every shard and reads in two rounds."""
    session = Session(Resp2, Server(shard_table(4)))
    argv = c("sort", "k", "by", "w_*", "get", "h_*->f", "store", "d")
    plan = sort.plan_sort(session, argv)
    assert plan.hold_all
    assert [s.argv for s in plan.reads] == [c("@sortsource", "k"), c("@exists", "d")]
    second = plan.decide([("list", [b"b", b"a"]), 0])
    pairs = {
        (step.argv[i], step.argv[i + 1])
        for step in second.reads
        for i in range(1, len(step.argv), 2)
    }
    assert pairs == {(b"w_a", None), (b"w_b", None), (b"h_a", b"f"), (b"h_b", b"f")}
    by_pair = {(b"w_a", None): b"2", (b"w_b", None): b"1", (b"h_b", b"f"): b"B"}
    found = [
        [by_pair.get((step.argv[i], step.argv[i + 1])) for i in range(1, len(step.argv), 2)]
        for step in second.reads
    ]
    reply, writes = second.decide(found)
    assert reply == b":2\r\n"
    assert [step.argv for step in writes] == [
        [b"@put", b"d", ("list", [b"B", b""]), None, b"sortstore"]
    ]
    assert plan.decide([False, 0]) == (sort.WRONGTYPE, [])
    reply, writes = sort.plan_sort(session, argv).decide([None, 1])
    assert reply == b":0\r\n" and [step.argv for step in writes] == [c("@del", "d")]


def test_sort_converts_compact_sorted_sets(stand_ins: None) -> None:
    cluster = Cluster(1)
    db = cluster.database(b"z")
    db.store(b"z", StandInZset([(b"a", 1.0)], big=False), 10**15)
    assert cluster.call(*c("sort_ro", "z", "alpha")) == b"*1\r\n$1\r\na\r\n"
    assert db.data[b"z"].big and db.deadline_of(b"z") == 10**15
    assert cluster.call(*c("sort", "z", "foo")) == sort.SYNTAX


def test_propagate_logs_the_destination_only(stand_ins: None) -> None:
    cluster = Cluster(1)
    shard = cluster.shards[0]
    db = shard.dbs[0]
    db.store(b"l", StandInList([b"2", b"1"]))
    argv = c("sort", "l", "store", "d")
    reply = cluster.call(*argv)
    assert sort.propagate_sort(shard, db, argv, reply) == [c("DEL", "d"), c("RPUSH", "d", 1, 2)]
    assert sort.propagate_sort(shard, db, c("sort", "l"), b"*0\r\n") == []
    assert sort.propagate_sort(shard, db, argv, sort.NOT_A_DOUBLE) == []
    argv = c("sort", "l", "limit", 0, 0, "store", "d")
    assert sort.propagate_sort(shard, db, argv, cluster.call(*argv)) == [c("DEL", "d")]


# -- against redis-server, on shard objects -----------------------------------------------


class Oracle:
    """A real redis-server and a four-shard in-process cluster with the same data."""

    def __init__(self, port: int) -> None:
        self.connections = {2: RawConnection(port), 3: RawConnection(port)}
        assert self.connections[3].command(b"HELLO", b"3").startswith(b"%")
        self.cluster = Cluster(4)

    def load(self, data: Data) -> None:
        conn = self.connections[2]
        commands = [[b"FLUSHALL"], *loading_commands(data)]
        conn.send(b"".join(encode_command(*argv) for argv in commands))
        for argv in commands:
            reply = conn.read_reply()
            assert reply[:1] in b"+:", (argv, reply)
        self.cluster = Cluster(4)
        for key, (kind, content) in data.items():
            if kind == "string" or content:
                self.cluster.database(key).store(key, stand_in(kind, content))

    def check(self, commands: list[list[bytes]], protocol: int = 2) -> None:
        conn = self.connections[protocol]
        conn.send(b"".join(encode_command(*argv) for argv in commands))
        expected = [conn.read_reply() for _ in commands]
        got = [self.call(argv, protocol) for argv in commands]
        wrong = [
            f"{argv!r:.200}: redis {want!r:.300} != ours {have!r:.300}"
            for argv, want, have in zip(commands, expected, got, strict=True)
            if want != have
        ]
        assert not wrong, "\n".join(wrong)

    def call(self, argv: list[bytes], protocol: int) -> bytes:
        """A command on the cluster; ``LRANGE key 0 -1`` read from the stand-in directly."""
        if argv[0].lower() != b"lrange":
            return self.cluster.call(*argv, protocol=protocol)
        assert argv[2:] == [b"0", b"-1"]
        value = self.cluster.database(argv[1]).lookup(argv[1], now_ms())
        if value is None:
            return b"*0\r\n"
        if not isinstance(value, StandInList):
            return sort.WRONGTYPE
        return Resp2.bulk_array(list(value))


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """A redis-server of this module's own (a shared one may have ``errno`` set)."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    for conn in oracle.connections.values():
        conn.close()
    server.stop()


def test_scores_against_redis(oracle: Oracle, stand_ins: None) -> None:
    for text in SCORES:
        oracle.load({b"l": ("list", [text])})
        oracle.check([c("sort", "l"), ERRNO_RESET])


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(oracle: Oracle, stand_ins: None, name: str, protocol: int) -> None:
    oracle.load(DATA)
    oracle.check(SCENARIOS[name], protocol)


def test_scenarios_ran_coordinated(oracle: Oracle, stand_ins: None) -> None:
    """Patterns spread over four shards: SORT ran its plan, in one round or two."""
    oracle.load(DATA)
    oracle.check(SCENARIOS["get"] + SCENARIOS["store"])
    assert set(oracle.cluster.planned) == {1, 2}


# -- generated commands, on shard objects -------------------------------------------------

ELEMENTS = st.sampled_from(
    [b"1", b"2", b"3", b"10", b"-4", b"0", b"2.5", b"x", b"y", b"ab", b"B", b""]
)
INTEGERS = st.sampled_from([b"1", b"2", b"3", b"10", b"-4", b"0", b"7", b"100"])
WEIGHTS = st.sampled_from([b"1", b"2", b"-1", b"0.5", b"3", b"inf", b"x", b"1e3", b"2"])


@st.composite
def sort_data(draw: st.DrawFn) -> Data:
    """A source of each type, weights and hashes for some elements."""
    data: Data = {
        b"l": ("list", draw(st.lists(ELEMENTS, max_size=8))),
        b"s": ("set", set(draw(st.lists(INTEGERS, min_size=1, max_size=6)))),
        b"{s}t": ("set", set(draw(st.lists(INTEGERS, min_size=1, max_size=6)))),
        b"str": ("string", b"1"),
    }
    members = draw(st.lists(ELEMENTS, min_size=1, max_size=6, unique=True))
    data[b"z"] = ("zset", [(m, draw(st.sampled_from([1.0, 2.0, -3.5]))) for m in members])
    for element in draw(st.lists(ELEMENTS | INTEGERS, max_size=10, unique=True)):
        data[b"w_" + element] = ("string", draw(WEIGHTS))
    for element in draw(st.lists(ELEMENTS | INTEGERS, max_size=6, unique=True)):
        data[b"h_" + element] = ("hash", {b"f": draw(WEIGHTS), b"g": element + b"!"})
    return data


@st.composite
def sort_commands(draw: st.DrawFn) -> list[bytes]:
    """A SORT or SORT_RO whose reply does not depend on a hash table's order."""
    source = draw(st.sampled_from([b"l", b"l", b"s", b"{s}t", b"z", b"str", b"nokey"]))
    read_only = draw(st.booleans())
    argv = [b"SORT_RO" if read_only else b"SORT", source]
    by = draw(st.sampled_from([None, None, b"w_*", b"h_*->f", b"nosort", b"{s}w_*"]))
    alpha = draw(st.booleans())
    limit = draw(st.booleans())
    if alpha and by not in (None, b"nosort") and (limit or source != b"l"):
        # Ties between ALPHA weights: Redis's order then depends on its sort's internals.
        by = None
    if by is not None:
        argv += [b"BY", by]
    if alpha:
        argv.append(b"ALPHA")
    if draw(st.booleans()):
        argv.append(draw(st.sampled_from([b"DESC", b"ASC", b"desc"])))
    if limit:
        argv += [b"LIMIT", draw(st.sampled_from([b"0", b"1", b"-1", b"3"]))]
        argv.append(draw(st.sampled_from([b"1", b"2", b"-1", b"0", b"5"])))
    for pattern in draw(st.lists(st.sampled_from([b"#", b"w_*", b"h_*->g", b"x"]), max_size=2)):
        argv += [b"GET", pattern]
    if not read_only and draw(st.booleans()):
        argv += [b"STORE", draw(st.sampled_from([b"dst", b"{s}dst", b"l"]))]
    return argv


CHANGED_KEYS = st.sampled_from([b"l", b"s", b"z", b"w_1", b"w_x", b"h_1", b"dst", b"{s}t"])


@st.composite
def changes(draw: st.DrawFn) -> list[bytes]:
    """A command that changes a key under SORT: weights, deletions, expiries, types."""
    key = draw(CHANGED_KEYS)
    return draw(
        st.sampled_from(
            [
                [b"SET", key, draw(WEIGHTS)],
                [b"DEL", key],
                [b"PEXPIREAT", key, b"1"],
                [b"EXPIRE", key, b"100000"],
                [b"TYPE", key],
            ]
        )
    )


SEQUENCES = st.lists(st.one_of(sort_commands(), sort_commands(), changes()), max_size=8)


@HYPOTHESIS
@given(sort_data(), SEQUENCES)
def test_generated(
    oracle: Oracle, stand_ins: None, data: Data, commands: list[list[bytes]]
) -> None:
    oracle.load(data)
    probes = [c("lrange", key, 0, -1) for key in (b"dst", b"{s}dst", b"l")]
    probes += [c("type", key) for key in (b"dst", b"{s}dst", b"l")]
    oracle.check([*commands, *probes])


# -- through a running redis-clone (needs the list, set, sorted-set and hash families) ------


@pytest.fixture(scope="module")
def redis(module_servers: ServerPool) -> ServerProcess:
    require_redis_server()
    return module_servers.start_redis()


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def clone(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(request.param)


def run(server: ServerProcess, commands: list[list[bytes]], protocol: int = 2) -> list[bytes]:
    """FLUSHALL, then the commands pipelined; their raw replies."""
    with RawConnection(server.port) as conn:
        if protocol == 3:
            assert conn.command(b"HELLO", b"3").startswith(b"%")
        conn.send(b"".join(encode_command(*argv) for argv in [[b"FLUSHALL"], *commands]))
        assert conn.read_reply() == b"+OK\r\n"
        return [conn.read_reply() for _ in commands]


def compare(
    redis: ServerProcess, clone: ServerProcess, commands: list[list[bytes]], protocol: int = 2
) -> None:
    expected, got = run(redis, commands, protocol), run(clone, commands, protocol)
    wrong = [
        f"{argv!r:.200}: redis {want!r:.300} != ours {have!r:.300}"
        for argv, want, have in zip(commands, expected, got, strict=True)
        if want != have
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_server_scenario(
    redis: ServerProcess, clone: ServerProcess, name: str, protocol: int
) -> None:
    compare(redis, clone, loading_commands(DATA) + SCENARIOS[name], protocol)


def test_server_getkeys_and_arity(redis: ServerProcess, clone: ServerProcess) -> None:
    compare(
        redis,
        clone,
        [
            c("command", "getkeys", "sort", "k", "by", "w_*", "store", "d", "get", "#"),
            c("command", "getkeys", "sort", "k", "limit", 0, 1, "store", "a", "store", "b"),
            c("command", "getkeys", "sort_ro", "k", "get", "#"),
            c("sort"),
            c("sort_ro"),
        ],
    )


def test_server_converts_sorted_sets(redis: ServerProcess, clone: ServerProcess) -> None:
    """SORT leaves a small sorted set in the skiplist encoding (needs OBJECT ENCODING)."""
    compare(
        redis,
        clone,
        [
            c("zadd", "z", 1, "a", 2, "b"),
            c("object", "encoding", "z"),
            c("sort_ro", "z", "alpha"),
            c("object", "encoding", "z"),
        ],
    )


@settings(HYPOTHESIS, max_examples=max(EXAMPLES // 4, 1))
@given(sort_data(), SEQUENCES)
def test_server_generated(
    redis: ServerProcess, clone: ServerProcess, data: Data, commands: list[list[bytes]]
) -> None:
    probes = [c("lrange", key, 0, -1) for key in (b"dst", b"{s}dst", b"l")]
    probes += [c("type", key) for key in (b"dst", b"{s}dst", b"l")]
    compare(redis, clone, [*loading_commands(data), *commands, *probes])


def test_resp3_nulls() -> None:
    """GET of a missing key is a null in the array: RESP3's own null there."""
    options = sort.parse_options(c("sort", "l", "get", "x_*"))
    reply, stored = sort.sort_reply(options, "list", [b"1"], lambda k, f: None, Resp3)
    assert (reply, stored) == (b"*1\r\n_\r\n", None)


def test_server_pipelined_coordinations(redis: ServerProcess, clone: ServerProcess) -> None:
    """A SORT holding every shard, right behind a BITOP holding two of them, many times in
    one pipeline: the SORT reads nothing on the BITOP's shards, yet must wait for them."""
    table = shard_table(4)
    assert [table[slot_for_key(key)] for key in (b"a", b"b", b"c")] == [3, 0, 1]
    script = [c("set", "b", "x" * 10000), c("set", "w_1", "1")]
    for _ in range(50):
        script += [
            c("bitop", "or", "a", "b", "a"),
            c("sort", "c", "by", "w_*", "get", "#"),
            c("sort", "c", "by", "w_*", "store", "b"),
            c("set", "b", "x" * 10000),
        ]
    compare(redis, clone, script)
