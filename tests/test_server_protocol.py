"""The wire protocol seen from a client: malformed RESP, inline commands, RESP3, binary data.

Protocol errors are checked byte for byte against the real redis-server (the `endpoint` fixture):
the server answers `-ERR Protocol error: ...`, closes that connection, and every other client goes
on as before.
"""

from __future__ import annotations

import threading

import pytest
from conftest import ServerProcess, encode_command, parse_reply

PONG = b"+PONG\r\n"

# Malformed requests and the exact reply Redis 7.0 sends before it closes the connection.
PROTOCOL_ERRORS: dict[str, tuple[bytes, bytes]] = {
    "simple-string-in-multibulk": (
        b"*1\r\n+PING\r\n",
        b"-ERR Protocol error: expected '$', got '+'\r\n",
    ),
    "integer-in-multibulk": (
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"-ERR Protocol error: expected '$', got ':'\r\n",
    ),
    "non-numeric-multibulk-count": (
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    ),
    "trailing-garbage-multibulk-count": (
        b"*1x\r\n$4\r\nPING\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    ),
    "plus-sign-multibulk-count": (
        b"*+1\r\n$4\r\nPING\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    ),
    "lf-without-cr-after-count": (
        b"*1\n$4\r\nPING\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    ),
    "non-numeric-bulk-length": (
        b"*1\r\n$abc\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "negative-bulk-length": (
        b"*1\r\n$-1\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "very-negative-bulk-length": (
        b"*2\r\n$4\r\nECHO\r\n$-5\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "bulk-length-leading-zero": (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$01\r\nv\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "bulk-length-with-space": (
        b"*1\r\n$ 4\r\nPING\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "bulk-length-trailing-garbage": (
        b"*1\r\n$4x\r\nPING\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "bulk-longer-than-proto-max-bulk-len": (
        b"*1\r\n$536870913\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    ),
    "multibulk-count-without-crlf": (
        b"*" + b"1" * 70_000,
        b"-ERR Protocol error: too big mbulk count string\r\n",
    ),
    "inline-without-newline": (
        b"P" * 70_000,
        b"-ERR Protocol error: too big inline request\r\n",
    ),
    "inline-unbalanced-quotes": (
        b'ECHO "a b\r\n',
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    ),
}


def assert_protocol_error_closes(server: ServerProcess, request: bytes, expected: bytes) -> None:
    """Send `request`; expect `expected`, then EOF, while another client keeps working."""
    with server.raw() as bystander, server.raw() as conn:
        assert bystander.command("SET", "bystander", "still here") == b"+OK\r\n"
        conn.send(request)
        reply = conn.read_until_closed(5.0)
        assert b"-ERR Protocol error:" in reply, reply[:200]
        assert reply == expected
        assert bystander.command("GET", "bystander") == b"$10\r\nstill here\r\n"
    with server.raw() as fresh:
        assert fresh.command("PING") == PONG


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS), ids=list(PROTOCOL_ERRORS))
def test_protocol_error(endpoint: ServerProcess, case: str) -> None:
    """Malformed RESP gets Redis's protocol error, the connection closes, others are unaffected."""
    request, expected = PROTOCOL_ERRORS[case]
    assert_protocol_error_closes(endpoint, request, expected)


def test_protocol_error_after_good_commands(endpoint: ServerProcess) -> None:
    """Commands before the malformed one in the same write are answered first, in order."""
    request = encode_command("SET", "pe", "1") + encode_command("GET", "pe") + b"*1\r\n$x\r\n"
    expected = b"+OK\r\n$1\r\n1\r\n-ERR Protocol error: invalid bulk length\r\n"
    assert_protocol_error_closes(endpoint, request, expected)


def test_multibulk_count_over_limit(endpoint: ServerProcess) -> None:
    """Redis 7.0 refuses a multibulk count above INT_MAX as soon as it reads it."""
    assert_protocol_error_closes(
        endpoint, b"*2147483648\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"
    )


def test_large_counts_and_bulks_wait(endpoint: ServerProcess) -> None:
    """Counts up to INT_MAX, and bulks up to 512 MB, are legal: the server waits for the rest.

    (Redis 6 refused counts above 1048576; 7.0 does not, and neither do we.)
    """
    for request in (b"*1048577\r\n", b"*2147483647\r\n", b"*1\r\n$536870912\r\n"):
        with endpoint.raw() as conn:
            conn.send(request)
            with pytest.raises(TimeoutError):
                conn.read_reply(timeout=0.3)


def test_split_request_bytes(endpoint: ServerProcess) -> None:
    """A request that arrives one byte at a time is parsed the same."""
    with endpoint.raw() as conn:
        for byte in encode_command("ECHO", "split\r\nvalue"):
            conn.send(bytes([byte]))
        assert conn.read_reply() == b"$12\r\nsplit\r\nvalue\r\n"


def test_empty_multibulk_ignored(endpoint: ServerProcess) -> None:
    """`*0` and `*-1` are no commands at all: no reply, and the next command is answered."""
    with endpoint.raw() as conn:
        assert conn.request(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n") == PONG
        assert conn.command("ECHO", "next") == b"$4\r\nnext\r\n"


INLINE: dict[str, tuple[bytes, bytes]] = {
    "ping-crlf": (b"PING\r\n", PONG),
    "ping-lf": (b"PING\n", PONG),
    "lowercase": (b"ping\r\n", PONG),
    "blank-lines-ignored": (b"\r\n\r\nPING\r\n", PONG),
    "echo": (b"ECHO hello\r\n", b"$5\r\nhello\r\n"),
    "extra-spaces": (b"ECHO    hello   \r\n", b"$5\r\nhello\r\n"),
    "double-quotes": (b'ECHO "a b"\r\n', b"$3\r\na b\r\n"),
    "single-quotes": (b"ECHO 'x y'\r\n", b"$3\r\nx y\r\n"),
    "escapes-in-quotes": (b'ECHO "\\x41\\n"\r\n', b"$2\r\nA\n\r\n"),
    "arity-error": (b'ECHO "a b" c\r\n', b"-ERR wrong number of arguments for 'echo' command\r\n"),
    "unknown": (b"NOPE x\r\n", b"-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n"),
}


@pytest.mark.parametrize("case", list(INLINE), ids=list(INLINE))
def test_inline_command(endpoint: ServerProcess, case: str) -> None:
    """Inline commands, as telnet sends them, are answered like Redis does."""
    request, expected = INLINE[case]
    with endpoint.raw() as conn:
        assert conn.request(request) == expected
        assert conn.command("PING") == PONG


def test_inline_set_get(endpoint: ServerProcess) -> None:
    """Inline SET and GET, mixed with multibulk requests in one write."""
    with endpoint.raw() as conn:
        conn.send(
            b"SET inline:k inline-value\r\n" + encode_command("GET", "inline:k") + b"GET inline:k\n"
        )
        assert conn.read_reply() == b"+OK\r\n"
        assert conn.read_reply() == b"$12\r\ninline-value\r\n"
        assert conn.read_reply() == b"$12\r\ninline-value\r\n"


def test_hello3_switches_to_resp3(endpoint: ServerProcess) -> None:
    """HELLO 3 answers a map; then nulls, maps and errors use RESP3 types; HELLO 2 goes back."""
    with endpoint.raw() as conn:
        hello = conn.command("HELLO", "3")
        assert hello.startswith(b"%7\r\n")
        fields = parse_reply(hello)
        assert fields[b"proto"] == 3
        assert fields[b"server"] == b"redis"
        assert fields[b"mode"] == b"standalone"
        assert fields[b"role"] == b"master"
        assert conn.command("GET", "resp3:missing") == b"_\r\n"
        assert conn.command("SET", "resp3:k", "v") == b"+OK\r\n"
        assert conn.command("SET", "resp3:k", "w", "NX") == b"_\r\n"
        assert conn.command("SET", "resp3:k", "w", "GET") == b"$1\r\nv\r\n"
        assert conn.command("PING") == PONG
        assert conn.command("CONFIG", "GET", "nosuchparameter") == b"%0\r\n"
        assert conn.command("COMMAND", "DOCS", "nosuchcommand") == b"%0\r\n"
        assert conn.command("DBSIZE").startswith(b":")
        assert conn.command("SET", "k", "v", "EX", "0") == (
            b"-ERR invalid expire time in 'set' command\r\n"
        )
        hello2 = parse_reply(conn.command("HELLO", "2"))
        assert dict(zip(hello2[::2], hello2[1::2], strict=True))[b"proto"] == 2
        assert conn.command("GET", "resp3:missing") == b"$-1\r\n"
        assert conn.command("CONFIG", "GET", "nosuchparameter") == b"*0\r\n"


def test_hello_without_version_keeps_protocol(endpoint: ServerProcess) -> None:
    """HELLO with no version reports the current protocol without changing it."""
    with endpoint.raw() as conn:
        assert conn.command("HELLO").startswith(b"*14\r\n")
        assert conn.command("GET", "resp2:missing") == b"$-1\r\n"
        conn.command("HELLO", "3")
        assert conn.command("HELLO").startswith(b"%7\r\n")
        assert conn.command("GET", "resp2:missing") == b"_\r\n"


def test_hello_error_keeps_protocol(endpoint: ServerProcess) -> None:
    """A refused HELLO leaves the connection on RESP2."""
    with endpoint.raw() as conn:
        assert conn.command("HELLO", "3", "foo").startswith(b"-ERR")
        assert conn.command("GET", "missing") == b"$-1\r\n"


def test_hello_config_get_map_resp3(clone: ServerProcess) -> None:
    """In RESP3, CONFIG GET answers a map."""
    with clone.raw() as conn:
        conn.command("HELLO", "3")
        assert conn.command("CONFIG", "GET", "port") == b"%%1\r\n$4\r\nport\r\n$%d\r\n%d\r\n" % (
            len(str(clone.port)),
            clone.port,
        )


BINARY_KEYS = [b"\r\n", b"\x00", b"a\x00b\r\nc", bytes(range(256)), b"{\r\n}\x00", b"*1\r\n$4\r\n"]


def test_binary_keys_and_values(clone: ServerProcess) -> None:
    """Keys and values holding CR, LF, NUL and every byte value round-trip exactly."""
    r = clone.client()
    values = [key[::-1] + b"\x00\r\n\xff" for key in BINARY_KEYS]
    for key, value in zip(BINARY_KEYS, values, strict=True):
        assert r.set(key, value) is True
    assert [r.get(key) for key in BINARY_KEYS] == values
    with clone.raw() as conn:
        for key, value in zip(BINARY_KEYS, values, strict=True):
            assert conn.command("GET", key) == b"$%d\r\n%s\r\n" % (len(value), value)


def test_big_value_round_trip(clone: ServerProcess) -> None:
    """A 64 MB value can be set and read back intact."""
    r = clone.client(socket_timeout=60)
    value = bytes(range(256)) * (64 * 1024 * 1024 // 256)
    assert r.set("big:value", value) is True
    got = r.get("big:value")
    assert got is not None and len(got) == len(value)
    assert got == value
    assert r.set("big:value", "small") is True


def test_other_clients_unaffected_while_big_value_in_flight(clone: ServerProcess) -> None:
    """While one client is half-way through sending a large bulk, others are still served."""
    with clone.raw() as slow, clone.raw() as other:
        slow.send(b"*3\r\n$3\r\nSET\r\n$8\r\nbig:half\r\n$%d\r\n" % (8 * 1024 * 1024))
        slow.send(b"x" * (4 * 1024 * 1024))
        assert other.command("PING") == PONG
        slow.send(b"x" * (4 * 1024 * 1024) + b"\r\n")
        assert slow.read_reply() == b"+OK\r\n"
        assert other.command("GET", "big:half").startswith(b"$8388608\r\nxxxx")


def test_many_connections(clone: ServerProcess) -> None:
    """200 connections open at once are all served."""
    conns = [clone.raw() for _ in range(200)]
    try:
        for i, conn in enumerate(conns):
            conn.send(encode_command("ECHO", str(i)))
        for i, conn in enumerate(conns):
            assert conn.read_reply() == b"$%d\r\n%d\r\n" % (len(str(i)), i)
    finally:
        for conn in conns:
            conn.close()


def test_disconnect_mid_pipeline_does_not_hurt_others(clone: ServerProcess) -> None:
    """Clients that vanish mid-pipeline, or mid-request, leave other clients' replies intact."""
    errors: list[BaseException] = []

    def well_behaved() -> None:
        try:
            with clone.raw(timeout=30) as conn:
                for round_ in range(20):
                    keys = [b"mid:%d:%d" % (round_, i) for i in range(500)]
                    conn.send(b"".join(encode_command("SET", k, k) for k in keys))
                    conn.send(b"".join(encode_command("GET", k) for k in keys))
                    assert [conn.read_reply() for _ in keys] == [b"+OK\r\n"] * len(keys)
                    for k in keys:
                        assert conn.read_reply() == b"$%d\r\n%s\r\n" % (len(k), k)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    worker = threading.Thread(target=well_behaved)
    worker.start()
    batch = b"".join(encode_command("SET", b"gone:%d" % i, b"x" * 100) for i in range(10_000))
    for _ in range(10):
        with clone.raw() as quitter:
            quitter.send(batch + b"*3\r\n$3\r\nSET\r\n$4\r\nhalf")
    worker.join(60)
    assert not worker.is_alive(), "well-behaved client did not finish"
    assert not errors, errors[0]
    with clone.raw() as conn:
        assert conn.command("PING") == PONG
