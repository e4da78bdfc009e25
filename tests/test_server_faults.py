"""Faults a client or the machine can cause, against the real server: none costs a shard.

- a client that pipelines thousands of large replies and reads them slowly: every reply
  arrives, the acceptor's memory follows the client's reading pace, other clients are served,
  no shard dies;
- one reply larger than any frame, chunk or pipe buffer;
- a shard stopped with SIGSTOP: the other shards' keys and the acceptor's own commands are
  served as usual, fan-outs wait for it, and everything completes after SIGCONT;
- a shard killed outright: INFO counts the restart and says why.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import redis
from conftest import HOST, RawConnection, ServerPool, ServerProcess, encode_command, wait_until

from shardserver.persistence import rdb
from shardserver.slots import shard_table, slot_for_key

SHARDS = 4


def rss(pid: int) -> int:
    """Resident bytes of a process, from /proc."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shard_pids(server: ServerProcess) -> list[int]:
    info = server.client().info("shards")
    return [info[f"shard{index}"]["pid"] for index in range(info["shards"])]


def keys_by_shard(per_shard: int) -> dict[int, list[bytes]]:
    """A few keys owned by each shard of a SHARDS-shard server."""
    owner = shard_table(SHARDS)
    found: dict[int, list[bytes]] = {index: [] for index in range(SHARDS)}
    number = 0
    while min(map(len, found.values())) < per_shard:
        key = b"key:%d" % number
        found[owner[slot_for_key(key)]].append(key)
        number += 1
    return found


@pytest.fixture
def server(clone_factory: ServerPool) -> ServerProcess:
    return clone_factory.start_clone(shards=SHARDS)


def test_slow_reader_of_huge_pipelined_replies(server: ServerProcess) -> None:
    """2,000 pipelined GETs of a 1 MB value (2 GB of replies), read slowly."""
    client = server.client()
    value = os.urandom(1 << 20)
    client.set("big", value)
    pairs = {f"small:{i}": str(i) for i in range(200)}
    client.mset(pairs)
    before = shard_pids(server)
    count = 2000
    reply = b"$%d\r\n%b\r\n" % (len(value), value)
    flood = socket.create_connection((HOST, server.port))
    flood.sendall(encode_command("GET", "big") * count)
    pings: list[bool] = []
    done = threading.Event()

    def ping_meanwhile() -> None:
        other = server.client(socket_timeout=10)
        while not done.is_set():
            pings.append(other.ping())
            time.sleep(0.01)

    pinger = threading.Thread(target=ping_meanwhile)
    pinger.start()
    received = 0
    peak = 0
    mismatch = None
    pending = b""
    try:
        while received < count:
            data = flood.recv(1 << 20)
            assert data, "connection closed"
            pending += data
            while len(pending) >= len(reply):
                if pending[: len(reply)] != reply and mismatch is None:
                    mismatch = received
                pending = pending[len(reply) :]
                received += 1
            peak = max(peak, rss(server.pid))
            time.sleep(0.001)  # a slow reader
    finally:
        done.set()
        pinger.join()
        flood.close()
    assert mismatch is None, f"reply {mismatch} differs"
    # Unbounded, the acceptor would hold most of the 2 GB of replies at once.
    assert peak < 600 << 20, f"acceptor resident memory reached {peak >> 20} MB"
    assert pings and all(pings)
    assert client.mget(list(pairs)) == [v.encode() for v in pairs.values()]
    assert client.get("big") == value
    assert shard_pids(server) == before
    assert "restarting" not in server.log_text()


def test_a_reply_larger_than_every_buffer(server: ServerProcess) -> None:
    value = os.urandom(96 << 20)
    client = server.client()
    before = shard_pids(server)
    client.set("huge", value)
    assert client.get("huge") == value
    assert client.getrange("huge", -3, -1) == value[-3:]
    assert shard_pids(server) == before


