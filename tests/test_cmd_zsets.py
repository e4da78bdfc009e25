"""The sorted-set commands (Redis's ``t_zset.c``) against a real redis-server, byte for byte.

The first part runs the handlers inside a :class:`Shard` object, fed the same commands as a
real redis-server, in RESP2 and RESP3, and requires identical replies: every command's
errors and their order, option parsing (repeats, case, NUL bytes), score parsing and
formatting, LIMIT, the encodings OBJECT ENCODING would report (read from the value here,
from OBJECT ENCODING there) and their thresholds. A key of another type is a string; a set
(for the set operations) is made with SADD there and put in the shard as the sets family
stores it.

The second part starts redis-clone at 1 and 4 shards next to redis-server (the `endpoint`
fixture) and runs the commands over several keys with keys on different shards (and with
hash tags, on one), so the coordinated plans are compared with Redis too.

ZRANDMEMBER's random replies are checked for validity, not equality.
"""

from __future__ import annotations

from collections import Counter
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
from shardserver.shard import Shard
from shardserver.slots import shard_table, slot_for_key

Argv = Sequence[bytes]
THRESHOLDS = ("zset-max-listpack-entries", "zset-max-listpack-value")


class StandInSet(set):
    """What the sets family stores, for a branch where that family is not there yet."""

    redis_type = "set"


def make_set(members: Sequence[bytes]) -> object:
    """A Redis set value of the sets family (its plain form is ``(big, {members})``)."""
    family = values.TYPES.get("set")
    if family is None:
        return StandInSet(members)
    return family.from_plain((True, set(members)))


def c(*args: bytes | str | int | float) -> list[bytes]:
    """One command: str, int and float arguments become bytes."""
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


