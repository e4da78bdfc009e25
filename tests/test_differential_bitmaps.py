"""Differential test of the bit commands: random sequences against redis-clone (1 and 4
shards) and a real redis-server, every reply byte for byte.

Hypothesis builds sequences over five keys that fall on three of the four shards (three
share a hash tag), so BITOP runs natively and coordinated; the keys are strings (SET,
SETBIT, BITFIELD), lists (RPUSH: WRONGTYPE) or gone (DEL, an expiry already past, which
deletes the key at once), with some deadlines far ahead that bit writes must keep. Arguments
are often malformed. PTTL is compared only as "no key", "no deadline" or "a deadline", the
one reading of a clock here; every other reply must be identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import RawConnection, ServerPool, ServerProcess, encode_command, require_redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.slots import shard_table, slot_for_key

EXAMPLES = int(os.environ.get("BITMAP_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

KEY_POOL = [b"a", b"{a}b", b"{a}c", b"b", b"c"]
KEYS = st.sampled_from(KEY_POOL)
OFFSETS = st.one_of(
    st.integers(0, 40).map(lambda n: b"%d" % n),
    st.integers(0, 40).map(lambda n: b"%d" % n),
    st.sampled_from([b"-1", b"x", b"", b"4294967296", b"1000"]),
)
BITS = st.sampled_from([b"0", b"1"] * 4 + [b"2", b"-1", b"x"])
RANGE_ENDS = st.one_of(
    st.integers(-12, 12).map(lambda n: b"%d" % n),
    st.integers(-50, 50).map(lambda n: b"%d" % n),
    st.sampled_from([b"x", b"99999"]),
)
UNITS = st.sampled_from([b"BIT", b"byte", b"bit", b"BYTES"])
VALUES = st.one_of(st.binary(max_size=5), st.sampled_from([b"foobar", b"\xff\xff", b"12"]))
FIELD_TYPES = st.sampled_from([b"u1", b"i3", b"u8", b"i8", b"i16", b"u63", b"i64", b"u64"])
FIELD_OFFSETS = st.one_of(
    st.integers(0, 40).map(lambda n: b"%d" % n), st.integers(0, 4).map(lambda n: b"#%d" % n)
)
NUMBERS = st.one_of(
    st.integers(-300, 300).map(lambda n: b"%d" % n),
    st.sampled_from([b"9223372036854775807", b"-9223372036854775808", b"x"]),
)


def test_keys_span_shards() -> None:
    table = shard_table(4)
    assert len({table[slot_for_key(key)] for key in KEY_POOL}) == 3


@st.composite
def bitfield_args(draw: st.DrawFn) -> list[bytes]:
    args: list[bytes] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from([b"GET", b"SET", b"INCRBY", b"OVERFLOW"]))
        if kind == b"OVERFLOW":
            args += [kind, draw(st.sampled_from([b"WRAP", b"SAT", b"FAIL", b"bad"]))]
            continue
        args += [kind, draw(FIELD_TYPES), draw(FIELD_OFFSETS)]
        if kind != b"GET":
            args.append(draw(NUMBERS))
    return args


@st.composite
def commands(draw: st.DrawFn) -> list[bytes]:
    """One command of the family, or one that changes keys under it."""
    kind = draw(
        st.sampled_from(
            ["setbit"] * 4
            + ["getbit", "bitcount", "bitcount", "bitpos", "bitpos", "bitop", "bitop"]
            + ["bitfield", "bitfield", "bitfield_ro", "set", "del", "rpush", "expire"]
            + ["type", "pttl", "get"]
        )
    )
    key = draw(KEYS)
    if kind == "setbit":
        return [b"SETBIT", key, draw(OFFSETS), draw(BITS)]
    if kind == "getbit":
        return [b"GETBIT", key, draw(OFFSETS)]
    if kind == "bitcount":
        ends = draw(st.lists(RANGE_ENDS, max_size=2))
        if len(ends) == 2 and draw(st.booleans()):
            ends.append(draw(UNITS))
        return [b"BITCOUNT", key, *ends]
    if kind == "bitpos":
        ends = draw(st.lists(RANGE_ENDS, max_size=2))
        if len(ends) == 2 and draw(st.booleans()):
            ends.append(draw(UNITS))
        return [b"BITPOS", key, draw(BITS), *ends]
    if kind == "bitop":
        op = draw(st.sampled_from([b"AND", b"or", b"XOR", b"NOT", b"not", b"nor"]))
        return [b"BITOP", op, key, *draw(st.lists(KEYS, min_size=1, max_size=3))]
    if kind in ("bitfield", "bitfield_ro"):
        return [kind.upper().encode(), key, *draw(bitfield_args())]
    if kind == "set":
        return [b"SET", key, draw(VALUES)]
    if kind == "del":
        return [b"DEL", key]
    if kind == "rpush":
        return [b"RPUSH", key, b"x"]
    if kind == "expire":
        return draw(
            st.sampled_from(
                [[b"EXPIRE", key, b"100000"], [b"EXPIRE", key, b"0"], [b"PEXPIREAT", key, b"1"]]
            )
        )
    return [kind.upper().encode(), key]


def normalized(argv: list[bytes], reply: bytes) -> bytes:
    """A PTTL reply as "no key", "no deadline" or "a deadline"."""
    if argv[0] == b"PTTL" and reply[:1] == b":" and int(reply[1:-2]) >= 0:
        return b":deadline"
    return reply


def run(server: ServerProcess, sequence: list[list[bytes]]) -> list[bytes]:
    with RawConnection(server.port) as conn:
        conn.send(b"".join(encode_command(*argv) for argv in [[b"FLUSHALL"], *sequence]))
        assert conn.read_reply() == b"+OK\r\n"
        return [normalized(argv, conn.read_reply()) for argv in sequence]


@pytest.fixture(scope="module")
def oracle(module_servers: ServerPool) -> Iterator[ServerProcess]:
    require_redis_server()
    server = module_servers.start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def clone(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    return module_servers.clone(request.param)


@st.composite
def setups(draw: st.DrawFn) -> list[list[bytes]]:
    """Most keys start as strings of a few bytes, now and then one as a list."""
    setup = []
    for key in KEY_POOL:
        start = draw(st.sampled_from(["string", "string", "string", "list", "none"]))
        if start == "string":
            setup.append([b"SET", key, draw(st.binary(min_size=1, max_size=6))])
        elif start == "list":
            setup.append([b"RPUSH", key, b"x"])
    return setup


@SETTINGS
@given(setups(), st.lists(commands(), min_size=1, max_size=30))
def test_sequences(
    oracle: ServerProcess,
    clone: ServerProcess,
    setup: list[list[bytes]],
    commands: list[list[bytes]],
) -> None:
    sequence = setup + commands
    expected = run(oracle, sequence)
    got = run(clone, sequence)
    for argv, want, have in zip(sequence, expected, got, strict=True):
        assert have == want, f"{argv!r}: redis {want!r} != ours {have!r}"
    final = [[cmd, key] for cmd in (b"GET", b"TYPE", b"PTTL") for key in KEY_POOL]
    assert (
        run(clone, sequence + final)[-len(final) :] == run(oracle, sequence + final)[-len(final) :]
    )
