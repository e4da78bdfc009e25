"""Persistence through real server processes: restarts, kill -9, shard death, redis-server.

Every test gets its own ``dir`` (tmp_path) and fresh servers from ``clone_factory``; a
restart is a new process on the same directory, possibly with another shard count.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import (
    ServerPool,
    ServerProcess,
    ServerStartError,
    free_port,
    proc_children,
    start_redis_in,
    wait_redis,
    wait_until,
)

AOF_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always"]


def _dir(tmp_path: Path) -> list[str]:
    return ["--dir", str(tmp_path)]


def _fill(client: redis.Redis, count: int = 300) -> dict[tuple[int, bytes], tuple[bytes, int]]:
    """Keys in databases 0 and 2, some with deadlines; returns {(db, key): (value, pttl)}."""
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"k{i}", f"v{i}", px=600_000 if i % 3 == 0 else None)
    pipe.execute()
    client.execute_command("SELECT", 2)
    client.set("in-db2", "x", ex=1000)
    client.incrbyfloat("in-db2-float", 2.5)
    client.execute_command("SELECT", 0)
    client.set("short", "gone soon", px=300)
    return _snapshot(client)


def _snapshot(client: redis.Redis) -> dict[tuple[int, bytes], tuple[bytes, int]]:
    state = {}
    for db in (0, 2):
        client.execute_command("SELECT", db)
        for key in client.keys("*"):
            state[(db, key)] = (client.get(key), client.pexpiretime(key))
    client.execute_command("SELECT", 0)
    return state


def _restart(
    pool: ServerPool, server: ServerProcess, shards: int, args: list[str]
) -> ServerProcess:
    server.stop()
    return pool.start_clone(shards, args)


@pytest.mark.parametrize(("before", "after"), [(1, 1), (4, 4), (4, 2)], ids=["1-1", "4-4", "4-2"])
def test_aof_restart_keeps_keys_values_deadlines(
    clone_factory: ServerPool, tmp_path: Path, before: int, after: int
) -> None:
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(before, args)
    written = _fill(server.client())
    time.sleep(0.4)  # "short" expires while the server runs or while it is down
    written.pop((0, b"short"))
    server = _restart(clone_factory, server, after, args)
    client = server.client()
    assert _snapshot(client) == written
    assert client.get("short") is None
    layouts = {p.name.split(".")[2] for p in tmp_path.glob("appendonly.aof.*.*.*.*")}
    assert layouts == {str(after)}


def test_rdb_restart_with_another_shard_count(clone_factory: ServerPool, tmp_path: Path) -> None:
    server = clone_factory.start_clone(4, _dir(tmp_path))
    client = server.client()
    written = _fill(client)
    assert client.save()
    written.pop((0, b"short"))
    time.sleep(0.4)
    server = _restart(clone_factory, server, 2, _dir(tmp_path))
    assert _snapshot(server.client()) == written


def test_snapshot_on_sigterm_when_save_rules_are_set(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*_dir(tmp_path), "--save", "3600 1"]
    server = clone_factory.start_clone(2, args)
    server.client().mset({"a": "1", "b": "2"})
    server.stop()  # SIGTERM
    assert (tmp_path / "dump.rdb").exists()
    server = clone_factory.start_clone(2, args)
    assert server.client().mget("a", "b") == [b"1", b"2"]
    client = server.client()
    client.set("c", "3")
    client.shutdown(nosave=True)  # redis-py takes the closed connection as success
    # Had it not stopped, "c" would be missing below without any NOSAVE having happened.
    assert wait_until(lambda: not server.alive(), 10), "SHUTDOWN NOSAVE did not stop the server"
    server = clone_factory.start_clone(2, args)
    assert server.client().get("c") is None


def _writer(port: int, name: str, acked: list, stop: threading.Event) -> None:
    client = redis.Redis(port=port, socket_timeout=5)
    i = 0
    while not stop.is_set():
        key = f"{name}:{i}"
        try:
            client.set(key, i)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
            if stop.is_set():
                return
            time.sleep(0.01)
            continue
        acked.append(key)
        i += 1


def _load(port: int, threads: int = 4) -> tuple[list[list[str]], threading.Event, list]:
    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=_writer, args=(port, f"w{n}", acked[n], stop), daemon=True)
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    return acked, stop, workers


def test_kill9_of_the_server_loses_no_acknowledged_write(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(4, args)
    acked, stop, workers = _load(server.port)
    wait_until(lambda: sum(map(len, acked)) > 2000, 20)
    os.killpg(server.pid, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(10)
    server.stop()
    server = clone_factory.start_clone(4, args)
    client = server.client()
    keys = [key for each in acked for key in each]
    assert len(keys) > 2000
    values = client.mget(keys)
    lost = [k for k, v in zip(keys, values, strict=True) if v is None]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"


def test_kill9_of_one_shard_loses_no_acknowledged_write(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(2, args)
    acked, stop, workers = _load(server.port)
    wait_until(lambda: sum(map(len, acked)) > 1000, 20)
    victim = proc_children(server.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in proc_children(server.pid) and len(proc_children(server.pid)) == 2, 10
    )
    time.sleep(0.3)
    stop.set()
    for worker in workers:
        worker.join(10)
    keys = [key for each in acked for key in each]
    values = server.client().mget(keys)
    lost = [k for k, v in zip(keys, values, strict=True) if v is None]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    assert "restarting it" in server.log_text()


def test_redis_server_loads_our_dump(clone_factory: ServerPool, tmp_path: Path) -> None:
    server = clone_factory.start_clone(4, _dir(tmp_path))
    written = _fill(server.client())
    written.pop((0, b"short"))
    server.client().save()
    server.stop()
    port = free_port()
    proc = start_redis_in(tmp_path, ["--port", str(port), "--save", "", "--appendonly", "no"])
    try:
        client = wait_redis(port)
        time.sleep(0.3)
        state = _snapshot(client)
        state.pop((0, b"short"), None)
        assert state == written
    finally:
        proc.kill()
        proc.wait()


def test_we_load_a_dump_written_by_redis_server(clone_factory: ServerPool, tmp_path: Path) -> None:
    port = free_port()
    proc = start_redis_in(tmp_path, ["--port", str(port), "--save", "", "--appendonly", "no"])
    try:
        client = wait_redis(port)
        client.set("plain", "v")
        client.set("number", 12345)
        client.set("negative", -7)
        client.set("compressed", "abc" * 200)
        client.set("ttl", "x", px=700_000)
        client.execute_command("SELECT", 2)
        client.set("db2", "y")
        client.execute_command("SELECT", 0)
        expected = _snapshot(client)
        client.save()
    finally:
        proc.kill()
        proc.wait()
    server = clone_factory.start_clone(2, _dir(tmp_path))
    assert _snapshot(server.client()) == expected


def test_damaged_files_stop_the_start_and_stay_untouched(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(1, args)
    server.client().mset({"a": "1", "b": "2"})
    server.client().save()
    server.stop()
    (log,) = tmp_path.glob("*.incr")
    good = log.read_bytes()
    # A tail cut mid-write loads (aof-load-truncated yes) and is trimmed.
    log.write_bytes(good + b"*3\r\n$3\r\nSET\r\n$1\r\nz")
    server = clone_factory.start_clone(1, args)
    assert server.client().mget("a", "b", "z") == [b"1", b"2", None]
    assert "short read" in server.log_text()
    server.stop()
    assert log.read_bytes() == good
    # With aof-load-truncated no it refuses; corruption in the middle always refuses.
    log.write_bytes(good + b"*3\r\n$3\r\nSET\r\n$1\r\nz")
    with pytest.raises(ServerStartError, match="truncated at offset"):
        clone_factory.start_clone(1, [*args, "--aof-load-truncated", "no"])
    corrupt = good.replace(b"$1\r\na", b"$7\r\na")
    log.write_bytes(corrupt)
    with pytest.raises(ServerStartError, match=rf"{log.name}: .*offset \d+"):
        clone_factory.start_clone(1, args)
    assert log.read_bytes() == corrupt
    dump = tmp_path / "dump.rdb"
    damaged = dump.read_bytes()[:-20] + b"\x00" * 20
    dump.write_bytes(damaged)
    with pytest.raises(ServerStartError, match=r"dump.rdb: .*offset"):
        clone_factory.start_clone(1, _dir(tmp_path))
    assert dump.read_bytes() == damaged


def test_bgsave_and_bgrewriteaof_under_load_keep_serving(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    args = ["--appendonly", "yes", "--appendfsync", "everysec", *_dir(tmp_path)]
    server = clone_factory.start_clone(2, args)
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(60_000):
        pipe.set(f"key:{i}", "x" * 20)
    pipe.execute()
    slowest = 0.0
    assert client.bgsave()
    assert client.bgrewriteaof()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        start = time.monotonic()
        client.set("probe", "1")
        info = client.info("persistence")
        slowest = max(slowest, time.monotonic() - start)
        if not info["rdb_bgsave_in_progress"] and not info["aof_rewrite_in_progress"]:
            break
    assert info["rdb_last_bgsave_status"] == "ok"
    assert client.lastsave()
    assert slowest < 0.4, f"a reply took {slowest:.3f} s during BGSAVE"
    client.set("after-rewrite", "yes")
    assert len(list(tmp_path.glob("appendonly.aof.2.*.base"))) == 2
    server = _restart(clone_factory, server, 2, args)
    assert server.client().dbsize() == 60_002
    assert server.client().get("after-rewrite") == b"yes"


def _type_writer(port: int, n: int, acked: list, stop: threading.Event) -> None:
    """Pushes element i to a list, a hash, a set and a sorted set of its own; i is acked once
    all four writes are."""
    client = redis.Redis(port=port, socket_timeout=5)
    i = 0
    while not stop.is_set():
        pipe = client.pipeline(transaction=False)
        pipe.rpush(f"list:{n}", i)
        pipe.hset(f"hash:{n}", f"f{i}", i)
        pipe.sadd(f"set:{n}", i)
        pipe.zadd(f"zset:{n}", {f"m{i}": i})
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
            if stop.is_set():
                return
            time.sleep(0.01)
            continue
        acked.append(i)
        i += 1


def test_kill9_keeps_every_acknowledged_element_of_every_type(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    """Containers grow one element per write; kill -9 in the middle (after a rewrite), then
    a restart with another shard count: every acknowledged element is there, in order."""
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(4, args)
    stop = threading.Event()
    acked: list[list[int]] = [[] for _ in range(4)]
    workers = [
        threading.Thread(target=_type_writer, args=(server.port, n, acked[n], stop), daemon=True)
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    wait_until(lambda: min(map(len, acked)) > 100, 20)
    server.client().bgrewriteaof()
    wait_until(lambda: min(map(len, acked)) > 300, 30)
    os.killpg(server.pid, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(10)
    server.stop()
    server = clone_factory.start_clone(2, args)
    client = server.client()
    for n, done in enumerate(acked):
        count = len(done)
        assert count > 300
        elements = client.lrange(f"list:{n}", 0, -1)
        assert elements[:count] == [b"%d" % i for i in range(count)]
        assert len(elements) <= count + 1  # one unacknowledged push may have landed
        fields = client.hgetall(f"hash:{n}")
        assert all(fields.get(b"f%d" % i) == b"%d" % i for i in range(count))
        members = client.smembers(f"set:{n}")
        assert {b"%d" % i for i in range(count)} <= members
        scores = dict(client.zrange(f"zset:{n}", 0, -1, withscores=True))
        assert all(scores.get(b"m%d" % i) == i for i in range(count))


def test_what_served_waiters_popped_stays_popped_after_a_restart(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    """Pops by blocked clients (one shard's key, and keys across shards) are in the
    append-only log as the writes they are."""
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    for keys in (["{q}a"], ["a", "b", "c"]):
        got: list = []
        waiter = threading.Thread(
            target=lambda k=keys, out=got: out.append(server.client().blpop(k, 10))
        )
        waiter.start()
        assert wait_until(lambda: client.info("clients")["blocked_clients"] == 1, 10)
        client.rpush(keys[-1], "first", "second")
        waiter.join(10)
        assert got == [(keys[-1].encode(), b"first")]
    server = _restart(clone_factory, server, 4, args)
    client = server.client()
    assert client.lrange("{q}a", 0, -1) == [b"second"]
    assert client.lrange("c", 0, -1) == [b"second"]


def test_a_cross_shard_smove_is_in_the_log(clone_factory: ServerPool, tmp_path: Path) -> None:
    """SMOVE between shards (``s`` and ``t`` are on shards 0 and 3 of 4) writes through its
    parts; both sides replay after a restart."""
    args = [*AOF_ALWAYS, *_dir(tmp_path)]
    server = clone_factory.start_clone(4, args)
    client = server.client()
    client.sadd("s", "a", "b")
    assert client.smove("s", "t", "a")
    assert client.smove("s", "t", "b")
    server = _restart(clone_factory, server, 4, args)
    client = server.client()
    assert client.exists("s") == 0
    assert client.smembers("t") == {b"a", b"b"}