class Oracle:
    """A real redis-server and a fresh shard, fed the same commands one by one.

    CONFIG SET of a threshold goes to both (the shard's settings); OBJECT ENCODING is
    answered here from the value's ``encoding()``; SADD makes a set in both.
    """

    def __init__(self, port: int) -> None:
        self.conns = {2: RawConnection(port), 3: RawConnection(port)}
        assert self.conns[3].command(b"HELLO", b"3").startswith(b"%")
        self.shard = Shard(0)

    def reset(self) -> None:
        conn = self.conns[2]
        assert conn.command(b"FLUSHALL") == b"+OK\r\n"
        for name, default in zip(THRESHOLDS, (b"128", b"64"), strict=True):
            assert conn.command(b"CONFIG", b"SET", name, default) == b"+OK\r\n"
        self.shard = Shard(0)

    def ours(self, argv: Argv, resp3: bool) -> bytes:
        name = argv[0].lower()
        db = self.shard.dbs[0]
        if name == b"config":
            self.shard.settings[argv[2].decode()] = int(argv[3])
            return b"+OK\r\n"
        if name == b"object":
            value = db.lookup(argv[2], self.shard.now)
            if value is None:
                return b"_\r\n" if resp3 else b"$-1\r\n"
            text = values.encoding(value).encode()
            return b"$%d\r\n%b\r\n" % (len(text), text)
        if name == b"sadd":
            db.store(argv[1], make_set(argv[2:]))
            return b":%d\r\n" % len(set(argv[2:]))
        return self.shard.execute_batch([[1 if resp3 else 0, [name, *argv[1:]]]])[0]

    def replies(self, argv: Argv, resp3: bool) -> tuple[bytes, bytes]:
        theirs = self.conns[3 if resp3 else 2].request(encode_command(*argv))
        return theirs, self.ours(argv, resp3)

    def check(self, commands: Sequence[Argv], resp3: bool = False) -> None:
        wrong = []
        for argv in commands:
            theirs, ours = self.replies(argv, resp3)
            if theirs != ours:
                wrong.append(f"{list(argv)!r:.200}: redis {theirs!r:.300} != ours {ours!r:.300}")
        assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """A redis-server of this module's own; skipped when absent, unless CI is set."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    for conn in oracle.conns.values():
        conn.close()
    server.stop()


@pytest.fixture
def both(oracle: Oracle) -> Oracle:
    """The oracle, emptied, thresholds at their defaults, a string at STR."""
    oracle.reset()
    oracle.check([c("set", "str", "x")])
    return oracle


WRONG = "str"
FOUR = c("zadd", "k", 1, "a", 2, "b", 3, "c", 4, "d")

# Each scenario runs on empty databases (plus a string at "str"), in RESP2 and in RESP3.
SCENARIOS: dict[str, list[list[bytes]]] = {
    "zadd options": [
        c("zadd", "k", "nx", "nx", 1, "a"),
        c("zadd", "k", "xx", 5, "a", 1, "new"),
        c("zadd", "k", "xx", "ch", 5, "a", 1, "new"),
        c("zadd", "k", "gt", "ch", 4, "a", 6, "b"),
        c("zadd", "k", "lt", "ch", 4, "a", 7, "b"),
        c("zadd", "k", "xx", "gt", "ch", 1, "a", 10, "b", 1, "z"),
        c("zadd", "k", "CH", "Xx", "lT", 1, "b"),
        c("zadd", "k", b"xx\x00junk", 99, "a", 99, "q"),
        c("zadd", "k", b"CH\x00", 98, "a"),
        c("zadd", "k", 1, "a", 1, "a", 2, "a"),
        c("zadd", "nokey", "xx", 1, "a"),
        c("zadd", "nokey", "xx", "incr", 1, "a"),
        c("exists", "nokey"),
        c("zrange", "k", 0, -1, "withscores"),
    ],
    "zadd errors and their order": [
        c("zadd", WRONG, 1, "a"),
        c("zadd", WRONG, "x", "a"),
        c("zadd", WRONG, "nx", "xx", 1, "a"),
        c("zadd", WRONG, "nx", "gt", "x", "a"),
        c("zadd", WRONG, "gt", "lt", 1, "a"),
        c("zadd", WRONG, "lt", "nx", 1, "a"),
        c("zadd", WRONG, "incr", 1, "a", 2, "b"),
        c("zadd", WRONG, "incr", "nx", "xx", 1, "a", 2, "b"),
        c("zadd", "k", 1, "a", 2),
        c("zadd", "k", "ch", 1, "a", "x", "b"),
        c("zadd", "k", "nx", 1),
        c("zadd", "k", "foo", 1, "a"),
        c("zadd", "k", 1, "a", "nan", "b"),
        c("exists", "k"),
    ],
    "zadd incr and zincrby": [
        c("zadd", "k", "incr", 1, "a"),
        c("zadd", "k", "incr", 1.5, "a"),
        c("zadd", "k", "gt", "incr", -1, "a"),
        c("zadd", "k", "lt", "incr", -1, "a"),
        c("zadd", "k", "nx", "incr", 5, "a"),
        c("zadd", "k", "xx", "incr", 5, "zz"),
        c("zincrby", "k", 0.1, "f"),
        c("zincrby", "k", 0.2, "f"),
        c("zincrby", "k", "x", "f"),
        c("zincrby", WRONG, 1, "f"),
        c("zincrby", "k", "nx", "f"),
        c("zincrby", "k", "incr", "f"),
        c("zincrby", "k", 1, "nx"),
        c("zadd", "k", "-inf", "m"),
        c("zincrby", "k", "inf", "m"),
        c("zadd", "k", "incr", "+inf", "m"),
        c("zincrby", "k", "-inf", "m"),
        c("zincrby", "k", "1e308", "big"),
        c("zincrby", "k", "1e308", "big"),
        c("zscore", "k", "big"),
        c("zrange", "k", 0, -1, "withscores"),
    ],
    "score parsing": [
        c("zadd", "k", "0x10", "hex", "0X1P-2", "hexp", "0x.8", "hexfrac", "+.5", "dot"),
        c("zadd", "k", "1.", "trail", "-0", "negzero", "1e-320", "denormal", "INFINITY", "i"),
        c("zadd", "k", "-Inf", "ni", "1E5", "e", "0001.5", "lead", "1e+2", "ep"),
        c("zadd", "k", " 1", "x"),
        c("zadd", "k", "1 ", "x"),
        c("zadd", "k", "\t1", "x"),
        c("zadd", "k", b"1\x00", "x"),
        c("zadd", "k", "", "x"),
        c("zadd", "k", "1e400", "x"),
        c("zadd", "k", "-1e400", "x"),
        c("zadd", "k", "1e-400", "x"),
        c("zadd", "k", "0e-400", "zero"),
        c("zadd", "k", "nan", "x"),
        c("zadd", "k", "-nan", "x"),
        c("zadd", "k", "nan(1)", "x"),
        c("zadd", "k", "infin", "x"),
        c("zadd", "k", "1e", "x"),
        c("zadd", "k", "0x", "x"),
        c("zadd", "k", "0x1p", "x"),
        c("zadd", "k", ".", "x"),
        c("zadd", "k", "1_0", "x"),
        c("zadd", "k", "0x1p99999", "x"),
        c("zrange", "k", 0, -1, "withscores"),
    ],
    "score formatting": [
        c("zadd", "k", 1.1, "a", 0.1, "b", 1e20, "c", 1e16, "d", 123456789012345678, "e"),
        c("zadd", "k", 1e-20, "f", -2.5, "g", 3, "h", 4503599627370497, "i", "5e-324", "j"),
        c("zadd", "k", "1e15", "l", "9007199254740993", "m", "0.30000000000000004", "n"),
        c("zadd", "k", "4611686018427387904", "o", "4611686018427388928", "p", "-1e17", "q"),
        c("zrange", "k", 0, -1, "withscores"),
        c("zscore", "k", "a"),
        c("zmscore", "k", "a", "c", "nope", "j"),
        c("zscan", "k", 0),
        c("zpopmax", "k"),
        c("zpopmin", "k", 2),
    ],
    "negative zero": [
        c("zadd", "k", "-0", "c", 0, "z"),
        c("zadd", "k", "incr", "-0", "m"),
        c("zscore", "k", "m"),
        c("zadd", "k", 1, "a"),
        c("zadd", "k", "ch", "-0", "a"),
        c("zrange", "k", 0, -1, "withscores"),
        c("config", "set", "zset-max-listpack-entries", 0),
        c("zadd", "s", "-0", "c", "-1e-20", "e"),
        c("zincrby", "s", "-0", "n"),
        c("zrange", "s", 0, -1, "withscores"),
        c("zunion", 2, "k", "s", "withscores"),
        c("zunion", 2, "s", "k", "aggregate", "min", "withscores"),
        c("zunion", 2, "s", "k", "aggregate", "max", "withscores"),
        c("zunion", 1, "k", "weights", -1, "withscores"),
        c("zunionstore", "big", 1, "k", "weights", -1),
        c("zrange", "big", 0, -1, "withscores"),
        c("object", "encoding", "big"),
        c("config", "set", "zset-max-listpack-entries", 128),
        c("zunionstore", "small", 1, "k", "weights", -1),
        c("zrange", "small", 0, -1, "withscores"),
        c("zrangestore", "copy", "s", 0, -1),
        c("zrange", "copy", 0, -1, "withscores"),
    ],
    "reads": [
        FOUR,
        c("zcard", "k"),
        c("zcard", "nokey"),
        c("zcard", WRONG),
        c("zscore", "k", "c"),
        c("zscore", "k", "nope"),
        c("zscore", "nokey", "a"),
        c("zscore", WRONG, "a"),
        c("zmscore", "k", "a", "nope", "d"),
        c("zmscore", "nokey", "a", "b"),
        c("zmscore", WRONG, "a"),
        c("zrank", "k", "c"),
        c("zrevrank", "k", "c"),
        c("zrank", "k", "nope"),
        c("zrevrank", "nokey", "a"),
        c("zrank", WRONG, "a"),
    ],
    "zcount and score bounds": [
        FOUR,
        c("zadd", "k", "-inf", "lo", "+inf", "hi", 0, "zero"),
        c("zcount", "k", "-inf", "+inf"),
        c("zcount", "k", "(-inf", "(+inf"),
        c("zcount", "k", "(1", "(4"),
        c("zcount", "k", "1", "(1"),
        c("zcount", "k", "(1", "1"),
        c("zcount", "k", "4", "1"),
        c("zcount", "k", "", ""),
        c("zcount", "k", "(", "("),
        c("zcount", "k", " 1", "\t4"),
        c("zcount", "k", "1 ", "4"),
        c("zcount", "k", b"1\x00junk", "4"),
        c("zcount", "k", b"(\x00", "4"),
        c("zcount", "k", "0x1p1", "1e400"),
        c("zcount", "k", "1e-400", "1"),
        c("zcount", "k", "nan", "1"),
        c("zcount", "k", "(nan", "1"),
        c("zcount", "k", "infinityx", "1"),
        c("zcount", "k", "1e", "1"),
        c("zcount", "k", "((1", "2"),
        c("zcount", "k", "-0", "0"),
        c("zcount", "nokey", "x", "1"),
        c("zcount", "nokey", 0, 1),
        c("zcount", WRONG, 0, 1),
        c("zcount", WRONG, "x", 1),
    ],
    "zrange by rank": [
        FOUR,
        c("zrange", "k", 0, -1),
        c("zrange", "k", 0, -1, "withscores"),
        c("zrange", "k", -2, -1, "WITHSCORES", "withscores"),
        c("zrange", "k", -100, 100),
        c("zrange", "k", 2, 1),
        c("zrange", "k", 4, 10),
        c("zrange", "k", 1, -2, "rev", "withscores"),
        c("zrange", "k", 0, 0, "rev"),
        c("zrange", "k", 0, -1, "limit", 5, -1),
        c("zrange", "k", 0, -1, "limit", 0, 1),
        c("zrange", "k", "x", 1),
        c("zrange", "k", 0, "1.0"),
        c("zrange", "nokey", "x", 1),
        c("zrange", "nokey", 0, 1),
        c("zrange", WRONG, 0, 1),
        c("zrange", WRONG, 0, 1, "foo"),
        c("zrevrange", "k", 0, -1, "withscores"),
        c("zrevrange", "k", 0, -1, "byscore"),
        c("zrevrange", "k", 0, -1, "limit", 0, 1),
        c("zrevrange", "k", 0, -1, "withscores", "x"),
        c("zrange", "k", 0, 1, b"withscores\x00x"),
    ],
    "zrange options": [
        FOUR,
        c("zrange", "k", 0, -1, "bylex", "withscores"),
        c("zrange", "k", 0, 1, "foo"),
        c("zrange", "k", 0, 1, "byscore", "bylex"),
        c("zrange", "k", 0, 1, "byscore", "byscore"),
        c("zrange", "k", 0, 1, "rev", "rev"),
        c("zrange", "k", 0, 1, "limit", 0),
        c("zrange", "k", 0, 1, "limit", "x", 1, "byscore"),
        c("zrange", "k", 0, 1, "limit", "x", 1, "foo"),
        c("zrange", "k", 0, 1, "foo", "limit", "x", 1),
        c("zrange", "k", "a", "b", "byscore", "limit", 0, 1),
        c("zrange", "k", "a", "b", "byscore", "limit", 0, "x"),
        c("zrange", "k", "a", "b", "bylex"),
        c("zrange", "k", "x", "y", "byscore", "foo"),
        c("zrange", "k", 0, -1, "limit", 0, 1, "limit", 0, 2, "byscore"),
        c("zrange", "k", 0, 1, "rev", "byscore", "limit", 0, 1, "withscores", "bylex"),
    ],
    "zrange by score": [
        FOUR,
        c("zrange", "k", "-inf", "+inf", "byscore", "withscores"),
        c("zrange", "k", "(1", "4", "byscore"),
        c("zrange", "k", 4, 1, "byscore", "rev"),
        c("zrange", "k", "(4", 1, "byscore", "rev", "limit", 1, 1, "withscores"),
        c("zrange", "k", "-inf", "inf", "byscore", "limit", 0, 0),
        c("zrange", "k", "-inf", "inf", "byscore", "limit", -1, 2),
        c("zrange", "k", "-inf", "inf", "byscore", "limit", 1, -1),
        c("zrange", "k", "-inf", "inf", "byscore", "limit", 3, 5),
        c("zrange", "k", "-inf", "inf", "byscore", "limit", 4, 5),
        c("zrange", "k", "inf", "-inf", "byscore", "rev", "limit", 3, 5),
        c("zrange", "k", "inf", "-inf", "byscore", "rev", "limit", 1, 2),
        c("zrange", "k", "(2", "(2", "byscore"),
        c("zrangebyscore", "k", "-inf", "+inf", "rev"),
        c("zrangebyscore", "k", "-inf", "+inf", "bylex"),
        c("zrangebyscore", "k", "-inf", "+inf", "withscores", "limit", 1, 2),
        c("zrangebyscore", "k", 0, 10, "limit", 0, 1, "limit", 0, 2),
        c("zrangebyscore", "k", 0, 10, "limit", 0),
        c("zrangebyscore", "k", 0, 10, "withscore"),
        c("zrevrangebyscore", "k", "+inf", "-inf", "withscores", "limit", 1, 2),
        c("zrevrangebyscore", "k", "(4", "(1"),
        c("zrevrangebyscore", "k", 1, 4),
        c("zrangebyscore", "nokey", 0, 1),
        c("zrangebyscore", WRONG, 0, 1),
        c("zrangebyscore", WRONG, "x", 1),
    ],
    "zrange by lex": [
        c("zadd", "k", 0, "a", 0, "b", 0, "c", 0, "d", 0, "", 0, b"a\x00", 0, "ab"),
        c("zrangebylex", "k", "-", "+"),
        c("zrangebylex", "k", "[a", "(c"),
        c("zrangebylex", "k", "(a", "[c", "limit", 1, 2),
        c("zrangebylex", "k", "+", "-"),
        c("zrangebylex", "k", "-", "-"),
        c("zrangebylex", "k", "[", "[a"),
        c("zrangebylex", "k", "(", "+"),
        c("zrangebylex", "k", "[b", "[b"),
        c("zrangebylex", "k", "(b", "[b"),
        c("zrangebylex", "k", "-", "+", "limit", 0, 0),
        c("zrangebylex", "k", "-", "+", "limit", -1, 2),
        c("zrangebylex", "k", "-", "+", "limit", 2, -1),
        c("zrangebylex", "k", "-", "+", "withscores"),
        c("zrangebylex", "k", "a", "b"),
        c("zrangebylex", "k", "-x", "+"),
        c("zrangebylex", "k", "", "+"),
        c("zrangebylex", "k", b"-\x00x", b"+\x00"),
        c("zrangebylex", "k", b"[a\x00", "+"),
        c("zrevrangebylex", "k", "+", "-"),
        c("zrevrangebylex", "k", "(c", "[a"),
        c("zrevrangebylex", "k", "+", "-", "limit", 1, 3),
        c("zrevrangebylex", "k", "+", "-", "limit", 10, 3),
        c("zrevrangebylex", "k", "-", "+"),
        c("zrange", "k", "[c", "-", "bylex", "rev"),
        c("zrange", "k", "-", "+", "bylex", "limit", 1, 2),
        c("zlexcount", "k", "-", "+"),
        c("zlexcount", "k", "(a", "[c"),
        c("zlexcount", "k", "[c", "(a"),
        c("zlexcount", "k", "x", "+"),
        c("zlexcount", "nokey", "x", "y"),
        c("zlexcount", "nokey", "-", "+"),
        c("zlexcount", WRONG, "-", "+"),
        c("zrangebylex", "nokey", "x", "y"),
        c("zrangebylex", WRONG, "-", "+"),
        c("zrangebylex", WRONG, "x", "+"),
    ],
    "lex ranges over several scores (a listpack is scanned)": [
        c("zadd", "k", 1, "b", 2, "a", 3, "d", 4, "c", 5, "a2"),
        c("zrangebylex", "k", "[a", "[a"),
        c("zrangebylex", "k", "[a", "+"),
        c("zrangebylex", "k", "-", "[b"),
        c("zrangebylex", "k", "(b", "+"),
        c("zrevrangebylex", "k", "[c", "-"),
        c("zrevrangebylex", "k", "+", "(a"),
        c("zlexcount", "k", "[a", "[c"),
        c("zlexcount", "k", "(b", "+"),
        c("zremrangebylex", "k", "[b", "[c"),
        c("zrange", "k", 0, -1),
        c("zremrangebylex", "k", "(a", "+"),
        c("zrange", "k", 0, -1),
    ],
    "zrangestore": [
        FOUR,
        c("zrangestore", "dst", "k", 0, -1, "withscores"),
        c("zrangestore", "dst", "k", 0, -1),
        c("zrange", "dst", 0, -1, "withscores"),
        c("zrangestore", "dst", "k", 5, 9),
        c("exists", "dst"),
        c("zrangestore", "dst", WRONG, 0, 1),
        c("zrangestore", WRONG, "k", 0, 1),
        c("type", WRONG),
        c("zrangestore", "dst", "nokey", 0, 1),
        c("zrangestore", "dst", "k", 0, 1, "bylex"),
        c("zrangestore", "dst", "k", "-", "+", "bylex", "limit", 1, 1),
        c("zrange", "dst", 0, -1, "withscores"),
        c("zrangestore", "dst", "k", "(4", "1", "byscore", "rev", "limit", 1, 2),
        c("zrange", "dst", 0, -1, "withscores"),
        c("zrangestore", "k", "k", 1, 2),
        c("zrange", "k", 0, -1, "withscores"),
        c("zrangestore", "dst", "nokey", "x", "y", "byscore"),
        c("zrangestore", "dst", "k", 0, 1, "rev", "rev"),
    ],
    "zrem and zremrange": [
        FOUR,
        c("zrem", "k", "x", "y"),
        c("zrem", WRONG, "x"),
        c("zrem", "nokey", "x"),
        c("zrem", "k", "a", "a", "b"),
        c("zrem", "k", "c", "d", "e"),
        c("exists", "k"),
        c("zremrangebyrank", "k", "x", 1),
        c("zremrangebyrank", WRONG, "x", 1),
        c("zremrangebyrank", WRONG, 0, 1),
        c("zremrangebyrank", "nokey", 0, 1),
        c("zremrangebyscore", WRONG, "x", 1),
        c("zremrangebylex", WRONG, "x", 1),
        c("zremrangebylex", "nokey", "-", "+"),
        FOUR,
        c("zremrangebyrank", "k", 3, 2),
        c("zremrangebyrank", "k", 1, -2),
        c("zrange", "k", 0, -1),
        c("zremrangebyscore", "k", "(1", 4),
        c("zremrangebyscore", "k", "(1", 4),
        c("zremrangebylex", "k", "-", "+"),
        c("exists", "k"),
        FOUR,
        c("zremrangebyrank", "k", -100, 100),
        c("exists", "k"),
    ],
    "pops": [
        FOUR,
        c("zpopmin", "k", 0),
        c("zpopmin", "k", -1),
        c("zpopmin", "k", "x"),
        c("zpopmin", WRONG, "x"),
        c("zpopmin", WRONG),
        c("zpopmin", "nokey"),
        c("zpopmin", "nokey", 3),
        c("zpopmin", "nokey", -1),
        c("zpopmin", "k", 1, 2),
        c("zpopmin", "k"),
        c("zpopmax", "k", 1),
        c("zpopmax", "k", 5),
        c("exists", "k"),
        FOUR,
        c("zmpop", 0, "k", "min"),
        c("zmpop", "x", "k", "min"),
        c("zmpop", -1, "k", "min"),
        c("zmpop", 2, "k", "min"),
        c("zmpop", 1, "k", "foo"),
        c("zmpop", 1, "k", "min", "count", 0),
        c("zmpop", 1, "k", "min", "count", "x"),
        c("zmpop", 1, "k", "min", "count", 1, "count", 1),
        c("zmpop", 1, "k", "min", "count"),
        c("zmpop", 1, "k", "min", "foo"),
        c("zmpop", 2, "nokey", WRONG, "min"),
        c("zmpop", 2, WRONG, "k", "min"),
        c("zmpop", 2, "nokey", "k", "MAX", "COUNT", 2),
        c("zmpop", 2, "k", WRONG, "min", "count", 1),
        c("zmpop", 1, "nokey", "min"),
        c("zmpop", 1, "k", "min", "count", 10),
        c("exists", "k"),
        c("zmpop", 99999999999999999999, "k", "min"),
        c("zmpop", 3, "k", "min"),
    ],
    "zrandmember deterministic cases": [
        FOUR,
        c("zrandmember", "k", "x"),
        c("zrandmember", WRONG, "x"),
        c("zrandmember", WRONG, 1),
        c("zrandmember", WRONG),
        c("zrandmember", "nokey", 1),
        c("zrandmember", "nokey"),
        c("zrandmember", "k", 1, "foo"),
        c("zrandmember", WRONG, 1, "foo"),
        c("zrandmember", "k", 1, "withscores", "x"),
        c("zrandmember", "k", 0),
        c("zrandmember", "k", 0, "withscores"),
        c("zrandmember", "k", 10, "withscores"),
        c("zrandmember", "k", 4),
        c("zrandmember", "k", -9223372036854775808),
        c("zrandmember", "nokey", -9223372036854775808),
        c("zrandmember", "k", -9223372036854775808, "withscores"),
        c("zrandmember", "k", -4611686018427387904, "withscores"),
        c("zrandmember", "k", 4611686018427387904, "withscores"),
        c("zrandmember", "k", 4611686018427387903, "withscores", "x"),
    ],
    "zscan": [
        FOUR,
        c("zscan", "k", "x"),
        c("zscan", WRONG, "x"),
        c("zscan", WRONG, 0),
        c("zscan", WRONG, 0, "count", "x"),
        c("zscan", "nokey", 0, "count", "x"),
        c("zscan", "nokey", 0),
        c("zscan", "k", 0, "count", "x"),
        c("zscan", "k", 0, "count", 0),
        c("zscan", "k", 0, "match"),
        c("zscan", "k", 0, "match", "a*"),
        c("zscan", "k", 0, "match", "1"),
        c("zscan", "k", 5),
        c("zscan", "k", -1),
        c("zscan", "k", 0, "count", 1, "match", "[ab]"),
    ],
    "set operations": [
        c("zadd", "a", 1, "x", 2, "y", 3, "z"),
        c("zadd", "b", 10, "y", 20, "z", 30, "w"),
        c("sadd", "s", "y", "w", "q"),
        c("zunion", 2, "a", "b"),
        c("zunion", 2, "a", "b", "withscores"),
        c("zunion", 3, "a", "b", "s", "withscores", "weights", 1, 2, 3, "aggregate", "max"),
        c("zinter", 3, "a", "b", "s", "withscores"),
        c("zinter", 2, "a", "b", "withscores", "aggregate", "min"),
        c("zinter", 2, "a", "s", "withscores", "weights", 2, 0.5),
        c("zdiff", 2, "a", "b", "withscores"),
        c("zdiff", 2, "a", "s", "withscores"),
        c("zdiff", 2, "s", "a", "withscores"),
        c("zdiff", 2, "a", "b", "weights", 1, 2),
        c("zdiff", 2, "a", "b", "aggregate", "sum"),
        c("zdiff", 2, "a", "a"),
        c("zdiff", 3, "nokey", "a", "b"),
        c("zinter", 2, "a", "a", "withscores"),
        c("zunion", 2, "a", "a", "withscores"),
        c("zunion", 2, "a", "b", "weights", 1, 2, "weights", 2, 1, "withscores"),
        c("zunion", 2, "a", "b", "aggregate", "min", "aggregate", "max", "withscores"),
        c("zunion", 2, "a", "b", "withscores", "withscores"),
        c("zunion", 2, "a", "b", "weights", 1, "inf", "withscores"),
        c("zunion", 2, "a", "b", "WEIGHTS", "-1", "+1", "AGGREGATE", "Min", "WITHSCORES"),
    ],
    "set operation errors": [
        c("zadd", "a", 1, "x"),
        c("zadd", "b", 2, "x"),
        c("zunion", 0, "a"),
        c("zunion", "x", "a"),
        c("zunion", -1, "a"),
        c("zunion", 3, "a", "b"),
        c("zunion", 2, "a", WRONG),
        c("zunion", 2, "a", WRONG, "foo"),
        c("zunion", 2, "a", "b", "foo"),
        c("zunion", 2, "a", "b", "weights", 1),
        c("zunion", 2, "a", "b", "weights", 1, 2, 3),
        c("zunion", 2, "a", "b", "weights", 1, "x"),
        c("zunion", 2, "a", "b", "weights", 1, "nan"),
        c("zunion", 2, "a", "b", "weights", 1, " 1"),
        c("zunion", 2, "a", "b", "aggregate", "foo"),
        c("zunion", 2, "a", "b", "aggregate"),
        c("zunion", 2, "a", "b", b"withscores\x00x"),
        c("zunionstore", "d", 2, "a", "b", "withscores"),
        c("zunionstore", "d", 0, "a"),
        c("zunionstore", "d", "x", "a"),
        c("zunionstore", "d", 3, "a", "b"),
        c("zinterstore", "d", 2, "a", WRONG),
        c("zdiffstore", "d", 1, "a", "weights", 1),
        c("zinter", 1, "a", "limit", 1),
        c("zintercard", 2, "a", "b"),
        c("zintercard", 2, "a", "b", "limit", 1),
        c("zintercard", 2, "a", "b", "limit", -1),
        c("zintercard", 2, "a", "b", "limit", "x"),
        c("zintercard", 2, "a", "b", "limit", 0),
        c("zintercard", 2, "a", "b", "limit", 1, "limit", 0),
        c("zintercard", 2, "a", "b", "withscores"),
        c("zintercard", 2, "a", "b", "weights", 1, 1),
        c("zintercard", 0, "a"),
        c("zintercard", 3, "a", "b"),
        c("zintercard", "x", "a"),
        c("zintercard", 2, "a", WRONG),
        c("zintercard", 2, "a", WRONG, "limit", -1),
    ],
    "stores": [
        c("zadd", "a", 1, "x", 2, "y", 3, "z"),
        c("zadd", "b", 10, "y", 20, "z", 30, "w"),
        c("sadd", "s", "y", "w", "q"),
        c("set", "d", "string"),
        c("expire", "d", 1000),
        c("zunionstore", "d", 2, "a", "b"),
        c("ttl", "d"),
        c("zrange", "d", 0, -1, "withscores"),
        c("zinterstore", "d", 3, "a", "b", "s", "weights", 1, 1, 7),
        c("zrange", "d", 0, -1, "withscores"),
        c("zdiffstore", "d", 2, "a", "b"),
        c("zrange", "d", 0, -1, "withscores"),
        c("zinterstore", "d", 2, "a", "nokey"),
        c("exists", "d"),
        c("zdiffstore", "d", 1, "nokey"),
        c("zunionstore", "a", 2, "a", "a"),
        c("zrange", "a", 0, -1, "withscores"),
        c("zunionstore", "s2", 1, "s"),
        c("zrange", "s2", 0, -1, "withscores"),
        c("object", "encoding", "s2"),
        c("zintercard", 3, "a", "b", "s"),
    ],
    "infinities and NaN in aggregates": [
        c("zadd", "a", "inf", "x", "-inf", "y", 1, "z"),
        c("zadd", "b", "-inf", "x", "inf", "y", 0, "z"),
        c("zunion", 2, "a", "b", "withscores"),
        c("zinter", 2, "a", "b", "withscores"),
        c("zunion", 2, "a", "b", "weights", 0, 1, "withscores"),
        c("zinter", 2, "a", "b", "weights", 0, 0, "withscores"),
        c("zinter", 2, "a", "b", "weights", 1, 0, "withscores"),
        c("zinter", 2, "a", "b", "weights", 1, 0, "aggregate", "min", "withscores"),
        c("zinter", 2, "a", "b", "weights", 1, 0, "aggregate", "max", "withscores"),
        c("zunion", 2, "a", "b", "aggregate", "min", "withscores"),
        c("zunion", 2, "a", "b", "aggregate", "max", "withscores"),
        c("zunionstore", "d", 2, "a", "b", "weights", 0, 0),
        c("zrange", "d", 0, -1, "withscores"),
    ],
    "encodings and thresholds": [
        c("config", "set", "zset-max-listpack-value", 3),
        c("zadd", "j", 1, "abc"),
        c("object", "encoding", "j"),
        c("zadd", "j", 1, "abcd"),
        c("object", "encoding", "j"),
        c("zrem", "j", "abcd"),
        c("object", "encoding", "j"),
        c("zadd", "i", 1, "abcd", 2, "a"),
        c("object", "encoding", "i"),
        c("zadd", "g", 1, "a"),
        c("zadd", "g", "xx", 1, "abcd"),
        c("object", "encoding", "g"),
        c("zrangestore", "f", "i", 0, -1),
        c("object", "encoding", "f"),
        c("zrangestore", "f", "i", 1, 1),
        c("object", "encoding", "f"),
        c("zunionstore", "u", 1, "i"),
        c("object", "encoding", "u"),
        c("zinterstore", "u", 2, "i", "g"),
        c("object", "encoding", "u"),
        c("config", "set", "zset-max-listpack-value", 64),
        c("config", "set", "zset-max-listpack-entries", 2),
        c("zadd", "e", 1, "a", 2, "b"),
        c("object", "encoding", "e"),
        c("zadd", "e", 3, "c"),
        c("object", "encoding", "e"),
        c("zrem", "e", "c", "b"),
        c("object", "encoding", "e"),
        c("zunionstore", "e2", 1, "e"),
        c("object", "encoding", "e2"),
        c("zadd", "e3", 1, "a", 2, "b", 3, "c"),
        c("object", "encoding", "e3"),
        c("zrangestore", "e4", "e3", 0, 1),
        c("object", "encoding", "e4"),
        c("zrangestore", "e4", "e3", 0, 2),
        c("object", "encoding", "e4"),
        c("config", "set", "zset-max-listpack-entries", 0),
        c("zadd", "z0", 1, "a"),
        c("object", "encoding", "z0"),
        c("zscan", "z0", 0),
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(both: Oracle, name: str, resp3: bool) -> None:
    both.check(SCENARIOS[name], resp3)


def test_big_sets_match_redis(both: Oracle) -> None:
    """Past the listpack threshold: ranks, score and lex ranges, counts, removals and
    pops over 300 members (same score for the lex part), and ZSCAN's full walk."""
    members = [b"m%03d" % i for i in range(300)]
    adds = [c("zadd", "big", *[x for i, m in enumerate(members) for x in (i % 37, m)])]
    lex = [c("zadd", "lex", *[x for m in members for x in (0, m)])]
    both.check(
        adds
        + lex
        + [
            c("object", "encoding", "big"),
            c("zcard", "big"),
            c("zrank", "big", "m123"),
            c("zrevrank", "big", "m123"),
            c("zrange", "big", 100, 120, "withscores"),
            c("zrange", "big", -5, -1, "rev"),
            c("zrange", "big", "(10", 12, "byscore", "withscores", "limit", 3, 10),
            c("zrange", "big", 20, "(18", "byscore", "rev", "limit", 2, 5),
            c("zcount", "big", "(5", 30),
            c("zrangebylex", "lex", "[m100", "(m110"),
            c("zrevrangebylex", "lex", "(m200", "-", "limit", 5, 5),
            c("zlexcount", "lex", "(m050", "[m250"),
            c("zlexcount", "lex", "[m250", "(m050"),
            c("zremrangebylex", "lex", "[m010", "[m019"),
            c("zremrangebylex", "lex", "[zzz", "+"),
            c("zremrangebyscore", "big", 30, "+inf"),
            c("zremrangebyrank", "big", 0, 9),
            c("zcard", "big"),
            c("zpopmax", "big", 3),
            c("zpopmin", "big"),
            c("zmscore", "big", "m000", "m299", "m100"),
            c("zunionstore", "u", 2, "big", "lex", "weights", 2, 3, "aggregate", "max"),
            c("zrange", "u", 0, 20, "withscores"),
            c("object", "encoding", "u"),
            c("zinterstore", "i", 2, "big", "lex"),
            c("zrange", "i", 0, -1, "withscores"),
            c("zdiff", 2, "big", "lex", "withscores"),
            c("zintercard", 2, "big", "lex", "limit", 7),
        ]
    )
    for resp3 in (False, True):
        both.check([c("zrange", "big", 0, 30, "withscores")], resp3)
    scanned = _full_scan(both, b"big")
    assert scanned == _full_scan_redis(both, b"big")


