"""The set value class and the set handlers, with no server: encodings, plain forms, rebuilds,
random draws and their pool, SPOP's propagation, SINTERCARD's arguments and the plans of the
coordinated commands (decided here as the acceptor decides them)."""

from __future__ import annotations

import marshal
import sys
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver import values
from shardserver.commands import sets
from shardserver.commands.multikey import Plan
from shardserver.commands.sets import SetValue
from shardserver.commands.spec import Route
from shardserver.commands.table import COMMANDS, INTERNAL_PARTS
from shardserver.resp import Resp2, Resp3
from shardserver.shard import Shard

WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"


def run(shard: Shard, *argv: bytes, resp3: bool = False) -> bytes:
    [reply] = shard.execute_batch([[1 if resp3 else 0, [argv[0].lower(), *argv[1:]]]])
    return reply


def stored(shard: Shard, key: bytes) -> SetValue:
    value = shard.dbs[0].lookup(key, shard.now)
    assert value.__class__ is SetValue
    return value


def members(n: int, start: int = 0) -> list[bytes]:
    return [b"%d" % i for i in range(start, start + n)]


# -- the value class --------------------------------------------------------------------------


def test_encoding_is_intset_while_integers_fit_then_hashtable_for_ever() -> None:
    shard = Shard(0, {"set-max-intset-entries": 4})
    run(shard, b"SADD", b"s", b"3", b"-1", b"9223372036854775807")
    assert stored(shard, b"s").encoding() == "intset"
    run(shard, b"SADD", b"s", b"4")
    assert stored(shard, b"s").encoding() == "intset"  # 4 entries: still within the limit
    run(shard, b"SADD", b"s", b"5")
    assert stored(shard, b"s").encoding() == "hashtable"
    run(shard, b"SREM", b"s", b"5", b"4", b"3")
    assert stored(shard, b"s").encoding() == "hashtable"  # Redis never converts back


@pytest.mark.parametrize(
    "member", [b"a", b"01", b"-0", b"+1", b" 1", b"1.0", b"9223372036854775808", b""]
)
def test_a_member_string2ll_refuses_makes_a_hashtable(member: bytes) -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"s", b"1")
    run(shard, b"SADD", b"s", member)
    assert stored(shard, b"s").encoding() == "hashtable"


def test_adding_only_present_members_changes_no_encoding() -> None:
    shard = Shard(0, {"set-max-intset-entries": 2})
    run(shard, b"SADD", b"s", b"1", b"2")
    assert run(shard, b"SADD", b"s", b"2", b"1") == b":0\r\n"
    assert stored(shard, b"s").encoding() == "intset"


def test_intset_iterates_in_ascending_numeric_order() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"s", b"10", b"-5", b"2", b"100", b"-40")
    expected = b"*5\r\n$3\r\n-40\r\n$2\r\n-5\r\n$1\r\n2\r\n$2\r\n10\r\n$3\r\n100\r\n"
    assert run(shard, b"SMEMBERS", b"s") == expected
    assert run(shard, b"SSCAN", b"s", b"0") == b"*2\r\n$1\r\n0\r\n" + expected
    assert run(shard, b"SMEMBERS", b"s", resp3=True) == b"~" + expected[1:]


def test_copy_is_independent_and_keeps_the_encoding() -> None:
    value = SetValue([b"1", b"a"], big=True)
    duplicate = value.copy()
    assert duplicate == value and duplicate.big and duplicate.__class__ is SetValue
    duplicate.add_members([b"x"], 512)
    assert b"x" not in value
    small = SetValue([b"1"]).copy()
    assert small.encoding() == "intset"


@pytest.mark.parametrize("big", [False, True])
def test_plain_form_round_trips_through_marshal(big: bool) -> None:
    value = SetValue([b"1", b"2", b"\x00\xff"] if big else [b"1", b"2"], big)
    plain = value.to_plain()
    assert plain == (big, set(value))
    back = SetValue.from_plain(marshal.loads(marshal.dumps(plain)))
    assert back == value and back.big == big
    tagged = values.to_plain(value)
    assert tagged[0] == "set" and values.TYPES["set"] is SetValue
    again = values.from_plain(marshal.loads(marshal.dumps(tagged)))
    assert again == value and again.encoding() == value.encoding()


