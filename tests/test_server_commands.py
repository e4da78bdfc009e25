"""Every command of the first milestone, and its errors, against the running server.

The byte-level tables run against the real redis-server too (the `endpoint` fixture), so an
expected reply written here is checked against the oracle on every run. Commands the oracle
cannot answer the same way (CLUSTER KEYSLOT outside cluster mode, CLIENT SETINFO before 7.2,
SELECT of a database we do not have) are tested against redis-clone alone.
"""

from __future__ import annotations

import pytest
import redis
from conftest import Arg, ServerPool, ServerProcess, encode_command, parse_reply

ARITY = b"-ERR wrong number of arguments for '%s' command\r\n"
SYNTAX = b"-ERR syntax error\r\n"
NOT_INT = b"-ERR value is not an integer or out of range\r\n"
BAD_EXPIRE = b"-ERR invalid expire time in 'set' command\r\n"
OK = b"+OK\r\n"
NIL = b"$-1\r\n"
LLONG_MAX = "9223372036854775807"


def bulk(data: bytes) -> bytes:
    """The RESP encoding of a bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


Step = tuple[tuple[Arg, ...], bytes]

# Each case runs on an empty keyspace; every step is one command and its exact RESP2 reply.
CASES: dict[str, list[Step]] = {
    "ping": [(("PING",), b"+PONG\r\n"), (("ping",), b"+PONG\r\n"), (("PiNg",), b"+PONG\r\n")],
    "ping-message": [(("PING", "hello"), bulk(b"hello")), (("PING", ""), bulk(b""))],
    "ping-arity": [(("PING", "a", "b"), ARITY % b"ping")],
    "echo": [(("ECHO", "hi there"), bulk(b"hi there")), (("echo", ""), bulk(b""))],
    "echo-arity": [(("ECHO",), ARITY % b"echo"), (("ECHO", "a", "b"), ARITY % b"echo")],
    "set-get": [(("SET", "k", "v"), OK), (("GET", "k"), bulk(b"v"))],
    "set-overwrites": [
        (("SET", "k", "v"), OK),
        (("SET", "k", "w"), OK),
        (("GET", "k"), bulk(b"w")),
    ],
    "get-missing": [(("GET", "nosuchkey"), NIL)],
    "empty-key-and-value": [(("SET", "", ""), OK), (("GET", ""), bulk(b""))],
    "get-arity": [(("GET",), ARITY % b"get"), (("GET", "a", "b"), ARITY % b"get")],
    "set-arity": [(("SET",), ARITY % b"set"), (("SET", "k"), ARITY % b"set")],
    "set-nx": [
        (("SET", "k", "v", "NX"), OK),
        (("SET", "k", "w", "NX"), NIL),
        (("GET", "k"), bulk(b"v")),
        (("SET", "k", "w", "nx", "NX"), NIL),
    ],
    "set-xx": [
        (("SET", "k", "v", "XX"), NIL),
        (("GET", "k"), NIL),
        (("SET", "k", "v"), OK),
        (("SET", "k", "w", "xx"), OK),
        (("GET", "k"), bulk(b"w")),
    ],
    "set-nx-xx": [(("SET", "k", "v", "NX", "XX"), SYNTAX), (("GET", "k"), NIL)],
    "set-get-option": [
        (("SET", "k", "v", "GET"), NIL),
        (("SET", "k", "w", "GET"), bulk(b"v")),
        (("SET", "k", "x", "get", "GET"), bulk(b"w")),
        (("GET", "k"), bulk(b"x")),
    ],
    "set-nx-get-existing-keeps-value": [
        (("SET", "k", "v"), OK),
        (("SET", "k", "w", "NX", "GET"), bulk(b"v")),
        (("GET", "k"), bulk(b"v")),
    ],
    "set-xx-get-missing": [(("SET", "k", "v", "XX", "GET"), NIL), (("GET", "k"), NIL)],
    "set-expire-options-ok": [
        (("SET", "a", "1", "EX", "1000"), OK),
        (("SET", "b", "2", "px", "1000000"), OK),
        (("SET", "c", "3", "EXAT", "99999999999"), OK),
        (("SET", "d", "4", "PXAT", "99999999999999"), OK),
        (("SET", "a", "5", "KEEPTTL"), OK),
        (("SET", "e", "6", "EX", "10", "EX", "20"), OK),
        (("SET", "f", "7", "keepttl", "KEEPTTL"), OK),
        (("SET", "g", "8", "EX", "9000000000000000"), OK),
        (("SET", "h", "9", "PX", "9000000000000000000"), OK),
        (("GET", "a"), bulk(b"5")),
        (("GET", "d"), bulk(b"4")),
        (("GET", "h"), bulk(b"9")),
        (("DBSIZE",), b":8\r\n"),
    ],
    "set-expire-with-nx-xx-get": [
        (("SET", "k", "v", "NX", "EX", "1000"), OK),
        (("SET", "k", "w", "XX", "PX", "1000000", "GET"), bulk(b"v")),
        (("SET", "k", "x", "GET", "KEEPTTL", "XX"), bulk(b"w")),
        (("GET", "k"), bulk(b"x")),
    ],
    "set-invalid-expire-time": [
        (("SET", "k", "v", "EX", "0"), BAD_EXPIRE),
        (("SET", "k", "v", "EX", "-1"), BAD_EXPIRE),
        (("SET", "k", "v", "PX", "0"), BAD_EXPIRE),
        (("SET", "k", "v", "PX", "-100"), BAD_EXPIRE),
        (("SET", "k", "v", "EXAT", "0"), BAD_EXPIRE),
        (("SET", "k", "v", "PXAT", "-5"), BAD_EXPIRE),
        (("SET", "k", "v", "EX", LLONG_MAX), BAD_EXPIRE),
        (("SET", "k", "v", "EX", "9223372036854775"), BAD_EXPIRE),
        (("SET", "k", "v", "PX", LLONG_MAX), BAD_EXPIRE),
        (("SET", "k", "v", "PX", "-9223372036854775808"), BAD_EXPIRE),
        (("GET", "k"), NIL),
    ],
    "set-expire-not-integer": [
        (("SET", "k", "v", "EX", "abc"), NOT_INT),
        (("SET", "k", "v", "PX", "1.5"), NOT_INT),
        (("SET", "k", "v", "EX", ""), NOT_INT),
        (("SET", "k", "v", "EXAT", "99999999999999999999"), NOT_INT),
        (("SET", "k", "v", "PXAT", "+5"), NOT_INT),
        (("SET", "k", "v", "EX", " 5"), NOT_INT),
        (("SET", "k", "v", "EX", "05"), NOT_INT),
        (("SET", "k", "v", "EX", "5 "), NOT_INT),
        (("GET", "k"), NIL),
    ],
    "set-syntax-errors": [
        (("SET", "k", "v", "EX"), SYNTAX),
        (("SET", "k", "v", "PX"), SYNTAX),
        (("SET", "k", "v", "EX", "10", "PX", "10"), SYNTAX),
        (("SET", "k", "v", "EX", "10", "KEEPTTL"), SYNTAX),
        (("SET", "k", "v", "KEEPTTL", "PXAT", "10"), SYNTAX),
        (("SET", "k", "v", "EXAT", "10", "PXAT", "10"), SYNTAX),
        (("SET", "k", "v", "XX", "NX"), SYNTAX),
        (("SET", "k", "v", "FOO"), SYNTAX),
        (("SET", "k", "v", "10"), SYNTAX),
        (("SET", "k", "v", "EX", "abc", "PX", "1"), SYNTAX),
        (("GET", "k"), NIL),
    ],
    "dbsize": [
        (("DBSIZE",), b":0\r\n"),
        (("SET", "a", "1"), OK),
        (("SET", "b", "2"), OK),
        (("SET", "a", "3"), OK),
        (("dbsize",), b":2\r\n"),
    ],
    "dbsize-arity": [(("DBSIZE", "x"), ARITY % b"dbsize")],
    "flushall": [
        (("SET", "a", "1"), OK),
        (("SET", "b", "2"), OK),
        (("FLUSHALL",), OK),
        (("DBSIZE",), b":0\r\n"),
        (("GET", "a"), NIL),
    ],
    "flushall-sync-async": [
        (("SET", "a", "1"), OK),
        (("FLUSHALL", "SYNC"), OK),
        (("GET", "a"), NIL),
        (("SET", "a", "1"), OK),
        (("flushall", "async"), OK),
        (("GET", "a"), NIL),
    ],
    "flushall-syntax": [
        (("SET", "a", "1"), OK),
        (("FLUSHALL", "x"), SYNTAX),
        (("FLUSHALL", "SYNC", "ASYNC"), SYNTAX),
        (("GET", "a"), bulk(b"1")),
    ],
    "select": [
        (("SELECT", "0"), OK),
        (("SELECT", "abc"), NOT_INT),
        (("SELECT", "-1"), b"-ERR DB index is out of range\r\n"),
        (("SELECT", "16"), b"-ERR DB index is out of range\r\n"),
        (("SELECT",), ARITY % b"select"),
        (("SELECT", "0", "1"), ARITY % b"select"),
    ],
    "select-isolates-databases": [
        (("SELECT", "1"), OK),
        (("SET", "k", "one"), OK),
        (("SELECT", "0"), OK),
        (("GET", "k"), NIL),
        (("SET", "k", "zero"), OK),
        (("SET", "j", "zero"), OK),
        (("DBSIZE",), b":2\r\n"),
        (("SELECT", "1"), OK),
        (("GET", "k"), bulk(b"one")),
        (("DBSIZE",), b":1\r\n"),
        (("FLUSHALL",), OK),
        (("SELECT", "0"), OK),
        (("DBSIZE",), b":0\r\n"),
        (("SELECT", "15"), OK),
        (("DBSIZE",), b":0\r\n"),
    ],
    "hello-errors": [
        (("HELLO", "4"), b"-NOPROTO unsupported protocol version\r\n"),
        (("HELLO", "1"), b"-NOPROTO unsupported protocol version\r\n"),
        (("HELLO", "abc"), b"-ERR Protocol version is not an integer or out of range\r\n"),
        (("HELLO", "3", "foo"), b"-ERR Syntax error in HELLO option 'foo'\r\n"),
        (("GET", "k"), NIL),
    ],
    "client-setname": [
        (("CLIENT", "SETNAME", "worker-1"), OK),
        (("client", "setname", ""), OK),
        (
            ("CLIENT", "SETNAME", "a b"),
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (
            ("CLIENT", "SETNAME", "a\nb"),
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
        (("CLIENT", "SETNAME"), ARITY % b"client|setname"),
        (("CLIENT",), ARITY % b"client"),
    ],
    "config-get-errors": [
        (("CONFIG", "GET"), ARITY % b"config|get"),
        (("CONFIG",), ARITY % b"config"),
        (("CONFIG", "GET", "nosuchparameter"), b"*0\r\n"),
    ],
    "command-docs-unknown": [(("COMMAND", "DOCS", "nosuchcommand"), b"*0\r\n")],
    "unknown-command": [
        (("FOO", "a", "b"), b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"),
        (("foo",), b"-ERR unknown command 'foo', with args beginning with: \r\n"),
        (("GETT", "k"), b"-ERR unknown command 'GETT', with args beginning with: 'k' \r\n"),
    ],
    "unknown-command-newlines-become-spaces": [
        (
            ("FOO", "a\r\nb", "c\nd"),
            b"-ERR unknown command 'FOO', with args beginning with: 'a  b' 'c d' \r\n",
        ),
    ],
    "unknown-command-truncated": [
        (
            ("x" * 200, "y" * 200, "z"),
            b"-ERR unknown command '"
            + b"x" * 128
            + b"', with args beginning with: '"
            + b"y" * 128
            + b"' \r\n",
        ),
        (
            ("FOO",) + ("abcdefghij",) * 20,
            b"-ERR unknown command 'FOO', with args beginning with: "
            + b"'abcdefghij' " * 10
            + b"\r\n",
        ),
    ],
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_reply_bytes(endpoint: ServerProcess, case: str) -> None:
    """Each step's reply is byte-identical to what Redis 7.0 answers."""
    with endpoint.raw() as conn:
        assert conn.command("FLUSHALL") == OK
        for args, expected in CASES[case]:
            assert conn.command(*args) == expected, f"reply to {args!r}"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_reply_bytes_pipelined(endpoint: ServerProcess, case: str) -> None:
    """The same steps sent in one write get the same replies, in order."""
    with endpoint.raw() as conn:
        conn.send(encode_command("FLUSHALL") + b"".join(encode_command(*a) for a, _ in CASES[case]))
        assert conn.read_reply() == OK
        replies = [conn.read_reply() for _ in CASES[case]]
    assert replies == [expected for _, expected in CASES[case]]


