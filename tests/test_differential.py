"""Differential tests: random command sequences against redis-clone and a real redis-server.

Hypothesis builds sequences over a handful of colliding keys: SET with random (often invalid)
option combinations, GET, PING, ECHO, DBSIZE, FLUSHALL, SELECT, HELLO errors, CLIENT SETNAME,
CONFIG GET, COMMAND DOCS, unknown commands, wrong arities and mixed-case names. Each sequence is
pipelined in one write over RESP2 to both servers (flushed first) and every reply must be
byte-identical.

Nothing here depends on time: relative expiries are at least 100 s, absolute ones far in the
future, so no key expires while an example runs.
"""

from __future__ import annotations

import os

import pytest
from conftest import RawConnection, ServerProcess, encode_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Command = tuple[bytes, ...]

MAX_EXAMPLES = int(os.environ.get("DIFFERENTIAL_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = st.sampled_from([b"a", b"{a}c", b"k\r\n\x00", b"\xff{b}"])
VALUES = st.one_of(
    st.sampled_from([b"v", b"", b"1", b"\r\n", b"\x00\xff", b"OK", b"-ERR x", b"$3"]),
    st.binary(max_size=24),
)
TEXT_ARGS = st.one_of(
    st.sampled_from([b"a", b"hello", b"", b"1", b"NX", b"'", b'"']),
    st.text("abcxyz0123 -_.", max_size=12).map(str.encode),
)
# Values for EX/PX/EXAT/PXAT: far-future valid ones, and every kind of invalid one.
EXPIRE_VALUES = st.sampled_from(
    [
        b"100000",
        b"1000000",
        b"99999999999999",
        b"0",
        b"-1",
        b"abc",
        b"",
        b"1.5",
        b"05",
        b"+5",
        b" 5",
        b"9223372036854775807",
        b"9223372036854775",
        b"9223372036854776",
        b"9000000000000000",
        b"9000000000000000000",
        b"99999999999999999999",
        b"-9223372036854775808",
    ]
)


def never_due(option: bytes, value: bytes) -> bytes:
    """Keep a valid expiry far from now: >= 100 s ahead, or an absolute time in year 5138."""
    if not (value.isdigit() and value[:1] != b"0"):
        return value
    if option.upper() in (b"EXAT", b"PXAT"):
        return value if int(value) >= 10**14 else b"99999999999999"
    return value if int(value) >= 100_000 else b"100000"


@st.composite
def cased(draw: st.DrawFn, word: str) -> bytes:
    """`word` in upper, lower or mixed case."""
    style = draw(st.sampled_from(["upper", "lower", "mixed"]))
    if style == "upper":
        return word.upper().encode()
    if style == "lower":
        return word.lower().encode()
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(word, flips, strict=True)).encode()


@st.composite
def set_options(draw: st.DrawFn) -> list[bytes]:
    """Zero to four SET option units, valid or not, in any order."""
    options: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        unit = draw(st.sampled_from(["flag", "flag", "expire", "expire", "bare", "garbage"]))
        if unit == "flag":
            options.append(draw(cased(draw(st.sampled_from(["NX", "XX", "GET", "KEEPTTL"])))))
        elif unit == "expire":
            name = draw(cased(draw(st.sampled_from(["EX", "PX", "EXAT", "PXAT"]))))
            options += [name, never_due(name, draw(EXPIRE_VALUES))]
        elif unit == "bare":
            options.append(draw(cased(draw(st.sampled_from(["EX", "PX", "EXAT", "PXAT"])))))
        else:
            options.append(draw(st.sampled_from([b"FOO", b"10", b"", b"EXX", b"N X"])))
    return options


@st.composite
def valid_set_options(draw: st.DrawFn) -> list[bytes]:
    """Zero to two SET options that Redis accepts on their own."""
    options: list[bytes] = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            options.append(draw(cased(draw(st.sampled_from(["NX", "XX", "GET", "KEEPTTL"])))))
        else:
            name = draw(cased(draw(st.sampled_from(["EX", "PX", "EXAT", "PXAT"]))))
            options += [name, never_due(name, draw(st.sampled_from([b"100000", b"10" * 7])))]
    return options


def arg_lists(args: st.SearchStrategy[bytes], usual: int) -> st.SearchStrategy[list[bytes]]:
    """Argument lists that mostly have the `usual` length, sometimes one more or one less."""
    counts = st.sampled_from([usual] * 4 + [max(usual - 1, 0), usual + 1, usual + 2])
    return counts.flatmap(lambda n: st.lists(args, min_size=n, max_size=n))


@st.composite
def commands(draw: st.DrawFn) -> Command:
    """One command of the milestone, often malformed."""
    kind = draw(
        st.sampled_from(
            ["set"] * 10
            + ["get"] * 6
            + ["ping", "echo", "dbsize", "flushall", "select", "hello", "client", "config"]
            + ["docs", "unknown", "arity"]
        )
    )
    if kind == "set":
        options = draw(st.one_of(valid_set_options(), set_options()))
        return (draw(cased("set")), draw(KEYS), draw(VALUES), *options)
    if kind == "get":
        return (draw(cased("get")), draw(KEYS))
    if kind == "ping":
        return (draw(cased("ping")), *draw(arg_lists(TEXT_ARGS, draw(st.sampled_from([0, 1])))))
    if kind == "echo":
        return (draw(cased("echo")), *draw(arg_lists(VALUES, 1)))
    if kind == "dbsize":
        return (draw(cased("dbsize")), *draw(arg_lists(TEXT_ARGS, 0)))
    if kind == "flushall":
        extra = st.sampled_from([b"SYNC", b"ASYNC", b"sync", b"x", b""])
        return (draw(cased("flushall")), *draw(arg_lists(extra, 0)))
    if kind == "select":
        index = st.sampled_from([b"0", b"abc", b"-1", b"16", b"", b"00", b"0.0"])
        return (draw(cased("select")), *draw(arg_lists(index, 1)))
    if kind == "hello":
        version = draw(st.sampled_from([b"4", b"1", b"0", b"-1", b"abc", b"", b"99999999999999"]))
        return (draw(cased("hello")), version)
    if kind == "client":
        name = st.sampled_from([b"worker", b"", b"a b", b"a\nb", b"x" * 50, b"\xff", b"ok-1"])
        return (draw(cased("client")), draw(cased("setname")), *draw(arg_lists(name, 1)))
    if kind == "config":
        name = st.sampled_from([b"nosuchparameter", b"no-such-*"])
        return (draw(cased("config")), draw(cased("get")), *draw(arg_lists(name, 1)))
    if kind == "docs":
        return (draw(cased("command")), draw(cased("docs")), b"nosuchcommand")
    if kind == "unknown":
        name = draw(st.sampled_from([b"FOO", b"gett", b"SETT", b"x" * 150, b"ping2", b"E CHO"]))
        return (name, *draw(st.lists(TEXT_ARGS, max_size=12)))
    name = draw(st.sampled_from(["get", "set", "echo", "dbsize", "select", "ping"]))
    return (draw(cased(name)), *draw(st.lists(VALUES, min_size=3, max_size=5)))


def run_sequence(server: ServerProcess, sequence: list[Command]) -> list[bytes]:
    """FLUSHALL, then pipeline `sequence` in one write; return each command's raw reply."""
    with RawConnection(server.port, timeout=10.0) as conn:
        payload = encode_command("FLUSHALL") + b"".join(encode_command(*c) for c in sequence)
        conn.send(payload)
        assert conn.read_reply() == b"+OK\r\n"
        return [conn.read_reply() for _ in sequence]


def compare(clone: ServerProcess, oracle: ServerProcess, sequence: list[Command]) -> None:
    """Assert both servers answer `sequence` with identical bytes, naming the first difference."""
    ours = run_sequence(clone, sequence)
    theirs = run_sequence(oracle, sequence)
    for i, (got, want) in enumerate(zip(ours, theirs, strict=True)):
        assert got == want, (
            f"command {i} {sequence[i]!r}: redis-clone {got!r}, redis {want!r}; "
            f"sequence {sequence!r}"
        )


@SETTINGS
@given(sequence=st.lists(commands(), min_size=1, max_size=25))
def test_same_replies_as_redis(
    clone: ServerProcess, redis_server: ServerProcess, sequence: list[Command]
) -> None:
    """Random command sequences get byte-identical replies from redis-clone and redis-server."""
    compare(clone, redis_server, sequence)


@SETTINGS
@given(
    sequence=st.lists(
        st.tuples(st.sampled_from([b"SET", b"GET", b"set", b"Get"]), KEYS, VALUES).map(
            lambda t: t if t[0].upper() == b"SET" else t[:2]
        ),
        min_size=1,
        max_size=60,
    )
)
def test_same_data_as_redis(
    clone: ServerProcess, redis_server: ServerProcess, sequence: list[Command]
) -> None:
    """Plain SET/GET traffic with binary keys and values reads back the same on both servers."""
    compare(clone, redis_server, [*sequence, (b"DBSIZE",)])


@pytest.mark.parametrize(
    "args",
    [
        (b"FOO", b"a\x00b", b"c"),
        (b"F\x00OO", b"x"),
        (b"FOO", b"\x00"),
        (b"FOO", b"\xff\xfe", b"\r\n"),
    ],
    ids=["nul-in-arg", "nul-in-name", "only-nul", "non-utf8"],
)
def test_unknown_command_binary_args(
    clone: ServerProcess, redis_server: ServerProcess, args: Command
) -> None:
    """Unknown-command errors quote binary arguments as Redis does (C strings stop at NUL)."""
    compare(clone, redis_server, [args])