def test_from_plain_trusts_the_given_encoding() -> None:
    """The RDB loader computes ``big`` itself, as Redis converts on load."""
    assert SetValue.from_plain((True, {b"1"})).encoding() == "hashtable"
    assert SetValue.from_plain((False, [b"1", b"2"])).encoding() == "intset"


def test_type_and_memory_usage() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"s", *members(1000))
    assert run(shard, b"TYPE", b"s") == b"+set\r\n"
    small, big = SetValue(members(10)), stored(shard, b"s")
    assert values.memory_usage(small) < values.memory_usage(big)
    floor = sys.getsizeof(big) + sum(map(sys.getsizeof, big))
    assert 0.5 * floor < big.memory_usage() < 2 * floor


def test_rebuild_is_bounded_sadds_that_recreate_the_set() -> None:
    shard = Shard(0)
    content = [*members(150), b"x", b"\r\n"]
    run(shard, b"SADD", b"s", *content)
    commands = list(values.rebuild(b"s", stored(shard, b"s")))
    assert all(argv[:2] == [b"SADD", b"s"] and len(argv) <= 2 + 64 for argv in commands)
    fresh = Shard(1)
    for argv in commands:
        run(fresh, *argv)
    assert stored(fresh, b"s") == set(content)
    assert stored(fresh, b"s").encoding() == "hashtable"


def test_rebuild_of_an_intset_comes_back_an_intset_in_order() -> None:
    value = SetValue([b"3", b"1", b"2"])
    assert list(value.rebuild(b"k")) == [[b"SADD", b"k", b"1", b"2", b"3"]]


# -- random draws ---------------------------------------------------------------------------


def test_draws_reach_every_member_about_equally() -> None:
    value = SetValue(members(10))
    counts = Counter(value.pick() for _ in range(10_000))
    assert set(counts) == set(value)
    assert min(counts.values()) > 700  # expected 1000 each; 700 is > 9 sigma away


def test_draws_are_uniform_after_removals_and_readditions() -> None:
    value = SetValue(members(20))
    value.pick()  # the pool now exists
    value.remove_members(members(15))
    value.add_members([b"3", b"x"], 512)
    live = set(members(5, 15)) | {b"3", b"x"}
    counts = Counter(value.pick() for _ in range(7_000))
    assert set(counts) == live
    assert min(counts.values()) > 700


def test_pops_keep_one_pool() -> None:
    """O(1) per SPOP: the pool is built once, not per draw."""
    value = SetValue(members(1000))
    value.pop_random()
    pool = value._pool
    popped = {value.pop_random() for _ in range(500)}
    assert value._pool is pool and len(pool) == 499
    assert len(popped) == 500 and not popped & value


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "pop", "pick"]), st.integers(0, 12)),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(operations=OPERATIONS)
def test_pool_holds_each_live_member_once(operations: list[tuple[str, int]]) -> None:
    """Whatever the mix of additions, removals and draws, the pool holds each live member
    exactly once and each removed-since member once, and draws only live members."""
    value = SetValue()
    model: set[bytes] = set()
    for operation, n in operations:
        member = b"%d" % n
        if operation == "add":
            value.add_members([member], 512)
            model.add(member)
        elif operation == "remove":
            value.remove_members([member])
            model.discard(member)
        elif model and operation == "pop":
            model.remove(value.pop_random())
        elif model:
            assert value.pick() in model
        assert value == model
        if value._pool is not None:
            pool = Counter(value._pool)
            assert all(pool[m] == 1 for m in model)
            assert set(pool) - model == value._gone and all(pool[m] == 1 for m in value._gone)


