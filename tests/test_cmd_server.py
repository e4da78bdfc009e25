"""Server and connection commands: AUTH, CLIENT, RESET, TIME, INFO, CONFIG RESETSTAT, COMMAND
GETKEYS, DEBUG, SHUTDOWN, and the generated docs/commands.md.

Byte-level tables run against the real redis-server too (the `endpoint` fixture), so every
expected reply written here is checked against the oracle on each run. Behaviour tests (CLIENT
KILL, RESET, INFO's figures) also run on all three endpoints where Redis and we must agree, and
on redis-clone alone where only we have the thing (the `shards` section). DEBUG needs
`enable-debug-command`, which Redis 7.0 refuses to change at run time, so it gets servers of its
own; SHUTDOWN stops a fresh server per test.
"""

from __future__ import annotations

import importlib.util
import os
import pty
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import (
    REPO_ROOT,
    Arg,
    ServerPool,
    ServerProcess,
    encode_command,
    parse_reply,
    pid_alive,
    proc_children,
    proc_descendants,
    wait_until,
)

import shardserver
from shardserver import info
from shardserver.commands.debug import sleep_seconds
from shardserver.pubsub import PubSub
from shardserver.shard import Shard

OK = b"+OK\r\n"
SYNTAX = b"-ERR syntax error\r\n"
ARITY = b"-ERR wrong number of arguments for '%s' command\r\n"
EMPTY_BULK = b"$0\r\n\r\n"
NO_PASSWORD = (
    b"-ERR AUTH <password> called without any password configured for the default user. "
    b"Are you sure your configuration is correct?\r\n"
)
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
DEBUG_REFUSED = (
    b'-ERR DEBUG command not allowed. If the enable-debug-command option is set to "local", '
    b"you can run it from a local connection, otherwise you need to set this option in the "
    b"configuration file, and then restart the server.\r\n"
)
INVALID_COMMAND = b"-ERR Invalid command specified\r\n"
NO_KEYS = b"-ERR The command has no key arguments\r\n"
INVALID_ARGS = b"-ERR Invalid number of arguments specified for command\r\n"
BAD_KEY_ARGS = b"-ERR Invalid arguments specified for command\r\n"


def bulks(*items: bytes) -> bytes:
    """A RESP2 array of bulk strings."""
    return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%s\r\n" % (len(i), i) for i in items)


Step = tuple[tuple[Arg, ...], bytes]

