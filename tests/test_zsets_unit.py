"""Unit tests of the sorted-set family without servers: score parsing and formatting, the
:class:`SortedSet` value (every method of the value protocol), range selection, key
positions and checks of the numkeys commands, and the coordinated plans, run against
several :class:`Shard` objects the way the acceptor runs them.

The exact replies are checked against redis-server in tests/test_cmd_zsets.py; here the
expected values are written out, so each function's contract is pinned on its own.
"""

from __future__ import annotations

import marshal
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from shardserver import values
from shardserver.commands import zsets
from shardserver.commands.multikey import Plan
from shardserver.commands.spec import key_positions
from shardserver.commands.table import COMMANDS
from shardserver.commands.zsets import SortedSet
from shardserver.resp import Resp2, Resp3
from shardserver.shard import Shard

LIMITS = (128, 64)


def c(*args: bytes | str | int | float) -> list[bytes]:
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


def run(shard: Shard, *args: bytes | str | int | float, resp3: bool = False) -> bytes:
    return shard.execute_batch([[1 if resp3 else 0, c(*args)]])[0]


# -- scores --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"1", 1.0),
        (b"-2.5", -2.5),
        (b"+.5", 0.5),
        (b"1.", 1.0),
        (b"1e3", 1000.0),
        (b"1E+3", 1000.0),
        (b"0x10", 16.0),
        (b"0X1p-2", 0.25),
        (b"-0x.8", -0.5),
        (b"inf", math.inf),
        (b"+Infinity", math.inf),
        (b"-INF", -math.inf),
        (b"1e-320", 1e-320),
        (b"0e-999", 0.0),
        (b"00012", 12.0),
        (b"1" + b"0" * 299, 1e299),
    ],
)
def test_scores_redis_accepts(text: bytes, value: float) -> None:
    assert zsets.parse_score(text) == value


def test_plain_decimals_read_as_strtod_reads_them() -> None:
    """The fast path for plain decimals gives what the general ``strtod`` emulation gives."""
    rng = random.Random(5)
    for _ in range(5000):
        digits = bytes(rng.choice(b"0123456789") for _ in range(rng.randrange(1, 20)))
        point = rng.randrange(len(digits) + 1)
        text = rng.choice([b"", b"-", b"+"]) + digits[:point] + b"." + digits[point:]
        for each in (text, digits):
            value, end, out_of_range = zsets._strtod(each, 0)
            assert end == len(each) and not out_of_range
            assert repr(zsets.parse_score(each)) == repr(value), each


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b" 1",
        b"1 ",
        b"\t1",
        b"1\x00",
        b"nan",
        b"-nan",
        b"nan(12)",
        b"1e400",
        b"-1e400",
        b"9" * 309,
        b"0." + b"0" * 400 + b"1",
        b"1e-400",
        b"0x1p99999",
        b"infin",
        b"1e",
        b"1e+",
        b"0x",
        b"0x1p",
        b".",
        b"1_0",
        b"--1",
        b"abc",
    ],
)
def test_scores_redis_refuses(text: bytes) -> None:
    assert zsets.parse_score(text) is None


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        (b"1", (1.0, False)),
        (b"(1", (1.0, True)),
        (b"", (0.0, False)),
        (b"(", (0.0, True)),
        (b" 1", (1.0, False)),
        (b"(\t-2", (-2.0, True)),
        (b"1\x00junk", (1.0, False)),
        (b"\x00", (0.0, False)),
        (b"1e400", (math.inf, False)),
        (b"(-inf", (-math.inf, True)),
        (b"1e-400", (0.0, False)),
        (b"0x1p3", (8.0, False)),
    ],
)
def test_range_bounds_redis_accepts(text: bytes, bound: tuple[float, bool]) -> None:
    assert zsets.parse_bound(text) == bound


