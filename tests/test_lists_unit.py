"""The list family without processes: the value class, the handlers on a :class:`Shard`, and
the coordinated plans of LMOVE, RPOPLPUSH and LMPOP driven as the acceptor drives them.

Exact replies against redis-server are the job of tests/test_cmd_lists.py and
tests/test_differential_lists.py; here the handlers are checked against small reference
models of Redis's rules (ranges, trims, removals), over every index of small lists, and the
plans against the same command run natively on one shard.
"""

from __future__ import annotations

import marshal
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass
from itertools import product

import pytest

from shardserver import values
from shardserver.commands import lists
from shardserver.commands.lists import ListValue
from shardserver.commands.multikey import Plan
from shardserver.commands.spec import key_positions
from shardserver.commands.table import COMMANDS, INTERNAL_PARTS
from shardserver.resp import Resp2, Resp3, encoder_for
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

LLONG_MIN = b"-9223372036854775808"
LLONG_MAX = b"9223372036854775807"


@pytest.fixture(params=["real nodes", "tiny nodes"])
def node_sizes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a test with the real node sizes, and again with nodes of at most 2 elements and
    4 bytes behind ends of 1 plain element, so that even these short lists are packed and
    every command goes through the nodes."""
    if request.param == "tiny nodes":
        monkeypatch.setattr(lists, "NODE_ELEMENTS", 2)
        monkeypatch.setattr(lists, "NODE_BYTES", 4)
        monkeypatch.setattr(lists, "HOT", 1)


def call(shard: Shard, *argv: bytes, protocol: int = 2) -> bytes:
    """One command's reply from the shard (db 0)."""
    [reply] = shard.execute_batch([[1 if protocol == 3 else 0, [argv[0].lower(), *argv[1:]]]])
    return reply


def elements(shard: Shard, key: bytes) -> list[bytes] | None:
    """The list under ``key`` as a Python list, or None when the key is gone."""
    value = shard.dbs[0].data.get(key)
    return None if value is None else list(value)


def filled(*items: bytes, key: bytes = b"l") -> Shard:
    shard = Shard(0)
    if items:
        assert call(shard, b"rpush", key, *items) == b":%d\r\n" % len(items)
    return shard


# -- the value class ----------------------------------------------------------------------


def test_value_class_is_registered_and_always_a_quicklist() -> None:
    assert values.TYPES["list"] is ListValue
    assert not hasattr(ListValue(), "__dict__"), "slots only: no per-list dict"
    small, big = ListValue([b"a"]), ListValue([b"x" * 10_000] * 1000)
    assert small.encoding() == big.encoding() == "quicklist"
    assert values.encoding(small) == "quicklist"
    assert values.type_name(small) == b"list"


def test_copy_is_independent() -> None:
    original = ListValue([b"a", b"b"])
    twin = values.copy(original)
    assert twin.__class__ is ListValue and list(twin) == list(original) and twin is not original
    twin.extend([b"c"])
    original.popleft()
    assert list(original) == [b"b"] and list(twin) == [b"a", b"b", b"c"]
    packed = ListValue(b"%d" % i for i in range(5000))
    twin = packed.copy()
    twin[2500] = b"x"
    assert (
        packed[2500] == b"2500" and twin[2500] == b"x" and list(twin)[:2500] == list(packed)[:2500]
    )


def test_plain_form_round_trips_through_marshal() -> None:
    original = ListValue([b"a", b"", b"\x00\xff", b"1"])
    tagged = values.to_plain(original)
    assert tagged == ("list", [b"a", b"", b"\x00\xff", b"1"])
    assert type(tagged[1]) is list
    back = values.from_plain(marshal.loads(marshal.dumps(tagged)))
    assert back.__class__ is ListValue and list(back) == list(original)
    assert ListValue.from_plain([]).__class__ is ListValue


def test_memory_usage_counts_the_elements() -> None:
    empty, some = ListValue(), ListValue([b"x" * 1000] * 10)
    assert empty.memory_usage() >= sys.getsizeof(empty)
    assert some.memory_usage() >= empty.memory_usage() + 10 * 1000
    assert values.memory_usage(some) == some.memory_usage()