def test_stopped_shard_stops_only_its_own_keys(server: ServerProcess) -> None:
    keys = keys_by_shard(3)
    client = server.client(socket_timeout=5)
    for owned in keys.values():
        for key in owned:
            client.set(key, key)
    stopped = 1
    pid = shard_pids(server)[stopped]
    waiting_get = RawConnection(server.port)
    waiting_dbsize = RawConnection(server.port)
    os.kill(pid, signal.SIGSTOP)
    try:
        waiting_get.send(encode_command("GET", keys[stopped][0]))
        waiting_dbsize.send(encode_command("DBSIZE"))
        for index, owned in keys.items():
            if index == stopped:
                continue
            for key in owned:
                assert client.get(key) == key
                assert client.set(key, key + b"!")
                assert client.get(key) == key + b"!"
        assert client.ping()
        assert client.client_id() > 0
        assert client.config_get("hz") == {"hz": "10"}
        with pytest.raises(TimeoutError):
            waiting_dbsize.read_reply(timeout=0.5)  # a fan-out waits for every shard
    finally:
        os.kill(pid, signal.SIGCONT)
    assert waiting_get.read_reply() == b"$%d\r\n%b\r\n" % (len(keys[stopped][0]), keys[stopped][0])
    assert waiting_dbsize.read_reply() == b":%d\r\n" % sum(map(len, keys.values()))
    waiting_get.close()
    waiting_dbsize.close()
    assert shard_pids(server)[stopped] == pid


def test_a_killed_shard_is_counted_with_its_reason(server: ServerProcess) -> None:
    client = server.client()
    victim = 2
    pid = shard_pids(server)[victim]
    os.kill(pid, signal.SIGKILL)

    def restarted() -> dict | None:
        try:
            info = server.client().info("shards")[f"shard{victim}"]
        except redis.ResponseError as problem:
            # An INFO that reached the shard as it died fails (its reply was lost with it).
            assert "shard 2 failed" in str(problem)
            return None
        return info if info["restarts"] == 1 and info["pid"] != pid else None

    info = wait_until(restarted, 10)
    assert info is not None, server.log_text()[-2000:]
    assert info["last_restart_reason"] == "killed_by_SIGKILL"
    assert client.info("shards")["shard0"]["restarts"] == 0
    assert client.set("after", "1") and client.dbsize() == 1


@pytest.mark.parametrize("command", ["BGSAVE", "SAVE"])
def test_writes_pipelined_after_a_save_are_not_in_it(
    clone_factory: ServerPool, tmp_path: Path, command: str
) -> None:
    """The snapshot is cut at SAVE's place in the command order, even within one read."""
    server = clone_factory.start_clone(shards=2, args=["--dir", str(tmp_path)])
    with RawConnection(server.port) as conn:
        conn.send(
            encode_command("SET", "k", "before")
            + encode_command(command)
            + encode_command("SET", "k", "after")
            + encode_command("SET", "new", "1")
        )
        assert conn.read_reply() == b"+OK\r\n"
        assert conn.read_reply().startswith(b"+")
        assert conn.read_reply() == b"+OK\r\n" and conn.read_reply() == b"+OK\r\n"
    dump = tmp_path / "dump.rdb"
    assert wait_until(dump.exists, 10)  # written whole, then renamed into place
    data = dump.read_bytes()
    saved = {key: value for _db, key, value, _deadline in rdb.read_dump(str(dump), data)}
    assert saved == {b"k": b"before"}


def test_waiters_on_a_killed_shard_get_an_error_and_others_carry_on(server: ServerProcess) -> None:
    """A client blocked on one shard's key and one blocked across shards, with that shard
    killed: both get the error of a command in flight; a waiter elsewhere is still served."""
    keys = keys_by_shard(1)
    victim_key, other_key = keys[1][0], keys[2][0]
    control = server.client()
    with (
        RawConnection(server.port) as alone,
        RawConnection(server.port) as across,
        RawConnection(server.port) as elsewhere,
    ):
        alone.send(encode_command("BLPOP", victim_key, "0"))
        across.send(encode_command("BLPOP", victim_key, other_key, "0"))
        elsewhere.send(encode_command("BLPOP", other_key, "0"))
        assert wait_until(lambda: control.info("clients")["blocked_clients"] == 3, 10)
        os.kill(shard_pids(server)[1], signal.SIGKILL)
        assert alone.read_reply().startswith(b"-ERR shard 1 failed")
        assert across.read_reply().startswith(b"-ERR shard 1 failed")
        assert control.info("clients")["blocked_clients"] == 1
        control.rpush(other_key, "v")
        assert elsewhere.read_reply() == b"*2\r\n$%d\r\n%b\r\n$1\r\nv\r\n" % (
            len(other_key),
            other_key,
        )
    assert wait_until(lambda: control.info("shards")["shard1"]["restarts"] == 1, 10)