def test_spop_with_a_large_count_builds_the_set_anew() -> None:
    """Redis's third SPOP case keeps the few that remain in a new set: a hashtable left with
    small integers only becomes an intset, and the popped come in the old set's order."""
    shard = Shard(0)
    run(shard, b"SADD", b"s", *members(10), b"x")
    run(shard, b"SREM", b"s", b"x")
    assert stored(shard, b"s").encoding() == "hashtable"
    reply = run(shard, b"SPOP", b"s", b"9")
    assert len(sets.reply_members(reply)) == 9
    assert stored(shard, b"s").encoding() == "intset" and len(stored(shard, b"s")) == 1


def test_spop_of_an_intset_by_the_large_count_path_answers_in_order() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"s", *members(10))
    popped = sets.reply_members(run(shard, b"SPOP", b"s", b"9"))
    assert popped == sorted(popped, key=int) and len(popped) == 9


def test_srandmember_refuses_a_reply_beyond_proto_max_bulk_len() -> None:
    shard = Shard(0, {"proto-max-bulk-len": 1024 * 1024})
    run(shard, b"SADD", b"s", b"x" * 1000)
    assert run(shard, b"SRANDMEMBER", b"s", b"-2000") == sets.REPLY_TOO_LARGE
    assert run(shard, b"SRANDMEMBER", b"s", b"-9223372036854775807") == sets.REPLY_TOO_LARGE
    reply = run(shard, b"SRANDMEMBER", b"s", b"-1000")
    assert sets.reply_members(reply) == [b"x" * 1000] * 1000


def test_srandmember_counts() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"s", *members(100))
    for count in (2, 10, 40, 99, 100, 150):
        got = sets.reply_members(run(shard, b"SRANDMEMBER", b"s", b"%d" % count))
        assert len(got) == len(set(got)) == min(count, 100) and set(got) <= set(members(100))
    repeats = sets.reply_members(run(shard, b"SRANDMEMBER", b"s", b"-300"))
    assert len(repeats) == 300 and len(set(repeats)) < 300
    assert len(stored(shard, b"s")) == 100


# -- SPOP's propagation -------------------------------------------------------------------


@pytest.mark.parametrize("resp3", [False, True])
def test_reply_members_reads_bulks_arrays_and_sets(resp3: bool) -> None:
    enc = Resp3 if resp3 else Resp2
    tricky = [b"a\r\nb", b"", b"$3", b"*2\r\n"]
    assert sets.reply_members(enc.set([enc.bulk(m) for m in tricky])) == tricky
    assert sets.reply_members(enc.bulk(b"\r\n")) == [b"\r\n"]
    assert sets.reply_members(enc.NULL) == []
    assert sets.reply_members(enc.set([])) == []
    assert sets.reply_members(WRONGTYPE) == []


def replay(before: Shard, commands: list[list[bytes]]) -> None:
    for argv in commands:
        run(before, *argv)


@pytest.mark.parametrize("count", [None, b"1", b"3", b"150", b"199", b"200", b"500"])
def test_spop_propagates_what_it_popped(count: bytes | None) -> None:
    """Replaying the propagated commands on the state before SPOP gives the state after."""
    content = [*members(199), b"m"]
    shard, twin = Shard(0), Shard(1)
    for each in (shard, twin):
        run(each, b"SADD", b"s", *content)
    argv = [b"spop", b"s"] if count is None else [b"spop", b"s", count]
    reply = run(shard, *argv)
    logged = sets.propagate_spop(shard, shard.dbs[0], argv, reply)
    assert COMMANDS["spop"].propagate is sets.propagate_spop
    assert all(len(command) <= 2 + sets.PROPAGATE_CHUNK for command in logged)
    replay(twin, logged)
    assert twin.dbs[0].lookup(b"s", twin.now) == shard.dbs[0].lookup(b"s", shard.now)
    if count is not None and int(count) >= len(content):
        assert logged == [[b"DEL", b"s"]]