def _full_scan(both: Oracle, key: bytes) -> Counter:
    """Every (member, score) a whole ZSCAN of ours returns, counted."""
    seen: Counter = Counter()
    cursor = b"0"
    while True:
        reply = parse_reply(both.ours(c("zscan", key, cursor, "count", 7), False))
        cursor, items = reply
        seen.update(zip(items[::2], items[1::2], strict=True))
        if cursor == b"0":
            return seen


def _full_scan_redis(both: Oracle, key: bytes) -> Counter:
    seen: Counter = Counter()
    cursor = b"0"
    while True:
        cursor, items = both.conns[2].call(b"ZSCAN", key, cursor, b"COUNT", b"7")
        seen.update(zip(items[::2], items[1::2], strict=True))
        if cursor == b"0":
            return seen


def test_zrandmember_replies_are_valid(both: Oracle) -> None:
    """Random picks: the right count, members of the set with their scores, distinct for
    a positive count, any for a negative one; both encodings."""
    both.check([c("zadd", "k", *[x for i in range(200) for x in (i / 4, b"m%d" % i)])])
    both.check([c("zadd", "small", 1, "a", 2, "b", 3, "c", 4, "d", 5, "e")])
    for key, size in ((b"k", 200), (b"small", 5)):
        zset = both.shard.dbs[0].data[key]
        scores = {m: b"%.17g" % s for m, s in zset.items()}
        for count in (1, 3, size - 1, -3, -(size * 3)):
            for resp3 in (False, True):
                reply = parse_reply(both.ours(c("zrandmember", key, count, "withscores"), resp3))
                pairs = reply if resp3 else list(zip(reply[::2], reply[1::2], strict=True))
                assert len(pairs) == abs(count)
                for member, score in pairs:
                    expected = float(scores[member]) if resp3 else scores[member]
                    assert score == expected
                if count > 0:
                    assert len({m for m, _ in pairs}) == count
            plain = parse_reply(both.ours(c("zrandmember", key, count), False))
            assert len(plain) == abs(count) and set(plain) <= set(scores)
        one = parse_reply(both.ours(c("zrandmember", key), False))
        assert one in scores