def test_a_big_list_is_packed_and_its_memory_usage_is_what_it_holds() -> None:
    """Elements past the plain ends live packed: a list of 100,000 elements of 13 bytes
    holds about 15 bytes per element (a ``bytes`` object apiece held 56), and MEMORY USAGE
    says what tracemalloc sees allocated for it."""
    items = [b"member:%06d" % i for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        packed = ListValue(items)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert list(packed) == items
    assert held < 17 * len(items)
    assert 0.9 < packed.memory_usage() / held < 1.1


def check_layout(value: ListValue) -> None:
    """The invariants of the packed form: the count of packed elements, nodes within their
    bounds (one element may pass the bytes alone), ends within HOT + NODE_ELEMENTS."""
    assert value.packed == sum(len(lengths) for _, lengths in value.nodes)
    for blob, lengths in value.nodes:
        assert 0 < len(lengths) <= lists.NODE_ELEMENTS and len(blob) == sum(lengths)
        assert len(blob) <= lists.NODE_BYTES or len(lengths) == 1
    assert max(len(value.left), len(value.right)) <= lists.HOT + lists.NODE_ELEMENTS


def test_the_packed_form_behaves_as_a_plain_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random operations on a list with nodes of at most 4 elements and 20 bytes behind ends
    of 3, against a Python list: every way through the ends, the nodes and between them."""
    monkeypatch.setattr(lists, "NODE_ELEMENTS", 4)
    monkeypatch.setattr(lists, "NODE_BYTES", 20)
    monkeypatch.setattr(lists, "HOT", 3)
    rng = random.Random(3)
    choices = [b"", b"a", b"bb", b"x" * 17, b"y" * 300, b"%d" % 7]

    def some() -> list[bytes]:
        return [rng.choice(choices) for _ in range(rng.randrange(1, 12))]

    for _ in range(150):
        model = some() * rng.randrange(4)
        value = ListValue(model)
        for _ in range(150):
            size = len(model)
            operation = rng.randrange(10)
            if operation == 0:
                items = some()
                value.extend(items)
                model += items
            elif operation == 1:
                items = some()
                value.extendleft(items)
                model[:0] = items[::-1]
            elif operation == 2 and size >= 2:
                assert (value.popleft(), value.pop()) == (model.pop(0), model.pop())
            elif operation == 3:
                count, left = rng.randrange(15), rng.random() < 0.5
                taken = value.take(count, left)
                count = min(count, size)
                assert taken == (model[:count] if left else model[size - count :][::-1])
                model = model[count:] if left else model[: size - count]
            elif operation == 4 and size:
                index, element = rng.randrange(size), rng.choice(choices)
                assert value[index] == model[index]
                value[index] = model[index] = element
            elif operation == 5:
                index, element = rng.randrange(size + 1), rng.choice(choices)
                value.insert(index, element)
                model.insert(index, element)
            elif operation == 6 and size:
                start = rng.randrange(size)
                stop = rng.randrange(start, size) + 1
                assert value.range(start, stop) == model[start:stop]
            elif operation == 7:
                element, from_head = rng.choice(choices), rng.random() < 0.5
                walk = model if from_head else model[::-1]
                hits = [i for i, x in enumerate(walk) if x == element]
                within = rng.randrange(size + 2)
                found = value.positions(element, from_head, within)
                assert list(found) == [i for i in hits if i < within]
                if hits:
                    assert value.index(element) == model.index(element)
                gone = hits[: rng.randrange(1, 6)]
                assert value.remove(element, len(gone) or 1, from_head) == len(gone)
                kept = [x for i, x in enumerate(walk) if i not in gone]
                model = kept if from_head else kept[::-1]
            elif operation == 8:
                twin = value.copy()
                twin.extend([b"z"])
                assert list(value) == model
                value = twin
                model.append(b"z")
            elif operation == 9:
                assert list(value) == model and list(reversed(value)) == model[::-1]
                assert ListValue.from_plain(value.to_plain()).to_plain() == model
            assert len(value) == len(model)
            check_layout(value)
        assert list(value) == model


def test_rebuild_is_bounded_rpushes_that_recreate_the_list() -> None:
    original = ListValue(b"%d" % i for i in range(200))
    commands = list(values.rebuild(b"k", original))
    assert [len(c) - 2 for c in commands] == [64, 64, 64, 8]
    assert all(c[:2] == [b"RPUSH", b"k"] for c in commands)
    shard = Shard(0)
    for command in commands:
        call(shard, *command)
    assert elements(shard, b"k") == list(original)
    assert list(ListValue().rebuild(b"k")) == []


# -- pushes and pops ----------------------------------------------------------------------


@pytest.mark.usefixtures("node_sizes")
def test_push_orders_and_the_x_forms() -> None:
    shard = Shard(0)
    assert call(shard, b"lpushx", b"l", b"a") == b":0\r\n"
    assert call(shard, b"rpushx", b"l", b"a") == b":0\r\n"
    assert elements(shard, b"l") is None
    assert call(shard, b"lpush", b"l", b"a", b"b", b"c") == b":3\r\n"
    assert call(shard, b"rpush", b"l", b"d", b"e") == b":5\r\n"
    assert call(shard, b"lpushx", b"l", b"z") == b":6\r\n"
    assert call(shard, b"rpushx", b"l", b"y", b"x") == b":8\r\n"
    assert elements(shard, b"l") == [b"z", b"c", b"b", b"a", b"d", b"e", b"y", b"x"]


def test_wrong_type_everywhere() -> None:
    shard = Shard(0)
    call(shard, b"set", b"s", b"v")
    wrong = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    for argv in (
        [b"lpush", b"s", b"a"],
        [b"rpushx", b"s", b"a"],
        [b"lpop", b"s"],
        [b"rpop", b"s", b"0"],
        [b"llen", b"s"],
        [b"lindex", b"s", b"x"],
        [b"lset", b"s", b"x", b"a"],
        [b"lrange", b"s", b"0", b"-1"],
        [b"ltrim", b"s", b"0", b"-1"],
        [b"lrem", b"s", b"0", b"a"],
        [b"linsert", b"s", b"before", b"a", b"b"],
        [b"lpos", b"s", b"a"],
        [b"lmove", b"s", b"t", b"left", b"left"],
        [b"rpoplpush", b"s", b"t"],
        [b"lmpop", b"1", b"s", b"left"],
    ):
        assert call(shard, *argv) == wrong, argv
    assert shard.dbs[0].data[b"s"] == b"v"


@pytest.mark.parametrize("protocol", [2, 3])
def test_pop_reply_shapes(protocol: int) -> None:
    enc = encoder_for(protocol)
    shard = filled(b"a", b"b", b"c")
    assert call(shard, b"lpop", b"none", protocol=protocol) == enc.NULL
    assert call(shard, b"lpop", b"none", b"2", protocol=protocol) == enc.NULL_ARRAY
    assert call(shard, b"lpop", b"none", b"0", protocol=protocol) == enc.NULL_ARRAY
    assert call(shard, b"lpop", b"l", b"0", protocol=protocol) == b"*0\r\n"
    assert call(shard, b"rpop", b"l", b"2", protocol=protocol) == b"*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
    assert call(shard, b"lpop", b"l", protocol=protocol) == b"$1\r\na\r\n"
    assert elements(shard, b"l") is None, "an emptied list is deleted"


def test_pop_count_errors_come_before_the_key() -> None:
    shard = Shard(0)
    call(shard, b"set", b"s", b"v")
    positive = b"-ERR value is out of range, must be positive\r\n"
    for count in (b"-1", b"abc", b"", LLONG_MIN, b"9223372036854775808"):
        assert call(shard, b"lpop", b"s", count) == positive
        assert call(shard, b"rpop", b"none", count) == positive
    arity = b"-ERR wrong number of arguments for 'rpop' command\r\n"
    assert call(shard, b"rpop", b"s", b"1", b"2") == arity


@pytest.mark.usefixtures("node_sizes")
def test_pop_more_than_there_is_takes_all_in_pop_order() -> None:
    shard = filled(b"a", b"b", b"c")
    assert call(shard, b"rpop", b"l", LLONG_MAX) == b"*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n"
    assert elements(shard, b"l") is None


def test_every_way_in_goes_through_add_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocking pops of a later issue wake waiters in add_elements: nothing may bypass it."""
    seen: list[bytes] = []
    original = lists.add_elements

    def spy(shard, db, key, found, items, left, at=None):
        items = list(items)
        seen.extend(items)
        return original(shard, db, key, found, items, left, at)

    monkeypatch.setattr(lists, "add_elements", spy)
    shard = Shard(0)
    call(shard, b"lpush", b"l", b"1")
    call(shard, b"rpush", b"l", b"2", b"3")
    call(shard, b"lpushx", b"l", b"4")
    call(shard, b"rpushx", b"l", b"5")
    call(shard, b"linsert", b"l", b"before", b"2", b"6")
    call(shard, b"lmove", b"l", b"m", b"left", b"right")
    call(shard, b"rpoplpush", b"l", b"m")
    assert seen == [b"1", b"2", b"3", b"4", b"5", b"6", b"4", b"5"]
    assert len(elements(shard, b"l")) + len(elements(shard, b"m")) == 6


# -- ranges, trims and removals against reference models ------------------------------------


def redis_range(size: int, start: int, end: int) -> range:
    """Redis's addListRangeReply clamping, written plainly."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = max(start, 0)
    if start > end or start >= size:
        return range(0)
    return range(start, min(end, size - 1) + 1)


INDEXES = [-9, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 8]


@pytest.mark.usefixtures("node_sizes")
@pytest.mark.parametrize("size", [1, 2, 5])
def test_lrange_and_ltrim_match_redis_clamping_for_every_index_pair(size: int) -> None:
    items = [b"e%d" % i for i in range(size)]
    for start, end in product(INDEXES, INDEXES):
        expected = [items[i] for i in redis_range(size, start, end)]
        shard = filled(*items)
        argv = (b"%d" % start, b"%d" % end)
        assert call(shard, b"lrange", b"l", *argv) == Resp2.bulk_array(expected), (start, end)
        assert call(shard, b"ltrim", b"l", *argv) == b"+OK\r\n"
        assert elements(shard, b"l") == (expected or None), (start, end)


@pytest.mark.usefixtures("node_sizes")
def test_ranges_at_the_64_bit_limits() -> None:
    shard = filled(b"a", b"b")
    assert call(shard, b"lrange", b"l", LLONG_MIN, LLONG_MAX) == Resp2.bulk_array([b"a", b"b"])
    assert call(shard, b"lrange", b"l", LLONG_MAX, LLONG_MIN) == b"*0\r\n"
    assert call(shard, b"lindex", b"l", LLONG_MIN) == b"$-1\r\n"
    assert call(shard, b"lindex", b"l", b"-2") == b"$1\r\na\r\n"
    assert call(shard, b"lset", b"l", LLONG_MAX, b"x") == b"-ERR index out of range\r\n"
    assert call(shard, b"lset", b"l", b"-1", b"x") == b"+OK\r\n"
    assert call(shard, b"ltrim", b"l", LLONG_MIN, LLONG_MAX) == b"+OK\r\n"
    assert elements(shard, b"l") == [b"a", b"x"]


def reference_lrem(items: list[bytes], count: int, element: bytes) -> tuple[list[bytes], int]:
    """LREM as a plain loop: from the head for count >= 0, from the tail for count < 0."""
    order = list(range(len(items))) if count >= 0 else list(range(len(items) - 1, -1, -1))
    removed: set[int] = set()
    for i in order:
        if items[i] == element and (count == 0 or len(removed) < abs(count)):
            removed.add(i)
    return [x for i, x in enumerate(items) if i not in removed], len(removed)


@pytest.mark.usefixtures("node_sizes")
@pytest.mark.parametrize("pattern", [b"abacada", b"aaaa", b"bcd", b"a", b"bab"])
def test_lrem_matches_the_reference_for_every_count(pattern: bytes) -> None:
    items = [bytes([c]) for c in pattern]
    for count, element in product(range(-6, 7), [b"a", b"b", b"z"]):
        shard = filled(*items)
        kept, removed = reference_lrem(items, count, element)
        assert call(shard, b"lrem", b"l", b"%d" % count, element) == b":%d\r\n" % removed
        assert elements(shard, b"l") == (kept or None), (pattern, count, element)


@pytest.mark.usefixtures("node_sizes")
def test_linsert() -> None:
    shard = filled(b"a", b"b", b"a")
    assert call(shard, b"linsert", b"l", b"AFTER", b"a", b"x") == b":4\r\n"
    assert call(shard, b"linsert", b"l", b"before", b"a", b"y") == b":5\r\n"
    assert call(shard, b"linsert", b"l", b"before", b"zz", b"y") == b":-1\r\n"
    assert call(shard, b"linsert", b"none", b"before", b"a", b"y") == b":0\r\n"
    assert call(shard, b"linsert", b"none", b"middle", b"a", b"y") == b"-ERR syntax error\r\n"
    assert call(shard, b"linsert", b"l", b"after\x00junk", b"b", b"z") == b":6\r\n"
    assert elements(shard, b"l") == [b"y", b"a", b"x", b"b", b"z", b"a"]


# -- LPOS ---------------------------------------------------------------------------------


def reference_lpos(
    items: list[bytes], element: bytes, rank: int, count: int | None, maxlen: int
) -> list[int] | int | None:
    """LPOS as Redis's loop, with Redis's C overflow for the most negative rank spelled out."""
    indexes = list(range(len(items)))
    if rank < 0:
        indexes.reverse()
    if maxlen:
        indexes = indexes[:maxlen]
    hits = [i for i in indexes if items[i] == element]
    if rank == -(2**63):
        return (hits[:1] or [None])[0] if count is None else hits
    hits = hits[abs(rank) - 1 :]
    if count is None:
        return hits[0] if hits else None
    return hits if count == 0 else hits[:count]


@pytest.mark.usefixtures("node_sizes")
def test_lpos_matches_the_reference() -> None:
    items = [bytes([c]) for c in b"abcabcaab"]
    shard = filled(*items)
    for rank, count, maxlen in product(
        [1, 2, 3, 5, -1, -2, -4, -(2**63), 2**63 - 1], [None, 0, 1, 2, 10], [0, 1, 4, 100]
    ):
        argv = [b"lpos", b"l", b"a", b"RANK", b"%d" % rank, b"MAXLEN", b"%d" % maxlen]
        if count is not None:
            argv += [b"count", b"%d" % count]
        want = reference_lpos(items, b"a", rank, count, maxlen)
        if isinstance(want, list):
            expected = b"*%d\r\n" % len(want) + b"".join(b":%d\r\n" % i for i in want)
        else:
            expected = b"$-1\r\n" if want is None else b":%d\r\n" % want
        assert call(shard, *argv) == expected, (rank, count, maxlen)


def test_lpos_options_are_checked_in_order_before_the_key() -> None:
    shard = Shard(0)
    call(shard, b"set", b"s", b"v")
    not_integer = b"-ERR value is not an integer or out of range\r\n"
    assert call(shard, b"lpos", b"s", b"a", b"rank", b"0") == lists.RANK_ZERO
    assert call(shard, b"lpos", b"s", b"a", b"count", b"-1", b"rank", b"0") == lists.COUNT_NEGATIVE
    assert call(shard, b"lpos", b"s", b"a", b"rank", b"x") == not_integer
    assert call(shard, b"lpos", b"s", b"a", b"maxlen", b"x") == lists.MAXLEN_NEGATIVE
    assert call(shard, b"lpos", b"s", b"a", b"count") == b"-ERR syntax error\r\n"
    assert call(shard, b"lpos", b"s", b"a", b"bogus", b"1") == b"-ERR syntax error\r\n"
    assert call(shard, b"lpos", b"none", b"a") == b"$-1\r\n"
    assert call(shard, b"lpos", b"none", b"a", b"COUNT", b"0", protocol=3) == b"*0\r\n"
    assert call(shard, b"lpos", b"none", b"a", protocol=3) == b"_\r\n"


# -- LMOVE and LMPOP in one shard --------------------------------------------------------------


@pytest.mark.usefixtures("node_sizes")
def test_lmove_to_itself_rotates() -> None:
    shard = filled(b"a", b"b", b"c")
    assert call(shard, b"lmove", b"l", b"l", b"left", b"right") == b"$1\r\na\r\n"
    assert elements(shard, b"l") == [b"b", b"c", b"a"]
    assert call(shard, b"rpoplpush", b"l", b"l") == b"$1\r\na\r\n"
    assert elements(shard, b"l") == [b"a", b"b", b"c"]
    lone = filled(b"x")
    assert call(lone, b"lmove", b"l", b"l", b"right", b"left") == b"$1\r\nx\r\n"
    assert elements(lone, b"l") == [b"x"], "a one-element rotation keeps the list"


def test_lmove_checks_words_then_source_then_destination() -> None:
    shard = filled(b"a")
    call(shard, b"set", b"s", b"v")
    assert call(shard, b"lmove", b"s", b"s", b"up", b"left") == b"-ERR syntax error\r\n"
    assert call(shard, b"lmove", b"none", b"s", b"left", b"LEFT") == b"$-1\r\n"
    assert call(shard, b"lmove", b"l", b"s", b"left", b"left")[:10] == b"-WRONGTYPE"
    assert elements(shard, b"l") == [b"a"], "nothing moved"
    assert call(shard, b"lmove", b"l", b"m", b"Left\x00x", b"RIGHT") == b"$1\r\na\r\n"
    assert elements(shard, b"l") is None and elements(shard, b"m") == [b"a"]


@pytest.mark.usefixtures("node_sizes")
def test_lmpop_arguments_and_reply() -> None:
    shard = filled(b"a", b"b", b"c", key=b"l2")
    assert call(shard, b"lmpop", b"0", b"l", b"left") == lists.NUMKEYS_POSITIVE
    assert call(shard, b"lmpop", b"x", b"l", b"left") == lists.NUMKEYS_POSITIVE
    assert call(shard, b"lmpop", b"2", b"l", b"left") == b"-ERR syntax error\r\n"
    assert call(shard, b"lmpop", LLONG_MAX, b"l", b"left") == b"-ERR syntax error\r\n"
    assert call(shard, b"lmpop", b"1", b"l", b"up") == b"-ERR syntax error\r\n"
    assert call(shard, b"lmpop", b"1", b"l", b"left", b"count", b"0") == lists.COUNT_POSITIVE
    assert call(shard, b"lmpop", b"1", b"l", b"left", b"count") == b"-ERR syntax error\r\n"
    twice = [b"lmpop", b"1", b"l", b"left", b"count", b"1", b"count", b"1"]
    assert call(shard, *twice) == b"-ERR syntax error\r\n"
    assert call(shard, b"lmpop", b"1", b"none", b"left", protocol=3) == b"_\r\n"
    assert call(shard, b"lmpop", b"1", b"none", b"left") == b"*-1\r\n"
    reply = call(shard, b"lmpop", b"2", b"none", b"l2", b"right", b"COUNT", b"2")
    assert reply == b"*2\r\n$2\r\nl2\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n"
    reply = call(shard, b"lmpop", b"2", b"l2", b"none", b"left", b"count", b"9")
    assert reply == b"*2\r\n$2\r\nl2\r\n*1\r\n$1\r\na\r\n"
    assert elements(shard, b"l2") is None


def test_lmpop_key_positions() -> None:
    spec = COMMANDS["lmpop"]
    argv = [b"lmpop", b"2", b"a", b"b", b"left", b"count", b"3"]
    assert key_positions(spec, argv) == [2, 3]
    assert lists.lmpop_keys([b"lmpop", b"0", b"a", b"left"]) == []
    assert lists.lmpop_keys([b"lmpop", b"x", b"a", b"left"]) == []
    assert lists.lmpop_keys([b"lmpop", b"5", b"a", b"left"]) == []


# -- the coordinated plans -----------------------------------------------------------------


@dataclass
class Session:
    """What a plan reads of the acceptor's client: its reply encoder."""

    enc: type[Resp2]


class Cluster:
    """Four shards driven as the acceptor's coordinator drives them, marshal included."""

    def __init__(self) -> None:
        self.shards = [Shard(index) for index in range(4)]
        self.owner = shard_table(4)

    def shard_of(self, key: bytes) -> Shard:
        return self.shards[self.owner[slot_for_key(key)]]

    def call(self, *argv: bytes) -> bytes:
        [reply] = self.shard_of(argv[1]).execute_batch([[0, [argv[0], *argv[1:]]]])
        return reply

    def coordinate(self, plan: Plan, protocol: int) -> tuple[bytes, list[list]]:
        """Run a plan's rounds of reads, then its writes; (reply, the writes' argvs)."""
        ctx = 1 if protocol == 3 else 0
        while True:
            results = []
            for step in plan.reads:
                argv = marshal.loads(marshal.dumps(step.argv))
                [value] = self.shard_of(step.key).execute_batch([[ctx, argv]])
                results.append(marshal.loads(marshal.dumps(value)))
            decision = plan.decide(results)
            if isinstance(decision, Plan):
                plan = decision
                continue
            reply, writes = decision
            for step in writes:
                self.shard_of(step.key).execute_batch([[ctx, step.argv]])
            return reply, [step.argv for step in writes]

    def state(self, keys: list[bytes]) -> dict[bytes, object]:
        found = {}
        for key in keys:
            value = self.shard_of(key).dbs[0].data.get(key)
            found[key] = list(value) if isinstance(value, ListValue) else value
        return found


#: Keys on four different shards of a 4-shard server.
A, B, C, D = b"a", b"b", b"c", b"d"

SETUPS: dict[str, list[list[bytes]]] = {
    "lists": [[b"rpush", A, b"1", b"2", b"3"], [b"rpush", B, b"x"], [b"rpush", D, b"q", b"r"]],
    "strings": [[b"set", A, b"s"], [b"set", B, b"t"], [b"rpush", C, b"c1"]],
    "empty": [],
}

COORDINATED = [
    [b"lmove", A, B, b"left", b"right"],
    [b"lmove", A, B, b"RIGHT", b"left"],
    [b"lmove", A, C, b"right", b"right"],
    [b"lmove", C, A, b"left", b"left"],
    [b"lmove", C, B, b"left", b"left"],
    [b"rpoplpush", A, C],
    [b"rpoplpush", C, D],
    [b"lmpop", b"1", A, b"left"],
    [b"lmpop", b"3", C, D, A, b"right", b"count", b"2"],
    [b"lmpop", b"2", C, B, b"left", b"count", b"5"],
    [b"lmpop", b"3", D, A, B, b"left", b"count", b"1"],
    [b"lmpop", b"2", C, D, b"left"],
]


@pytest.mark.usefixtures("node_sizes")
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("setup", list(SETUPS))
def test_plans_do_what_the_native_command_does(setup: str, protocol: int) -> None:
    """Each coordinated command, planned over four shards, gives the reply and the end state
    that the same command gives on one shard holding every key."""
    for argv in COORDINATED:
        cluster, native = Cluster(), Shard(0)
        for command in SETUPS[setup]:
            cluster.call(*command)
            call(native, *command)
        spec = COMMANDS[argv[0].decode()]
        session = Session(encoder_for(protocol))
        assert spec.check is None or spec.check(session, argv) is None
        reply, writes = cluster.coordinate(spec.plan(session, argv), protocol)
        assert reply == call(native, *argv, protocol=protocol), (setup, argv)
        keys = [A, B, C, D]
        want = {key: elements(native, key) for key in keys}
        for key in keys:
            if native.dbs[0].data.get(key).__class__ is bytes:
                want[key] = native.dbs[0].data[key]
        assert cluster.state(keys) == want, (setup, argv)
        # The writes are plain list commands, so each shard's log replays them as they are.
        assert {w[0] for w in writes} <= {b"lpop", b"rpop", b"lpush", b"rpush"}


def test_lmpop_plan_reads_the_elements_of_a_later_key_in_a_second_round() -> None:
    cluster = Cluster()
    cluster.call(b"rpush", C, b"1", b"2", b"3")
    session = Session(Resp3)
    plan = lists.plan_lmpop(session, [b"lmpop", b"2", A, C, b"left", b"count", b"2"])
    assert [step.argv for step in plan.reads] == [
        [b"@lpeek", A, True, 2],
        [b"@lpeek", C, True, 0],
    ]
    reply, writes = cluster.coordinate(plan, 3)
    assert reply == b"*2\r\n$1\r\nc\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    assert writes == [[b"lpop", C, b"2"]]
    assert cluster.state([C]) == {C: [b"3"]}


def test_check_refuses_bad_words_in_the_acceptor() -> None:
    session = Session(Resp2)
    assert lists.check_lmove(session, [b"lmove", A, B, b"up", b"left"]) == b"-ERR syntax error\r\n"
    assert lists.check_lmove(session, [b"lmove", A, B, b"left", b"up"]) == b"-ERR syntax error\r\n"
    assert lists.check_lmpop(session, [b"lmpop", b"0", A, b"left"]) == lists.NUMKEYS_POSITIVE
    assert lists.check_lmpop(session, [b"lmpop", b"1", A, b"left"]) is None


@pytest.mark.usefixtures("node_sizes")
def test_peek_part() -> None:
    shard = filled(b"a", b"b", b"c")
    call(shard, b"set", b"s", b"v")
    peek = INTERNAL_PARTS[b"@lpeek"]
    db = shard.dbs[0]
    assert peek(shard, db, [b"@lpeek", b"none", True, 1]) is None
    assert peek(shard, db, [b"@lpeek", b"s", True, 1]) == (False, 0, [])
    assert peek(shard, db, [b"@lpeek", b"l", False, 2]) == (True, 3, [b"c", b"b"])
    assert peek(shard, db, [b"@lpeek", b"l", True, 0]) == (True, 3, [])
    assert elements(shard, b"l") == [b"a", b"b", b"c"], "a peek changes nothing"


# -- complexity -----------------------------------------------------------------------------


def test_ends_and_indexes_near_either_end_are_cheap_on_a_big_list() -> None:
    """O(1) at both ends, and walks from the nearer end: on a 2,000,000-element list, 2,000
    commands near the tail take far less than one walk over the list from the head would
    take each time (about 10 ms here per walk, so 20 s for a head-walking LRANGE)."""
    shard = Shard(0)
    shard.dbs[0].store(b"big", ListValue(b"%d" % i for i in range(2_000_000)))
    started = time.perf_counter()
    for _ in range(250):
        assert call(shard, b"lrange", b"big", b"-3", b"-1") == Resp2.bulk_array(
            [b"1999997", b"1999998", b"1999999"]
        )
        assert call(shard, b"lindex", b"big", b"-2") == b"$7\r\n1999998\r\n"
        assert call(shard, b"lset", b"big", b"-1", b"1999999") == b"+OK\r\n"
        assert call(shard, b"lrange", b"big", b"1999990", b"1999990") == b"*1\r\n$7\r\n1999990\r\n"
        assert call(shard, b"rpush", b"big", b"x") == b":2000001\r\n"
        assert call(shard, b"rpop", b"big") == b"$1\r\nx\r\n"
        assert call(shard, b"lpush", b"big", b"y") == b":2000001\r\n"
        assert call(shard, b"lpop", b"big") == b"$1\r\ny\r\n"
    assert time.perf_counter() - started < 2.0
