"""The hash value class and the hash handlers, inside a plain :class:`Shard` (no processes).

What redis-server itself would answer is checked in test_cmd_hashes.py; here: the value
protocol every type implements (copy, plain form, memory, rebuild), the encoding's one-way
conversion by the thresholds, the random-field sampler's invariants, HRANDFIELD's and
HSCAN's guarantees, and HINCRBYFLOAT's log entry.
"""

from __future__ import annotations

import marshal
import random
import sys

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver import values
from shardserver.commands import hashes
from shardserver.commands.hashes import Hash
from shardserver.commands.table import COMMANDS
from shardserver.keyspace import now_ms
from shardserver.shard import Shard

SMALL = {"hash-max-listpack-entries": 4, "hash-max-listpack-value": 8}


def run(shard: Shard, *argv: bytes | str | int, resp3: bool = False) -> bytes:
    """One command through the shard's batch entry point; its encoded reply."""
    args = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
    return shard.execute_batch([[1 if resp3 else 0, [args[0].lower(), *args[1:]]]])[0]


def parse(reply: bytes) -> object:
    """A reply decoded by hiredis."""
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def stored(shard: Shard, key: bytes) -> object:
    return shard.dbs[0].lookup(key, now_ms())


# -- The value protocol ----------------------------------------------------------------------


def test_registered_as_the_hash_type() -> None:
    h = Hash({b"f": b"v"})
    assert values.TYPES["hash"] is Hash
    assert values.type_name(h) == b"hash"
    assert values.encoding(h) == "listpack"
    assert values.encoding(Hash({b"f": b"v"}, big=True)) == "hashtable"


def test_copy_is_independent_and_keeps_the_encoding() -> None:
    for big in (False, True):
        h = Hash({b"a": b"1", b"b": b"2"}, big)
        twin = values.copy(h)
        assert twin == h and twin is not h and twin.__class__ is Hash
        assert twin.encoding() == h.encoding()
        twin[b"c"] = b"3"
        del twin[b"a"]
        assert h == {b"a": b"1", b"b": b"2"}


def test_plain_form_round_trips_through_marshal() -> None:
    h = Hash({b"a": b"1", b"\x00": b"", b"z": b"x" * 100}, big=True)
    kind, plain = values.to_plain(h)
    assert kind == "hash"
    assert plain == (True, {b"a": b"1", b"\x00": b"", b"z": b"x" * 100})
    back = values.from_plain(marshal.loads(marshal.dumps((kind, plain))))
    assert back.__class__ is Hash and back == h and back.big is True
    assert list(back) == list(h)  # the listpack order survives
    small = values.TYPES["hash"].from_plain((False, {b"k": b"v"}))
    assert small.encoding() == "listpack" and small == {b"k": b"v"}


def test_from_plain_trusts_big_as_given() -> None:
    assert Hash.from_plain((True, {b"a": b"1"})).encoding() == "hashtable"
    many = {b"%d" % i: b"v" for i in range(1000)}
    assert Hash.from_plain((False, many)).encoding() == "listpack"


def test_memory_usage_counts_every_field_and_value() -> None:
    empty = Hash()
    h = Hash({b"f%d" % i: b"v" * 100 for i in range(50)})
    floor = sys.getsizeof({}) + sum(sys.getsizeof(f) + sys.getsizeof(v) for f, v in h.items())
    assert values.memory_usage(h) >= floor
    assert values.memory_usage(h) > values.memory_usage(empty) + 50 * 100
    big = Hash(h, big=True)
    before = big.memory_usage()
    big.random_field()  # builds the sampler, whose list is counted too
    assert big.memory_usage() >= before + 50 * 8


