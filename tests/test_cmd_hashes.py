"""The hash commands (Redis's ``t_hash.c``) against a real redis-server, byte for byte.

Two layers:

- in a :class:`Shard` object, fed the same commands as a redis-server of this module's own:
  every reply must be byte-identical in RESP2 and RESP3, and after each scenario every
  hash's OBJECT ENCODING must be what redis-server reports (both run with the same
  thresholds);
- against the running server at 1 and 4 shards (`endpoint`, `clone`): the exact bytes of
  each reply shape, arity errors from the command table, keys spread over every shard, the
  thresholds set by CONFIG SET, HSCAN and HRANDFIELD over hashes too big for a listpack.

Random replies (HRANDFIELD with fewer fields asked than the hash has, or repeats) are
checked for validity, never for equality; hashtable-encoded hashes (whose order is Redis's
hash table's) are compared as sets of pairs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from conftest import (
    RawConnection,
    ServerPool,
    ServerProcess,
    encode_command,
    parse_reply,
    require_redis_server,
)

from shardserver import values
from shardserver.keyspace import now_ms
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

LLONG_MAX = b"9223372036854775807"
LLONG_MIN = b"-9223372036854775808"
STRING = b"str"
LONG = b"x" * 65

Argv = Sequence[bytes]


def c(*args: bytes | str | int) -> list[bytes]:
    """One command: str and int arguments become bytes."""
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


class Oracle:
    """A real redis-server and a fresh shard with the same thresholds, fed the same commands."""

    def __init__(self, port: int) -> None:
        self.resp2 = RawConnection(port)
        self.resp3 = RawConnection(port)
        assert self.resp3.command(b"HELLO", b"3").startswith(b"%")
        self.reset({})

    def reset(self, thresholds: dict[str, int]) -> None:
        """Empty both; both take the thresholds given (the rest at their defaults)."""
        settings = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 64}
        settings.update(thresholds)
        assert self.resp2.command(b"FLUSHALL") == b"+OK\r\n"
        for name, value in settings.items():
            assert self.resp2.command(b"CONFIG", b"SET", name, b"%d" % value) == b"+OK\r\n"
        self.shard = Shard(0, settings)

    def check(self, commands: Sequence[Argv], resp3: bool = False) -> list[bytes]:
        """Run the commands on both (pipelined; one batch) and assert identical replies."""
        conn = self.resp3 if resp3 else self.resp2
        conn.send(b"".join(encode_command(*argv) for argv in commands))
        expected = [conn.read_reply() for _ in commands]
        ctx = 1 if resp3 else 0
        got = self.shard.execute_batch([[ctx, [argv[0].lower(), *argv[1:]]] for argv in commands])
        wrong = [
            f"{list(argv)!r:.200}: redis {want!r:.300} != ours {have!r:.300}"
            for argv, want, have in zip(commands, expected, got, strict=True)
            if want != have
        ]
        assert not wrong, "\n".join(wrong)
        return got

    def check_encodings(self) -> None:
        """Every key's OBJECT ENCODING on redis-server is our value's encoding."""
        db = self.shard.dbs[0]
        keys = sorted(key for key in db.data if db.lookup(key, now_ms()) is not None)
        theirs = sorted(parse_reply(self.resp2.command(b"KEYS", b"*")))
        assert keys == theirs
        for key in keys:
            want = parse_reply(self.resp2.command(b"OBJECT", b"ENCODING", key))
            have = values.encoding(db.data[key]).encode()
            assert want == have, f"key {key!r}: redis {want!r}, ours {have!r}"


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """A redis-server of this module's own (its thresholds change); skipped when absent."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    oracle.resp2.close()
    oracle.resp3.close()
    server.stop()


SETUP = [c("set", STRING, "v"), c("hset", "h", "a", "1", "b", "2", "c", "3")]