def test_quit_replies_ok_and_closes(endpoint: ServerProcess) -> None:
    """QUIT answers +OK and the server closes the connection; commands after it get no reply."""
    with endpoint.raw() as conn:
        conn.send(encode_command("QUIT") + encode_command("PING"))
        assert conn.read_until_closed(5.0) == OK


IMPLEMENTED = [b"ping", b"echo", b"set", b"get", b"dbsize", b"flushall", b"quit", b"hello"]


def _pairs(flat: list[object]) -> dict[object, object]:
    """A RESP2 flat name-value array as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_command_docs_shape(endpoint: ServerProcess) -> None:
    """COMMAND DOCS answers name-docs pairs with a summary, as redis-cli expects (RESP2)."""
    with endpoint.raw() as conn:
        docs = _pairs(conn.call("COMMAND", "DOCS", "get", "set"))
    assert set(docs) == {b"get", b"set"}
    assert _pairs(docs[b"get"])[b"summary"] == b"Get the value of a key"
    assert _pairs(docs[b"set"])[b"summary"] == b"Set the string value of a key"


def test_command_docs_resp3_map(endpoint: ServerProcess) -> None:
    """After HELLO 3, COMMAND DOCS is a map of maps."""
    with endpoint.raw() as conn:
        conn.command("HELLO", "3")
        raw = conn.command("COMMAND", "DOCS", "get")
    assert raw.startswith(b"%1\r\n$3\r\nget\r\n%")
    assert parse_reply(raw)[b"get"][b"summary"] == b"Get the value of a key"


def test_command_docs_all(endpoint: ServerProcess) -> None:
    """COMMAND DOCS without arguments covers at least every implemented command."""
    with endpoint.raw() as conn:
        docs = _pairs(conn.call("COMMAND", "DOCS"))
    assert set(IMPLEMENTED) <= set(docs)


def _command_table(server: ServerProcess) -> dict[bytes, list[object]]:
    """COMMAND's reply keyed by command name (RESP2, so each entry is a plain array)."""
    with server.raw() as conn:
        return {entry[0]: entry for entry in conn.call("COMMAND")}


