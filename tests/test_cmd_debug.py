"""DEBUG's subcommands against a redis-server that allows them, and our server at 1 and 4 shards.

DIGEST and DIGEST-VALUE must give redis-server's exact hex for the same data (they are how
two servers' datasets are compared); OBJECT the same fields, but for the address and the LRU
clock; RELOAD the same encodings afterwards (chosen again by the thresholds, as a load does).
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import DEBUG_ENABLED, RawConnection, ServerPool, ServerProcess, parse_reply

FILL = [
    ("SET", "s", "hello"),
    ("SET", "n", "12"),
    ("SET", "big", "x" * 100),
    ("SET", "ttl", "v", "EX", "1000"),
    ("RPUSH", "l", "a", "b", "c", "12", "-5"),
    ("HSET", "h", "f1", "v1", "f2", "22"),
    ("SADD", "ints", "3", "1", "2"),
    ("SADD", "words", "x", "y", "z"),
    ("ZADD", "z", "1.5", "a", "-2", "b", "inf", "c", "0", "d"),
    ("SELECT", "3"),
    ("SET", "other", "db"),
    ("SELECT", "0"),
]


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def server(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(request.param, DEBUG_ENABLED)


def _filled(server: ServerProcess) -> RawConnection:
    conn = RawConnection(server.port)
    conn.command("FLUSHALL")
    for command in FILL:
        conn.command(*command)
    return conn


def _digests(server: ServerProcess, case: str) -> bytes:
    with _filled(server) as conn:
        if case == "dataset":
            got = conn.command("DEBUG", "DIGEST")
        else:
            keys = ["s", "n", "big", "ttl", "l", "h", "ints", "words", "z", "nokey"]
            got = conn.command("DEBUG", "DIGEST-VALUE", *keys)
        conn.command("FLUSHALL")
        assert conn.command("DEBUG", "DIGEST") == b"+" + b"0" * 40 + b"\r\n"
    return got


@pytest.mark.parametrize("case", ["dataset", "values"])
def test_digests_are_redis_s(debug_oracle: ServerProcess, server: ServerProcess, case: str) -> None:
    assert _digests(server, case) == _digests(debug_oracle, case)


def _described(server: ServerProcess) -> dict[str, str]:
    """DEBUG OBJECT's lines, without the address and the LRU clock and idle time."""
    with _filled(server) as conn:
        lines = {
            key: conn.command("DEBUG", "OBJECT", key).decode()
            for key in ["s", "n", "big", "l", "h", "ints", "words", "z"]
        }
        assert conn.command("DEBUG", "OBJECT", "nokey") == b"-ERR no such key\r\n"
    return {
        key: re.sub(r"Value at:0x[0-9a-f]+ |lru:\d+ |lru_seconds_idle:\d+", "", line)
        for key, line in lines.items()
    }


def test_object_describes_keys_as_redis(debug_oracle: ServerProcess, server: ServerProcess) -> None:
    assert _described(server) == _described(debug_oracle)


@pytest.mark.parametrize("on_oracle", [True, False], ids=["redis", "ours"])
def test_reload_chooses_encodings_again(
    debug_oracle: ServerProcess, server: ServerProcess, on_oracle: bool
) -> None:
    with RawConnection((debug_oracle if on_oracle else server).port) as conn:
        conn.command("FLUSHALL")
        conn.command("CONFIG", "SET", "zset-max-listpack-entries", "4")
        try:
            conn.command("ZADD", "z", *[x for i in range(6) for x in (str(i), f"m{i}")])
            conn.command("ZREMRANGEBYRANK", "z", "0", "3")
            before = conn.command("OBJECT", "ENCODING", "z")
            digest = conn.command("DEBUG", "DIGEST")
            assert conn.command("DEBUG", "RELOAD") == b"+OK\r\n"
            after = conn.command("OBJECT", "ENCODING", "z")
            assert (before, after) == (b"$8\r\nskiplist\r\n", b"$8\r\nlistpack\r\n")
            assert conn.command("DEBUG", "DIGEST") == digest
            assert parse_reply(conn.command("ZRANGE", "z", "0", "-1")) == [b"m4", b"m5"]
        finally:
            conn.command("CONFIG", "SET", "zset-max-listpack-entries", "128")


@pytest.mark.parametrize("on_oracle", [True, False], ids=["redis", "ours"])
def test_set_active_expire_stops_the_sweep(
    debug_oracle: ServerProcess, server: ServerProcess, on_oracle: bool
) -> None:
    with RawConnection((debug_oracle if on_oracle else server).port) as conn:
        conn.command("FLUSHALL")
        assert conn.command("DEBUG", "SET-ACTIVE-EXPIRE", "0") == b"+OK\r\n"
        try:
            for i in range(20):
                conn.command("SET", f"k{i}", "v", "PX", "1")
            time.sleep(0.3)  # a few sweeps' worth: none may run
            assert conn.command("DBSIZE") == b":20\r\n"
        finally:
            conn.command("DEBUG", "SET-ACTIVE-EXPIRE", "1")
        deadline = time.monotonic() + 10
        while conn.command("DBSIZE") != b":0\r\n":
            assert time.monotonic() < deadline, "the sweep did not resume"
            time.sleep(0.05)