# Each scenario runs after SETUP on empty databases, in RESP2 and in RESP3.
SCENARIOS: dict[str, list[list[bytes]]] = {
    "hset": [
        c("hset", "n", "f", "v"),
        c("hset", "n", "f", "w", "g", "x", "f", "y"),
        c("hset", "n", "", ""),
        c("hset", "n", b"\x00\r\n", b"\xff"),
        c("hset", "n", "a", "b", "c"),
        c("hset", STRING, "a", "b", "c"),  # the odd count is refused before the type
        c("hset", STRING, "a", "b"),
        c("hgetall", "n"),
        c("hset", "h", "a", "9", "d", "4"),
        c("hgetall", "h"),
    ],
    "hmset": [
        c("hmset", "n", "f", "v", "g", "w"),
        c("hmset", "n", "f", "v", "g"),
        c("hmset", STRING, "f", "v"),
        c("hmset", "n", "f", "z"),
        c("hgetall", "n"),
    ],
    "hsetnx": [
        c("hsetnx", "h", "a", "new"),
        c("hsetnx", "h", "z", "new"),
        c("hsetnx", "n", "f", "v"),
        c("hsetnx", STRING, "f", "v"),
        c("hgetall", "h"),
        c("hgetall", "n"),
    ],
    "reads": [
        c("hget", "h", "a"),
        c("hget", "h", "nope"),
        c("hget", "nokey", "a"),
        c("hget", STRING, "a"),
        c("hmget", "h", "a", "nope", "c", "a"),
        c("hmget", "nokey", "a", "b"),
        c("hmget", STRING, "a"),
        c("hlen", "h"),
        c("hlen", "nokey"),
        c("hlen", STRING),
        c("hstrlen", "h", "a"),
        c("hstrlen", "h", "nope"),
        c("hstrlen", "nokey", "a"),
        c("hstrlen", STRING, "a"),
        c("hexists", "h", "a"),
        c("hexists", "h", "nope"),
        c("hexists", "nokey", "a"),
        c("hexists", STRING, "a"),
    ],
    "whole hash": [
        c("hkeys", "h"),
        c("hvals", "h"),
        c("hgetall", "h"),
        c("hkeys", "nokey"),
        c("hvals", "nokey"),
        c("hgetall", "nokey"),
        c("hkeys", STRING),
        c("hvals", STRING),
        c("hgetall", STRING),
    ],
    "listpack order": [
        c("hset", "o", "z", "1", "y", "2", "x", "3"),
        c("hset", "o", "y", "changed"),
        c("hdel", "o", "z"),
        c("hset", "o", "z", "back", "w", "4"),
        c("hkeys", "o"),
        c("hvals", "o"),
        c("hgetall", "o"),
        c("hscan", "o", "0"),
        c("hrandfield", "o", "100", "withvalues"),
    ],
    "hdel": [
        c("hdel", "h", "a", "nope", "a"),
        c("hdel", "nokey", "a"),
        c("hdel", STRING, "a"),
        c("hdel", "h", "b", "c", "d"),
        c("exists", "h"),
        c("type", "h"),
        c("hlen", "h"),
        c("hset", "h", "again", "1"),
        c("hgetall", "h"),
    ],
    "hincrby": [
        c("hincrby", "n", "f", "5"),
        c("hincrby", "n", "f", "-7"),
        c("hincrby", "h", "a", LLONG_MAX),
        c("hincrby", "h", "a", "0"),
        c("hincrby", "h", "b", LLONG_MIN),
        c("hincrby", "h", "c", "-3"),
        c("hincrby", "h", "c", LLONG_MIN),
        c("hset", "h", "m", LLONG_MAX, "l", LLONG_MIN),
        c("hincrby", "h", "m", "1"),
        c("hincrby", "h", "m", "0"),
        c("hincrby", "h", "m", "-1"),
        c("hincrby", "h", "l", "-1"),
        c("hincrby", "h", "l", LLONG_MAX),
        c("hincrby", "h", "q", LLONG_MIN),
        c("hgetall", "h"),
        c("hgetall", "n"),
    ],
    "hincrby arguments": [
        c("hincrby", "h", "a", "x"),
        c("hincrby", "h", "a", ""),
        c("hincrby", "h", "a", "1.0"),
        c("hincrby", "h", "a", "+1"),
        c("hincrby", "h", "a", "01"),
        c("hincrby", "h", "a", "-0"),
        c("hincrby", "h", "a", " 1"),
        c("hincrby", "h", "a", "9223372036854775808"),
        c("hincrby", STRING, "a", "x"),  # the increment is checked before the type
        c("hincrby", STRING, "a", "1"),
        c("hincrby", "nokey", "a", "x"),
        c("exists", "nokey"),
    ],
    "hincrby on a field not an integer": [
        c("hset", "n", "s", " 1", "t", "1 ", "u", "abc", "v", "", "w", "1.5", "x", "01"),
        c("hset", "n", "y", "-0", "z", "+1", "big", "9223372036854775808", "e", "1e3"),
        *[c("hincrby", "n", f, "1") for f in "stuvwxyze"],
        c("hincrby", "n", "big", "1"),
        c("hgetall", "n"),
    ],
    "hincrbyfloat": [
        c("hincrbyfloat", "n", "f", "0.1"),
        c("hincrbyfloat", "n", "f", "0.2"),
        c("hincrbyfloat", "n", "f", "-0.3"),
        c("hincrbyfloat", "n", "f", "1e3"),
        c("hincrbyfloat", "n", "f", "3.0e-2"),
        c("hincrbyfloat", "n", "f", "0x10"),
        c("hincrbyfloat", "n", "f", ".5"),
        c("hincrbyfloat", "n", "f", "5."),
        c("hincrbyfloat", "n", "f", "10.50"),
        c("hincrbyfloat", "h", "a", "1.5"),
        c("hincrbyfloat", "h", "z", "-1e400"),
        c("hincrbyfloat", "h", "y", "1e400"),
        c("hincrbyfloat", "h", "x", "5.0e-4951"),
        c("hset", "h", "i", LLONG_MAX),
        c("hincrbyfloat", "h", "i", "1"),
        c("hincrbyfloat", "h", "i", "-1"),
        c("hgetall", "n"),
        c("hmget", "h", *"abcixyz"),  # a hashtable now (long values): its order is Redis's own
    ],
    "hincrbyfloat errors": [
        c("hincrbyfloat", "h", "a", "x"),
        c("hincrbyfloat", "h", "a", ""),
        c("hincrbyfloat", "h", "a", " 1"),
        c("hincrbyfloat", "h", "a", "1 "),
        c("hincrbyfloat", "h", "a", "1e5000"),
        c("hincrbyfloat", "h", "a", "1e-5000"),
        c("hincrbyfloat", "h", "a", "nan"),
        c("hincrbyfloat", "h", "a", "inf"),
        c("hincrbyfloat", "h", "a", "-infinity"),
        c("hincrbyfloat", STRING, "a", "x"),
        c("hincrbyfloat", STRING, "a", "inf"),
        c("hincrbyfloat", STRING, "a", "1"),
        c("hincrbyfloat", "nokey", "a", "inf"),
        c("exists", "nokey"),
        c("hset", "n", "s", " 1", "t", "1 ", "u", "abc", "v", "", "w", "inf", "x", "nan"),
        *[c("hincrbyfloat", "n", f, "1") for f in "stuvwx"],
        c("hset", "n", "m", "1e308"),
        c("hincrbyfloat", "n", "m", "1e308"),
        c("hmget", "n", *"stuvwxm"),
    ],
    "hrandfield": [
        c("hrandfield", "nokey"),
        c("hrandfield", "nokey", "5"),
        c("hrandfield", "nokey", "-5", "withvalues"),
        c("hrandfield", "nokey", "0"),
        c("hrandfield", STRING),
        c("hrandfield", STRING, "0"),
        c("hrandfield", STRING, "1", "withvalues"),
        c("hrandfield", "h", "0"),
        c("hrandfield", "h", "0", "withvalues"),
        c("hrandfield", "h", "3"),
        c("hrandfield", "h", "4", "WITHVALUES"),
        c("hrandfield", "h", LLONG_MAX),
        c("hset", "one", "f", "v"),
        c("hrandfield", "one"),
        c("hrandfield", "one", "1"),
        c("hrandfield", "one", "-3"),
        c("hrandfield", "one", "-3", "withvalues"),
        c("hrandfield", "one", "1", b"withvalues\x00junk"),
    ],
    "hrandfield arguments": [
        c("hrandfield", "h", "x"),
        c("hrandfield", "h", ""),
        c("hrandfield", "h", "1.5"),
        c("hrandfield", "h", "-0"),
        c("hrandfield", "h", "+1"),
        c("hrandfield", "h", "1", "withvalue"),
        c("hrandfield", "h", "1", "withvalues", "x"),
        c("hrandfield", "h", "1", "x", "y"),
        c("hrandfield", "h", LLONG_MIN),
        c("hrandfield", "h", LLONG_MIN, "withvalues"),
        c("hrandfield", "h", "9223372036854775808"),
        c("hrandfield", "h", "4611686018427387904", "withvalues"),
        c("hrandfield", "h", "-4611686018427387904", "withvalues"),
        c("hrandfield", "h", "4611686018427387903", "withvalues"),
        c("hrandfield", "nokey", "x"),
        c("hrandfield", "nokey", "0", "x"),
        c("hrandfield", "nokey", LLONG_MIN),
        c("hrandfield", STRING, "x"),
        c("hrandfield", STRING, "1", "x"),
        c("hrandfield", STRING, LLONG_MIN),
        c("hrandfield", STRING, "-4611686018427387904", "withvalues"),
    ],
    "hscan": [
        c("hscan", "h", "0"),
        c("hscan", "h", "0", "COUNT", "1"),
        c("hscan", "h", "77", "count", "1"),
        c("hscan", "h", "0", "MATCH", "[ab]"),
        c("hscan", "h", "0", "match", "*", "count", "5"),
        c("hscan", "h", "0", "MATCH", "a", "MATCH", "c"),
        c("hscan", "h", "-1"),
        c("hscan", "h", "+5"),
        c("hscan", "h", "18446744073709551615"),
        c("hscan", "h", "18446744073709551616"),
        c("hscan", "h", ""),
        c("hscan", "h", "x"),
        c("hscan", "h", " 1"),
        c("hscan", "h", "0", "COUNT", "0"),
        c("hscan", "h", "0", "COUNT", "-1"),
        c("hscan", "h", "0", "COUNT", "x"),
        c("hscan", "h", "0", "COUNT"),
        c("hscan", "h", "0", "MATCH"),
        c("hscan", "h", "0", "TYPE", "hash"),
        c("hscan", "h", "0", "NOVALUES"),
        c("hscan", "nokey", "0", "COUNT", "x"),
        c("hscan", "nokey", "x"),
        c("hscan", STRING, "x"),
        c("hscan", STRING, "0", "COUNT", "x"),
        c("hscan", STRING, "0"),
    ],
    "expired hash": [
        c("pexpireat", "h", "1"),
        c("hget", "h", "a"),
        c("hlen", "h"),
        c("hset", "h", "z", "1"),
        c("hgetall", "h"),
        c("ttl", "h"),
    ],
    "deadline kept by writes": [
        c("expire", "h", "100000"),
        c("hset", "h", "d", "4"),
        c("hincrby", "h", "a", "1"),
        c("hincrbyfloat", "h", "b", "1"),
        c("hdel", "h", "c"),
        c("hsetnx", "h", "e", "5"),
        c("persist", "h"),
        c("hdel", "h", "a", "b", "d", "e"),
        c("hset", "h", "f", "6"),
        c("persist", "h"),
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(oracle: Oracle, name: str, resp3: bool) -> None:
    oracle.reset({})
    oracle.check(SETUP)
    oracle.check(SCENARIOS[name], resp3)
    oracle.check_encodings()


# Encodings: each scenario runs with small thresholds; every key's encoding is compared after
# every command, so a conversion a command too early or too late shows.
SMALL = {"hash-max-listpack-entries": 3, "hash-max-listpack-value": 4}
ENCODING_SCENARIOS: dict[str, list[list[bytes]]] = {
    "entries": [
        c("hset", "h", "a", "1", "b", "2", "c", "3"),
        c("hset", "h", "a", "9"),
        c("hset", "h", "d", "4"),
        c("hdel", "h", "a", "b", "c"),
        c("hset", "h2", "a", "1", "b", "2", "c", "3", "d", "4"),
        c("hset", "h3", "a", "1", "a", "2", "a", "3", "a", "4"),
    ],
    "value length": [
        c("hset", "h", "a", "1234"),
        c("hset", "h", "b", "12345"),
        c("hset", "i", "1234", "a"),
        c("hset", "i", "12345", "a"),
        c("hset", "j", "a", "1"),
        c("hset", "j", "a", "1", "a", "12345"),
        c("hmset", "k", "a", "1"),
        c("hmset", "k", "abcde", "1"),
    ],
    "hsetnx": [
        c("hset", "h", "a", "1"),
        c("hsetnx", "h", "a", "12345"),
        c("hsetnx", "h", "abcde", "1"),
        c("hsetnx", "i", "a", "1"),
        c("hsetnx", "i", "b", "12345"),
        c("hsetnx", "j", "a", "1"),
        c("hsetnx", "j", "b", "2"),
        c("hsetnx", "j", "c", "3"),
        c("hsetnx", "j", "c", "3"),
        c("hsetnx", "j", "d", "4"),
    ],
    "increments": [
        c("hincrby", "h", "a", "1"),
        c("hincrby", "h", "a", "9999"),
        c("hincrby", "h", "a", "1"),
        c("hincrby", "i", "abcde", "1"),
        c("hincrbyfloat", "j", "a", "1.5"),
        c("hincrbyfloat", "j", "a", "0.25"),
        c("hincrbyfloat", "k", "abcde", "1"),
        c("hincrby", "l", "a", "1"),
        c("hincrby", "l", "b", "1"),
        c("hincrby", "l", "c", "1"),
        c("hincrbyfloat", "l", "d", "1"),
    ],
    "failed writes do not convert": [
        c("hset", "h", "a", "x"),
        c("hincrby", "h", "a", "1"),
        c("hincrby", "h", "abcde", "x"),
        c("hincrbyfloat", "h", "a", "1"),
        c("hincrbyfloat", "h", "abcde", "x"),
        c("hset", "h", "abcde", "1", "x"),
    ],
    "hdel never converts back": [
        c("hset", "h", "a", "12345"),
        c("hdel", "h", "a"),
        c("hset", "h", "a", "1"),
        c("hset", "i", "a", "1", "b", "2", "c", "3", "d", "4"),
        c("hdel", "i", "a", "b", "c"),
    ],
}


@pytest.mark.parametrize("name", list(ENCODING_SCENARIOS))
def test_encoding_follows_redis(oracle: Oracle, name: str) -> None:
    oracle.reset(SMALL)
    for command in ENCODING_SCENARIOS[name]:
        oracle.check([command])
        oracle.check_encodings()


def test_default_thresholds(oracle: Oracle) -> None:
    """512 fields and 64-byte strings still fit a listpack; one more converts."""
    oracle.reset({})
    fields = [b"f%d" % i for i in range(512)]
    oracle.check([c("hset", "h", *[part for f in fields for part in (f, b"v")])])
    oracle.check([c("hset", "v", "a", b"x" * 64), c("hset", "w", b"x" * 64, "a")])
    oracle.check_encodings()
    oracle.check([c("hset", "h", "one", "more"), c("hset", "v", "b", LONG)])
    oracle.check_encodings()


def test_encoding_after_config_change(oracle: Oracle) -> None:
    """A lowered threshold converts at the next write to the hash, even an update."""
    oracle.reset({})
    oracle.check([c("hset", "h", "a", "1", "b", "2", "c", "3"), c("hset", "g", "a", "1")])
    oracle.resp2.command(b"CONFIG", b"SET", b"hash-max-listpack-entries", b"2")
    oracle.shard.settings["hash-max-listpack-entries"] = 2
    oracle.check([c("hget", "h", "a"), c("hdel", "h", "nope")])
    oracle.check_encodings()
    oracle.check([c("hset", "h", "a", "1"), c("hincrby", "g", "a", "1")])
    oracle.check_encodings()


# -- The running server: exact bytes of each reply shape, at 1 and 4 shards ---------------------

ARITY = b"-ERR wrong number of arguments for '%s' command\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


HASH_SETUP = ("HSET", "h", "a", "1", "b", "2")
#: (command, RESP2 reply, RESP3 reply), after FLUSHALL, HASH_SETUP and SET s v.
SHAPES: list[tuple[tuple[str, ...], bytes, bytes]] = [
    (("HGET", "h", "a"), bulk(b"1"), bulk(b"1")),
    (("HGET", "h", "x"), b"$-1\r\n", b"_\r\n"),
    (("HGET", "s", "a"), WRONGTYPE, WRONGTYPE),
    (("HMGET", "h", "a", "x"), b"*2\r\n$1\r\n1\r\n$-1\r\n", b"*2\r\n$1\r\n1\r\n_\r\n"),
    (
        ("HGETALL", "h"),
        b"*4\r\n" + bulk(b"a") + bulk(b"1") + bulk(b"b") + bulk(b"2"),
        b"%2\r\n" + bulk(b"a") + bulk(b"1") + bulk(b"b") + bulk(b"2"),
    ),
    (("HGETALL", "x"), b"*0\r\n", b"%0\r\n"),
    (("HKEYS", "h"), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
    (("HVALS", "x"), b"*0\r\n", b"*0\r\n"),
    (("HLEN", "h"), b":2\r\n", b":2\r\n"),
    (("HINCRBYFLOAT", "n", "f", "0.5"), bulk(b"0.5"), bulk(b"0.5")),
    (("HRANDFIELD", "x"), b"$-1\r\n", b"_\r\n"),
    (("HRANDFIELD", "x", "3"), b"*0\r\n", b"*0\r\n"),
    (
        ("HRANDFIELD", "h", "2", "WITHVALUES"),
        b"*4\r\n" + bulk(b"a") + bulk(b"1") + bulk(b"b") + bulk(b"2"),
        b"*2\r\n*2\r\n" + bulk(b"a") + bulk(b"1") + b"*2\r\n" + bulk(b"b") + bulk(b"2"),
    ),
    (("HRANDFIELD", "h", "5"), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
    (
        ("HSCAN", "h", "0"),
        b"*2\r\n$1\r\n0\r\n*4\r\n" + bulk(b"a") + bulk(b"1") + bulk(b"b") + bulk(b"2"),
        b"*2\r\n$1\r\n0\r\n*4\r\n" + bulk(b"a") + bulk(b"1") + bulk(b"b") + bulk(b"2"),
    ),
    (("HSCAN", "x", "0"), b"*2\r\n$1\r\n0\r\n*0\r\n", b"*2\r\n$1\r\n0\r\n*0\r\n"),
    (("HSET", "h"), ARITY % b"hset", ARITY % b"hset"),
    (("HSET", "h", "a"), ARITY % b"hset", ARITY % b"hset"),
    (("HSET", "h", "a", "1", "b"), ARITY % b"hset", ARITY % b"hset"),
    (("hmset", "h", "a", "1", "b"), ARITY % b"hmset", ARITY % b"hmset"),
    (("HGET", "h"), ARITY % b"hget", ARITY % b"hget"),
    (("HMGET", "h"), ARITY % b"hmget", ARITY % b"hmget"),
    (("HDEL", "h"), ARITY % b"hdel", ARITY % b"hdel"),
    (("HLEN", "h", "x"), ARITY % b"hlen", ARITY % b"hlen"),
    (("HSETNX", "h", "a"), ARITY % b"hsetnx", ARITY % b"hsetnx"),
    (("HINCRBY", "h", "a"), ARITY % b"hincrby", ARITY % b"hincrby"),
    (("HINCRBYFLOAT", "h", "a", "1", "2"), ARITY % b"hincrbyfloat", ARITY % b"hincrbyfloat"),
    (("HRANDFIELD",), ARITY % b"hrandfield", ARITY % b"hrandfield"),
    (("HSCAN", "h"), ARITY % b"hscan", ARITY % b"hscan"),
    (("HSTRLEN", "h"), ARITY % b"hstrlen", ARITY % b"hstrlen"),
    (("HEXISTS", "h", "a", "b"), ARITY % b"hexists", ARITY % b"hexists"),
    (("HKEYS",), ARITY % b"hkeys", ARITY % b"hkeys"),
    (("HVALS", "h", "x"), ARITY % b"hvals", ARITY % b"hvals"),
    (("HGETALL",), ARITY % b"hgetall", ARITY % b"hgetall"),
    (("TYPE", "h"), b"+hash\r\n", b"+hash\r\n"),
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_reply_shapes(endpoint: ServerProcess, resp3: bool) -> None:
    """Each reply's exact bytes; the same table holds for redis-server, so it is checked too."""
    with endpoint.raw() as conn:
        if resp3:
            assert conn.command("HELLO", "3").startswith(b"%")
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        assert conn.command(*HASH_SETUP) == b":2\r\n"
        assert conn.command("SET", "s", "v") == b"+OK\r\n"
        for command, resp2_reply, resp3_reply in SHAPES:
            expected = resp3_reply if resp3 else resp2_reply
            assert conn.command(*command) == expected, f"reply to {command!r}"


def keys_on_every_shard() -> list[bytes]:
    """Keys on shards 0, 1, 2 and 3 of a 4-shard server, two of them sharing a hash tag."""
    owner = shard_table(4)
    found: dict[int, bytes] = {}
    for i in range(1000):
        key = b"hash:%d" % i
        found.setdefault(owner[slot_for_key(key)], key)
        if len(found) == 4:
            break
    return [*sorted(found.values()), b"{" + found[0] + b"}:twin"]


def run_script(server: ServerProcess, script: list[Argv], resp3: bool) -> list[bytes]:
    """FLUSHALL, then the script pipelined in one write; each command's raw reply."""
    with RawConnection(server.port) as conn:
        if resp3:
            assert conn.command("HELLO", "3").startswith(b"%")
        conn.send(b"".join(encode_command(*argv) for argv in [(b"FLUSHALL",), *script]))
        assert conn.read_reply() == b"+OK\r\n"
        return [conn.read_reply() for _ in script]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_keys_on_every_shard(
    clone: ServerProcess, redis_server: ServerProcess, resp3: bool
) -> None:
    """The same script over keys on all four shards: identical bytes from both servers."""
    keys = keys_on_every_shard()
    script: list[Argv] = []
    for i, key in enumerate(keys):
        script += [
            c("hset", key, "f", i, "g", "x" * i),
            c("hincrby", key, "f", 10),
            c("hincrbyfloat", key, "g2", "1.25"),
            c("hsetnx", key, "f", "no"),
            c("hmget", key, "f", "g", "nope"),
            c("hgetall", key),
            c("hdel", key, "g"),
            c("hscan", key, "0"),
            c("hrandfield", key, "10", "withvalues"),
            c("hstrlen", key, "g2"),
            c("type", key),
        ]
    script += [c("dbsize"), c("exists", *keys), c("hdel", keys[0], "f", "g2"), c("dbsize")]
    assert run_script(clone, script, resp3) == run_script(redis_server, script, resp3)


def pairs(items: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(items[::2], items[1::2], strict=True))


def full_scan(conn: RawConnection, key: bytes, *options: bytes) -> tuple[list[bytes], int]:
    """Every HSCAN page of a key: (field, value, ... in page order, number of pages)."""
    cursor, items, pages = b"0", [], 0
    while True:
        cursor, page = parse_reply(conn.command(b"HSCAN", key, cursor, *options))
        items += page
        pages += 1
        if cursor == b"0":
            return items, pages


@pytest.mark.parametrize("shards", [1, 4])
def test_big_hashes_and_config_set(module_servers: ServerPool, shards: int) -> None:
    """CONFIG SET thresholds reach every shard; a hashtable-encoded hash is scanned in pages
    that together hold every field once, and HRANDFIELD draws only its fields."""
    server = module_servers.start_clone(shards)
    keys = keys_on_every_shard()
    with server.raw() as conn:
        for key in keys:
            assert conn.command(b"HSET", key, *[b"%d" % i for i in range(20)]) == b":10\r\n"
        for key in keys:  # listpack: one page, whatever COUNT says
            items, pages = full_scan(conn, key, b"COUNT", b"2")
            assert pages == 1 and items == [b"%d" % i for i in range(20)]
        assert conn.command(b"CONFIG", b"SET", b"hash-max-ziplist-entries", b"10") == b"+OK\r\n"
        for key in keys:
            conn.command(b"HSET", key, b"extra", b"1")  # 11 fields: a hashtable
            items, pages = full_scan(conn, key, b"COUNT", b"2")
            assert pages == 6
            assert pairs(items) == {**pairs([b"%d" % i for i in range(20)]), b"extra": b"1"}
            assert len(items) == 22
            drawn = parse_reply(conn.command(b"HRANDFIELD", key, b"-50", b"WITHVALUES"))
            assert len(drawn) == 100
            content = pairs(items)
            assert all(content[f] == v for f, v in zip(drawn[::2], drawn[1::2], strict=True))
            distinct = parse_reply(conn.command(b"HRANDFIELD", key, b"5"))
            assert len(set(distinct)) == 5 and set(distinct) <= set(items[::2])
        server.client().config_set("hash-max-listpack-value", 1)
        assert conn.command(b"HSET", b"fresh", b"ab", b"c") == b":1\r\n"
        _, pages = full_scan(conn, b"fresh", b"COUNT", b"1")
        assert pages == 1  # one field: one page in a hashtable too
        assert server.client().config_get("hash-max-listpack-*") == {
            "hash-max-listpack-entries": "10",
            "hash-max-listpack-value": "1",
        }
    server.stop()


def test_big_hash_through_redis_py(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """A hash past 512 fields (a hashtable on both) reads back the same, order aside."""
    fields = {b"field:%d" % i: b"%d" % (i * i) for i in range(700)}
    results = []
    for server in (clone, redis_server):
        client = server.client()
        client.delete("big")
        assert client.hset("big", mapping=fields) == 700
        got = [
            client.hgetall("big"),
            sorted(client.hkeys("big")),
            sorted(client.hvals("big")),
            client.hlen("big"),
            client.hmget("big", [b"field:1", b"nope", b"field:699"]),
            dict(client.hscan_iter("big", match="field:1*", count=50)),
            client.hincrby("big", "field:3", 1),
            client.hdel("big", *[b"field:%d" % i for i in range(0, 700, 2)]),
            client.hlen("big"),
        ]
        client.delete("big")
        results.append(got)
    assert results[0] == results[1]
    assert results[0][0] == fields