@pytest.mark.parametrize("text", [b"1 ", b"nan", b"(nan", b"((1", b"a", b"1e", b" ", b"( "])
def test_range_bounds_redis_refuses(text: bytes) -> None:
    assert zsets.parse_bound(text) is None


def test_scores_are_written_as_redis_7_0_writes_them() -> None:
    assert zsets.format_score(1.1) == b"1.1000000000000001"
    assert zsets.format_score(0.1) == b"0.10000000000000001"
    assert zsets.format_score(2.0) == b"2"
    assert zsets.format_score(-0.0) == b"-0"
    assert zsets.format_score(1e20) == b"1e+20"
    assert zsets.format_score(1e16) == b"10000000000000000"
    assert zsets.format_score(math.inf) == b"inf"
    assert zsets.format_score(-math.inf) == b"-inf"
    # A listpack keeps integral scores within 2**62 as integers (what ZSCAN shows).
    assert zsets.listpack_score_text(1e17) == b"100000000000000000"
    assert zsets.listpack_score_text(2.0**62) == b"4611686018427387904"
    assert zsets.listpack_score_text(2.0**62 + 1024) == b"4.6116860184273889e+18"
    assert zsets.listpack_score_text(1.5) == b"1.5"
    assert zsets.listpack_score_text(math.inf) == b"inf"


# -- the value -----------------------------------------------------------------------------


def sample_set(count: int, big: bool = False) -> SortedSet:
    return SortedSet.build([(b"m%03d" % i, i / 3) for i in range(count)], big)


def test_members_are_kept_in_rank_order_with_their_scores() -> None:
    zset = SortedSet()
    for member, score in [(b"b", 2.0), (b"a", 2.0), (b"c", -1.0), (b"", 2.0)]:
        zset.insert(member, score, LIMITS)
    assert zset.pairs() == [(b"c", -1.0), (b"", 2.0), (b"a", 2.0), (b"b", 2.0)]
    assert zset.rank(b"a") == 2 and zset.rank(b"zz") is None
    zset.rescore(b"c", -1.0, 5.0)
    assert zset.pairs(reverse=True)[0] == (b"c", 5.0) and zset[b"c"] == 5.0
    assert zset.discard(b"a") and not zset.discard(b"a")
    assert set(zset) == {b"b", b"", b"c"}
    assert [member for _, member in zset.ranked] == [b"", b"b", b"c"]