@pytest.mark.parametrize("size", [1, 63, 64, 65, 200])
def test_rebuild_replays_to_the_same_hash(size: int) -> None:
    h = Hash({b"f%d" % i: b"%d" % (i * 7) for i in range(size)})
    h[b"\r\n"] = b""
    commands = list(values.rebuild(b"key", h))
    assert all(cmd[0] == b"HSET" and cmd[1] == b"key" for cmd in commands)
    assert all(len(cmd) - 2 <= 2 * hashes.REBUILD_PAIRS for cmd in commands)
    assert len(commands) == -(-(size + 1) // hashes.REBUILD_PAIRS)
    shard = Shard(0)
    for cmd in commands:
        assert run(shard, *cmd).startswith(b":")
    again = stored(shard, b"key")
    assert again == h and list(again) == list(h)


# -- Encoding: listpack until a threshold is passed, then hashtable for ever --------------------


def test_defaults_apply_when_the_shard_has_no_thresholds() -> None:
    shard = Shard(0)
    assert "hash-max-listpack-entries" not in shard.settings
    run(shard, "hset", "h", "f", b"x" * 64)
    assert stored(shard, b"h").encoding() == "listpack"
    run(shard, "hset", "h", "g", b"x" * 65)
    assert stored(shard, b"h").encoding() == "hashtable"
    run(shard, "hset", "many", *[b"%d" % i for i in range(1024)])
    assert stored(shard, b"many").encoding() == "listpack"  # 512 fields: not more than 512
    run(shard, "hset", "many", "one", "more")
    assert stored(shard, b"many").encoding() == "hashtable"


@pytest.mark.parametrize(
    "command, encoding",
    [
        (["hset", "h", "f", "v", "g", b"x" * 9], "hashtable"),
        (["hset", "h", "a", b"x" * 9], "hashtable"),  # an existing field, a long value
        (["hset", "h", b"x" * 9, "v"], "hashtable"),
        (["hset", "h", "a", b"x" * 8], "listpack"),
        (["hmset", "h", "a", "1", "c", "2", "d", "3"], "listpack"),  # 4 fields
        (["hmset", "h", "c", "1", "d", "2", "e", "3"], "hashtable"),  # 5 fields
        (["hsetnx", "h", "a", b"x" * 9], "listpack"),  # a present field: nothing happens
        (["hsetnx", "h", "n", b"x" * 9], "hashtable"),
        (["hincrby", "h", b"x" * 9, "1"], "hashtable"),
        (["hincrbyfloat", "h", b"x" * 9, "1"], "hashtable"),
        (["hincrbyfloat", "h", "a", "1e9"], "hashtable"),  # the result is 10 bytes long
        (["hincrbyfloat", "h", "a", "0.5"], "listpack"),
        (["hdel", "h", "a"], "listpack"),
    ],
)
def test_conversion_by_thresholds(command: list, encoding: str) -> None:
    shard = Shard(0, SMALL)
    run(shard, "hset", "h", "a", "1", "b", "2")
    run(shard, *command)
    assert stored(shard, b"h").encoding() == encoding


def test_conversion_is_for_ever() -> None:
    shard = Shard(0, SMALL)
    run(shard, "hset", "h", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5")
    assert stored(shard, b"h").encoding() == "hashtable"
    assert run(shard, "hdel", "h", "a", "b", "c", "d") == b":4\r\n"
    assert stored(shard, b"h") == {b"e": b"5"}
    assert stored(shard, b"h").encoding() == "hashtable"


def test_lowered_threshold_converts_at_the_next_write() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", "a", "1", "b", "2", "c", "3")
    shard.settings["hash-max-listpack-entries"] = 2  # what CONFIG SET does
    run(shard, "hget", "h", "a")
    assert stored(shard, b"h").encoding() == "listpack"
    run(shard, "hset", "h", "a", "1")  # an update, no new field: Redis converts all the same
    assert stored(shard, b"h").encoding() == "hashtable"


def test_zero_entries_makes_every_hash_a_hashtable() -> None:
    shard = Shard(0, {"hash-max-listpack-entries": 0, "hash-max-listpack-value": 0})
    run(shard, "hset", "h", "", "")
    assert stored(shard, b"h").encoding() == "hashtable"


# -- Handlers ----------------------------------------------------------------------------------


def test_emptied_hash_is_deleted() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", "a", "1", "b", "2")
    assert run(shard, "hdel", "h", "a", "x", "b", "a") == b":2\r\n"
    assert b"h" not in shard.dbs[0].data
    assert run(shard, "exists", "h") == b":0\r\n"
    assert run(shard, "hdel", "h", "a") == b":0\r\n"


def test_writes_keep_the_deadline() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", "a", "1")
    run(shard, "expire", "h", "1000")
    run(shard, "hset", "h", "b", "2")
    run(shard, "hincrby", "h", "a", "5")
    run(shard, "hdel", "h", "b")
    assert shard.dbs[0].deadline_of(b"h") is not None
    run(shard, "hdel", "h", "a")
    run(shard, "hset", "h", "a", "1")
    assert shard.dbs[0].deadline_of(b"h") is None  # a new key, after the old one emptied


def test_expired_hash_is_gone_for_every_command() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", "a", "1")
    shard.dbs[0].set_deadline(b"h", now_ms() - 1)
    assert run(shard, "hget", "h", "a") == b"$-1\r\n"
    assert run(shard, "hset", "h", "b", "2") == b":1\r\n"
    assert stored(shard, b"h") == {b"b": b"2"}


def test_hset_counts_a_repeated_field_once() -> None:
    shard = Shard(0)
    assert run(shard, "hset", "h", "a", "1", "a", "2", "b", "3") == b":2\r\n"
    assert stored(shard, b"h") == {b"a": b"2", b"b": b"3"}


def test_hincrbyfloat_is_logged_as_hset_of_its_result() -> None:
    assert COMMANDS["hincrbyfloat"].propagate is hashes.propagate_hincrbyfloat
    shard = Shard(0)
    db = shard.dbs[0]
    argv = [b"hincrbyfloat", b"h", b"f", b"0.1"]
    reply = run(shard, *argv)
    assert reply == b"$3\r\n0.1\r\n"
    reply = run(shard, "hincrbyfloat", "h", "f", "0.2")
    assert reply == b"$3\r\n0.3\r\n"  # long double: not 0.30000000000000004
    logged = hashes.propagate_hincrbyfloat(shard, db, [b"hincrbyfloat", b"h", b"f", b"0.2"], reply)
    assert logged == [[b"HSET", b"h", b"f", b"0.3"]]
    error = run(shard, "hincrbyfloat", "h", "f", "x")
    assert (
        hashes.propagate_hincrbyfloat(shard, db, [b"hincrbyfloat", b"h", b"f", b"x"], error) == []
    )


def test_the_other_writes_are_logged_as_executed() -> None:
    for name in ("hset", "hmset", "hsetnx", "hdel", "hincrby"):
        assert COMMANDS[name].propagate is None
        assert "write" in COMMANDS[name].flags


def test_hrandfield_refuses_huge_negative_counts() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", "a", "1")
    limit = hashes.MAX_REPEATED_FIELDS
    assert run(shard, "hrandfield", "h", -(limit + 1)) == b"-ERR value is out of range\r\n"
    assert run(shard, "hrandfield", "h", "-9223372036854775807") == (
        b"-ERR value is out of range\r\n"
    )
    assert run(shard, "hrandfield", "h", "9223372036854775807") == b"*1\r\n$1\r\na\r\n"


# -- Random fields ------------------------------------------------------------------------------


def sampler_is_consistent(h: Hash) -> None:
    sampler = h._sampler
    if sampler is None:
        return
    assert len(sampler.fields) == len(set(sampler.fields)), "a field listed twice"
    assert set(sampler.fields) == set(h) | sampler.stale
    assert not sampler.stale & set(h)
    assert len(sampler.stale) <= len(h)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["put", "remove", "pick", "picks"]), st.integers(0, 12)),
        max_size=80,
    )
)
def test_sampler_stays_in_step_with_the_hash(steps: list[tuple[str, int]]) -> None:
    h = Hash({b"%d" % i: b"v" for i in range(6)}, big=True)
    for action, n in steps:
        field = b"%d" % n
        if action == "put":
            h.put(field, b"w")
        elif action == "remove":
            h.remove(field)
        elif h and action == "pick":
            assert h.random_field() in h
        elif h:
            assert set(h.random_fields(n + 1)) <= set(h)
        sampler_is_consistent(h)