def test_command_table_matches_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """COMMAND lists every implemented command with Redis's name, arity and key positions."""
    ours = _command_table(clone)
    theirs = _command_table(redis_server)
    for name in IMPLEMENTED:
        assert name in ours, f"COMMAND has no entry for {name!r}"
        assert ours[name][:2] == theirs[name][:2], f"name/arity of {name!r}"
        assert ours[name][3:6] == theirs[name][3:6], f"first/last/step keys of {name!r}"


def test_config_get_for_benchmark(clone: ServerProcess) -> None:
    """CONFIG GET save/appendonly answer name-value pairs (redis-benchmark asks for them)."""
    r = clone.client(protocol=2)
    reply = r.execute_command("CONFIG", "GET", "save")
    assert len(reply) == 2 and reply[0] == b"save"
    reply = r.execute_command("CONFIG", "GET", "appendonly")
    assert len(reply) == 2 and reply[0] == b"appendonly"


def test_config_get_port(clone: ServerProcess) -> None:
    """CONFIG GET port answers the port the server listens on."""
    assert clone.client().config_get("port") == {"port": str(clone.port)}


def test_config_get_pattern(clone: ServerProcess) -> None:
    """CONFIG GET takes glob patterns, like Redis."""
    found = clone.client().config_get("p*")
    assert found.get("port") == str(clone.port)
    assert all(name.startswith("p") for name in found)