LIBRARY = "#!lua name={name}\nredis.register_function('{name}', function() return '{name}' end)"
RELOAD_SEQUENCES = {
    # functions.tcl, "FUNCTION - test debug reload different options"
    "functions_options": [
        ("FUNCTION", "LOAD", LIBRARY.format(name="test")),
        ("DEBUG", "RELOAD", "NOFLUSH"),
        ("FCALL", "test", "0"),
        ("DEBUG", "RELOAD", "NOFLUSH", "MERGE"),
        ("FCALL", "test", "0"),
        ("FUNCTION", "LIST"),
        ("DEBUG", "RELOAD", "NOSAVE", "NOFLUSH"),
        ("FCALL", "test", "0"),
    ],
    # functions.tcl, "FUNCTION - test debug reload with nosave and noflush"
    "functions_nosave_noflush": [
        ("FUNCTION", "LOAD", LIBRARY.format(name="test1")),
        ("DEBUG", "RELOAD"),
        ("FUNCTION", "LOAD", LIBRARY.format(name="test2")),
        ("DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"),
        ("FCALL", "test1", "0"),
        ("FCALL", "test2", "0"),
        ("DEBUG", "RELOAD", "NOSAVE"),
        ("FCALL", "test1", "0"),
        ("FCALL", "test2", "0"),
    ],
    "keys": [
        ("SET", "s", "v"),
        ("HSET", "h", "f1", "v1", "f2", "v2"),
        ("RPUSH", "l", "a", "b", "c"),
        ("PEXPIRE", "l", "100000"),
        ("SET", "timed", "x", "PX", "100000"),
        ("DEBUG", "RELOAD", "MERGE"),
        ("SET", "later", "1"),
        ("SET", "s", "changed"),
        ("DEL", "h"),
        ("DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"),
        ("MGET", "s", "later", "timed"),
        ("HGETALL", "h"),
        ("LRANGE", "l", "0", "-1"),
        ("PTTL", "l"),
        ("PTTL", "timed"),
        ("DEBUG", "RELOAD", "NOSAVE"),
        ("PTTL", "l"),
        ("MGET", "s", "later", "timed"),
        ("DEBUG", "RELOAD", "NOFLUSH", "NOSAVE", "FAST"),
        ("DEBUG", "RELOAD", "NOFLUSH", "MERGE"),
        ("DBSIZE",),
        ("FLUSHALL",),
        ("DEBUG", "RELOAD", "NOFLUSH"),
        ("DEBUG", "RELOAD", "NOSAVE", "NOFLUSH"),
        ("DBSIZE",),
    ],
}


def _reloaded(server: ServerProcess, sequence: list[tuple[str, ...]]) -> list[bytes]:
    with RawConnection(server.port) as conn:
        conn.command("FLUSHALL")
        conn.command("FUNCTION", "FLUSH")
        replies = [conn.command(*command) for command in sequence]
        conn.command("FUNCTION", "FLUSH")
    # a TTL survives each reload (its exact value moves with the clock)
    return [
        b"%d" % (parse_reply(reply) > 0) if command[0] == "PTTL" else reply
        for command, reply in zip(sequence, replies, strict=True)
    ]


@pytest.mark.parametrize("case", sorted(RELOAD_SEQUENCES))
def test_reload_options_as_redis(
    debug_oracle: ServerProcess, server: ServerProcess, case: str
) -> None:
    sequence = RELOAD_SEQUENCES[case]
    assert _reloaded(server, sequence) == _reloaded(debug_oracle, sequence)


def test_reload_duplicates_fail_safely(server: ServerProcess) -> None:
    """A key that exists already, without MERGE: redis-server panics; we answer the load's
    error, and every key is still there with its value."""
    with RawConnection(server.port) as conn:
        conn.command("FLUSHALL")
        keys = [f"k{i}" for i in range(20)]
        for key in keys:
            conn.command("SET", key, key)
        assert conn.command("DEBUG", "RELOAD") == b"+OK\r\n"
        conn.command("SET", "k0", "changed")
        for options in (["NOFLUSH"], ["NOSAVE", "NOFLUSH"]):
            reply = conn.command("DEBUG", "RELOAD", *options)
            assert reply == b"-ERR Error trying to load the RDB dump\r\n"
        assert parse_reply(conn.command("MGET", *keys)) == [
            b"changed",
            *[k.encode() for k in keys[1:]],
        ]
        assert conn.command("PING") == b"+PONG\r\n"