def test_random_fields_reach_every_field() -> None:
    random.seed(1)
    for big in (False, True):
        h = Hash({b"%d" % i: b"v" for i in range(20)}, big)
        for i in range(0, 20, 2):
            h.remove(b"%d" % i)  # stale entries in a big hash's sampler
        seen = set(h.random_fields(2000))
        assert seen == set(h)
        assert {h.random_field() for _ in range(2000)} == set(h)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("count", [2, 10, 33, 34, 99])
def test_distinct_fields(big: bool, count: int) -> None:
    h = Hash({b"%d" % i: b"v" for i in range(100)}, big)
    chosen = h.distinct_fields(count)
    assert len(chosen) == len(set(chosen)) == count
    assert set(chosen) <= set(h)
    if not big:  # a listpack's sample comes in the listpack's order, as Redis gives it
        order = list(h)
        assert chosen == sorted(chosen, key=order.index)


def test_hrandfield_replies_through_the_shard() -> None:
    shard = Shard(0, SMALL)
    run(shard, "hset", "h", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6")
    h = stored(shard, b"h")
    assert h.encoding() == "hashtable"
    for resp3 in (False, True):
        reply = run(shard, "hrandfield", "h", "-7", "withvalues", resp3=resp3)
        if resp3:
            assert reply.startswith(b"*7\r\n*2\r\n")
        else:
            assert reply.startswith(b"*14\r\n")
        fields = parse(run(shard, "hrandfield", "h", "3"))
        assert len(set(fields)) == 3 and set(fields) <= set(h)
        assert run(shard, "hrandfield", "h", "6") == b"*6\r\n" + b"".join(
            b"$1\r\n%b\r\n" % f for f in h
        )


# -- HSCAN --------------------------------------------------------------------------------------


def scan_all(shard: Shard, key: str, *options: str) -> tuple[list[bytes], int]:
    """Every page of an HSCAN: (field, value, field, value ..., number of calls)."""
    cursor, items, calls = b"0", [], 0
    while True:
        cursor, page = parse(run(shard, "hscan", key, cursor, *options))
        items += page
        calls += 1
        if cursor == b"0":
            return items, calls


def test_hscan_of_a_listpack_is_one_page() -> None:
    shard = Shard(0)
    run(shard, "hset", "h", *[b"%d" % i for i in range(100)])
    items, calls = scan_all(shard, "h", "COUNT", "2")
    assert calls == 1
    assert items == [b"%d" % i for i in range(100)]
    assert run(shard, "hscan", "h", "12345") == run(shard, "hscan", "h", "0")


def test_hscan_of_a_hashtable_pages_and_returns_every_field_once() -> None:
    shard = Shard(0, SMALL)
    fields = {b"f%d" % i: b"%d" % i for i in range(50)}
    run(shard, "hset", "h", *[part for pair in fields.items() for part in pair])
    items, calls = scan_all(shard, "h", "COUNT", "7")
    assert calls == 8
    got = dict(zip(items[::2], items[1::2], strict=True))
    assert got == fields and len(items) == 100
    items, _ = scan_all(shard, "h", "MATCH", "f1*", "COUNT", "100")
    assert sorted(items[::2]) == sorted(f for f in fields if f.startswith(b"f1"))


def test_hscan_skips_fields_deleted_meanwhile() -> None:
    shard = Shard(0, SMALL)
    run(shard, "hset", "h", *[b"%d" % i for i in range(40)])  # 20 fields
    cursor, _ = parse(run(shard, "hscan", "h", "0", "COUNT", "5"))
    run(shard, "hdel", "h", *[b"%d" % i for i in range(0, 40, 2)][5:])
    run(shard, "hset", "h", "0", "x")  # keeps the hash alive if everything went
    items = []
    while cursor != b"0":
        cursor, page = parse(run(shard, "hscan", "h", cursor, "COUNT", "5"))
        items += page
    assert set(items[::2]) <= set(stored(shard, b"h"))