def test_config_flag_sets_value(clone_factory: ServerPool) -> None:
    """Any config key can be given as --name value; CONFIG GET reports it."""
    server = clone_factory.start_clone(shards=1, args=["--hz", "17"])
    assert server.client().config_get("hz") == {"hz": "17"}


KEYSLOTS = {
    "foo": 12182,
    "somekey": 11058,
    "{foo}bar": 12182,
    "": 0,
    "{}foo": 9500,
    "foo{}{bar}": 8363,
    "foo{{bar}}": 4015,
    "{user1000}.following": 3443,
    "a{b}c{d}": 3300,
}


@pytest.mark.parametrize("key", list(KEYSLOTS))
def test_cluster_keyslot(clone: ServerProcess, key: str) -> None:
    """CLUSTER KEYSLOT answers what a cluster-enabled Redis 7.0 answers (values taken from one)."""
    with clone.raw() as conn:
        assert conn.command("CLUSTER", "KEYSLOT", key) == b":%d\r\n" % KEYSLOTS[key]


def test_cluster_keyslot_errors(clone: ServerProcess) -> None:
    """CLUSTER and CLUSTER KEYSLOT arity errors, and unknown subcommands, as Redis words them."""
    with clone.raw() as conn:
        assert conn.command("CLUSTER", "KEYSLOT") == ARITY % b"cluster|keyslot"
        assert conn.command("CLUSTER", "KEYSLOT", "a", "b") == ARITY % b"cluster|keyslot"
        assert conn.command("CLUSTER") == ARITY % b"cluster"
        assert (
            conn.command("CLUSTER", "foo")
            == b"-ERR unknown subcommand 'foo'. Try CLUSTER HELP.\r\n"
        )