def test_spop_of_nothing_propagates_nothing() -> None:
    shard = Shard(0)
    for argv in ([b"spop", b"nokey"], [b"spop", b"nokey", b"3"]):
        reply = run(shard, *argv)
        assert sets.propagate_spop(shard, shard.dbs[0], argv, reply) == []


# -- SINTERCARD's arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([b"2", b"a", b"b"], (2, 0)),
        ([b"1", b"a", b"LIMIT", b"3", b"limit", b"0"], (1, 0)),
        ([b"1", b"a", b"limit\x00x", b"5"], (1, 5)),
        ([b"0", b"a"], sets.NUMKEYS),
        ([b"x", b"a"], sets.NUMKEYS),
        ([b"-1", b"a"], sets.NUMKEYS),
        ([b"3", b"a", b"b"], sets.TOO_MANY_KEYS),
        ([b"1", b"a", b"LIMIT", b"-1"], sets.LIMIT_NEGATIVE),
        ([b"1", b"a", b"LIMIT", b"x"], sets.LIMIT_NEGATIVE),
        ([b"1", b"a", b"LIMIT"], b"-ERR syntax error\r\n"),
        ([b"1", b"a", b"b"], b"-ERR syntax error\r\n"),
    ],
)
def test_sintercard_arguments(argv: list[bytes], expected: object) -> None:
    full = [b"sintercard", *argv]
    assert sets.parse_sintercard(full) == expected
    if isinstance(expected, tuple):
        assert sets.sintercard_keys(full) == list(range(2, 2 + expected[0]))
        assert sets.check_sintercard(None, full) is None
    else:
        assert sets.sintercard_keys(full) == []
        assert sets.check_sintercard(None, full) == expected


# -- the algebra ------------------------------------------------------------------------------


def test_sinter_iterates_the_first_smallest_set() -> None:
    small = (False, {b"3", b"1", b"2"})
    hashed = (True, {b"2", b"3", b"1", b"x"})
    assert sets.inter_members([hashed, small]) == [b"1", b"2", b"3"]
    assert sets.inter_members([small, None]) == []
    assert sets.inter_card([hashed, small], 2) == 2
    assert sets.inter_card([hashed, small], 0) == 3


def test_sdiff_encoding_follows_redis_choice_of_algorithm() -> None:
    """Algorithm 1 (first set small against the rest) builds the result from what survives;
    algorithm 2 copies the whole first set first, so a first set with a string member gives a
    hashtable even if that member is removed."""
    first = (True, {*members(9), b"x"})
    remove_x = (True, {b"x"})
    # Work estimates: algorithm 1, 10 * (sets present) // 2; algorithm 2, the sum of sizes.
    assert sets.diff_members([first, remove_x], 512) == (set(members(9)), False)  # 10 <= 11
    many = [first] + [remove_x] * 3  # 20 > 13: algorithm 2
    assert sets.diff_members(many, 512) == (set(members(9)), True)
    assert sets.diff_members([None, first], 512) == (set(), False)


def test_union_encoding_is_the_contents() -> None:
    assert sets.union_members([(True, {b"1"}), None, (False, {b"2"})], 512) == ({b"1", b"2"}, False)
    assert sets.union_members([(False, {b"1", b"2"})], 1)[1] is True


# -- plans, decided as the acceptor decides them ----------------------------------------------


def session(limit: int = 512, enc: type[Resp2] = Resp2) -> SimpleNamespace:
    config = {"set-max-intset-entries": limit}
    return SimpleNamespace(enc=enc, server=SimpleNamespace(config=config))


def execute(shard: Shard, argv: list) -> object:
    """A plan step on a shard, its value through marshal as it crosses the pipe."""
    [value] = shard.execute_batch([[0, argv]])
    return marshal.loads(marshal.dumps(value))


def decide(shard: Shard, plan: Plan) -> tuple[tuple[bytes, list], int]:
    """Run a plan's rounds against one shard: (the decision, how many rounds it took)."""
    rounds = 0
    while True:
        rounds += 1
        decision = plan.decide([execute(shard, step.argv) for step in plan.reads])
        if not isinstance(decision, Plan):
            return decision, rounds
        plan = decision


