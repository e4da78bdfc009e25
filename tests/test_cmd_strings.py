"""The string commands (Redis's ``t_string.c``) against a real redis-server, byte for byte.

No redis-clone process runs here: the handlers run inside a :class:`Shard` object, fed the
same commands as a real redis-server, and every reply must be byte-identical. The oracle is
the point: Redis's errors, their order when a command is wrong in several ways, its limits and
its float formatting are too intricate to restate correctly by hand.

Both sides run with ``proto-max-bulk-len`` at 1 MiB (Redis's minimum), so the size limits of
APPEND, SETRANGE and LCS are reached with small strings. A key of another type is a list in
redis-server and a Python list in the shard. Nothing depends on time: expiries are either far
ahead or already past (absolute times in 1970), and TTLs are compared only as absent, present
or key missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest
from conftest import (
    RawConnection,
    ServerPool,
    encode_command,
    require_redis_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.commands import floats
from shardserver.keyspace import now_ms
from shardserver.shard import Shard

MAX_BULK = 1024 * 1024
LIST = b"list"
LLONG_MAX = b"9223372036854775807"
LLONG_MIN = b"-9223372036854775808"

Argv = Sequence[bytes]


class Oracle:
    """A real redis-server and a fresh shard, fed the same commands."""

    def __init__(self, port: int) -> None:
        self.resp2 = RawConnection(port)
        self.resp3 = RawConnection(port)
        assert self.resp3.command(b"HELLO", b"3").startswith(b"%")
        reply = self.resp2.command(b"CONFIG", b"SET", b"proto-max-bulk-len", b"%d" % MAX_BULK)
        assert reply == b"+OK\r\n"
        self.shard = Shard(0, {"proto-max-bulk-len": MAX_BULK})

    def reset(self) -> None:
        """Empty both: FLUSHALL on the server, a new shard."""
        assert self.resp2.command(b"FLUSHALL") == b"+OK\r\n"
        self.shard = Shard(0, {"proto-max-bulk-len": MAX_BULK})

    def replies(self, commands: Sequence[Argv], resp3: bool = False) -> tuple[list, list]:
        """(redis-server's replies, the shard's), the commands pipelined in one write and
        run by the shard in one batch, one run per command."""
        conn = self.resp3 if resp3 else self.resp2
        conn.send(b"".join(encode_command(*argv) for argv in commands))
        expected = [conn.read_reply() for _ in commands]
        ctx = 1 if resp3 else 0
        batch = [[ctx, [argv[0].lower(), *argv[1:]]] for argv in commands]
        return expected, self.shard.execute_batch(batch)

    def check(self, commands: Sequence[Argv], resp3: bool = False) -> list[bytes]:
        """Run the commands on both and assert every reply is identical."""
        expected, got = self.replies(commands, resp3)
        wrong = [
            f"{list(argv)!r:.200}: redis {want!r:.300} != ours {have!r:.300}"
            for argv, want, have in zip(commands, expected, got, strict=True)
            if want != have
        ]
        assert not wrong, "\n".join(wrong)
        return got

    def make_list(self, key: bytes) -> None:
        """A key of another type on both sides."""
        assert self.resp2.command(b"RPUSH", key, b"x") == b":1\r\n"
        self.shard.dbs[0].data[key] = [b"x"]

    def key_states(self, keys: Sequence[bytes]) -> tuple[list[str], list[str]]:
        """Each key as 'missing', 'persistent' or 'expiring', on redis-server and here."""
        theirs = []
        for key in keys:
            ttl = int(self.resp2.command(b"PTTL", key)[1:-2])
            theirs.append("missing" if ttl == -2 else "persistent" if ttl == -1 else "expiring")
        db = self.shard.dbs[0]
        ours = []
        for key in keys:
            if db.lookup(key, now_ms()) is None:
                ours.append("missing")
            else:
                ours.append("persistent" if db.deadline_of(key) is None else "expiring")
        return theirs, ours


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[Oracle]:
    """A redis-server of this module's own; skipped when absent, unless CI is set."""
    require_redis_server()
    server = module_servers.start_redis()
    oracle = Oracle(server.port)
    yield oracle
    oracle.resp2.close()
    oracle.resp3.close()
    server.stop()