# Each case runs on a fresh connection; every step is one command and its exact RESP2 reply.
CASES: dict[str, list[Step]] = {
    "auth-no-password": [(("AUTH", "secret"), NO_PASSWORD), (("auth", ""), NO_PASSWORD)],
    "auth-user": [
        (("AUTH", "default", "anything"), OK),
        (("AUTH", "alice", "secret"), WRONGPASS),
        (("AUTH", "a", "b", "c"), SYNTAX),
        (("AUTH",), ARITY % b"auth"),
    ],
    "time-arity": [(("TIME", "x"), ARITY % b"time")],
    "reset": [(("RESET",), b"+RESET\r\n"), (("RESET", "x"), ARITY % b"reset")],
    "client-kill-errors": [
        (("CLIENT", "KILL", "1.2.3.4:5"), b"-ERR No such client\r\n"),
        (("CLIENT", "KILL", "id"), b"-ERR No such client\r\n"),
        (("CLIENT", "KILL", "ID", "999999"), b":0\r\n"),
        (("CLIENT", "KILL", "ID", "0"), b"-ERR client-id should be greater than 0\r\n"),
        (("CLIENT", "KILL", "ID", "abc"), b"-ERR client-id should be greater than 0\r\n"),
        (("CLIENT", "KILL", "TYPE", "master"), b":0\r\n"),
        (("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "no"), b":0\r\n"),
        (("CLIENT", "KILL", "type", "foo"), b"-ERR Unknown client type 'foo'\r\n"),
        (("CLIENT", "KILL", "USER", "bob"), b"-ERR No such user 'bob'\r\n"),
        (("CLIENT", "KILL", "SKIPME", "maybe"), SYNTAX),
        (("CLIENT", "KILL", "LADDR", "1.2.3.4:5", "SKIPME"), SYNTAX),
        (("CLIENT", "KILL", "foo", "bar"), SYNTAX),
        (("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ID", "1"), b":0\r\n"),
        (("CLIENT", "KILL"), ARITY % b"client|kill"),
    ],
    "client-list-errors": [
        (("CLIENT", "LIST", "foo"), SYNTAX),
        (("CLIENT", "LIST", "foo", "bar"), SYNTAX),
        (("CLIENT", "LIST", "TYPE"), SYNTAX),
        (("CLIENT", "LIST", "TYPE", "foo"), b"-ERR Unknown client type 'foo'\r\n"),
        (("CLIENT", "LIST", "type", "replica"), EMPTY_BULK),
        (("CLIENT", "LIST", "TYPE", "normal", "x"), SYNTAX),
        (("CLIENT", "LIST", "ID"), SYNTAX),
        (("CLIENT", "LIST", "ID", "1", "abc"), b"-ERR Invalid client ID\r\n"),
        (("CLIENT", "LIST", "ID", "0", "-1", "999999"), EMPTY_BULK),
    ],
    "client-no-evict": [
        (("CLIENT", "NO-EVICT", "on"), OK),
        (("CLIENT", "NO-EVICT", "OFF"), OK),
        (("CLIENT", "NO-EVICT", "maybe"), SYNTAX),
        (("CLIENT", "NO-EVICT"), ARITY % b"client|no-evict"),
        (("CLIENT", "INFO", "x"), ARITY % b"client|info"),
    ],
    "command-getkeys": [
        (("COMMAND", "GETKEYS", "GET", "k"), bulks(b"k")),
        (("COMMAND", "GETKEYS", "set", "k", "v", "EX", "10"), bulks(b"k")),
        (("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"), bulks(b"a", b"b")),
        (("COMMAND", "GETKEYS", "MSET", "a", "1", "b"), bulks(b"a", b"b")),
        (("COMMAND", "GETKEYS", "DEL", "a", "b", "c"), bulks(b"a", b"b", b"c")),
        (("COMMAND", "GETKEYS", "RENAME", "a", "b"), bulks(b"a", b"b")),
        (("COMMAND", "GETKEYS", "LCS", "a", "b"), bulks(b"a", b"b")),
        (("COMMAND", "GETKEYS", "EXPIRE", "k", "10", "NX"), bulks(b"k")),
        (("COMMAND", "GETKEYS", "GETEX", "k"), bulks(b"k")),
        (("COMMAND", "GETKEYS", "LMPOP", "1", "a", "LEFT"), bulks(b"a")),
        (("COMMAND", "GETKEYS", "SINTERCARD", "2", "a", "b"), bulks(b"a", b"b")),
        (
            ("COMMAND", "GETKEYS", "SORT", "k", "BY", "x", "GET", "y", "STORE", "d"),
            bulks(b"k", b"d"),
        ),
    ],
    "command-getkeys-errors": [
        (("COMMAND", "GETKEYS", "NOSUCH", "x"), INVALID_COMMAND),
        (("COMMAND", "GETKEYS", "CLIENT", "NOSUCH"), INVALID_COMMAND),
        (("COMMAND", "GETKEYS", "PING", "x"), NO_KEYS),
        (("COMMAND", "GETKEYS", "CONFIG", "GET", "x"), NO_KEYS),
        (("COMMAND", "GETKEYS", "CLIENT", "LIST"), NO_KEYS),
        (("COMMAND", "GETKEYS", "GET", "a", "b"), INVALID_ARGS),
        (("COMMAND", "GETKEYS", "SET", "a"), INVALID_ARGS),
        (("COMMAND", "GETKEYS", "MSET", "a"), INVALID_ARGS),
        (("COMMAND", "GETKEYS", "GET"), ARITY % b"command|getkeys"),
        (("COMMAND", "GETKEYS", "LMPOP", "0", "a", "LEFT"), BAD_KEY_ARGS),
        (("COMMAND", "GETKEYS", "LMPOP", "5", "a", "LEFT"), BAD_KEY_ARGS),
        (("COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "0", "a"), BAD_KEY_ARGS),
    ],
    "info-unknown-section": [(("INFO", "nosuchsection"), EMPTY_BULK)],
    "config-resetstat": [
        (("CONFIG", "RESETSTAT"), OK),
        (("CONFIG", "RESETSTAT", "x"), ARITY % b"config|resetstat"),
    ],
    "shutdown-refused": [
        (("SHUTDOWN", "foo"), SYNTAX),
        (("SHUTDOWN", "SAVE", "NOSAVE"), SYNTAX),
        (("SHUTDOWN", "ABORT", "NOW"), SYNTAX),
        (("SHUTDOWN", "ABORT"), b"-ERR No shutdown in progress.\r\n"),
    ],
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_reply_bytes(endpoint: ServerProcess, case: str) -> None:
    """Each step's exact reply, on redis-server and redis-clone alike."""
    with endpoint.raw() as conn:
        replies = [conn.command(*args) for args, _ in CASES[case]]
    assert replies == [expected for _, expected in CASES[case]]


RESP3_CASES: list[Step] = [
    (("INFO", "nosuchsection"), b"=4\r\ntxt:\r\n"),
    (("RESET",), b"+RESET\r\n"),
    (("CLIENT", "GETNAME"), b"$-1\r\n"),  # RESET went back to RESP2
]


def test_reply_bytes_resp3(endpoint: ServerProcess) -> None:
    """After HELLO 3: INFO is a verbatim string, RESET answers +RESET and restores RESP2."""
    with endpoint.raw() as conn:
        assert conn.command("HELLO", "3").startswith(b"%")
        replies = [conn.command(*args) for args, _ in RESP3_CASES]
    assert replies == [expected for _, expected in RESP3_CASES]


# -- TIME, RESET, CLIENT --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_time(endpoint: ServerProcess, protocol: str) -> None:
    """TIME: two bulk strings, Unix seconds and microseconds, in either protocol."""
    with endpoint.raw() as conn:
        conn.command("HELLO", protocol)
        raw = conn.command("TIME")
    assert re.fullmatch(rb"\*2\r\n\$\d+\r\n\d+\r\n\$\d+\r\n\d+\r\n", raw), raw
    seconds, micros = (int(x) for x in parse_reply(raw))
    assert abs(seconds + micros / 1e6 - time.time()) < 2.0
    assert 0 <= micros < 1_000_000


CLIENT_FIELDS = {
    "id": r"[1-9]\d*",
    "addr": r"127\.0\.0\.1:\d+",
    "laddr": r"127\.0\.0\.1:\d+",
    "fd": r"-?\d+",
    "name": r"[!-~]*",
    "age": r"\d+",
    "idle": r"\d+",
    "flags": r"[A-Za-z]+",
    "db": r"\d+",
    "sub": r"\d+",
    "psub": r"\d+",
    "ssub": r"\d+",
    "multi": r"-?\d+",
    "qbuf": r"\d+",
    "qbuf-free": r"\d+",
    "argv-mem": r"\d+",
    "multi-mem": r"\d+",
    "rbs": r"\d+",
    "rbp": r"\d+",
    "obl": r"\d+",
    "oll": r"\d+",
    "omem": r"\d+",
    "tot-mem": r"\d+",
    "events": r"r?w?",
    "cmd": r"[a-z_-]+(\|[a-z_-]+)?|NULL",
    "user": r"default",
    "redir": r"-?\d+",
    "resp": r"[23]",
}


def client_fields(line: str) -> dict[str, str]:
    """One CLIENT LIST line as a dict, after checking its fields, their order and formats."""
    pairs = [item.split("=", 1) for item in line.split(" ")]
    assert [name for name, _ in pairs] == list(CLIENT_FIELDS), line
    for name, value in pairs:
        assert re.fullmatch(CLIENT_FIELDS[name], value), f"{name}={value!r} in {line}"
    return dict(pairs)


def client_lines(raw: bytes) -> list[dict[str, str]]:
    text = parse_reply(raw).decode()
    assert text == "" or text.endswith("\n")
    return [client_fields(line) for line in text.splitlines()]


def test_client_list_format(endpoint: ServerProcess) -> None:
    """CLIENT LIST/INFO: Redis 7.0's fields in its order; filters by TYPE and ID."""
    with endpoint.raw() as me, endpoint.raw() as other:
        my_id = me.call("CLIENT", "ID")
        other_id = other.call("CLIENT", "ID")
        other.command("CLIENT", "SETNAME", "other-one")
        other.command("SELECT", "3")
        other.command("CLIENT", "NO-EVICT", "on")
        other.command("HELLO", "3")
        everyone = {int(c["id"]): c for c in client_lines(me.command("CLIENT", "LIST"))}
        assert {my_id, other_id} <= set(everyone)
        mine, theirs = everyone[my_id], everyone[other_id]
        assert mine["cmd"] == "client|list" and mine["flags"] == "N" and mine["resp"] == "2"
        assert mine["laddr"] == f"127.0.0.1:{endpoint.port}"
        assert theirs["name"] == "other-one" and theirs["db"] == "3" and theirs["resp"] == "3"
        assert theirs["flags"] == "e" and theirs["cmd"] == "hello"
        normal = client_lines(me.command("CLIENT", "LIST", "TYPE", "NORMAL"))
        assert {my_id, other_id} <= {int(c["id"]) for c in normal}
        chosen = client_lines(me.command("CLIENT", "LIST", "ID", my_id, "999999", other_id, my_id))
        assert [int(c["id"]) for c in chosen] == [my_id, other_id, my_id]
        [info_line] = client_lines(other.command("CLIENT", "INFO"))
        assert other.command("CLIENT", "INFO").startswith(b"=")  # verbatim in RESP3
        assert info_line["cmd"] == "client|info" and int(info_line["id"]) == other_id


def test_reset_restores_connection_state(endpoint: ServerProcess) -> None:
    """RESET: db 0, RESP2, no name; CLIENT NO-EVICT stays on, as in Redis 7.0."""
    with endpoint.raw() as conn:
        conn.command("CLIENT", "SETNAME", "before")
        conn.command("SELECT", "2")
        conn.command("CLIENT", "NO-EVICT", "on")
        conn.command("HELLO", "3")
        assert conn.command("RESET") == b"+RESET\r\n"
        assert conn.command("CLIENT", "GETNAME") == b"$-1\r\n"
        [line] = client_lines(conn.command("CLIENT", "INFO"))
    assert (line["db"], line["resp"], line["name"], line["flags"]) == ("0", "2", "", "e")


def test_client_kill_other_clients(endpoint: ServerProcess) -> None:
    """KILL by ID, ADDR, LADDR, USER and the old form drop the victim's connection at once."""
    with endpoint.raw() as killer:
        for how in ("id", "addr", "laddr", "user", "old"):
            with endpoint.raw() as victim:
                [line] = client_lines(victim.command("CLIENT", "INFO"))
                victim_id = line["id"]
                if how == "old":
                    assert killer.command("CLIENT", "KILL", line["addr"]) == OK
                else:
                    value = {"id": victim_id, "addr": line["addr"], "laddr": line["laddr"]}
                    value["user"] = "default"
                    if how in ("addr", "laddr"):
                        # ID alone would pick the victim: a filter that is not applied would
                        # pass unseen, so first show that a value it does not have spares it.
                        args = ("CLIENT", "KILL", how.upper(), "127.0.0.1:1", "ID", victim_id)
                        assert killer.command(*args) == b":0\r\n", how
                        assert victim.command("PING") == b"+PONG\r\n", how
                    args = ("CLIENT", "KILL", how.upper(), value[how], "ID", victim_id)
                    assert killer.command(*args) == b":1\r\n", how
                assert victim.read_until_closed(5.0) == b"", how
                assert killer.command("CLIENT", "LIST", "ID", victim_id) == EMPTY_BULK
                assert killer.command("CLIENT", "KILL", "ID", victim_id) == b":0\r\n"
        assert killer.command("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("old_form", [False, True], ids=["skipme-no", "old-form"])
def test_client_kill_self_replies_then_closes(endpoint: ServerProcess, old_form: bool) -> None:
    """Killing yourself (SKIPME no, or the old form) answers first, then closes."""
    with endpoint.raw() as conn:
        [line] = client_lines(conn.command("CLIENT", "INFO"))
        if old_form:
            assert conn.command("CLIENT", "KILL", line["addr"]) == OK
        else:
            assert conn.command("CLIENT", "KILL", "ID", line["id"], "SKIPME", "no") == b":1\r\n"
            with endpoint.raw() as other:  # SKIPME yes (the default) spares the caller
                assert other.command("CLIENT", "KILL", "ID", other.call("CLIENT", "ID")) == (
                    b":0\r\n"
                )
        assert conn.read_until_closed(5.0) == b""


# -- AUTH with a password, DEBUG: servers of their own ------------------------------------------


@pytest.fixture(scope="module", params=["redis-server", "redis-clone"])
def debug_endpoint(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    """redis-server and a 2-shard redis-clone with DEBUG enabled (Redis fixes it at start)."""
    if request.param == "redis-server":
        request.getfixturevalue("redis_server")  # skips when redis-server is absent
        return module_servers.start_redis(["--enable-debug-command", "yes"])
    return module_servers.clone(2, ["--enable-debug-command", "local"])


@pytest.fixture
def password(debug_endpoint: ServerProcess) -> Iterator[str]:
    """A requirepass set on the debug endpoint for one test, cleared afterwards."""
    with debug_endpoint.raw() as conn:
        assert conn.command("CONFIG", "SET", "requirepass", "s3cret") == OK
    yield "s3cret"
    with debug_endpoint.raw() as conn:
        conn.command("AUTH", "s3cret")
        assert conn.command("CONFIG", "SET", "requirepass", "") == OK


def test_auth_with_password(debug_endpoint: ServerProcess, password: str) -> None:
    """With requirepass set, AUTH checks it in both forms and says WRONGPASS otherwise."""
    with debug_endpoint.raw() as conn:
        assert conn.command("AUTH", "wrong") == WRONGPASS
        assert conn.command("AUTH", password) == OK
        assert conn.command("AUTH", "default", password) == OK
        assert conn.command("AUTH", "default", "wrong") == WRONGPASS
        assert conn.command("AUTH", "alice", password) == WRONGPASS
        assert conn.command("PING") == b"+PONG\r\n"


DEBUG_CASES: list[Step] = [
    (("DEBUG", "SLEEP", "0"), OK),
    (("debug", "sleep", "x"), OK),
    (("DEBUG", "SLEEP", "-1"), OK),
    (("DEBUG", "SLEEP", "1e-3"), OK),
    (
        ("DEBUG", "foo"),
        b"-ERR unknown subcommand or wrong number of arguments for 'foo'. Try DEBUG HELP.\r\n",
    ),
    (
        ("DEBUG", "SLEEP"),
        b"-ERR unknown subcommand or wrong number of arguments for 'SLEEP'. Try DEBUG HELP.\r\n",
    ),
    (
        ("DEBUG", "sleep", "0", "x"),
        b"-ERR unknown subcommand or wrong number of arguments for 'sleep'. Try DEBUG HELP.\r\n",
    ),
    (("DEBUG",), ARITY % b"debug"),
]


def test_debug_reply_bytes(debug_endpoint: ServerProcess) -> None:
    """With DEBUG enabled: SLEEP's argument read as strtod reads it; other subcommands refused."""
    with debug_endpoint.raw() as conn:
        replies = [conn.command(*args) for args, _ in DEBUG_CASES]
        help_lines = conn.call("DEBUG", "HELP")
    assert replies == [expected for _, expected in DEBUG_CASES]
    assert b"SLEEP <seconds>" in help_lines


def test_debug_sleep_stalls_keyspace_commands(debug_endpoint: ServerProcess) -> None:
    """DEBUG SLEEP 0.5 delays another client's GETs on every shard until it is over.

    Only redis-clone: with Redis the whole server sleeps, so nothing can tell the test that
    the DEBUG arrived before the GETs.
    """
    if not debug_endpoint.name.startswith("redis-clone"):
        pytest.skip("the order of two connections' commands cannot be observed in redis-server")
    # One reader per shard: on one connection the second GET's reply waits for the first's
    # anyway (replies keep request order), so a shard that did not sleep would go unseen.
    keys = {"{a}x": b"$1\r\n1\r\n", "{b}y": b"$1\r\n2\r\n"}  # slots 15495 and 3300
    with (
        debug_endpoint.raw() as sleeper,
        debug_endpoint.raw() as reader_a,
        debug_endpoint.raw() as reader_b,
    ):
        readers = dict(zip(keys, (reader_a, reader_b), strict=True))
        reader_id = reader_a.call("CLIENT", "ID")
        sleeper.command("MSET", "{a}x", "1", "{b}y", "2")
        started = time.monotonic()
        sleeper.send(encode_command("DEBUG", "SLEEP", "0.5"))

        def sleeping() -> bool:  # the acceptor answers CLIENT LIST while the shards sleep
            listed = client_lines(reader_a.command("CLIENT", "LIST"))
            return any(c["cmd"] == "debug" for c in listed if int(c["id"]) != reader_id)

        assert wait_until(sleeping, 5.0)
        answered: dict[str, tuple[bytes, float]] = {}

        def read(key: str) -> None:  # each reply timed on its own, as it arrives
            reply = readers[key].read_reply()
            answered[key] = (reply, time.monotonic() - started)

        for key, reader in readers.items():
            reader.send(encode_command("GET", key))
        threads = [threading.Thread(target=read, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sleeper.read_reply() == OK
    assert {key: reply for key, (reply, _) in answered.items()} == keys
    waited = {key: round(seconds, 3) for key, (_, seconds) in answered.items()}
    assert all(0.45 <= seconds < 3.0 for seconds in waited.values()), waited


# -- INFO and CONFIG RESETSTAT ---------------------------------------------------------------


def section_titles(text: bytes) -> list[str]:
    return [line[2:] for line in text.decode().split("\r\n") if line.startswith("# ")]


@pytest.mark.parametrize(
    "args",
    [(), ("default",), ("all",), ("everything",), ("keyspace", "SERVER"), ("clients", "foo")],
    ids=["none", "default", "all", "everything", "two", "unknown"],
)
def test_info_sections(endpoint: ServerProcess, args: tuple[str, ...]) -> None:
    """Which sections INFO writes, in Redis's order whatever the request's order."""
    with endpoint.raw() as conn:
        text = conn.call("INFO", *args)
    titles = [title for title in section_titles(text) if title != "Shards"]
    default = ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU"]
    default += ["Modules", "Errorstats", "Cluster", "Keyspace"]
    everything = default[:8] + ["Commandstats", "Errorstats", "Latencystats"] + default[9:]
    expected = {
        (): default,
        ("default",): default,
        ("all",): everything,
        ("everything",): everything,
        ("keyspace", "SERVER"): ["Server", "Keyspace"],
        ("clients", "foo"): ["Clients"],
    }[args]
    assert titles == expected
    assert text.endswith(b"\r\n")
    assert text.count(b"\r\n\r\n# ") == len(section_titles(text)) - 1  # one blank line between


def test_info_keyspace(endpoint: ServerProcess) -> None:
    """db lines: keys, keys with a deadline, and an average TTL in milliseconds."""
    r = endpoint.client(protocol=2)
    r.flushall()
    r.set("a", "1")
    r.set("b", "2", ex=100)
    endpoint.client(protocol=2, db=3).set("c", "3")
    keyspace = r.info("keyspace")
    assert keyspace["db0"]["keys"] == 2 and keyspace["db0"]["expires"] == 1
    if endpoint.name.startswith("redis-clone"):  # Redis updates it in its expiry cycles
        assert 90_000 < keyspace["db0"]["avg_ttl"] <= 100_000
    assert keyspace["db3"] == {"keys": 1, "expires": 0, "avg_ttl": 0}
    r.flushall()
    assert r.info("keyspace") == {}


def test_info_commandstats_and_resetstat(endpoint: ServerProcess) -> None:
    """Calls per command (fan-outs and split multi-key commands counted once, not once per
    shard); RESETSTAT zeroes them."""
    r = endpoint.client(protocol=2)
    assert r.config_resetstat()
    for _ in range(3):
        r.get("k")
        r.dbsize()
        r.ping()
        r.mget("a", "b", "c", "d")  # keys of every shard at 4: one call each, not four
    r.delete("a", "b", "c", "d")
    with endpoint.raw() as conn:
        text = conn.call("INFO", "commandstats").decode()
    line = re.compile(
        r"cmdstat_([a-z|_-]+):calls=(\d+),usec=\d+,usec_per_call=\d+\.\d\d,"
        r"rejected_calls=\d+,failed_calls=\d+"
    )
    lines = text.split("\r\n")
    assert lines[0] == "# Commandstats"
    calls = {}
    for entry in filter(None, lines[1:]):
        match = line.fullmatch(entry)
        assert match, entry
        calls[match[1]] = int(match[2])
    assert calls["get"] == 3 and calls["dbsize"] == 3 and calls["ping"] == 3
    assert calls["mget"] == 3 and calls["del"] == 1
    assert "info" not in calls  # counted once it has run, as Redis's call() counts
    stats = r.info("stats")
    assert stats["total_commands_processed"] < 20
    assert r.config_resetstat()
    after = r.info("commandstats")
    assert "cmdstat_get" not in after
    assert after["cmdstat_config|resetstat"]["calls"] == 1  # counted after it ran


def test_info_with_redis_py(clone: ServerProcess) -> None:
    """redis-py's info() parses every section, and the figures describe this server."""
    r = clone.client()
    r.flushall()
    r.mset({"one": 1, "two": 2, "three": 3})
    r.set("temp", "x", ex=50)
    everything = r.info("everything")
    assert everything["redis_version"] == shardserver.REDIS_COMPAT_VERSION
    assert everything["redis_clone_version"] == shardserver.__version__
    assert everything["process_id"] == clone.pid
    assert everything["tcp_port"] == clone.port
    assert everything["connected_clients"] >= 1
    assert everything["role"] == "master"
    assert everything["total_connections_received"] >= 1
    assert everything["cmdstat_mset"]["calls"] >= 1
    assert everything["db0"]["keys"] == 4 and everything["db0"]["expires"] == 1
    shards = [everything[f"shard{i}"] for i in range(everything["shards"])]
    pids = {s["pid"] for s in shards}
    assert len(pids) == len(shards) and pids <= set(proc_children(clone.pid))
    assert sum(s["keys"] for s in shards) == 4 and sum(s["expires"] for s in shards) == 1
    covered = [tuple(int(n) for n in s["slots"].split("-")) for s in shards]
    assert covered[0][0] == 0 and covered[-1][1] == 16383
    assert all(a[1] + 1 == b[0] for a, b in zip(covered, covered[1:], strict=False))
    # used_memory is what the shards account for their keys (maxmemory's figure); RSS is
    # every process's
    assert everything["used_memory_rss"] > sum(s["used_memory_rss"] for s in shards) > 0
    assert 0 < everything["used_memory"] == sum(s["used_memory"] for s in shards)
    assert everything["used_memory_peak"] >= everything["used_memory_rss"]
    assert everything["used_memory_human"].endswith(("B", "K", "M", "G"))
    assert r.info("nosuchsection") == {}
    assert set(r.info("server", "clients")) >= {"redis_version", "connected_clients"}


def test_redis_cli_stat(clone: ServerProcess) -> None:
    """`redis-cli --stat` prints its table of keys, memory, clients and requests, no error."""
    binary = shutil.which("redis-cli")
    if binary is None:
        pytest.skip("redis-cli is not installed")
    clone.client().set("stat-key", "1")
    # redis-cli buffers its output unless it writes to a terminal
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [binary, "-p", str(clone.port), "--stat", "-i", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    row = re.compile(r"^(\d+)\s+([\d.]+[BKMGTP])\s+(\d+)\s+(\d+)\s+(\d+) \(\+\d+\)\s+(\d+)\s*$")
    output = b""
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            rows = [line for line in output.decode().splitlines() if row.match(line)]
            if len(rows) >= 3:
                break
            ready, _, _ = select.select([leader], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                output += os.read(leader, 4096)
            except OSError:
                break
    finally:
        proc.terminate()
        proc.wait(5)
        os.close(leader)
    text = output.decode()
    assert "ERR" not in text and "keys" in text, text
    assert len(rows) >= 3, text
    keys, _, clients, blocked, requests, connections = row.match(rows[-1]).groups()
    assert int(keys) >= 1 and int(clients) >= 1 and int(blocked) == 0
    assert int(requests) > 0 and int(connections) > 0


# -- SHUTDOWN ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("NOSAVE", "NOW")], ids=["plain", "nosave-now"])
def test_shutdown_stops_every_process(clone_factory: ServerPool, args: tuple[str, ...]) -> None:
    """SHUTDOWN closes the caller's connection without a reply and ends every process."""
    server = clone_factory.start_clone(shards=2)
    family = [server.pid, *proc_descendants(server.pid)]
    assert len(family) >= 3  # with multiprocessing's resource tracker
    with server.raw() as conn:
        conn.send(encode_command("SHUTDOWN", *args))
        assert conn.read_until_closed(5.0) == b""
    assert server.proc is not None
    assert server.proc.wait(5.0) == 0
    assert wait_until(lambda: not any(pid_alive(pid) for pid in family), 5.0)


# -- pieces without a server ------------------------------------------------------------------


def test_sleep_seconds_reads_like_strtod() -> None:
    """DEBUG SLEEP's argument: the number at its start; nothing, negatives, inf and NaN are 0."""
    cases = {b"0.5": 0.5, b"1x": 1.0, b"x": 0.0, b"-1": 0.0, b" .25": 0.25, b"2e-1": 0.2}
    cases |= {b"inf": 0.0, b"nan": 0.0, b"": 0.0, b"1e": 1.0}
    assert {text: sleep_seconds(text) for text in cases} == cases


def test_human_sizes_match_redis() -> None:
    """bytesToHuman's formats, as in Redis's INFO memory."""
    assert info.human(0) == "0B" and info.human(200) == "200B"
    assert info.human(32768) == "32.00K" and info.human(1264248) == "1.21M"
    assert info.human(25276063744) == "23.54G"


def test_shard_numbers_and_report() -> None:
    """A shard's part is plain data; the report sums parts and writes Redis's layout."""
    shard = Shard(0)
    shard.execute_batch([[0, [b"set", b"a", b"1"], [b"set", b"b", b"2", b"PX", b"60000"]]])
    shard.execute_batch([[6, [b"set", b"c", b"3"]]])
    part = info.shard_numbers(shard)
    assert part["databases"][0][:3] == (0, 2, 1) and part["databases"][1][:3] == (3, 1, 0)
    assert part["ops"] == 3 and part["calls"][b"set"] == 3 and part["pid"] == os.getpid()
    assert 59_000 < part["databases"][0][3] <= 60_000 and part["databases"][0][4] == 1
    fake = SimpleNamespace(
        config=SimpleNamespace(get_all=lambda: {"port": "7000", "hz": "10"}, source=None),
        clients={1: None, 2: None},
        started_at=time.time() - 90_000,
        connections_received=5,
        commands_received=7,
        index=0,
        blocking=[],
        main_pid=4242,
        links=SimpleNamespace(restarts=[0, 2], last_restart_reason=["", "killed by SIGKILL"]),
        pubsub=PubSub(),
        tracking=(),
        limits=SimpleNamespace(rejected=0, evicted=0, memory_total=0, peaks=lambda: (0, 0)),
    )
    text = info.render(fake, [b"keyspace", b"shards", b"server"], [part, part])
    assert text.startswith("# Server\r\nredis_version:7.0.15\r\n")
    assert "uptime_in_days:1\r\n" in text
    assert "\r\n\r\n# Keyspace\r\ndb0:keys=4,expires=2,avg_ttl=" in text
    assert "db3:keys=2,expires=0,avg_ttl=0\r\n\r\n# Shards\r\nacceptors:1\r\n" in text
    assert "process_id:4242\r\n" in text
    assert re.search(
        r"\r\nconnection_acceptor:0\r\nacceptor0:pid=\d+,clients=2,connections=5,", text
    )
    assert "\r\nshards:2\r\n" in text
    assert re.search(r"shard1:pid=\d+,keys=3,expires=1,ops=3,expired_keys=0,", text)
    assert text.endswith("slots=8192-16383,restarts=2,last_restart_reason=killed_by_SIGKILL\r\n")
    assert info.render(fake, [b"nosuch"], [part]) == ""


def _load_doc_generator():
    path = REPO_ROOT / "scripts" / "gen_commands_doc.py"
    spec = importlib.util.spec_from_file_location("gen_commands_doc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_commands_doc_is_up_to_date() -> None:
    """docs/commands.md is what the generator writes from today's table: regenerate it."""
    generator = _load_doc_generator()
    committed = Path(REPO_ROOT / "docs" / "commands.md").read_text()
    assert committed == generator.render(), "run: python3 scripts/gen_commands_doc.py"
    assert "| `CLIENT\\|KILL` | acceptor | `connection` |" in committed


def test_debug_is_refused_when_disabled_as_in_redis(
    redis_server: ServerProcess, clone_factory: ServerPool
) -> None:
    """With enable-debug-command no (Redis's default), both refuse DEBUG with the same text."""
    clone = clone_factory.clone(2, ["--enable-debug-command", "no"])
    for endpoint in (redis_server, clone):
        with endpoint.raw() as conn:
            assert conn.command("DEBUG", "SLEEP", "0") == DEBUG_REFUSED
            assert conn.command("debug", "foo") == DEBUG_REFUSED


def test_debug_is_refused_by_default_as_in_redis(
    redis_server: ServerProcess, clone: ServerProcess
) -> None:
    """Redis 7.0's default is enable-debug-command no, ours too: refused even from loopback."""
    for endpoint in (redis_server, clone):
        with endpoint.raw() as conn:
            assert conn.command("DEBUG", "SLEEP", "0") == DEBUG_REFUSED