def test_internal_parts_are_registered() -> None:
    for name in sets.INTERNAL_PARTS:
        assert INTERNAL_PARTS[name] is sets.INTERNAL_PARTS[name]
    coordinated = ["smove", "sinter", "sdiff", "sintercard"]
    coordinated += ["sunionstore", "sinterstore", "sdiffstore"]
    assert {COMMANDS[name].route for name in coordinated} == {Route.COORD}
    assert COMMANDS["sunion"].route is Route.KEYS


def test_smove_plan() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"src", b"1", b"2")
    run(shard, b"SET", b"str", b"v")
    plan = sets.plan_smove(session(), [b"smove", b"src", b"dst", b"1"])
    results = [execute(shard, step.argv) for step in plan.reads]
    reply, writes = plan.decide(results)
    assert reply == b":1\r\n"
    for step in writes:
        execute(shard, step.argv)
    assert stored(shard, b"src") == {b"2"} and stored(shard, b"dst") == {b"1"}
    assert stored(shard, b"dst").encoding() == "intset"
    for argv, expected in [
        ([b"smove", b"nokey", b"str", b"1"], b":0\r\n"),
        ([b"smove", b"src", b"str", b"2"], WRONGTYPE),
        ([b"smove", b"str", b"dst", b"1"], WRONGTYPE),
        ([b"smove", b"src", b"dst", b"9"], b":0\r\n"),
    ]:
        plan = sets.plan_smove(session(), argv)
        assert plan.decide([execute(shard, step.argv) for step in plan.reads]) == (expected, [])


def test_smove_plan_deletes_an_emptied_source() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"src", b"a")
    plan = sets.plan_smove(session(), [b"smove", b"src", b"dst", b"a"])
    _, writes = plan.decide([execute(shard, step.argv) for step in plan.reads])
    for step in writes:
        execute(shard, step.argv)
    assert shard.dbs[0].lookup(b"src", shard.now) is None
    assert stored(shard, b"dst").encoding() == "hashtable"


@pytest.mark.parametrize("name", ["sunionstore", "sinterstore", "sdiffstore"])
def test_store_plans_write_the_result_or_delete_the_destination(name: str) -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"a", b"1", b"2", b"3")
    run(shard, b"SADD", b"b", b"3", b"4")
    run(shard, b"SET", b"dst", b"old")
    run(shard, b"EXPIRE", b"dst", b"1000")
    expected = {"sunionstore": 4, "sinterstore": 1, "sdiffstore": 2}[name]
    plan = COMMANDS[name].plan(session(), [name.encode(), b"dst", b"a", b"b"])
    assert isinstance(plan, Plan) and plan.reads[-1].argv[0] == b"@exists"
    (reply, writes), _ = decide(shard, plan)
    assert reply == b":%d\r\n" % expected
    for step in writes:
        execute(shard, step.argv)
    assert len(stored(shard, b"dst")) == expected and stored(shard, b"dst").encoding() == "intset"
    assert shard.dbs[0].deadline_of(b"dst") is None  # a STORE replaces the key and its TTL
    plan = COMMANDS[name].plan(session(), [name.encode(), b"dst", b"nokey", b"nokey"])
    (reply, writes), _ = decide(shard, plan)
    assert reply == b":0\r\n" and [step.argv[0] for step in writes] == [b"@del"]
    execute(shard, writes[0].argv)
    assert shard.dbs[0].lookup(b"dst", shard.now) is None


def test_store_plan_refuses_a_source_of_another_type() -> None:
    shard = Shard(0)
    run(shard, b"SET", b"str", b"v")
    for name in (b"sunionstore", b"sinterstore", b"sdiffstore"):
        plan = COMMANDS[name.decode()].plan(session(), [name, b"dst", b"nokey", b"str"])
        assert decide(shard, plan) == ((WRONGTYPE, []), 1)


