"""MULTI, EXEC and DISCARD against a real redis-server, byte for byte, at 1 and 4 shards.

Each sequence is pipelined in one write on a fresh connection after FLUSHALL, to
redis-server and to redis-clone, and every reply must be identical: queue-time errors and
EXECABORT, nested MULTI, runtime errors in their places in the EXEC array, SELECT inside a
transaction, RESP3 replies inside EXEC, multi-key and fan-out commands across shards. The
keys ``a`` ``b`` ``c`` ``d`` lie on different shards of a 4-shard server, so at 4 shards the
transactions span shards (their atomicity is tests/test_atomicity.py's). The commands we do
not run inside MULTI yet are checked on their own below.
"""

from __future__ import annotations

import pytest
from conftest import RawConnection, ServerProcess, encode_command

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


def replies(server: ServerProcess, commands: list[list[str]], resp3: bool = False) -> list[bytes]:
    with RawConnection(server.port) as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        if resp3:
            assert conn.command("HELLO", "3").startswith(b"%")
        conn.send(b"".join(encode_command(*command) for command in commands))
        return [conn.read_reply() for _ in commands]


def test_the_keys_span_shards() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in (b"a", b"b", b"c", b"d")}) >= 3


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_replies_match_redis(redis_server: ServerProcess, clone: ServerProcess, name: str) -> None:
    commands = SEQUENCES[name]
    assert replies(clone, commands) == replies(redis_server, commands)


@pytest.mark.parametrize("name", ["runtime errors stay in place", "commands across shards"])
def test_resp3_replies_match_redis(
    redis_server: ServerProcess, clone: ServerProcess, name: str
) -> None:
    commands = [*SEQUENCES[name][:-1], ["HSET", "h", "f", "v"], ["HGETALL", "h"], ["EXEC"]]
    assert replies(clone, commands, resp3=True) == replies(redis_server, commands, resp3=True)


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


def test_a_conditional_command_across_shards_is_refused_when_queued(clone: ServerProcess) -> None:
    # Not yet run inside MULTI (it needs a coordination): refused, which fails the
    # transaction, so nothing of it runs. On one shard it runs as usual.
    with RawConnection(clone.port) as conn:
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        conn.command("SET", "a", "1")
        assert conn.command("MULTI") == b"+OK\r\n"
        assert conn.command("SET", "x", "1") == b"+QUEUED\r\n"
        reply = conn.command("RENAME", "a", "b")
        if clone.name.endswith("shards1"):
            assert reply == b"+QUEUED\r\n"
            assert conn.command("EXEC") == b"*2\r\n+OK\r\n+OK\r\n"
            assert conn.command("EXISTS", "a", "b", "x") == b":2\r\n"
        else:
            assert reply.startswith(b"-ERR 'rename' over keys on several shards")
            assert conn.command("EXEC").startswith(b"-EXECABORT")
            assert conn.command("EXISTS", "a", "b", "x") == b":1\r\n"


def test_client_list_shows_a_transaction_in_progress(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as conn:
        assert conn.command("MULTI") == b"+OK\r\n"
        assert conn.command("SET", "a", "1") == b"+QUEUED\r\n"
        with RawConnection(clone.port) as other:
            listing = other.command("CLIENT", "LIST").decode()
        mine = next(line for line in listing.split("\n") if "cmd=set" in line)
        assert " flags=x " in mine and " multi=1 " in mine
        assert conn.command("DISCARD") == b"+OK\r\n"
