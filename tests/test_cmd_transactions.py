"""MULTI, EXEC and DISCARD against a real redis-server, byte for byte, at 1 and 4 shards.

Each sequence is pipelined in one write on a fresh connection after FLUSHALL, to
redis-server and to redis-clone, and every reply must be identical: queue-time errors and
EXECABORT, nested MULTI, runtime errors in their places in the EXEC array, SELECT inside a
transaction, RESP3 replies inside EXEC, multi-key and fan-out commands across shards. The
keys ``a`` ``b`` ``c`` ``d`` lie on different shards of a 4-shard server, so at 4 shards the
transactions span shards (their atomicity is tests/test_atomicity.py's), conditional commands
(RENAME, MSETNX, SMOVE, LMOVE, COPY) included.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from conftest import (
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    flushed_replies,
)

from shardserver.slots import shard_table, slot_for_key

SEQUENCES: dict[str, list[list[str]]] = {
    "nested MULTI does not fail it": [["MULTI"], ["MULTI"], ["SET", "a", "1"], ["EXEC"]],
    "EXEC and DISCARD without MULTI": [["EXEC"], ["DISCARD"]],
    "wrong arity fails it": [["MULTI"], ["SET", "a"], ["SET", "a", "1"], ["EXEC"], ["GET", "a"]],
    "unknown command fails it": [["MULTI"], ["NOPE", "x"], ["EXEC"]],
    "unknown subcommand fails it": [["MULTI"], ["CLIENT", "NOPE"], ["EXEC"]],
    "subcommand arity fails it": [["MULTI"], ["CONFIG", "GET"], ["EXEC"]],
    "empty": [["MULTI"], ["EXEC"]],
    "runtime errors stay in place": [
        ["MULTI"],
        ["SET", "a", "1"],
        ["INCR", "a"],
        ["LPUSH", "a", "x"],
        ["GET", "a"],
        ["INCRBYFLOAT", "a", "x"],
        ["EXEC"],
    ],
    "SELECT moves what follows": [
        ["MULTI"],
        ["SELECT", "1"],
        ["SET", "b", "2"],
        ["SELECT", "99"],
        ["GET", "b"],
        ["EXEC"],
        ["GET", "b"],
        ["SELECT", "0"],
        ["GET", "b"],
    ],
    "DISCARD drops the queue": [
        ["MULTI"],
        ["SET", "a", "1"],
        ["DISCARD"],
        ["GET", "a"],
        ["PING"],
        ["EXEC"],
    ],
    "commands across shards": [
        ["MULTI"],
        ["MSET", "a", "1", "b", "2", "c", "3", "d", "4"],
        ["MGET", "a", "b", "c", "d", "e"],
        ["DEL", "a", "b"],
        ["EXISTS", "a", "b", "c", "d"],
        ["DBSIZE"],
        ["SADD", "s", "x", "y"],
        ["SUNIONSTORE", "{s}u", "s", "{s}t"],
        ["SCARD", "{s}u"],
        ["EXEC"],
    ],
    "the acceptor's own commands in place": [
        ["MULTI"],
        ["PING"],
        ["ECHO", "hello"],
        ["SET", "c", "v"],
        ["PING", "x"],
        ["EXEC"],
    ],
    "RESET ends it": [["MULTI"], ["SET", "a", "1"], ["RESET"], ["EXEC"], ["GET", "a"]],
    "conditional commands across shards": [
        ["SET", "a", "1"],
        ["SADD", "s", "x", "y"],
        ["MULTI"],
        ["RENAME", "a", "b"],
        ["GET", "b"],
        ["INCR", "b"],
        ["MSETNX", "c", "1", "d", "2"],
        ["MSETNX", "c", "9", "e", "9"],
        ["SMOVE", "s", "t", "x"],
        ["SMEMBERS", "t"],
        ["RENAME", "missing", "z"],
        ["COPY", "b", "c", "REPLACE"],
        ["SELECT", "1"],
        ["MSETNX", "c", "1", "d", "2"],
        ["SELECT", "0"],
        ["LPUSH", "l", "1", "2"],
        ["LMOVE", "l", "m", "LEFT", "RIGHT"],
        ["LRANGE", "m", "0", "-1"],
        ["MGET", "a", "b", "c", "d", "e"],
        ["EXEC"],
        ["MGET", "a", "b", "c", "d", "e"],
    ],
    "pipelined after EXEC": [
        ["MULTI"],
        ["RPUSH", "l", "1", "2", "3"],
        ["LRANGE", "l", "0", "-1"],
        ["EXEC"],
        ["LLEN", "l"],
        ["MULTI"],
        ["LPOP", "l", "2"],
        ["EXEC"],
    ],
}


def test_the_keys_span_shards() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in (b"a", b"b", b"c", b"d")}) >= 3


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_replies_match_redis(redis_server: ServerProcess, clone: ServerProcess, name: str) -> None:
    commands = SEQUENCES[name]
    assert flushed_replies(clone, commands) == flushed_replies(redis_server, commands)


@pytest.mark.parametrize(
    "name",
    [
        "runtime errors stay in place",
        "commands across shards",
        "conditional commands across shards",
    ],
)
def test_resp3_replies_match_redis(
    redis_server: ServerProcess, clone: ServerProcess, name: str
) -> None:
    commands = [*SEQUENCES[name][:-1], ["HSET", "h", "f", "v"], ["HGETALL", "h"], ["EXEC"]]
    assert flushed_replies(clone, commands, 3) == flushed_replies(redis_server, commands, 3)


def test_commands_answered_later_answer_in_place(clone: ServerProcess) -> None:
    # INFO and LASTSAVE ask the shards or the snapshot state; their replies still come in
    # their places in the EXEC array.
    with RawConnection(clone.port) as conn:
        conn.send(
            encode_command("MULTI")
            + encode_command("SET", "a", "1")
            + encode_command("INFO", "keyspace")
            + encode_command("GET", "a")
            + encode_command("EXEC")
        )
        assert [conn.read_reply() for _ in range(4)] == [b"+OK\r\n"] + [b"+QUEUED\r\n"] * 3
        reply = conn.read_reply()
    assert reply.startswith(b"*3\r\n+OK\r\n$")
    assert b"# Keyspace" in reply and reply.endswith(b"$1\r\n1\r\n")


def test_client_list_shows_a_transaction_in_progress(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as conn:
        assert conn.command("MULTI") == b"+OK\r\n"
        assert conn.command("SET", "a", "1") == b"+QUEUED\r\n"
        with RawConnection(clone.port) as other:
            listing = other.command("CLIENT", "LIST").decode()
        mine = next(line for line in listing.split("\n") if "cmd=set" in line)
        assert " flags=x " in mine and " multi=1 " in mine
        assert conn.command("DISCARD") == b"+OK\r\n"


#: WATCH over two connections: (connection, command); ("sleep", seconds) waits. Keys a and
#: b are on different shards at 4 shards.
WATCH_SEQUENCES: dict[str, list[tuple]] = {
    "another client's write": [
        (0, ["SET", "a", "1"]),
        (0, ["WATCH", "a"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["GET", "a"]),
        (0, ["EXEC"]),
    ],
    "untouched": [(0, ["WATCH", "a"]), (1, ["GET", "a"]), (0, ["MULTI"]), (0, ["EXEC"])],
    "its own write": [
        (0, ["WATCH", "a"]),
        (0, ["SET", "a", "1"]),
        (0, ["MULTI"]),
        (0, ["INCR", "a"]),
        (0, ["EXEC"]),
        (0, ["GET", "a"]),
    ],
    "a key on another shard": [
        (0, ["WATCH", "a", "b"]),
        (1, ["SET", "b", "x"]),
        (0, ["MULTI"]),
        (0, ["SET", "a", "1"]),
        (0, ["EXEC"]),
        (0, ["GET", "a"]),
    ],
    "inside MULTI": [(0, ["MULTI"]), (0, ["WATCH", "a"]), (0, ["PING"]), (0, ["EXEC"])],
    "UNWATCH": [
        (0, ["WATCH", "a"]),
        (0, ["UNWATCH"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "FLUSHALL of a missing key": [
        (0, ["WATCH", "a"]),
        (1, ["FLUSHALL"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "FLUSHALL of a key": [
        (0, ["SET", "a", "1"]),
        (0, ["WATCH", "a"]),
        (1, ["FLUSHALL"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "SWAPDB": [
        (0, ["SET", "a", "1"]),
        (0, ["WATCH", "a"]),
        (1, ["SWAPDB", "0", "1"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
        (1, ["SWAPDB", "0", "1"]),
    ],
    "DISCARD forgets": [
        (0, ["WATCH", "a"]),
        (0, ["MULTI"]),
        (0, ["DISCARD"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "EXECABORT forgets": [
        (0, ["WATCH", "a"]),
        (0, ["MULTI"]),
        (0, ["NOPE"]),
        (0, ["EXEC"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "an EXEC forgets": [
        (0, ["WATCH", "a"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "expiry": [
        (0, ["SET", "a", "1", "PX", "50"]),
        (0, ["WATCH", "a"]),
        ("sleep", 0.2),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "already expired when watched": [
        (0, ["SET", "a", "1", "PX", "20"]),
        ("sleep", 0.1),
        (0, ["WATCH", "a"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
    "a conditional command across shards": [
        (0, ["SET", "a", "1"]),
        (0, ["WATCH", "c"]),
        (0, ["MULTI"]),
        (0, ["RENAME", "a", "b"]),
        (0, ["EXEC"]),
        (0, ["WATCH", "b"]),
        (1, ["SET", "b", "2"]),
        (0, ["MULTI"]),
        (0, ["RENAME", "b", "a"]),
        (0, ["EXEC"]),
        (0, ["MGET", "a", "b"]),
    ],
    "writes that change nothing": [
        (0, ["SADD", "a", "x"]),
        (0, ["WATCH", "a", "b"]),
        (1, ["SADD", "a", "x"]),
        (1, ["SREM", "a", "y"]),
        (1, ["DEL", "b"]),
        (1, ["EXPIRE", "b", "10"]),
        (1, ["PERSIST", "a"]),
        (1, ["SETNX", "a", "v"]),
        (1, ["LPUSHX", "b", "v"]),
        (0, ["MULTI"]),
        (0, ["SCARD", "a"]),
        (0, ["EXEC"]),
    ],
    "a write that changes a set": [
        (0, ["SADD", "a", "x"]),
        (0, ["WATCH", "a"]),
        (1, ["SADD", "a", "y"]),
        (0, ["MULTI"]),
        (0, ["SCARD", "a"]),
        (0, ["EXEC"]),
    ],
    "another database": [
        (0, ["WATCH", "a"]),
        (1, ["SELECT", "1"]),
        (1, ["SET", "a", "2"]),
        (0, ["MULTI"]),
        (0, ["EXEC"]),
    ],
}


def watch_replies(server: ServerProcess, steps: list[tuple]) -> list[bytes]:
    with RawConnection(server.port) as first, RawConnection(server.port) as second:
        assert first.command("FLUSHALL") == b"+OK\r\n"
        conns = [first, second]
        out = []
        for who, what in steps:
            if who == "sleep":
                time.sleep(what)
                continue
            out.append(conns[who].command(*what))
        return out


@pytest.mark.parametrize("name", sorted(WATCH_SEQUENCES))
def test_watch_matches_redis(redis_server: ServerProcess, clone: ServerProcess, name: str) -> None:
    steps = WATCH_SEQUENCES[name]
    assert watch_replies(clone, steps) == watch_replies(redis_server, steps)


def increment_both(client: redis.Redis, watch: bool) -> int:
    """Add one to a and to b (on different shards) the optimistic way; the retries taken."""
    retries = 0
    while True:
        with client.pipeline(transaction=True) as pipe:
            try:
                if watch:
                    pipe.watch("a", "b")
                a, b = (int(v or 0) for v in client.mget("a", "b"))
                pipe.multi()
                pipe.set("a", a + 1)
                pipe.set("b", b + 1)
                pipe.execute()
                return retries
            except redis.WatchError:
                retries += 1


def race(server: ServerProcess, watch: bool, threads: int = 4, rounds: int = 40) -> list:
    with server.client() as client:
        client.delete("a", "b")
    clients = [server.client_on(i % server.acceptors()) for i in range(threads)]
    retries: list[int] = []

    def work(client: redis.Redis) -> None:
        retries.append(sum(increment_both(client, watch) for _ in range(rounds)))

    workers = [threading.Thread(target=work, args=(client,)) for client in clients]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert not worker.is_alive(), "a client is stuck"
    with server.client() as client:
        return [client.mget("a", "b"), retries]


@pytest.mark.parametrize("acceptors", [1, 2])
def test_optimistic_increments_across_shards_lose_nothing(
    clone_factory: ServerPool, acceptors: int
) -> None:
    server = clone_factory.start_clone(4, ["--acceptors", str(acceptors)])
    (a, b), retries = race(server, watch=True)
    assert (a, b) == (b"160", b"160")
    assert sum(retries) > 0, "the clients never collided: the test proves nothing"
    # The control: the same increments without WATCH lose some (the check can fail).
    for _ in range(5):
        (a, b), _ = race(server, watch=False)
        if int(a) < 160:
            break
    else:
        pytest.fail("unwatched increments never lost one: the race is not a race")