def test_removing_the_last_member_deletes_the_key(both: Oracle) -> None:
    """Every way of emptying a sorted set deletes it, as in Redis."""
    steps = []
    for remove in (
        c("zrem", "k", "a", "b"),
        c("zremrangebyrank", "k", 0, -1),
        c("zremrangebyscore", "k", "-inf", "+inf"),
        c("zremrangebylex", "k", "-", "+"),
        c("zpopmin", "k", 5),
        c("zpopmax", "k", 2),
        c("zmpop", 1, "k", "max", "count", 9),
    ):
        steps += [c("zadd", "k", 0, "a", 0, "b"), remove, c("exists", "k"), c("type", "k")]
    both.check(steps)
    assert b"k" not in both.shard.dbs[0].data


# -- on servers, keys on several shards ----------------------------------------------------


def keys_on_distinct_shards(shards: int, count: int, prefix: bytes) -> list[bytes]:
    """``count`` keys that the server with ``shards`` shards places on distinct shards."""
    table = shard_table(shards)
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < min(count, shards):
        key = prefix + b"%d" % i
        found.setdefault(table[slot_for_key(key)], key)
        i += 1
    return list(found.values())


A, B, S, D = keys_on_distinct_shards(4, 4, b"z")
#: Keys sharing a hash tag: one shard, so the same commands run natively there.
TA, TB, TS, TD = b"{t}a", b"{t}b", b"{t}s", b"{t}d"


