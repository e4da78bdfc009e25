"""Several acceptors (``--acceptors 2``) look like one server from every connection.

Connections are spread by the kernel (SO_REUSEPORT); ``ServerProcess.client_on`` picks the
acceptor a client is served by, so each test can put its clients on both. What is checked:
data, client IDs, CLIENT LIST/KILL, INFO, CONFIG SET and SHUTDOWN across acceptors;
coordinated commands from both acceptors at once (the deadlock a scheduler bug once caused:
two LMOVEs, each holding one shard and waiting for the other); a shard killed and restarted
while both acceptors use it. The atomicity of multi-shard commands across acceptors is in
tests/test_atomicity.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import (
    DEBUG_ENABLED,
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    pid_alive,
    proc_descendants,
    wait_until,
)

from shardserver.slots import shard_table, slot_for_key

SHARDS = 4


@pytest.fixture(scope="module")
def server(module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(SHARDS, ["--acceptors", "2", *DEBUG_ENABLED])


def one_key_per_shard(prefix: str) -> list[str]:
    table = shard_table(SHARDS)
    found: dict[int, str] = {}
    i = 0
    while len(found) < SHARDS:
        found.setdefault(table[slot_for_key(f"{prefix}{i}".encode())], f"{prefix}{i}")
        i += 1
    return [found[shard] for shard in range(SHARDS)]


def test_connections_are_served_by_both_acceptors(server: ServerProcess) -> None:
    first, second = server.client_on(0), server.client_on(1)
    assert first.info("shards")["connection_acceptor"] == 0
    assert second.info("shards")["connection_acceptor"] == 1
    info = second.info()
    assert info["acceptors"] == 2
    assert info["process_id"] == server.pid == first.info("server")["process_id"]
    assert info["acceptor0"]["pid"] == server.pid
    assert info["acceptor1"]["pid"] != server.pid
    assert info["connected_clients"] >= 2
    first.close()
    second.close()


def test_script_and_library_changes_hold_everywhere_from_their_reply(
    server: ServerProcess,
) -> None:
    """A change made through one acceptor is applied by the other before its reply: the
    next command through the other finds it, and cannot be overtaken by it (a DELETE
    through acceptor 0, then a LOAD through acceptor 1, once left acceptor 1 with none)."""
    first, second = server.client_on(0), server.client_on(1)
    library = "#!lua name=everywhere\nredis.register_function('here', function() return 1 end)"
    for _ in range(20):
        first.function_load(library, replace=True)
        assert second.fcall("here", 0) == 1
        first.function_delete("everywhere")
        second.function_load(library)
        assert first.fcall("here", 0) == 1 and second.fcall("here", 0) == 1
        second.function_delete("everywhere")
        sha = first.script_load("return 'loaded'")
        assert second.evalsha(sha, 0) == b"loaded"
        second.script_flush()
        assert first.script_exists(sha) == [False]
    first.close()
    second.close()


def test_a_script_eval_cached_is_cached_everywhere_from_its_reply(
    server: ServerProcess,
) -> None:
    """EVAL caches its script (Redis: EVALSHA may follow at once): the first EVAL's reply
    waits until the other acceptor has it, so EVALSHA there never gets -NOSCRIPT."""
    first, second = server.client_on(0), server.client_on(1)
    for each in range(200):
        body = f"return {each}"
        assert first.eval(body, 0) == each
        assert second.evalsha(hashlib.sha1(body.encode()).hexdigest(), 0) == each
    first.close()
    second.close()


def test_what_one_acceptor_writes_the_other_reads(server: ServerProcess) -> None:
    first, second = server.client_on(0), server.client_on(1)
    first.flushall()
    first.set("s", "v")
    first.hset("h", mapping={"f": "1"})
    first.rpush("l", "a", "b")
    first.mset({key: key for key in one_key_per_shard("m")})
    assert second.get("s") == b"v"
    assert second.hgetall("h") == {b"f": b"1"}
    assert second.lrange("l", 0, -1) == [b"a", b"b"]
    assert second.dbsize() == 3 + SHARDS
    second.rename("s", "s2")
    assert first.get("s2") == b"v" and first.exists("s") == 0
    first.close()
    second.close()


def test_client_ids_list_and_kill_span_both_acceptors(server: ServerProcess) -> None:
    first, second = server.client_on(0), server.client_on(1)
    first.client_setname("on-zero")
    second.client_setname("on-one")
    ids = {first.client_id(), second.client_id()}
    assert len(ids) == 2
    listed = {entry["name"]: int(entry["id"]) for entry in first.client_list()}
    assert listed["on-zero"] == first.client_id() and listed["on-one"] == second.client_id()
    killed = second.client_id()
    assert first.client_kill_filter(_id=killed) == 1
    assert wait_until(lambda: killed not in {int(e["id"]) for e in first.client_list()}, 5)
    assert second.client_id() != killed  # redis-py reconnected: a new connection, a new ID
    first.close()


def test_config_set_through_one_acceptor_holds_on_the_other(server: ServerProcess) -> None:
    first, second = server.client_on(0), server.client_on(1)
    before = first.config_get("maxclients")["maxclients"]
    try:
        assert first.config_set("maxclients", "1234")
        assert wait_until(lambda: second.config_get("maxclients")["maxclients"] == "1234", 5)
    finally:
        first.config_set("maxclients", before)
    first.close()
    second.close()


def test_coordinated_moves_from_both_acceptors_neither_deadlock_nor_lose(
    server: ServerProcess,
) -> None:
    """LMOVE and SMOVE between shards, from clients on both acceptors at once: every
    command answers, and every element is still in exactly one place."""
    lists, sets = one_key_per_shard("list"), one_key_per_shard("set")
    setup = server.client()
    setup.delete(*lists, *sets)
    for key in lists:
        setup.rpush(key, *range(20))
    for n, key in enumerate(sets):
        setup.sadd(key, *(f"{n}:{i}" for i in range(20)))
    errors: list[str] = []
    moves = [0]
    deadline = time.monotonic() + 3.0

    def mover(number: int) -> None:
        client = server.client_on(number % 2, socket_timeout=10)
        rng = random.Random(number)
        try:
            while time.monotonic() < deadline:
                source, target = rng.choice(lists), rng.choice(lists)
                client.lmove(source, target, "LEFT", "RIGHT")
                source, target = rng.choice(sets), rng.choice(sets)
                member = client.srandmember(source)
                if member is not None:
                    client.smove(source, target, member)
                moves[0] += 1
        except redis.RedisError as problem:
            errors.append(f"mover {number}: {problem!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=mover, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    give_up = deadline + 20  # socket_timeout ends a stuck mover's wait well before this
    for thread in threads:
        thread.join(max(0.0, give_up - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a mover is stuck"
    assert not errors, errors
    assert moves[0] > 50
    assert sum(setup.llen(key) for key in lists) == 20 * SHARDS
    members = [m for key in sets for m in setup.smembers(key)]
    assert len(members) == len(set(members)) == 20 * SHARDS
    setup.close()


def test_a_killed_shard_comes_back_for_both_acceptors(clone_factory: ServerPool) -> None:
    server = clone_factory.start_clone(SHARDS, ["--acceptors", "2"])
    first, second = server.client_on(0), server.client_on(1)
    keys = one_key_per_shard("k")
    first.mset(dict.fromkeys(keys, "before"))
    victim = 1
    pid = first.info("shards")[f"shard{victim}"]["pid"]
    os.kill(pid, signal.SIGKILL)

    def back(client: redis.Redis) -> bool:
        try:
            shard = client.info("shards")[f"shard{victim}"]
            if shard["pid"] == pid or shard["restarts"] != 1:
                return False
            return bool(client.set(keys[victim], "after"))
        except redis.ResponseError:  # a command that was in flight when it died
            return False

    assert wait_until(lambda: back(first), 10), server.log_text()[-3000:]
    assert wait_until(lambda: back(second), 10), server.log_text()[-3000:]
    # Multi-shard commands (ticketed) flow again on every acceptor.
    expected = [b"after" if key == keys[victim] else b"before" for key in keys]
    assert first.mget(keys) == second.mget(keys) == expected
    for number, client in enumerate((first, second)):
        shard = client.info("shards")[f"shard{victim}"]
        assert shard["last_restart_reason"] == "killed_by_SIGKILL"
        assert client.mset(dict.fromkeys(keys, f"again{number}"))
    assert first.mget(keys) == [b"again1"] * SHARDS
    first.close()
    second.close()


@pytest.mark.parametrize("through", [0, 1])
def test_shutdown_nosave_through_either_acceptor_stops_everything_unsaved(
    clone_factory: ServerPool, tmp_path: Path, through: int
) -> None:
    # With save rules set, SHUTDOWN NOSAVE must write no snapshot: not from the acceptor
    # that got it, and not from the other one stopping after it (once a bug: the second
    # acceptor saved on its way out).
    args = ["--acceptors", "2", "--dir", str(tmp_path), "--save", "3600 1"]
    server = clone_factory.start_clone(SHARDS, args)
    family = [server.pid, *proc_descendants(server.pid)]
    assert len(family) == 1 + 1 + SHARDS  # acceptor 0, acceptor 1, the shards
    server.client().mset({"a": "1", "b": "2"})
    with contextlib.suppress(redis.ConnectionError):  # redis-py may retry on a closed socket
        server.client_on(through).shutdown(nosave=True)
    assert wait_until(lambda: not any(pid_alive(pid) for pid in family), 10), family
    assert not (tmp_path / "dump.rdb").exists()


def acceptor_of(conn: RawConnection) -> int:
    """Which acceptor serves a raw connection (after AUTH, where one is needed)."""
    info = conn.call("INFO", "shards").decode()
    return int(next(line for line in info.split("\r\n") if "connection_acceptor" in line)[20:])


def test_requirepass_set_through_one_acceptor_guards_the_other(server: ServerProcess) -> None:
    first = server.client_on(0)
    assert first.config_set("requirepass", "s3cret")
    try:
        guarded = set()
        for _ in range(64):  # until a fresh connection is refused on each acceptor
            with server.raw() as conn:
                refused = conn.command("PING").startswith(b"-NOAUTH")
                assert conn.command("AUTH", "s3cret") == b"+OK\r\n"
                if refused:
                    guarded.add(acceptor_of(conn))
            if guarded == {0, 1}:
                break
        assert guarded == {0, 1}
    finally:
        first.config_set("requirepass", "")
    first.close()


def test_debug_sleep_through_one_acceptor_stalls_the_other(server: ServerProcess) -> None:
    """As DEBUG SLEEP stalls redis-server, it stalls every shard, for every acceptor: a GET
    sent through the other acceptor during the sleep waits for its end."""
    sleeper = server.client_on(0).connection_pool.get_connection()
    other = server.client_on(1).connection_pool.get_connection()
    sleeper.send_command("DEBUG", "SLEEP", "2")
    deadline = time.monotonic() + 1.5
    stalled = False
    while not stalled and time.monotonic() < deadline:
        other.send_command("GET", "during")
        if other.can_read(timeout=0.3):
            assert other.read_response() is None
        else:
            stalled = True
            assert other.read_response() is None  # it comes once the sleep ends
    assert stalled, "GETs through the other acceptor kept answering during DEBUG SLEEP"
    assert sleeper.read_response() == b"OK"
    sleeper.disconnect()
    other.disconnect()


def test_flushall_and_save_through_one_acceptor_reach_everything(
    clone_factory: ServerPool, tmp_path: Path
) -> None:
    server = clone_factory.start_clone(SHARDS, ["--acceptors", "2", "--dir", str(tmp_path)])
    first, second = server.client_on(0), server.client_on(1)
    first.mset({key: key for key in one_key_per_shard("f")})
    assert second.save()
    assert (tmp_path / "dump.rdb").exists()
    assert first.lastsave() == second.lastsave()  # one snapshot state for the server
    assert first.info("persistence")["rdb_changes_since_last_save"] == 0
    assert second.flushall()
    assert first.dbsize() == 0
    text = server.log_text()
    assert text.count("acceptor 0 pid") == 1 and text.count("acceptor 1 pid") == 1
    assert all(text.count(f"shard {index} pid") == 1 for index in range(SHARDS))
    first.close()
    second.close()


def test_blocking_pops_woken_through_the_other_acceptor(server: ServerProcess) -> None:
    """A waiter on acceptor 0, pushes through acceptor 1: over one shard's key, over keys on
    several shards, and BZPOPMIN; CLIENT UNBLOCK through acceptor 1 ends a wait on 0."""
    waiter, pusher = server.client_on(0), server.client_on(1)
    keys = one_key_per_shard("bq")
    pusher.delete(*keys)
    for wait_on, pushed in (([keys[0]], keys[0]), (keys[:3], keys[2])):
        got: list = []
        thread = threading.Thread(target=lambda k=wait_on, out=got: out.append(waiter.blpop(k, 10)))
        thread.start()
        assert wait_until(lambda: pusher.info("clients")["blocked_clients"] == 1, 10)
        pusher.rpush(pushed, "v")
        thread.join(10)
        assert got == [(pushed.encode(), b"v")]
    got = []
    thread = threading.Thread(target=lambda: got.append(waiter.bzpopmin(keys[1:], 10)))
    thread.start()
    assert wait_until(lambda: pusher.info("clients")["blocked_clients"] == 1, 10)
    pusher.zadd(keys[3], {"m": 2})
    thread.join(10)
    assert got == [(keys[3].encode(), b"m", 2.0)]
    waiter_id = waiter.client_id()
    thread = threading.Thread(target=lambda: got.append(waiter.blpop(keys, 0)))
    thread.start()
    assert wait_until(lambda: pusher.info("clients")["blocked_clients"] == 1, 10)
    assert pusher.client_unblock(waiter_id) == 1
    thread.join(10)
    assert got[-1] is None
    waiter.close()
    pusher.close()


def test_client_pause_through_one_acceptor_holds_the_other(server: ServerProcess) -> None:
    admin, other = server.client_on(0), server.client_on(1)
    with RawConnection(server.port) as raw:
        while acceptor_of(raw) != 1:
            raw.close()
            raw = RawConnection(server.port)
        assert admin.client_pause(10_000, all=False)
        raw.send(encode_command("SET", "paused", "1"))
        with pytest.raises(TimeoutError):
            raw.read_reply(timeout=0.25)
        assert other.get("paused") is None
        assert other.client_unpause()
        assert raw.read_reply() == b"+OK\r\n"
    admin.close()
    other.close()
