"""The shard object: batches of runs in, replies out, with no processes or pipes."""

from __future__ import annotations

import pytest

from shardserver.framing import CHUNK_SIZE
from shardserver.keyspace import now_ms
from shardserver.shard import HANDLERS, Pieces, Shard

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


def test_a_failing_handler_costs_one_reply_not_the_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler that raises, or returns something that is not a reply, answers that command
    with an error and nothing else: the rest of the run and later batches are served."""

    def raises(shard, db, argv, enc):
        raise KeyError("a bug")

    def returns_a_list(shard, db, argv, enc):
        return [b"not", b"a", b"reply"]

    monkeypatch.setitem(HANDLERS, b"get", raises)
    monkeypatch.setitem(HANDLERS, b"strlen", returns_a_list)
    shard = Shard(0)
    reply = run(
        shard, 0, [b"set", b"x", b"1"], [b"get", b"x"], [b"strlen", b"x"], [b"set", b"y", b"2"]
    )
    assert reply == (
        b"+OK\r\n-ERR internal error in shard 0: KeyError\r\n"
        b"-ERR internal error in shard 0: TypeError\r\n+OK\r\n"
    )
    assert run(shard, 0, [b"get", b"x"]) == b"-ERR internal error in shard 0: KeyError\r\n"
    assert run(shard, 0, [b"strlen", b"y"]) == b"-ERR internal error in shard 0: TypeError\r\n"
    monkeypatch.undo()
    assert run(shard, 0, [b"get", b"x"], [b"get", b"y"]) == b"$1\r\n1\r\n$1\r\n2\r\n"


def test_a_run_too_large_to_join_stays_in_pieces() -> None:
    """Replies of a run that together pass a chunk are left apart for the worker to chunk."""
    shard = Shard(0)
    value = b"v" * (CHUNK_SIZE // 3)
    run(shard, 0, [b"set", b"big", value])
    [small] = shard.execute_batch([[0, [b"get", b"big"], [b"get", b"big"]]])
    assert small.__class__ is bytes and len(small) == 2 * (len(value) + 12)
    [pieces] = shard.execute_batch([[0, *([[b"get", b"big"]] * 4)]])
    assert (
        isinstance(pieces, Pieces)
        and b"".join(pieces) == (b"$%d\r\n%b\r\n" % (len(value), value)) * 4
    )


def test_expire_cycle_counts_removed_keys() -> None:
    shard = Shard(0, {"hz": 10})
    for i in range(200):
        shard.dbs[0].store(b"k%d" % i, b"v", deadline=1)
    total = 0
    for _ in range(100):
        total += shard.expire_cycle(budget_s=1.0)
    assert total == 200 and shard.expired_by_sweep == 200