def test_cluster_keyslot_binary_key(clone: ServerProcess) -> None:
    """CLUSTER KEYSLOT hashes raw bytes: a key with CR LF and NUL in its tag.

    8375 is what a cluster-enabled Redis 7.0 answers for both keys: equal replies alone would
    also come from a server that altered the bytes (decoded them, say) the same way in both.
    """
    with clone.raw() as conn:
        plain = conn.command("CLUSTER", "KEYSLOT", b"\r\n\x00\xff")
        tagged = conn.command("CLUSTER", "KEYSLOT", b"x{\r\n\x00\xff}y")
    assert plain == tagged == b":8375\r\n"


def test_client_setinfo(clone: ServerProcess) -> None:
    """CLIENT SETINFO (sent by redis-py on connect) is accepted."""
    with clone.raw() as conn:
        assert conn.command("CLIENT", "SETINFO", "LIB-NAME", "redis-py") == OK
        assert conn.command("CLIENT", "SETINFO", "lib-ver", "8.1.0") == OK
        assert conn.command("CLIENT", "SETINFO", "LIB-NAME") == ARITY % b"client|setinfo"


def _keys_on_every_slot_range(count: int) -> list[bytes]:
    """Keys spread over the whole slot space, whatever slot ranges the shards own."""
    return [b"spread:%d" % i for i in range(count)]


def test_dbsize_sums_shards(clone: ServerProcess) -> None:
    """DBSIZE counts keys on every shard; FLUSHALL empties every shard."""
    r = clone.client()
    r.flushall()
    keys = _keys_on_every_slot_range(2000)
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, key)
    assert all(pipe.execute())
    assert r.dbsize() == len(keys)
    assert r.flushall() is True
    assert r.dbsize() == 0
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    assert pipe.execute() == [None] * len(keys)


def test_redis_py_commands(clone: ServerProcess) -> None:
    """The everyday redis-py calls work with the client's defaults (HELLO 3, CLIENT SETINFO)."""
    r = clone.client(decode_responses=True)
    r.flushall()
    assert r.ping() is True
    assert r.echo("hello") == "hello"
    assert r.set("k", "v") is True
    assert r.get("k") == "v"
    assert r.get("missing") is None
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True, get=True) == "v"
    assert r.set("k2", "v", xx=True) is None
    assert r.set("k3", "v", ex=1000) is True
    assert r.set("k4", "v", px=1_000_000) is True
    assert r.set("k3", "x", keepttl=True) is True
    assert r.dbsize() == 3
    assert r.client_setname("tester") is True
    assert r.config_get("nosuchparameter") == {}
    assert r.execute_command("SELECT", 0) is True


def test_redis_py_resp2_client(clone: ServerProcess) -> None:
    """A redis-py client that stays on RESP2 (protocol=2) works the same."""
    r = clone.client(protocol=2)
    assert r.set("resp2:k", b"\x00v") is True
    assert r.get("resp2:k") == b"\x00v"
    assert r.get("resp2:missing") is None
    assert r.set("resp2:k", "w", nx=True) is None
    assert r.config_get("nosuchparameter") == {}


def test_redis_py_errors(clone: ServerProcess) -> None:
    """Errors reach redis-py as ResponseError with Redis's texts."""
    r = clone.client()
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="^invalid expire time in 'set' command$"):
        r.execute_command("SET", "k", "v", "EX", "0")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("SET", "k", "v", "PX", "soon")
    with pytest.raises(redis.ResponseError, match="^unknown command 'NOPE'"):
        r.execute_command("NOPE", "x")
    assert r.ping() is True


def test_errors_in_pipeline_stay_in_place(clone: ServerProcess) -> None:
    """In a pipeline each command's error comes back in its own position."""
    r = clone.client()
    pipe = r.pipeline(transaction=False)
    pipe.set("pe:a", "1")
    pipe.execute_command("SET", "pe:b", "2", "EX", "0")
    pipe.get("pe:a")
    pipe.execute_command("NOPE")
    pipe.echo("end")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True
    assert isinstance(results[1], redis.ResponseError)
    assert results[2] == b"1"
    assert isinstance(results[3], redis.ResponseError)
    assert results[4] == b"end"
