"""The append-only log replays to the same keyspace, whatever ran: every type, expiry included.

A shard with ``appendonly yes`` runs random sequences of writes of every family, on a clock the
test moves forward so that keys expire between commands (and are looked up, swept, pushed to
again after expiring). Its log is then loaded into a fresh shard, which must hold exactly the
same keys, values, encodings' content and deadlines. Besides, the log must grow with the
writes' effects: a list pushed to one element at a time logs one element per push.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver import shard as shard_module
from shardserver import values
from shardserver.keyspace import now_ms
from shardserver.persistence.loader import load
from shardserver.shard import Shard

KEYS = [b"a", b"b", b"{t}c"]
MEMBERS = [b"1", b"2", b"x", b"y"]
NUMBERS = [b"1", b"-3", b"2.5"]


def _settings(directory: Path) -> dict:
    return {
        "appendonly": "yes",
        "appendfsync": "no",
        "dir": str(directory),
        "appendfilename": "appendonly.aof",
        "shards": 1,
        "aof-layout": 1,
        "zset-max-listpack-entries": 2,
        "hash-max-listpack-entries": 2,
        "set-max-intset-entries": 2,
    }


key = st.sampled_from(KEYS)
member = st.sampled_from(MEMBERS)
number = st.sampled_from(NUMBERS)
members = st.lists(member, min_size=1, max_size=3)
small_ms = st.integers(min_value=1, max_value=30).map(lambda ms: b"%d" % ms)

WRITES = st.one_of(
    st.tuples(st.just(b"set"), key, member),
    st.tuples(st.just(b"set"), key, member, st.just(b"PX"), small_ms),
    st.tuples(st.just(b"append"), key, member),
    st.tuples(st.just(b"incrbyfloat"), key, number),
    st.tuples(st.just(b"pexpire"), key, small_ms),
    st.tuples(st.just(b"persist"), key),
    st.tuples(st.just(b"del"), key),
    st.tuples(st.just(b"rename"), key, key),
    st.tuples(st.just(b"move"), key, st.just(b"1")),
    st.builds(lambda k, m: (b"lpush", k, *m), key, members),
    st.builds(lambda k, m: (b"rpush", k, *m), key, members),
    st.tuples(st.just(b"lpop"), key),
    st.tuples(st.just(b"lmove"), key, key, st.just(b"LEFT"), st.just(b"RIGHT")),
    st.builds(lambda k, f, v: (b"hset", k, f, v), key, member, member),
    st.tuples(st.just(b"hincrbyfloat"), key, member, number),
    st.tuples(st.just(b"hdel"), key, member),
    st.builds(lambda k, m: (b"sadd", k, *m), key, members),
    st.tuples(st.just(b"spop"), key, st.sampled_from([b"1", b"2", b"10"])),
    st.tuples(st.just(b"smove"), key, key, member),
    st.tuples(st.just(b"sinterstore"), key, key, key),
    st.tuples(st.just(b"zadd"), key, number, member),
    st.tuples(st.just(b"zincrby"), key, number, member),
    st.tuples(st.just(b"zpopmin"), key),
    st.tuples(st.just(b"zunionstore"), key, st.just(b"2"), key, key),
)
STEPS = st.lists(
    st.tuples(WRITES, st.integers(min_value=0, max_value=12), st.sampled_from([0, 2])),
    min_size=1,
    max_size=30,
)


def _state(shard: Shard, now: int) -> list:
    """Every live key: type and plain value, deadline."""
    found = []
    for index, db in enumerate(shard.dbs):
        for key_, value in sorted(db.data.items()):
            deadline = db.deadline_of(key_)
            if deadline is not None and deadline <= now:
                continue
            found.append((index, key_, values.to_plain(value), deadline))
    return found


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS, seed=st.integers(min_value=0, max_value=2**32))
def test_replay_rebuilds_what_ran(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    steps: list,
    seed: int,
) -> None:
    directory = tmp_path_factory.mktemp("journal")
    # The fake clock runs an hour ahead of the real one, which the replay below loads at:
    # nothing live at the fake time can have expired at the real time, and both states
    # are compared at the fake time.
    clock = [now_ms() + 3_600_000]
    monkeypatch.setattr(shard_module, "now_ms", lambda: clock[0])
    random.seed(seed)  # SPOP's choices: logged as what they popped, whatever they were
    shard = Shard(0, _settings(directory))
    load(shard, None)
    for argv, wait_ms, ctx in steps:
        clock[0] += wait_ms
        shard.execute_batch([[ctx, list(argv)]])
        if wait_ms % 5 == 0:
            shard.expire_cycle(budget_s=1.0)  # the active sweep, now and then
        shard.persistence.flush()
    expected = _state(shard, clock[0])
    shard.persistence.close()
    monkeypatch.undo()
    again = Shard(0, _settings(directory))
    load(again, 1)
    assert _state(again, clock[0]) == expected
    again.persistence.close()


#: Sequences where logging the command line as it ran would replay differently.
DIRECTED = {
    "random pops": [
        (0, b"sadd", b"s", *MEMBERS, b"5", b"6"),
        (0, b"spop", b"s", b"2"),
        (0, b"spop", b"s"),
    ],
    "push onto an expired list": [
        (0, b"rpush", b"l", b"old"),
        (0, b"pexpire", b"l", b"5"),
        (10, b"rpush", b"l", b"new"),
    ],
    "swept, then recreated": [
        (0, b"hset", b"h", b"f", b"1"),
        (0, b"pexpire", b"h", b"5"),
        (10, b"sweep"),
        (0, b"hset", b"h", b"g", b"2"),
    ],
    "relative times": [
        (0, b"set", b"k", b"v", b"EX", b"100"),
        (0, b"pexpire", b"k", b"100000"),
        (0, b"incrbyfloat", b"f", b"0.1"),
        (0, b"hincrbyfloat", b"h", b"f", b"0.1"),
    ],
    "copy into another database": [
        (0, b"rpush", b"l", b"a", b"b"),
        (0, b"copy", b"l", b"l2", 3, True),
    ],
}


@pytest.mark.parametrize("name", sorted(DIRECTED))
def test_directed_sequences_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The fake clock runs an hour ahead of the real one, which the replay below loads at:
    # nothing live at the fake time can have expired at the real time, and both states
    # are compared at the fake time.
    clock = [now_ms() + 3_600_000]
    monkeypatch.setattr(shard_module, "now_ms", lambda: clock[0])
    shard = Shard(0, _settings(tmp_path))
    load(shard, None)
    for wait_ms, *argv in DIRECTED[name]:
        clock[0] += wait_ms
        if argv == [b"sweep"]:
            shard.expire_cycle(budget_s=1.0)
            shard.persistence.tick()
        else:
            shard.execute_batch([[0, list(argv)]])
        shard.persistence.flush()
    expected = _state(shard, clock[0])
    assert expected
    shard.persistence.close()
    monkeypatch.undo()
    again = Shard(0, _settings(tmp_path))
    load(again, 1)
    assert _state(again, clock[0]) == expected
    again.persistence.close()


def test_a_list_pushed_one_element_at_a_time_logs_one_element_per_push(tmp_path: Path) -> None:
    shard = Shard(0, _settings(tmp_path))
    load(shard, None)
    pushes = 20_000
    for _ in range(pushes // 1000):
        shard.execute_batch([[0, *([b"rpush", b"list", b"element"] for _ in range(1000))]])
        shard.persistence.flush()
    shard.persistence.close()
    (log,) = tmp_path.glob("*.incr")
    per_push = len(b"*3\r\n$5\r\nrpush\r\n$4\r\nlist\r\n$7\r\nelement\r\n")
    assert log.stat().st_size < pushes * per_push + 100  # linear: no copy of the list
    again = Shard(0, _settings(tmp_path))
    load(again, 1)
    assert len(again.dbs[0].data[b"list"]) == pushes
    again.persistence.close()
