"""The shard object: batches of runs in, replies out, with no processes or pipes."""

from __future__ import annotations

from shardserver.keyspace import now_ms
from shardserver.shard import Shard

RESP2_DB0, RESP3_DB0, RESP2_DB1 = 0, 1, 2


def run(shard: Shard, ctx: int, *commands: list[bytes]) -> bytes:
    [reply] = shard.execute_batch([[ctx, *commands]])
    return reply


def test_run_replies_are_concatenated_in_order() -> None:
    shard = Shard(0)
    reply = run(shard, RESP2_DB0, [b"set", b"k", b"v"], [b"get", b"k"], [b"get", b"nope"])
    assert reply == b"+OK\r\n$1\r\nv\r\n$-1\r\n"
    assert shard.commands_processed == 3
    assert shard.calls == {b"set": 1, b"get": 2}


def test_batch_gives_one_reply_per_run() -> None:
    shard = Shard(0)
    replies = shard.execute_batch(
        [
            [RESP2_DB0, [b"set", b"a", b"1"]],
            [RESP3_DB0, [b"get", b"zz"]],
            [RESP2_DB1, [b"get", b"a"]],
        ]
    )
    assert replies == [b"+OK\r\n", b"_\r\n", b"$-1\r\n"]


def test_databases_are_separate() -> None:
    shard = Shard(0)
    run(shard, RESP2_DB1, [b"set", b"a", b"1"])
    assert run(shard, RESP2_DB0, [b"get", b"a"]) == b"$-1\r\n"
    assert run(shard, RESP2_DB1, [b"get", b"a"]) == b"$1\r\n1\r\n"


def test_set_options() -> None:
    shard = Shard(0)
    assert run(shard, 0, [b"set", b"k", b"v", b"NX"]) == b"+OK\r\n"
    assert run(shard, 0, [b"set", b"k", b"w", b"nx"]) == b"$-1\r\n"
    assert run(shard, 0, [b"set", b"k", b"w", b"xx", b"get"]) == b"$1\r\nv\r\n"
    assert run(shard, 0, [b"set", b"n", b"w", b"xx"]) == b"$-1\r\n"
    assert run(shard, 0, [b"set", b"k", b"v", b"nx", b"xx"]) == b"-ERR syntax error\r\n"
    assert run(shard, 0, [b"set", b"k", b"v", b"ex", b"1", b"px", b"5"]) == (
        b"-ERR syntax error\r\n"
    )
    assert run(shard, 0, [b"set", b"k", b"v", b"ex", b"0"]) == (
        b"-ERR invalid expire time in 'set' command\r\n"
    )
    assert run(shard, 0, [b"set", b"k", b"v", b"ex", b"x"]) == (
        b"-ERR value is not an integer or out of range\r\n"
    )
    assert run(shard, 0, [b"set", b"k", b"v", b"keepttl", b"ex", b"1"]) == b"-ERR syntax error\r\n"


def test_set_deadlines() -> None:
    shard = Shard(0)
    before = now_ms()
    run(shard, 0, [b"set", b"k", b"v", b"px", b"1000"])
    deadline = shard.dbs[0].deadline_of(b"k")
    assert before + 1000 <= deadline <= now_ms() + 1000
    run(shard, 0, [b"set", b"k", b"w", b"keepttl"])
    assert shard.dbs[0].deadline_of(b"k") == deadline
    run(shard, 0, [b"set", b"k", b"w"])
    assert shard.dbs[0].deadline_of(b"k") is None
    run(shard, 0, [b"set", b"k", b"w", b"exat", b"1"])
    assert run(shard, 0, [b"get", b"k"]) == b"$-1\r\n"


def test_fan_out_parts_return_plain_values() -> None:
    shard = Shard(0)
    run(shard, 0, [b"set", b"a", b"1"], [b"set", b"b", b"1"])
    assert shard.execute_batch([[0, [b"@dbsize"]]]) == [2]
    assert shard.execute_batch([[0, [b"@flushall"]]]) == [2]
    assert shard.key_count() == 0


def test_a_failing_handler_costs_one_reply_not_the_shard() -> None:
    shard = Shard(0)
    shard.dbs[0].data[b"odd"] = 12345  # not a value type any command stores
    reply = run(shard, 0, [b"get", b"odd"], [b"set", b"x", b"1"])
    assert reply.startswith(b"-WRONGTYPE") or reply.startswith(b"-ERR")
    assert reply.endswith(b"+OK\r\n")


def test_expire_cycle_counts_removed_keys() -> None:
    shard = Shard(0, {"hz": 10})
    for i in range(200):
        shard.dbs[0].store(b"k%d" % i, b"v", deadline=1)
    total = 0
    for _ in range(100):
        total += shard.expire_cycle(budget_s=1.0)
    assert total == 200 and shard.expired_by_sweep == 200