@pytest.fixture
def both(oracle: Oracle) -> Oracle:
    """The oracle, emptied, with a list at LIST."""
    oracle.reset()
    oracle.make_list(LIST)
    return oracle


def c(*args: bytes | str | int) -> list[bytes]:
    """One command: str and int arguments become bytes."""
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


# Each scenario runs on empty databases (plus a list at LIST), in RESP2 and in RESP3.
SCENARIOS: dict[str, list[list[bytes]]] = {
    "append": [
        c("append", "k", "ab"),
        c("append", "k", ""),
        c("append", "k", b"\x00\r\n"),
        c("get", "k"),
        c("append", "e", ""),
        c("strlen", "e"),
        c("append", LIST, "x"),
        c("append", LIST, ""),
        c("set", "n", "12"),
        c("append", "n", "3"),
        c("incr", "n"),
    ],
    "append size limit": [
        c("setrange", "big", MAX_BULK - 2, "ab"),
        c("append", "big", "x"),
        c("append", "big", ""),
        c("strlen", "big"),
        c("setrange", "big2", MAX_BULK - 2, "a"),
        c("append", "big2", "x"),
        c("strlen", "big2"),
    ],
    "incr and decr": [
        c("incr", "n"),
        c("incr", "n"),
        c("decr", "n"),
        c("decr", "m"),
        c("incrby", "n", "10"),
        c("incrby", "n", "-20"),
        c("decrby", "n", "-5"),
        c("decrby", "n", "0"),
        c("incrby", "n", "x"),
        c("incrby", "n", ""),
        c("incrby", "n", "1.0"),
        c("incrby", "n", "+1"),
        c("incrby", "n", "01"),
        c("incrby", "n", "-0"),
        c("incrby", "n", " 1"),
        c("incrby", "n", "9223372036854775808"),
        c("incr", LIST),
        c("incrby", LIST, "x"),
        c("decrby", LIST, LLONG_MIN),
        c("decr", LIST),
    ],
    "integer overflow": [
        c("set", "n", LLONG_MAX),
        c("incr", "n"),
        c("incrby", "n", "0"),
        c("decrby", "n", "-1"),
        c("incrby", "n", LLONG_MIN),
        c("set", "n", LLONG_MIN),
        c("decr", "n"),
        c("incrby", "n", "-1"),
        c("incrby", "n", LLONG_MAX),
        c("decrby", "n", LLONG_MIN),
        c("decrby", "missing", LLONG_MIN),
        c("decrby", "missing", LLONG_MAX),
        c("decr", "missing"),
        c("get", "missing"),
    ],
    "not integers": [
        c("set", "s", "abc"),
        c("incr", "s"),
        c("set", "s", " 1"),
        c("incr", "s"),
        c("set", "s", "1 "),
        c("decr", "s"),
        c("set", "s", "00"),
        c("incr", "s"),
        c("set", "s", ""),
        c("incr", "s"),
        c("set", "s", "9223372036854775808"),
        c("incr", "s"),
        c("set", "s", "1e3"),
        c("incr", "s"),
        c("get", "s"),
    ],
    "incrbyfloat": [
        c("incrbyfloat", "f", "10.5"),
        c("incrbyfloat", "f", "0.1"),
        c("incrbyfloat", "f", "-5"),
        c("incrbyfloat", "f", "5.0e3"),
        c("incrbyfloat", "g", "0.1"),
        c("incrbyfloat", "g", "0.2"),
        c("incrbyfloat", "h", "3.0"),
        c("incrbyfloat", "h", "1e400"),
        c("incrbyfloat", "i", "-1e-18"),
        c("incrbyfloat", "i", "-1e-17"),
        c("incrbyfloat", "j", "0.000003814697265625"),
        c("incrbyfloat", "j", "0x1p-18"),
        c("incrbyfloat", "k", "1.5e17"),
        c("incrbyfloat", "k", "3"),
        c("incrbyfloat", "k", "-0"),
        c("set", "n", "17179869184"),
        c("incrbyfloat", "n", "1.5"),
        c("incrbyfloat", "x", "+.5"),
        c("incrbyfloat", "x", "5."),
        c("incrbyfloat", "x", "0X1.8P1"),
        c("incrbyfloat", "x", "0x.8"),
        c("incrbyfloat", "x", "1E+2"),
        c("incrbyfloat", "x", "0e99999999999999999999"),
    ],
    "incrbyfloat errors": [
        c("incrbyfloat", "f", "abc"),
        c("incrbyfloat", "f", ""),
        c("incrbyfloat", "f", " 1"),
        c("incrbyfloat", "f", "1 "),
        c("incrbyfloat", "f", b"1\x00"),
        c("incrbyfloat", "f", "."),
        c("incrbyfloat", "f", "1e"),
        c("incrbyfloat", "f", "0x"),
        c("incrbyfloat", "f", "0x1p"),
        c("incrbyfloat", "f", "nan"),
        c("incrbyfloat", "f", "-nan"),
        c("incrbyfloat", "f", "infinit"),
        c("incrbyfloat", "f", "inf"),
        c("incrbyfloat", "f", "-Infinity"),
        c("incrbyfloat", "f", "1e5000"),
        c("incrbyfloat", "f", "1e-5000"),
        c("incrbyfloat", "f", "1.8e-4951"),
        c("incrbyfloat", "f", "1.9e-4951"),
        c("incrbyfloat", "f", "0x1p-16446"),
        c("incrbyfloat", "f", "1.18973149535723176502e+4932"),
        c("incrbyfloat", "f", "1.18973149535723176502e+4932"),
        c("incrbyfloat", "f", "1.18973149535723176508e+4932"),
        c("set", "g", "inf"),
        c("incrbyfloat", "g", "1"),
        c("set", "g", "1.5x"),
        c("incrbyfloat", "g", "1"),
        c("incrbyfloat", LIST, "1"),
        c("incrbyfloat", LIST, "x"),
        c("incrbyfloat", "h", b"0" * 5119 + b"1"),
        c("incrbyfloat", "h", b"0" * 5118 + b"1"),
        c("set", "h", b"0" * 5119 + b"1"),
        c("incrbyfloat", "h", "1"),
    ],
    "getrange": [
        c("set", "k", "ohmytext"),
        c("getrange", "k", "0", "3"),
        c("getrange", "k", "0", "-1"),
        c("getrange", "k", "-3", "-1"),
        c("getrange", "k", "-1", "-3"),
        c("getrange", "k", "-100", "-200"),
        c("getrange", "k", "-200", "-100"),
        c("getrange", "k", "5", "2"),
        c("getrange", "k", "7", "100"),
        c("getrange", "k", "8", "100"),
        c("getrange", "k", LLONG_MIN, LLONG_MAX),
        c("getrange", "k", LLONG_MAX, LLONG_MIN),
        c("getrange", "k", "x", "1"),
        c("getrange", "k", "1", "9223372036854775808"),
        c("getrange", "missing", "0", "-1"),
        c("getrange", "missing", "0", "x"),
        c("getrange", LIST, "0", "-1"),
        c("getrange", LIST, "x", "-1"),
        c("set", "e", ""),
        c("getrange", "e", "0", "-1"),
        c("getrange", "e", "-1", "0"),
        c("substr", "k", "2", "3"),
        c("substr", "k", "-2", "-1"),
    ],
    "setrange": [
        c("setrange", "k", "0", "abc"),
        c("setrange", "k", "1", "X"),
        c("setrange", "k", "5", "Y"),
        c("get", "k"),
        c("setrange", "k", "0", ""),
        c("setrange", "k", "100", ""),
        c("setrange", "missing", "3", ""),
        c("strlen", "missing"),
        c("setrange", "new", "3", b"\x00z"),
        c("get", "new"),
        c("setrange", "k", "-1", "a"),
        c("setrange", "k", "-1", ""),
        c("setrange", "k", "x", "a"),
        c("setrange", "k", "9223372036854775808", "a"),
        c("setrange", LIST, "-1", "a"),
        c("setrange", LIST, "0", "a"),
        c("setrange", LIST, "0", ""),
        c("set", "n", "1234"),
        c("setrange", "n", "1", "9"),
        c("incr", "n"),
    ],
    "setrange size limit": [
        c("setrange", "k", MAX_BULK - 1, "a"),
        c("setrange", "k", MAX_BULK, "a"),
        c("setrange", "k", MAX_BULK, ""),
        c("setrange", "k", LLONG_MAX, "a"),
        c("setrange", "k", LLONG_MAX, ""),
        c("setrange", "j", MAX_BULK - 1, "ab"),
        c("strlen", "j"),
        c("setrange", "j", LLONG_MAX, "ab"),
        c("strlen", "k"),
        c("getrange", "k", "-2", "-1"),
    ],
    "strlen": [
        c("strlen", "missing"),
        c("set", "k", b"\x00\xff"),
        c("strlen", "k"),
        c("strlen", LIST),
        c("set", "n", "-123"),
        c("strlen", "n"),
    ],
    "getdel and getset": [
        c("getdel", "missing"),
        c("set", "k", "v"),
        c("getdel", "k"),
        c("getdel", "k"),
        c("get", "k"),
        c("getdel", LIST),
        c("getset", "k", "a"),
        c("getset", "k", "b"),
        c("get", "k"),
        c("getset", LIST, "x"),
        c("strlen", LIST),
    ],
    "setnx setex psetex": [
        c("setnx", "k", "a"),
        c("setnx", "k", "b"),
        c("get", "k"),
        c("setnx", LIST, "x"),
        c("setex", "k", "100", "c"),
        c("get", "k"),
        c("setex", "k", "0", "c"),
        c("setex", "k", "-1", "c"),
        c("setex", "k", "x", "c"),
        c("setex", "k", "", "c"),
        c("setex", "k", "9223372036854775", "c"),
        c("setex", "k", "9223372036854776", "c"),
        c("setex", "k", LLONG_MAX, "c"),
        c("psetex", "k", "100000", "d"),
        c("psetex", "k", "0", "d"),
        c("psetex", "k", LLONG_MAX, "d"),
        c("psetex", "k", "9000000000000000000", "d"),
        c("psetex", "k", "1.5", "d"),
        c("setex", LIST, "100", "e"),
        c("get", LIST),
    ],
    "getex": [
        c("getex", "missing"),
        c("getex", "missing", "ex", "abc"),
        c("getex", "missing", "ex", "-5"),
        c("getex", "missing", "bogus"),
        c("getex", "missing", "ex"),
        c("set", "k", "v"),
        c("getex", "k"),
        c("getex", "k", "ex", "100"),
        c("getex", "k", "persist"),
        c("getex", "k", "PX", "100000"),
        c("getex", "k", "exat", "99999999999"),
        c("getex", "k", "pxat", "99999999999999"),
        c("getex", "k", "ex", "1", "ex", "200"),
        c("getex", "k", "persist", "persist"),
        c("getex", "k", "ex", "0"),
        c("getex", "k", "px", "-1"),
        c("getex", "k", "ex", "x"),
        c("getex", "k", "ex", "9223372036854776"),
        c("getex", "k", "px", LLONG_MAX),
        c("getex", "k", "exat", "9223372036854776"),
        c("getex", "k", "pxat", LLONG_MAX),
        c("getex", "k", "persist", "ex", "1"),
        c("getex", "k", "ex", "1", "persist"),
        c("getex", "k", "ex", "1", "px", "1"),
        c("getex", "k", "keepttl"),
        c("getex", "k", "nx"),
        c("getex", "k", "get"),
        c("getex", "k", b"ex\x00junk", "100"),
        c("getex", "k", b"PERSIST\x00"),
        c("getex", LIST),
        c("getex", LIST, "ex", "x"),
        c("getex", LIST, "bogus"),
        c("getex", "k", "exat", "1"),
        c("get", "k"),
        c("set", "k", "v"),
        c("getex", "k", "pxat", "1000"),
        c("getex", "k"),
    ],
    "expired keys": [
        c("set", "k", "12", "pxat", "1"),
        c("get", "k"),
        c("incr", "k"),
        c("set", "k", "ab", "exat", "1"),
        c("append", "k", "c"),
        c("set", "k", "ab", "exat", "1"),
        c("strlen", "k"),
        c("getrange", "k", "0", "-1"),
        c("setrange", "k", "1", "x"),
        c("set", "k", "ab", "exat", "1"),
        c("getdel", "k"),
        c("getex", "k", "persist"),
        c("getset", "k", "y"),
        c("set", "k", "ab", "exat", "1"),
        c("setnx", "k", "z"),
        c("set", "k", "1.5", "exat", "1"),
        c("incrbyfloat", "k", "1"),
        c("set", "k", "ab", "exat", "1"),
        c("lcs", "k", "k"),
    ],
    "lcs": [
        c("set", "a", "ohmytext"),
        c("set", "b", "mynewtext"),
        c("lcs", "a", "b"),
        c("lcs", "a", "b", "len"),
        c("lcs", "a", "b", "LEN", "len"),
        c("lcs", "a", "b", "idx"),
        c("lcs", "a", "b", "idx", "withmatchlen"),
        c("lcs", "a", "b", "idx", "minmatchlen", "4", "withmatchlen"),
        c("lcs", "a", "b", "withmatchlen", "minmatchlen", "-5", "IDX"),
        c("lcs", "a", "b", "idx", "minmatchlen", "2", "minmatchlen", "5"),
        c("lcs", "a", "b", "minmatchlen", "2"),
        c("lcs", "a", "b", "withmatchlen"),
        c("lcs", "a", "b", "len", "idx"),
        c("lcs", "a", "b", "idx", "len", "bogus"),
        c("lcs", "a", "b", "bogus"),
        c("lcs", "a", "b", "minmatchlen"),
        c("lcs", "a", "b", "minmatchlen", "x"),
        c("lcs", "a", "b", b"idx\x00x"),
        c("lcs", "a", "a", "idx", "withmatchlen"),
        c("lcs", "a", "missing", "idx"),
        c("lcs", "missing", "a"),
        c("lcs", "missing", "missing2", "len"),
        c("lcs", "a", LIST),
        c("lcs", LIST, "missing", "bogus"),
        c("set", "x", "abcabcabcxyz"),
        c("set", "y", "cbacbaxyzabc"),
        c("lcs", "x", "y", "idx", "withmatchlen"),
        c("lcs", "y", "x", "idx", "withmatchlen"),
        c("lcs", "x", "y"),
        c("lcs", "y", "x"),
    ],
    "lcs size limit": [
        c("set", "a", "x" * 600),
        c("set", "b", "y" * 600),
        c("lcs", "a", "b"),
        c("lcs", "a", "b", "len"),
        c("lcs", "a", "b", "len", "idx"),
        c("lcs", "a", "b", "bogus"),
        c("set", "b", "x" * 434),
        c("lcs", "a", "b", "len"),
        c("set", "b", "x" * 435),
        c("lcs", "a", "b", "len"),
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(both: Oracle, name: str, resp3: bool) -> None:
    both.check(SCENARIOS[name], resp3)


def test_lcs_of_longer_strings(both: Oracle) -> None:
    """Long random strings exercise the bit-parallel table across machine-word borders,
    and the walk's tie-breaking on many equally long subsequences."""
    import random

    rng = random.Random(7)
    for size_a, size_b in [(70, 130), (300, 257), (1, 400), (400, 1)]:
        a = bytes(rng.choice(b"acgt") for _ in range(size_a))
        b = bytes(rng.choice(b"acgt") for _ in range(size_b))
        both.check(
            [
                c("set", "a", a),
                c("set", "b", b),
                c("lcs", "a", "b"),
                c("lcs", "b", "a"),
                c("lcs", "a", "b", "idx", "withmatchlen"),
                c("lcs", "b", "a", "idx", "minmatchlen", "3"),
                c("lcs", "a", "b", "len"),
            ]
        )


def test_deadlines_kept_or_replaced(both: Oracle) -> None:
    """Which commands keep a key's TTL (changes in place) and which drop it (new value)."""
    keys = [b"k%d" % i for i in range(12)]
    setup = [c("set", key, "5", "ex", "1000") for key in keys]
    both.check(
        [
            *setup,
            c("append", keys[0], "1"),
            c("incr", keys[1]),
            c("decrby", keys[2], "3"),
            c("incrbyfloat", keys[3], "0.5"),
            c("setrange", keys[4], "3", "x"),
            c("getset", keys[5], "x"),
            c("set", keys[6], "x"),
            c("getex", keys[7], "persist"),
            c("setex", keys[8], "100", "x"),
            c("getdel", keys[9]),
            c("setnx", keys[10], "x"),
            c("getex", keys[11]),
        ]
    )
    theirs, ours = both.key_states(keys)
    assert ours == theirs


def test_getex_deadline_values(both: Oracle) -> None:
    """GETEX sets the deadline it names (exact for absolute times)."""
    both.check([c("set", "k", "v"), c("getex", "k", "pxat", "99999999999999")])
    assert both.shard.dbs[0].deadline_of(b"k") == 99999999999999
    both.check([c("getex", "k", "exat", "99999999999")])
    assert both.shard.dbs[0].deadline_of(b"k") == 99999999999000
    both.check([c("getex", "k", "ex", "100")])
    deadline = both.shard.dbs[0].deadline_of(b"k")
    assert deadline is not None and 0 < deadline - now_ms() <= 100_000


def test_float_formatting_matches_libc_long_double() -> None:
    """The emulated long double: parse, add and format agree with the C results."""
    assert floats.format_human(floats.add(floats.parse(b"0.1"), floats.parse(b"0.2"))) == b"0.3"
    assert floats.parse(b"1e-4951") is None  # rounds to zero: ERANGE
    assert floats.parse(b"inf") == float("inf")
    big = floats.format_human(floats.parse(b"1e400"))
    assert len(big) == 401 and big.startswith(b"10000000000000000000281880683947586514586453433629")


# --- random sequences -------------------------------------------------------------------


def _safe_expiry(option: bytes, value: bytes) -> bytes:
    """A relative expiry that is valid is made at least 100 s, so nothing expires mid-test
    (absolute ones stay as drawn: far ahead, or long past)."""
    relative = option.lower().partition(b"\0")[0] in (b"ex", b"px")
    if relative and value.isdigit() and value[:1] != b"0" and int(value) < 100_000:
        return b"100000"
    return value


KEYS = st.sampled_from([b"a", b"b", b"c", LIST])
INTEGERS = st.one_of(
    st.sampled_from(
        [b"0", b"1", b"-1", b"10", LLONG_MAX, LLONG_MIN, b"9223372036854775806"]
        + [b"-9223372036854775807", b"9223372036854775808", b"", b"x", b"01", b"-0"]
        + [b"+1", b" 1", b"1.5", b"1e3"]
    ),
    st.integers(-(2**64), 2**64).map(lambda n: b"%d" % n),
)
SMALL_INTEGERS = st.one_of(
    st.integers(-12, 12).map(lambda n: b"%d" % n),
    st.sampled_from([LLONG_MAX, LLONG_MIN, b"x", b"", b"1.0"]),
)
FLOATS = st.one_of(
    st.sampled_from(
        [b"0.1", b"-0.1", b"1e400", b"-1e400", b"1e-20", b"inf", b"-inf", b"nan", b"1e"]
        + [b".5", b"5.", b"0x1p-3", b"1.18973149535723176502e+4932", b"3.0", b"-0", b" 1"]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    st.tuples(st.integers(-(10**20), 10**20), st.integers(0, 10**25)).map(
        lambda parts: b"%d.%d" % parts
    ),
    st.tuples(st.integers(-(10**20), 10**20), st.integers(-4970, 4940)).map(
        lambda parts: b"%de%d" % parts
    ),
)
VALUES = st.one_of(
    st.sampled_from([b"", b"v", b"10", b"-5", b"1.5", b"abc", b"\x00\xff", b"0.1"]),
    st.binary(max_size=12),
    INTEGERS,
)
# Expiry arguments: far ahead, already past (absolute), or invalid; never due mid-test.
EXPIRY = st.sampled_from(
    [b"100000", b"99999999999", b"1", b"0", b"-1", b"x", b"", LLONG_MAX, b"9223372036854776"]
)
GETEX_OPTIONS = st.lists(
    st.one_of(
        st.sampled_from([b"persist", b"PERSIST", b"keepttl", b"nx", b"get", b"bogus"]),
        st.tuples(st.sampled_from([b"ex", b"PX", b"exat", b"pxat", b"Ex\x00"]), EXPIRY).map(
            lambda pair: (pair[0], _safe_expiry(*pair))
        ),
    ),
    max_size=3,
)
LCS_OPTIONS = st.lists(
    st.one_of(
        st.sampled_from([b"len", b"idx", b"IDX", b"withmatchlen", b"bogus", b"minmatchlen"]),
        st.tuples(st.just(b"minmatchlen"), SMALL_INTEGERS),
    ),
    max_size=4,
)


def _flatten(options: list) -> list[bytes]:
    out: list[bytes] = []
    for option in options:
        out.extend(option if isinstance(option, tuple) else [option])
    return out


@st.composite
def string_commands(draw: st.DrawFn) -> list[bytes]:
    """One command of the family with random, often invalid or extreme, arguments."""
    key = draw(KEYS)
    name = draw(
        st.sampled_from(
            ["set", "get", "append", "incr", "decr", "incrby", "decrby", "incrbyfloat"]
            + ["getdel", "getex", "getrange", "substr", "getset", "setnx", "setex", "psetex"]
            + ["setrange", "strlen", "lcs"]
        )
    )
    if name in ("get", "incr", "decr", "getdel", "strlen"):
        return [name.encode(), key]
    if name in ("set", "append", "getset", "setnx"):
        return [name.encode(), key, draw(VALUES)]
    if name in ("incrby", "decrby"):
        return [name.encode(), key, draw(INTEGERS)]
    if name == "incrbyfloat":
        return [name.encode(), key, draw(FLOATS)]
    if name == "getex":
        return [b"getex", key, *_flatten(draw(GETEX_OPTIONS))]
    if name in ("getrange", "substr"):
        return [name.encode(), key, draw(SMALL_INTEGERS), draw(SMALL_INTEGERS)]
    if name in ("setex", "psetex"):
        option = b"ex" if name == "setex" else b"px"
        return [name.encode(), key, _safe_expiry(option, draw(EXPIRY)), draw(VALUES)]
    if name == "setrange":
        offset = draw(st.one_of(SMALL_INTEGERS, st.sampled_from([b"%d" % MAX_BULK])))
        return [b"setrange", key, offset, draw(VALUES)]
    return [b"lcs", key, draw(KEYS), *_flatten(draw(LCS_OPTIONS))]


@settings(
    max_examples=int(os.environ.get("STRINGS_EXAMPLES", "150")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(commands=st.lists(string_commands(), min_size=1, max_size=25), resp3=st.booleans())
def test_random_sequences(oracle: Oracle, commands: list[list[bytes]], resp3: bool) -> None:
    """Any sequence of string commands over a few keys answers as redis-server does, and
    leaves each key with or without a deadline as Redis does."""
    oracle.reset()
    oracle.make_list(LIST)
    oracle.check(commands, resp3)
    theirs, ours = oracle.key_states([b"a", b"b", b"c", LIST])
    assert ours == theirs