def test_store_plan_encodes_by_the_servers_limit() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"a", b"1", b"2", b"3")
    for name in (b"sunionstore", b"sinterstore", b"sdiffstore"):
        plan = COMMANDS[name.decode()].plan(session(limit=2), [name, b"dst", b"a"])
        (_, writes), _ = decide(shard, plan)
        assert writes[0].argv[2] == ("set", (True, {b"1", b"2", b"3"}))


def test_sintercard_plan() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"a", b"1", b"2", b"3")
    run(shard, b"SADD", b"b", b"2", b"3")
    plan = sets.plan_sintercard(session(), [b"sintercard", b"2", b"a", b"b", b"LIMIT", b"1"])
    assert decide(shard, plan) == ((b":1\r\n", []), 1)
    plan = sets.plan_sintercard(session(), [b"sintercard", b"2", b"a", b"b"])
    assert decide(shard, plan) == ((b":2\r\n", []), 1)


def test_sinter_plan_asks_for_candidates_not_whole_sets() -> None:
    """A small set against a big one: the big set's members never cross a pipe; only the
    small set's members go to the big set's shard as candidates."""
    shard = Shard(0)
    run(shard, b"SADD", b"big", *members(5000))
    run(shard, b"SADD", b"small", b"3", b"x", b"4999")
    plan = sets.plan_sinter(session(), [b"sinter", b"big", b"small"])
    sent = []
    while True:
        results = [execute(shard, step.argv) for step in plan.reads]
        sent += [step.argv for step in plan.reads]
        decision = plan.decide(results)
        if not isinstance(decision, Plan):
            break
        plan = decision
    reply, writes = decision
    assert sorted(sets.reply_members(reply)) == [b"3", b"4999"] and writes == []
    assert [argv[0] for argv in sent] == [b"@set-info", b"@set-info", b"@set-has"]
    assert sorted(sent[-1][2:]) == sorted([b"3", b"x", b"4999"])
    assert execute(shard, [b"@set-info", b"big"]) == (True, 5000, None)


def test_plans_walk_a_big_set_in_three_rounds() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"a", *members(200))
    run(shard, b"SADD", b"b", *members(300, 100))
    run(shard, b"SADD", b"c", *members(5, 150))
    inter = sets.plan_sinter(session(), [b"sinter", b"a", b"b"])
    (reply, _), rounds = decide(shard, inter)
    assert rounds == 3 and sets.reply_members(reply) == members(100, 100)
    diff = sets.plan_sdiff(session(), [b"sdiff", b"a", b"b"])  # walks the first set
    (reply, _), rounds = decide(shard, diff)
    assert rounds == 3 and sets.reply_members(reply) == members(100)
    many = [b"sdiff", b"a", b"c", b"c", b"c"]  # 200 * 4 // 2 > 215: every set read whole
    (reply, _), rounds = decide(shard, sets.plan_sdiff(session(), many))
    assert rounds == 2 and sorted(sets.reply_members(reply)) == sorted(
        set(members(200)) - set(members(5, 150))
    )


def test_plans_survive_a_key_expiring_between_rounds() -> None:
    shard = Shard(0)
    run(shard, b"SADD", b"a", *members(100))
    run(shard, b"SADD", b"b", *members(100))
    plan = sets.plan_sinter(session(), [b"sinter", b"a", b"b"])
    second = plan.decide([execute(shard, step.argv) for step in plan.reads])
    assert isinstance(second, Plan)
    shard.dbs[0].delete(b"a")
    shard.dbs[0].delete(b"b")
    (reply, _), _ = decide(shard, second)
    assert reply == b"*0\r\n"
    plan = sets.plan_sdiff(session(), [b"sdiff", b"a", b"b"])
    run(shard, b"SADD", b"a", *members(100))
    run(shard, b"SADD", b"b", *members(100))
    second = plan.decide([execute(shard, step.argv) for step in plan.reads])
    shard.dbs[0].delete(b"b")
    (reply, _), _ = decide(shard, second)
    assert len(sets.reply_members(reply)) == 100