@pytest.mark.parametrize("index", [False, True])
def test_moves_keep_the_ranking_sorted(index: bool) -> None:
    """Rescores in place, within a sublist and across sublists (sublists of 4 to 8 pairs
    here), with and without SortedList's positional index built."""
    rng = random.Random(11)
    scores = {b"m%d" % i: float(rng.randrange(60)) for i in range(60)}
    ranked = zsets.Ranking((score, member) for member, score in scores.items())
    ranked._reset(4)
    for _ in range(3000):
        if index:
            ranked[len(ranked) // 2]
        member = b"m%d" % rng.randrange(60)
        old = scores[member]
        new = old + rng.choice([0.5, -0.5, 1.0, 7.0, -30.0, rng.randrange(-100, 100)])
        if new != old:
            ranked.move((old, member), (new, member))
            scores[member] = new
        ranked._check()
    assert list(ranked) == sorted((score, member) for member, score in scores.items())


def test_the_encoding_turns_big_once_and_for_ever() -> None:
    zset = SortedSet()
    for i in range(3):
        zset.insert(b"%d" % i, i, (3, 4))
    assert zset.encoding() == "listpack"
    zset.insert(b"3", 3.0, (3, 4))  # a fourth member passes 3 entries
    assert zset.encoding() == "skiplist"
    for i in range(4):
        zset.discard(b"%d" % i)
    zset.insert(b"x", 1.0, (3, 4))
    assert zset.encoding() == "skiplist"
    long_member = SortedSet()
    long_member.insert(b"abcd", 1.0, (3, 4))
    assert long_member.encoding() == "listpack"
    long_member.insert(b"abcde", 1.0, (3, 4))  # longer than 4 bytes
    assert long_member.encoding() == "skiplist"
    never_small = SortedSet()
    never_small.insert(b"a", 1.0, (0, 64))
    assert never_small.encoding() == "skiplist"


def test_negative_zero_survives_only_in_a_big_set() -> None:
    small = SortedSet()
    small.insert(b"a", -0.0, LIMITS)
    small.insert(b"b", 5.0, LIMITS)
    small.rescore(b"b", 5.0, -0.0)
    assert all(math.copysign(1, score) > 0 for score in small.values())
    big = SortedSet(big=True)
    big.insert(b"a", -0.0, LIMITS)
    assert math.copysign(1, big[b"a"]) < 0
    assert math.copysign(1, SortedSet.build([(b"a", -0.0)], big=False)[b"a"]) > 0
    assert math.copysign(1, SortedSet.build([(b"a", -0.0)], big=True)[b"a"]) < 0


def test_range_deletions_and_pops() -> None:
    zset = sample_set(10)
    assert zset.delete_ranks(2, 5) == 3
    assert [m for m, _ in zset.pairs()] == [b"m000", b"m001", b"m005", b"m006", b"m007"] + [
        b"m008",
        b"m009",
    ]
    assert zset.pop_ends(2, highest=True) == [(b"m009", 3.0), (b"m008", 8 / 3)]
    assert zset.pop_ends(1, highest=False) == [(b"m000", 0.0)]
    assert zset.pop_ends(100, highest=False)[-1] == (b"m007", 7 / 3)
    assert not zset and not zset.ranked


def test_copy_is_independent() -> None:
    zset = sample_set(5, big=True)
    twin = zset.copy()
    assert twin.__class__ is SortedSet and twin == zset and twin.encoding() == "skiplist"
    twin.discard(b"m000")
    twin.insert(b"new", 9.0, LIMITS)
    assert b"m000" in zset and b"new" not in zset and len(zset.ranked) == 5


@pytest.mark.parametrize("big", [False, True])
def test_plain_form_round_trips_through_marshal(big: bool) -> None:
    zset = SortedSet.build([(b"b", 1.5), (b"a", 1.5), (b"\x00", -math.inf), (b"z", 1e300)], big)
    tagged = values.to_plain(zset)
    assert tagged == (
        "zset",
        (big, [(b"\x00", -math.inf), (b"a", 1.5), (b"b", 1.5), (b"z", 1e300)]),
    )
    again = values.from_plain(marshal.loads(marshal.dumps(tagged)))
    assert again == zset and again.pairs() == zset.pairs() and again.big is big
    assert values.TYPES["zset"] is SortedSet
    assert values.type_name(zset) == b"zset" and values.encoding(zset) == zset.encoding()


def test_memory_usage_grows_with_members() -> None:
    small, large = sample_set(10), sample_set(1000)
    assert 0 < small.memory_usage() < large.memory_usage()
    assert large.memory_usage() > 1000 * 100
    assert values.memory_usage(large) == large.memory_usage()


def test_rebuild_replays_to_the_same_set() -> None:
    """Bounded ZADD commands whose scores parse back to the very same doubles."""
    rng = random.Random(5)
    scores = [rng.uniform(-1e6, 1e6) for _ in range(150)] + [math.inf, -math.inf, 5e-324]
    scores += [1.1, 0.1, 1e20, 2.0**62 + 2048]
    zset = SortedSet.build([(b"m%d" % i, s) for i, s in enumerate(scores)], big=True)
    commands = list(values.rebuild(b"key", zset))
    assert all(len(command) <= 2 + 2 * 64 and command[0] == b"ZADD" for command in commands)
    shard = Shard(0)
    for command in commands:
        assert run(shard, *[command[0].lower(), *command[1:]]).startswith(b":")
    rebuilt = shard.dbs[0].data[b"key"]
    assert rebuilt.pairs() == zset.pairs() and rebuilt.encoding() == "skiplist"
    assert list(values.rebuild(b"k", SortedSet.build([(b"a", 1.0)], False))) == [
        [b"ZADD", b"k", b"1.0", b"a"]
    ]


# -- ranges --------------------------------------------------------------------------------


def query(*args: bytes | str | int) -> zsets.RangeQuery:
    parsed = zsets.parse_range_query(c("zrange", "k", *args), 1, False, None, None)
    assert isinstance(parsed, zsets.RangeQuery), parsed
    return parsed


@pytest.mark.parametrize("big", [False, True])
def test_range_selection(big: bool) -> None:
    zset = SortedSet.build([(b"a", 1.0), (b"b", 2.0), (b"c", 2.0), (b"d", 3.0), (b"e", 4.0)], big)

    def members(*args: bytes | str | int) -> list[bytes]:
        return [member for member, _ in zsets.select_range(zset, query(*args))]

    assert members(1, -2) == [b"b", b"c", b"d"]
    assert members(0, 1, "rev") == [b"e", b"d"]
    assert members(-100, 100) == [b"a", b"b", b"c", b"d", b"e"]
    assert members(3, 1) == []
    assert members("(1", "3", "byscore") == [b"b", b"c", b"d"]
    assert members("3", "(1", "byscore", "rev") == [b"d", b"c", b"b"]
    assert members("-inf", "+inf", "byscore", "limit", 1, 2) == [b"b", b"c"]
    assert members("+inf", "-inf", "byscore", "rev", "limit", 1, 2) == [b"d", b"c"]
    assert members("-inf", "+inf", "byscore", "limit", -1, 2) == []
    assert members("-inf", "+inf", "byscore", "limit", 4, -1) == [b"e"]
    assert members("(2", "(2", "byscore") == []
    assert members("(2", "+inf", "byscore", "limit", 0, 0) == []


def test_lex_ranges_on_one_score() -> None:
    members = [b"", b"a", b"a\x00", b"ab", b"b", b"c"]
    for big in (False, True):
        zset = SortedSet.build([(member, 0.0) for member in members], big)

        def lex(*args: bytes | str | int, zset: SortedSet = zset) -> list[bytes]:
            return [m for m, _ in zsets.select_range(zset, query(*args, "bylex"))]

        assert lex("-", "+") == members
        assert lex("[a", "(b") == [b"a", b"a\x00", b"ab"]
        assert lex("(a", "[b", "limit", 1, 5) == [b"ab", b"b"]
        assert lex("[", "[") == [b""]
        assert lex("+", "-") == [] and lex("(b", "[b") == []
        assert lex("[c", "-", "rev") == [b"c", b"b", b"ab", b"a\x00", b"a", b""]
        assert lex("+", "(a", "rev", "limit", 1, 2) == [b"b", b"ab"]


def test_range_query_errors_in_redis_order() -> None:
    def problem(*args: bytes | str | int) -> bytes:
        parsed = zsets.parse_range_query(c("zrange", "k", *args), 1, False, None, None)
        assert isinstance(parsed, bytes)
        return parsed

    assert problem(0, 1, "limit", "x", 1, "foo") == zsets.NOT_INTEGER
    assert problem(0, 1, "foo", "limit", "x", 1) == zsets.SYNTAX
    assert problem(0, 1, "limit", 0, 1) == zsets.LIMIT_WITH_RANK
    assert problem(0, 1, "bylex", "withscores") == zsets.WITHSCORES_WITH_LEX
    assert problem("x", 1) == zsets.NOT_INTEGER
    assert problem("x", 1, "byscore") == zsets.NOT_FLOAT_BOUND
    assert problem("x", 1, "bylex") == zsets.NOT_LEX_BOUND
    # A count of -1 is no LIMIT at all, even by rank (Redis tests the count).
    assert zsets.select_range(sample_set(3), query(0, -1, "limit", 5, -1))


# -- set operations: key positions, checks, aggregates ------------------------------------


def test_key_positions_of_numkeys_commands() -> None:
    assert key_positions(
        COMMANDS["zunionstore"], c("zunionstore", "d", 2, "a", "b", "weights", 1, 2)
    ) == [1, 3, 4]
    assert key_positions(COMMANDS["zinter"], c("zinter", 2, "a", "b", "withscores")) == [2, 3]
    assert key_positions(COMMANDS["zmpop"], c("zmpop", 2, "a", "b", "min")) == [2, 3]
    assert key_positions(COMMANDS["zrangestore"], c("zrangestore", "d", "s", 0, 1)) == [1, 2]
    for argv in (c("zunion", "x", "a"), c("zunion", 0, "a"), c("zmpop", 5, "a", "min")):
        assert key_positions(COMMANDS[argv[0].decode()], argv) == []
    assert key_positions(COMMANDS["zdiffstore"], c("zdiffstore", "d", -1, "a")) == []


def test_checks_refuse_what_redis_refuses_before_the_keys() -> None:
    union = COMMANDS["zunionstore"]
    assert union.check(None, c("zunionstore", "d", "x", "a")) == zsets.NOT_INTEGER
    assert union.check(None, c("zunionstore", "d", 0, "a")) == zsets.error(
        "ERR at least 1 input key is needed for 'zunionstore' command"
    )
    assert union.check(None, c("zunionstore", "d", 2, "a")) == zsets.SYNTAX
    assert union.check(None, c("zunionstore", "d", 1, "a", "foo")) is None  # after the keys
    mpop = COMMANDS["zmpop"]
    assert mpop.check(None, c("zmpop", 1, "a", "min", "count", 0)) == zsets.error(
        "ERR count should be greater than 0"
    )
    assert mpop.check(None, c("zmpop", 1, "a", "left")) == zsets.SYNTAX
    assert mpop.check(None, c("zmpop", 1, "a", "MAX", "COUNT", 3)) is None
    store = COMMANDS["zrangestore"]
    assert store.check(None, c("zrangestore", "d", "s", 0, 1, "withscores")) == zsets.SYNTAX
    assert store.check(None, c("zrangestore", "d", "s", 0, 1, "rev")) is None


def test_aggregates_follow_redis_order_and_nan_rules() -> None:
    options = zsets.SetOptions(2)
    union = zsets._union([{b"x": math.inf}, {b"x": -math.inf, b"y": 1.0}], options)
    assert union == {b"x": 0.0, b"y": 1.0}  # inf + -inf is 0
    options.weights = [0.0, 1.0]
    assert zsets._union([{b"x": math.inf}, None], options) == {b"x": 0.0}  # 0 * inf
    options.aggregate = zsets._max
    inter = zsets._intersection([{b"x": 1.0}, {b"x": math.inf}], zsets.SetOptions(2))
    assert inter == {b"x": math.inf}
    weighted = zsets.SetOptions(2)
    weighted.weights = [1.0, 0.0]
    weighted.aggregate = zsets._min
    # The second source's weighted NaN is compared as it is: MIN keeps the first score.
    assert zsets._intersection([{b"x": 1.0}, {b"x": math.inf}], weighted) == {b"x": 1.0}
    assert zsets._difference([{b"x": 1.0, b"y": 2.0}, {b"y"}, None]) == {b"x": 1.0}
    # Smallest first, ties in argument order: the order the sum is taken in.
    assert zsets._by_size([{1: 1, 2: 2}, None, {3: 3}, {4: 4}]) == [1, 2, 3, 0]


# -- coordinated plans, run as the acceptor runs them -------------------------------------


@dataclass
class FakeServer:
    config: dict = field(
        default_factory=lambda: {"zset-max-listpack-entries": 128, "zset-max-listpack-value": 64}
    )


@dataclass
class Session:
    enc: Any = Resp2
    server: FakeServer = field(default_factory=FakeServer)


class Cluster:
    """Shards and a key placement (each key names its shard by its first byte's parity),
    running coordinated plans: reads, decide (maybe more rounds), writes."""

    def __init__(self) -> None:
        self.shards = [Shard(0), Shard(1)]

    def shard_of(self, key: bytes) -> Shard:
        return self.shards[key[0] % 2]

    def run(self, shard: Shard, argv: list) -> Any:
        return shard.execute_batch([[0, argv]])[0]

    def coordinate(self, session: Session, argv: list[bytes]) -> bytes:
        spec = COMMANDS[argv[0].decode()]
        problem = spec.check(session, argv)
        if problem is not None:
            return problem
        plan = spec.plan(session, argv)
        while True:
            results = [
                marshal.loads(marshal.dumps(self.run(self.shard_of(step.key), step.argv)))
                for step in plan.reads
            ]
            decision = plan.decide(results)
            if not isinstance(decision, Plan):
                break
            plan = decision
        reply, writes = decision
        for step in writes:
            self.run(self.shard_of(step.key), marshal.loads(marshal.dumps(step.argv)))
        return reply

    def native(self, argv: list[bytes], enc: Any) -> tuple[bytes, Shard]:
        """The same command on one shard holding copies of every key."""
        shard = Shard(9)
        for each in self.shards:
            for key, value in each.dbs[0].data.items():
                shard.dbs[0].store(key, values.copy(value))
        return shard.execute_batch([[enc.version - 2, argv]])[0], shard


def fill(cluster: Cluster) -> None:
    # b"a" and b"c" live on shard 1, b"b" and b"d" on shard 0.
    cluster.run(cluster.shard_of(b"a"), c("zadd", "a", 1, "x", 2, "y", 3, "z", "-0", "n"))
    cluster.run(cluster.shard_of(b"b"), c("zadd", "b", 10, "y", 20, "z", "inf", "w"))
    cluster.run(cluster.shard_of(b"d"), c("set", "d", "string"))


@pytest.mark.parametrize("enc", [Resp2, Resp3], ids=["resp2", "resp3"])
@pytest.mark.parametrize(
    "argv",
    [
        c("zunion", 2, "a", "b", "withscores"),
        c("zinter", 2, "a", "b", "weights", 2, -1, "aggregate", "max", "withscores"),
        c("zdiff", 2, "a", "b", "withscores"),
        c("zintercard", 2, "a", "b", "limit", 1),
        c("zunion", 2, "a", "d"),
        c("zunion", 2, "a", "b", "foo"),
        c("zunionstore", "c", 2, "a", "b"),
        c("zinterstore", "c", 2, "a", "nokey"),
        c("zdiffstore", "b", 2, "a", "b"),
        c("zrangestore", "c", "b", "(10", "+inf", "byscore"),
        c("zrangestore", "c", "d", 0, 1),
        c("zrangestore", "c", "nokey", 0, 1),
        c("zmpop", 3, "nokey", "b", "a", "max", "count", 2),
        c("zmpop", 2, "d", "a", "min"),
        c("zmpop", 1, "nokey", "min"),
    ],
    ids=lambda argv: b" ".join(argv).decode() if isinstance(argv, list) else None,
)
def test_coordinated_plans_equal_native_runs(argv: list[bytes], enc: Any) -> None:
    """Each plan's reply, and the state it leaves, equal the native command's."""
    cluster = Cluster()
    fill(cluster)
    expected, native = cluster.native(argv, enc)
    assert cluster.coordinate(Session(enc), argv) == expected
    for key in (b"a", b"b", b"c", b"d"):
        ours = cluster.shard_of(key).dbs[0].data.get(key)
        theirs = native.dbs[0].data.get(key)
        if theirs is None:
            assert ours is None, key
        else:
            assert values.to_plain(ours) == values.to_plain(theirs), key
