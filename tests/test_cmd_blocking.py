"""Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP)
against a real redis-server, byte for byte, at 1 and 4 shards.

A scenario is a list of steps over a few raw connections: ``send`` a command without reading
(a client that blocks), ``call`` one and read its reply, ``read`` the reply a connection is
owed (a waiter woken, or timed out). Before a step that must find clients waiting, the
harness polls INFO's ``blocked_clients`` (as Redis's own tests do). Every reply of every
connection must be identical on both servers. The keys ``a`` ``b`` ``c`` ``d`` lie on four
different shards of a 4-shard server, so there the waits over several keys span shards
(the coordinated path of shardserver/blocked.py) and a single key's wait is the shard's own.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from conftest import RawConnection, ServerProcess, encode_command, wait_until

from shardserver.slots import shard_table, slot_for_key

#: (connection, verb, command): verb is "send", "call", "quiet" (a call whose reply is not
#: compared: HELLO names the connection's id), "read", or "blocked" (wait until this many
#: clients are blocked; command holds the count).
Step = tuple[int, str, list]


def _b(n: int) -> Step:
    return (0, "blocked", [n])


SCENARIOS: dict[str, list[Step]] = {
    "a push wakes waiters first come first served": [
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "send", ["BLPOP", "a", "0"]),
        _b(2),
        (2, "call", ["RPUSH", "a", "x", "y", "z"]),
        (0, "read", []),
        (1, "read", []),
        (2, "call", ["LRANGE", "a", "0", "-1"]),
    ],
    "the waiter is served before the pusher's next command": [
        (0, "send", ["BRPOP", "a", "0"]),
        _b(1),
        (1, "call", ["LPUSH", "a", "x"]),
        (1, "call", ["LLEN", "a"]),
        (1, "call", ["EXISTS", "a"]),
        (0, "read", []),
    ],
    "several keys: the one pushed wakes it": [
        (0, "send", ["BLPOP", "a", "b", "c", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "c", "v"]),
        (0, "read", []),
        (1, "call", ["RPUSH", "b", "w"]),
        (0, "call", ["BLPOP", "a", "b", "c", "0"]),
        (1, "call", ["EXISTS", "b", "c"]),
    ],
    "data at once: the first key in order": [
        (1, "call", ["RPUSH", "c", "1"]),
        (1, "call", ["RPUSH", "b", "2"]),
        (0, "call", ["BLPOP", "a", "b", "c", "1"]),
        (0, "call", ["BRPOP", "a", "b", "c", "1"]),
        (1, "call", ["SET", "a", "str"]),
        (1, "call", ["RPUSH", "d", "3"]),
        (0, "call", ["BLPOP", "a", "d", "1"]),
        (0, "call", ["BLPOP", "d", "a", "1"]),
    ],
    "timeouts": [
        (0, "call", ["BLPOP", "a", "b", "0.05"]),
        (0, "call", ["BRPOP", "a", "0.01"]),
        (0, "call", ["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.02"]),
        (0, "call", ["BRPOPLPUSH", "a", "c", "0.02"]),
        (0, "call", ["BLMPOP", "0.02", "2", "a", "c", "LEFT"]),
        (0, "call", ["BZPOPMIN", "a", "c", "0.02"]),
        (0, "call", ["BZPOPMAX", "a", "0.02"]),
        (0, "call", ["BZMPOP", "0.02", "1", "a", "MAX", "COUNT", "2"]),
        (0, "quiet", ["HELLO", "3"]),
        (0, "call", ["BLPOP", "a", "b", "0.02"]),
        (0, "call", ["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.02"]),
    ],
    "argument errors": [
        (0, "call", ["BLPOP", "a", "x"]),
        (0, "call", ["BLPOP", "a", "-1"]),
        (0, "call", ["BLPOP", "a", "1e100"]),
        (0, "call", ["BLPOP", "a", "inf"]),
        (0, "call", ["BLPOP", "a", "nan"]),
        (0, "call", ["BLPOP", "a", " 1"]),
        (0, "call", ["BLPOP", "a", "1_0"]),
        (0, "call", ["BLPOP", "a"]),
        (0, "call", ["BLMOVE", "a", "b", "UP", "LEFT", "x"]),
        (0, "call", ["BLMOVE", "a", "b", "LEFT", "LEFT", "x"]),
        (0, "call", ["BLMPOP", "x", "1", "a", "LEFT"]),
        (0, "call", ["BLMPOP", "0", "0", "a", "LEFT"]),
        (0, "call", ["BLMPOP", "0", "2", "a", "LEFT"]),
        (0, "call", ["BLMPOP", "0", "1", "a", "UP"]),
        (0, "call", ["BLMPOP", "0", "1", "a", "LEFT", "COUNT", "0"]),
        (0, "call", ["BZMPOP", "0", "1", "a", "MIN", "COUNT", "-1"]),
        (0, "call", ["BZMPOP", "0", "1", "a", "LEFT"]),
        (0, "call", ["SET", "s", "x"]),
        (0, "call", ["BLPOP", "s", "0"]),
        (0, "call", ["BZPOPMIN", "s", "0"]),
        (0, "call", ["BLMPOP", "0", "1", "s", "LEFT"]),
    ],
    "BLMOVE chains into a waiter of its destination": [
        (0, "send", ["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]),
        _b(1),
        (1, "send", ["BLPOP", "b", "0"]),
        _b(2),
        (2, "call", ["RPUSH", "a", "x"]),
        (0, "read", []),
        (1, "read", []),
        (2, "call", ["EXISTS", "a", "b"]),
    ],
    "BRPOPLPUSH onto the same key rotates": [
        (0, "send", ["BRPOPLPUSH", "a", "a", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "a", "1", "2"]),
        (0, "read", []),
        (1, "call", ["LRANGE", "a", "0", "-1"]),
    ],
    "BLMPOP with a count": [
        (0, "send", ["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "3"]),
        _b(1),
        (1, "call", ["RPUSH", "b", "1", "2", "3", "4"]),
        (0, "read", []),
        (1, "call", ["LRANGE", "b", "0", "-1"]),
    ],
    "sorted sets": [
        (0, "send", ["BZPOPMIN", "a", "0"]),
        _b(1),
        (1, "call", ["ZADD", "a", "2", "n", "1.5", "m"]),
        (0, "read", []),
        (0, "send", ["BZPOPMAX", "c", "b", "0"]),
        _b(1),
        (1, "call", ["ZADD", "c", "7", "q"]),
        (0, "read", []),
        (0, "send", ["BZMPOP", "0", "2", "b", "d", "MIN", "COUNT", "5"]),
        _b(1),
        (1, "call", ["ZADD", "d", "3", "x", "4", "y"]),
        (0, "read", []),
        (1, "call", ["ZRANGE", "a", "0", "-1", "WITHSCORES"]),
        (0, "quiet", ["HELLO", "3"]),
        (0, "call", ["BZPOPMIN", "a", "0"]),
    ],
    "RESP3 replies of served waiters": [
        (0, "quiet", ["HELLO", "3"]),
        (0, "send", ["BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "2"]),
        _b(1),
        (1, "call", ["RPUSH", "b", "1", "2", "3"]),
        (0, "read", []),
        (0, "send", ["BZMPOP", "0", "2", "c", "d", "MAX", "COUNT", "2"]),
        _b(1),
        (1, "call", ["ZADD", "d", "1", "x", "2.5", "y"]),
        (0, "read", []),
        (0, "send", ["BLPOP", "a", "c", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "c", "v"]),
        (0, "read", []),
        (0, "send", ["BLMOVE", "a", "b", "RIGHT", "LEFT", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "a", "w"]),
        (0, "read", []),
        (0, "call", ["BLPOP", "a", "0.01"]),
    ],
    "a wrong type does not serve the waiter": [
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "call", ["ZADD", "a", "1", "m"]),
        (1, "call", ["DEL", "a"]),
        (1, "call", ["RPUSH", "a", "x"]),
        (0, "read", []),
    ],
    "RENAME onto the waited key wakes it": [
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "d", "x"]),
        (1, "call", ["RENAME", "d", "a"]),
        (0, "read", []),
        (1, "call", ["EXISTS", "a", "d"]),
    ],
    "MOVE into the waiter's database wakes it": [
        (0, "call", ["SELECT", "1"]),
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "a", "x"]),
        (1, "call", ["MOVE", "a", "1"]),
        (0, "read", []),
    ],
    "SORT STORE wakes it": [
        (0, "send", ["BRPOP", "a", "0"]),
        _b(1),
        (1, "call", ["RPUSH", "{a}src", "3", "1", "2"]),
        (1, "call", ["SORT", "{a}src", "STORE", "a"]),
        (0, "read", []),
        (0, "send", ["BRPOP", "c", "0"]),
        _b(1),
        (1, "call", ["SORT", "{a}src", "DESC", "STORE", "c"]),
        (0, "read", []),
    ],
    "a push inside MULTI wakes it after EXEC": [
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "call", ["MULTI"]),
        (1, "call", ["RPUSH", "a", "x"]),
        (1, "call", ["RPUSH", "b", "y"]),
        (1, "call", ["EXEC"]),
        (0, "read", []),
        (1, "call", ["LRANGE", "b", "0", "-1"]),
    ],
    "a push and a pop inside one EXEC leave the waiter the rest": [
        (0, "send", ["BLPOP", "a", "0"]),
        _b(1),
        (1, "call", ["MULTI"]),
        (1, "call", ["RPUSH", "a", "x", "y"]),
        (1, "call", ["LPOP", "a"]),
        (1, "call", ["LLEN", "a"]),
        (1, "call", ["EXEC"]),
        (0, "read", []),
        (1, "call", ["EXISTS", "a"]),
    ],
    "inside MULTI nothing blocks": [
        (0, "call", ["MULTI"]),
        (0, "call", ["BLPOP", "a", "0"]),
        (0, "call", ["BLMOVE", "a", "b", "LEFT", "LEFT", "0"]),
        (0, "call", ["BRPOPLPUSH", "a", "b", "0"]),
        (0, "call", ["BZPOPMIN", "a", "b", "0"]),
        (0, "call", ["BLMPOP", "0", "2", "a", "b", "LEFT"]),
        (0, "call", ["RPUSH", "a", "1", "2"]),
        (0, "call", ["BLPOP", "b", "a", "0"]),
        (0, "call", ["BLMOVE", "a", "c", "LEFT", "LEFT", "0"]),
        (0, "call", ["EXEC"]),
        (0, "call", ["LRANGE", "c", "0", "-1"]),
    ],
    "CLIENT UNBLOCK": [
        (0, "call", ["CLIENT", "UNBLOCK", "abc"]),
        (0, "call", ["CLIENT", "UNBLOCK", "1", "MAYBE"]),
        (0, "call", ["CLIENT", "UNBLOCK", "999999"]),
        (0, "send", ["BLPOP", "a", "b", "0"]),
        _b(1),
        (1, "call", ["CLIENT", "UNBLOCK", "$0"]),
        (0, "read", []),
        (1, "call", ["CLIENT", "UNBLOCK", "$0"]),
        (0, "send", ["BZPOPMIN", "a", "0"]),
        _b(1),
        (1, "call", ["CLIENT", "UNBLOCK", "$0", "ERROR"]),
        (0, "read", []),
        (0, "call", ["PING"]),
    ],
}


def _client_id(conn: RawConnection) -> str:
    reply = conn.command("CLIENT", "ID")
    return reply[1:-2].decode()


def _blocked_clients(control: RawConnection) -> int:
    info = control.command("INFO", "clients").decode()
    for line in info.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":")[1])
    raise AssertionError("no blocked_clients in INFO")


def _await_blocked(control: RawConnection, count: int) -> bool:
    """Poll INFO until ``count`` clients are blocked."""
    return bool(wait_until(lambda: _blocked_clients(control) == count, timeout=5.0))


def run_scenario(server: ServerProcess, steps: list[Step]) -> list[tuple[int, bytes]]:
    """Every reply, tagged with its connection, in the order the steps read them."""
    control = RawConnection(server.port)
    control.command("FLUSHALL")
    conns = [RawConnection(server.port) for _ in range(3)]
    ids = [_client_id(conn) for conn in conns]
    out: list[tuple[int, bytes]] = []
    try:
        for who, verb, command in steps:
            conn = conns[who]
            command = [ids[int(arg[1:])] if str(arg).startswith("$") else arg for arg in command]
            if verb == "blocked":
                assert _await_blocked(control, command[0]), server.name
            elif verb == "send":
                conn.send(encode_command(*command))
            elif verb == "call":
                out.append((who, conn.command(*command)))
            elif verb == "quiet":
                conn.command(*command)
            else:
                out.append((who, conn.read_reply()))
    finally:
        for conn in conns:
            conn.close()
        control.close()
    return out


def test_keys_span_shards_at_four() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in (b"a", b"b", b"c", b"d")}) == 4


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_redis(
    name: str, clone: ServerProcess, redis_server: ServerProcess
) -> None:
    expected = run_scenario(redis_server, SCENARIOS[name])
    assert run_scenario(clone, SCENARIOS[name]) == expected


# -- behaviour beyond one reply ------------------------------------------------------------


def test_pipelined_commands_wait_behind_a_blocked_one(clone: ServerProcess) -> None:
    """Redis reads nothing more from a blocked client: PING after BLPOP answers only once
    the BLPOP has been served, and a push pipelined behind it cannot wake it."""
    with RawConnection(clone.port) as conn, RawConnection(clone.port) as other:
        other.command("DEL", "a", "b")
        conn.send(encode_command("BLPOP", "a", "0") + encode_command("PING"))
        wait_until(lambda: _blocked_clients(other) == 1, timeout=5.0)
        conn.send(encode_command("RPUSH", "b", "mine"))
        with pytest.raises(TimeoutError):
            conn.read_reply(timeout=0.3)
        assert other.command("EXISTS", "b") == b":0\r\n"
        assert other.command("RPUSH", "a", "x") == b":1\r\n"
        assert conn.read_reply() == b"*2\r\n$1\r\na\r\n$1\r\nx\r\n"
        assert conn.read_reply() == b"+PONG\r\n"
        assert conn.read_reply() == b":1\r\n"


def test_a_departed_waiter_takes_nothing(clone: ServerProcess) -> None:
    """A blocked client that disconnects is no longer served: the next push stays."""
    with RawConnection(clone.port) as control:
        control.command("DEL", "a", "b")
        for keys in (["a"], ["a", "b"]):
            conn = RawConnection(clone.port)
            conn.send(encode_command("BLPOP", *keys, "0"))
            wait_until(lambda: _blocked_clients(control) == 1, timeout=5.0)
            conn.close()
            wait_until(lambda: _blocked_clients(control) == 0, timeout=5.0)
            assert control.command("RPUSH", "a", "x") == b":1\r\n"
            assert control.command("LPOP", "a") == b"$1\r\nx\r\n"


def test_timeout_is_honoured_in_floating_seconds(clone: ServerProcess) -> None:
    client = redis.Redis(port=clone.port)
    client.delete("a", "b")
    for keys in (["a"], ["a", "b"]):
        started = time.monotonic()
        assert client.blpop(keys, 0.25) is None
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 2.0, elapsed


def test_waiters_on_several_shards_each_served_once(clone: ServerProcess) -> None:
    """Twenty clients wait over three keys; thirty pushes spread over the keys; every
    element popped once, none left behind beyond the ten extra."""
    client = redis.Redis(port=clone.port)
    client.delete("a", "b", "c")
    got: list[tuple[bytes, bytes]] = []
    lock = threading.Lock()

    def waiter() -> None:
        conn = redis.Redis(port=clone.port)
        popped = conn.blpop(["a", "b", "c"], 10)
        with lock:
            got.append(popped)
        conn.close()

    threads = [threading.Thread(target=waiter) for _ in range(20)]
    for thread in threads:
        thread.start()
    wait_until(lambda: client.info("clients")["blocked_clients"] == 20, timeout=10.0)
    for i in range(30):
        client.rpush("abc"[i % 3], f"v{i}")
    for thread in threads:
        thread.join(15)
    assert len(got) == 20 and None not in got
    left = sum(client.llen(key) for key in "abc")
    values = {value for _key, value in got}
    assert len(values) == 20 and left == 10
    remaining = {v for key in "abc" for v in client.lrange(key, 0, -1)}
    assert not values & remaining


def test_restore_onto_the_waited_key_wakes_it(clone: ServerProcess) -> None:
    client = redis.Redis(port=clone.port)
    client.delete("a", "d")
    client.rpush("d", "x", "y")
    payload = client.dump("d")
    client.delete("d")
    got: list = []
    thread = threading.Thread(
        target=lambda: got.append(redis.Redis(port=clone.port).blpop("a", 10))
    )
    thread.start()
    assert wait_until(lambda: client.info("clients")["blocked_clients"] == 1, timeout=10.0)
    assert client.restore("a", 0, payload)
    thread.join(10)
    assert got == [(b"a", b"x")]
    assert client.lrange("a", 0, -1) == [b"y"]
