"""The RESP layer: request parsing (reference and fast paths) and reply encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.resp import (
    CommandReader,
    ProtocolError,
    RequestParser,
    Resp2,
    Resp3,
    split_inline_args,
)


def encode_command(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def parse_all(data: bytes, **kw) -> list:
    parser = RequestParser(**kw)
    parser.feed(data)
    out: list = []
    try:
        command = parser.next_command()
        while command is not None:
            out.append(command)
            command = parser.next_command()
    except ProtocolError as problem:
        out.append(problem)
    return out


def read_in_pieces(data: bytes, cuts: list[int]) -> list:
    """Feed a CommandReader the stream cut at the given offsets; errors compared by text."""
    reader = CommandReader()
    out: list = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut <= start:
            continue
        out.extend(reader.read(data[start:cut]))
        start = cut
        if out and isinstance(out[-1], ProtocolError):
            break
    return [str(x) if isinstance(x, ProtocolError) else x for x in out]


args_strategy = st.lists(st.binary(max_size=40), min_size=1, max_size=6)
stream_strategy = st.lists(args_strategy, min_size=1, max_size=8)


@given(stream_strategy, st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
@settings(max_examples=300)
def test_any_split_parses_the_same(commands: list[list[bytes]], cuts: list[int]) -> None:
    data = b"".join(encode_command(c) for c in commands)
    assert read_in_pieces(data, cuts) == commands
    assert parse_all(data) == commands


inline_word = st.binary(min_size=1, max_size=10).filter(
    lambda w: all(c not in b" \t\r\n\v\f\"'\0" for c in w)
)


@given(
    st.lists(
        st.one_of(
            args_strategy.map(encode_command),
            st.lists(inline_word, min_size=1, max_size=4).map(lambda ws: b" ".join(ws) + b"\r\n"),
        ),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(min_value=0, max_value=500), max_size=10),
)
@settings(max_examples=200)
def test_mixed_inline_and_multibulk_any_split(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    whole = [str(x) if isinstance(x, ProtocolError) else x for x in parse_all(data)]
    assert read_in_pieces(data, cuts) == whole


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*3000000000\r\n", "Protocol error: invalid multibulk length"),
        (b"*+1\r\n", "Protocol error: invalid multibulk length"),
        (b"*01\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\n$4\r\nPING\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n:5\r\n", "Protocol error: expected '$', got ':'"),
        (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
        (b'ECHO "abc\r\n', "Protocol error: unbalanced quotes in request"),
        (b'ECHO "abc"x\r\n', "Protocol error: unbalanced quotes in request"),
        (b"x" * 70000, "Protocol error: too big inline request"),
        (b"*1\r\n$" + b"1" * 70000, "Protocol error: too big bulk count string"),
        (b"*" + b"1" * 70000, "Protocol error: too big mbulk count string"),
    ],
)
def test_protocol_errors_match_redis(data: bytes, message: str) -> None:
    assert [str(x) for x in parse_all(data)] == [message]
    assert [str(x) for x in CommandReader().read(data)] == [message]


def test_valid_commands_before_an_error_are_kept() -> None:
    data = encode_command([b"SET", b"a", b"b"]) + b"*1\r\n:5\r\n"
    out = CommandReader().read(data)
    assert out[0] == [b"SET", b"a", b"b"]
    assert str(out[1]) == "Protocol error: expected '$', got ':'"


def test_oversized_bulk_is_refused_before_its_data_arrives() -> None:
    reader = CommandReader()
    assert reader.read(b"*2\r\n$3\r\nSET\r\n$5\r\nab") == []
    out = reader.read(b"cde\r\n*1\r\n$999999999999\r\n")
    assert out[0] == [b"SET", b"abcde"]
    assert str(out[1]) == "Protocol error: invalid bulk length"


def test_configured_max_bulk_len() -> None:
    assert [str(x) for x in parse_all(b"*1\r\n$2000\r\n", max_bulk_len=1000)] == [
        "Protocol error: invalid bulk length"
    ]


def test_empty_requests_are_skipped() -> None:
    data = b"*0\r\n*-1\r\n\r\n   \r\n" + encode_command([b"PING"])
    assert parse_all(data) == [[b"PING"]]
    assert CommandReader().read(data) == [[b"PING"]]


def test_trailing_bytes_after_a_bulk_are_not_checked_as_in_redis() -> None:
    assert parse_all(b"*1\r\n$4\r\nPINGxx") == [[b"PING"]]


def test_binary_arguments_survive() -> None:
    args = [b"SET", b"k\r\n\0", b"\r\n$3\r\n*1\r\n\0\xff"]
    assert CommandReader().read(encode_command(args)) == [args]


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"PING", [b"PING"]),
        (b"  set  a   b ", [b"set", b"a", b"b"]),
        (b'ECHO "a b"', [b"ECHO", b"a b"]),
        (b'ECHO "a\\x41\\n\\t\\"q"', [b"ECHO", b'aA\n\t"q']),
        (b"ECHO 'it\\'s' x", [b"ECHO", b"it's", b"x"]),
        (b'ECHO ""', [b"ECHO", b""]),
        (b"GET a\0b", [b"GET", b"a"]),
        (b"", []),
    ],
)
def test_inline_splitting(line: bytes, args: list[bytes]) -> None:
    assert split_inline_args(line) == args


def test_inline_after_multibulk_switches_parsers() -> None:
    reader = CommandReader()
    assert reader.read(encode_command([b"PING"]) + b"PING\r\nECHO x\n") == [
        [b"PING"],
        [b"PING"],
        [b"ECHO", b"x"],
    ]
    assert not reader.fast
    assert reader.read(encode_command([b"GET", b"k"])) == [[b"GET", b"k"]]
    assert reader.fast  # back on a command boundary, hiredis serves the stream again
    assert reader.read(b"PING\r\n" + encode_command([b"GET", b"j"])) == [[b"PING"], [b"GET", b"j"]]


def test_encoders() -> None:
    assert Resp2.bulk(b"ab") == b"$2\r\nab\r\n"
    assert Resp2.bulk_or_null(None) == b"$-1\r\n"
    assert Resp3.bulk_or_null(None) == b"_\r\n"
    assert Resp2.integer(-5) == b":-5\r\n"
    assert Resp2.error("ERR a\r\nb") == b"-ERR a  b\r\n"
    pairs = [(Resp2.bulk(b"k"), Resp2.integer(1))]
    assert Resp2.map(pairs) == b"*2\r\n$1\r\nk\r\n:1\r\n"
    assert Resp3.map(pairs) == b"%1\r\n$1\r\nk\r\n:1\r\n"
    assert Resp2.bulk_array([b"a", None]) == b"*2\r\n$1\r\na\r\n$-1\r\n"
    assert Resp3.double(b"1.5") == b",1.5\r\n"
    assert Resp2.double(b"1.5") == b"$3\r\n1.5\r\n"


def _bulk_strings(head: bytes, values: list[bytes | None], null: bytes) -> bytes:
    """The reference encoding: every element formatted on its own."""
    return head + b"".join(null if v is None else b"$%d\r\n%b\r\n" % (len(v), v) for v in values)


BULK_VALUES = st.lists(
    st.one_of(st.binary(max_size=8), st.sampled_from([b"\r\n", b"x" * 1023, b"y" * 1024])),
    max_size=12,
)


@given(BULK_VALUES, st.lists(st.integers(min_value=0, max_value=12), max_size=2))
def test_arrays_of_bulk_strings_match_the_plain_encoding(values, nulls) -> None:
    """Few elements, many, nulls among them and elements past the header table: each way
    through the joins gives what formatting each element gives."""
    assert Resp2.bulk_set(values) == _bulk_strings(b"*%d\r\n" % len(values), values, b"")
    assert Resp3.bulk_set(values) == _bulk_strings(b"~%d\r\n" % len(values), values, b"")
    flat = values[: len(values) // 2 * 2]
    assert Resp2.bulk_map(flat) == _bulk_strings(b"*%d\r\n" % len(flat), flat, b"")
    assert Resp3.bulk_map(flat) == _bulk_strings(b"%%%d\r\n" % (len(flat) // 2), flat, b"")
    with_nulls: list[bytes | None] = list(values)
    for position in nulls:
        with_nulls.insert(min(position, len(with_nulls)), None)
    head = b"*%d\r\n" % len(with_nulls)
    assert Resp2.bulk_array(with_nulls) == _bulk_strings(head, with_nulls, b"$-1\r\n")
    assert Resp3.bulk_array(with_nulls) == _bulk_strings(head, with_nulls, b"_\r\n")


def test_status_elements_are_refused_before_anything_runs() -> None:
    """hiredis returns ``+PING`` inside an array as bytes: only the byte count gives it away."""
    assert [str(x) for x in CommandReader().read(b"*1\r\n+PING\r\n")] == [
        "Protocol error: expected '$', got '+'"
    ]
    out = CommandReader().read(encode_command([b"PING"]) + b"*2\r\n+ECHO\r\n$1\r\nx\r\n")
    assert out[0] == [b"PING"]
    assert str(out[1]) == "Protocol error: expected '$', got '+'"


def test_a_large_pipeline_stays_on_the_fast_path() -> None:
    """Chunks that end mid-command are checked from the incomplete command only."""
    stream = b"".join(encode_command([b"SET", b"k%d" % i, b"v" * 20]) for i in range(3000))
    reader = CommandReader()
    got = []
    for start in range(0, len(stream), 4096):
        got.extend(reader.read(stream[start : start + 4096]))
    assert len(got) == 3000 and got[-1] == [b"SET", b"k2999", b"v" * 20]
    assert reader.fast


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([b"*2147483647\r\n"], []),
        ([b"*21474", b"83647\r\n"], []),
        ([bytes([byte]) for byte in b"*2147483647\r\n"], []),  # one byte per read
        ([b"*1\r\n~2000000000\r\n"], ["Protocol error: expected '$', got '~'"]),
        (
            [b"*1\r\n$3\r\nGET\r\n*1\r\n*2000000\r\n"],
            [[b"GET"], "Protocol error: expected '$', got '*'"],
        ),
    ],
)
def test_huge_array_headers_never_reach_hiredis(pieces: list[bytes], expected: list) -> None:
    """hiredis would allocate the announced list at once; the reference parser waits."""
    reader = CommandReader()
    out: list = []
    for piece in pieces:
        out.extend(reader.read(piece))
    assert not reader.fast
    assert [str(x) if isinstance(x, ProtocolError) else x for x in out] == expected