def _cross_shard_script(a: bytes, b: bytes, s: bytes, d: bytes) -> list[list[bytes]]:
    return [
        c("zadd", a, 1, "x", 2, "y", 3, "z", "-0", "n"),
        c("zadd", b, 10, "y", 20, "z", 30, "w", "inf", "i"),
        c("set", s, "string"),
        c("zunion", 2, a, b, "withscores"),
        c("zunion", 2, a, b, "weights", 2, -1, "aggregate", "min", "withscores"),
        c("zinter", 2, a, b, "withscores"),
        c("zdiff", 2, b, a, "withscores"),
        c("zintercard", 2, a, b),
        c("zintercard", 2, a, b, "limit", 1),
        c("zunion", 2, a, s),
        c("zunion", 2, a, s, "foo"),
        c("zunion", 2, a, b, "foo"),
        c("zunion", 3, a, b),
        c("zunionstore", d, 2, a, b),
        c("zrange", d, 0, -1, "withscores"),
        c("zinterstore", d, 2, a, b, "weights", 1, 2),
        c("zrange", d, 0, -1, "withscores"),
        c("zdiffstore", d, 2, a, b),
        c("zrange", d, 0, -1, "withscores"),
        c("zinterstore", d, 2, a, "nokey"),
        c("exists", d),
        c("zunionstore", d, 2, a, s),
        c("zunionstore", s, 1, a),
        c("type", s),
        c("zrangestore", d, b, 0, 1),
        c("zrange", d, 0, -1, "withscores"),
        c("zrangestore", d, b, "(10", "+inf", "byscore", "limit", 0, 2),
        c("zrange", d, 0, -1, "withscores"),
        c("zrangestore", d, "nokey", 0, -1),
        c("exists", d),
        c("zrangestore", d, b, 0, -1, "bylex"),
        c("set", d, "string"),
        c("zrangestore", d, b, 0, 0),
        c("zrange", d, 0, -1, "withscores"),
        c("set", s, "string"),
        c("zrangestore", d, s, 0, 0),
        c("zmpop", 3, "nokey", a, b, "min", "count", 2),
        c("zmpop", 3, "nokey", s, a, "min"),
        c("zmpop", 2, b, a, "max", "count", 10),
        c("exists", b),
        c("zmpop", 2, "nokey", b, "max"),
        c("zmpop", 2, a, b, "foo"),
        c("zmpop", 2, a, b, "min", "count", 0),
        c("zmpop", 5, a, b, "min"),
        c("zcard", a),
    ]


@pytest.mark.parametrize("tagged", [False, True], ids=["spread", "tagged"])
@pytest.mark.parametrize("protocol", [2, 3])
def test_commands_over_several_keys(
    clone: ServerProcess, redis_server: ServerProcess, tagged: bool, protocol: int
) -> None:
    """Every multi-key command, with its keys on four shards (coordinated at 4 shards) or
    under one hash tag (native), answers as redis-server does and leaves the same state."""
    keys = (TA, TB, TS, TD) if tagged else (A, B, S, D)
    script = _cross_shard_script(*keys)
    replies = []
    for server in (redis_server, clone):
        with RawConnection(server.port) as conn:
            if protocol == 3:
                assert conn.command(b"HELLO", b"3").startswith(b"%")
            conn.command(b"DEL", *keys, b"nokey")
            replies.append([conn.command(*argv) for argv in script])
            conn.command(b"DEL", *keys)
    wrong = [
        f"{argv!r}: redis {theirs!r} != ours {ours!r}"
        for argv, theirs, ours in zip(script, *replies, strict=True)
        if theirs != ours
    ]
    assert not wrong, "\n".join(wrong)
