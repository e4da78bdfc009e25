"""Random argument vectors for every command in the table, against a real --shards 4 server.

For each command (and subcommand) hypothesis draws argument lists from what breaks parsers:
the command's own keywords (from Redis's COMMAND DOCS), keys (hash-tagged, binary, with
``\\r\\n`` inside, empty), numbers at and past every integer limit, floats and non-numbers,
glob patterns, long strings. Every command must get a well-formed reply (or a clean close,
for QUIT and CLIENT KILL), PING must stay answered on another connection, and no shard may
restart. A bounded number of examples per command runs by default; set
``REDIS_CLONE_FUZZ_EXAMPLES`` for a long run (docs/testing.md).

A few arguments are tamed so that the fuzzer tests robustness rather than patience: SHUTDOWN
is not sent, DEBUG SLEEP and blocking commands get a tiny timeout, and CONFIG SET only touches
settings that cannot lock the fuzzer out (a random ``requirepass`` or ``dir`` would).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import hiredis
import pytest
from conftest import DEBUG_ENABLED, RawConnection, ServerPool, ServerProcess, encode_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardserver.commands.metadata import META
from shardserver.commands.table import COMMANDS

EXAMPLES = int(os.environ.get("REDIS_CLONE_FUZZ_EXAMPLES", "25"))
NOT_SENT = {"shutdown"}
#: CONFIG SET may change these; anything else it is sent for gets one of these names. Not
#: maxclients or timeout, now enforced: a small value shut the fuzzer's next connection out
#: (or closed it), and every later example failed.
CONFIG_SETTABLE = [
    b"hz",
    b"slowlog-max-len",
    b"maxmemory-samples",
    b"tcp-keepalive",
    b"hash-max-listpack-value",
]

KEYS = [b"k", b"{t}a", b"{t}b", b"key:1", b"x\r\ny", b"", b"\x00\xff", b"*", b"-"]
NUMBERS = [
    b"0", b"1", b"2", b"-1", b"-2", b"10", b"1000", b"-1000", b"4294967296",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775808",
    b"-9223372036854775809", b"1" + b"0" * 30, b"1.5", b"-0", b"+1", b"0x10", b"1e3",
    b" 1", b"inf", b"-inf", b"+inf", b"nan", b"(1", b"[a", b"+", b"-",
]  # fmt: skip
ODD = [b"", b"\r\n", b"\x00", b"\xff\xfe", b"a b", b"*?[", b"[^a-z]*", b"\\", b"'\"", b"x" * 3000]


def _tokens(docs: str) -> list[bytes]:
    """The keywords (``token`` fields) of a command's COMMAND DOCS entry."""
    reader = hiredis.Reader()
    reader.feed(base64.b64decode(docs))
    reader.gets()  # the command's name
    found: set[bytes] = set()

    def walk(node: object) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                if item == b"token" and index + 1 < len(node):
                    found.add(node[index + 1])
                walk(item)

    walk(reader.gets())
    return sorted(found)


class Line(NamedTuple):
    """What the fuzzer knows of a command: its leading words, Redis's arity (of the whole
    line, leading words included), its keywords, and whether it may block."""

    head: list[bytes]
    arity: int
    tokens: list[bytes]
    blocking: bool


def _commands() -> list[Line]:
    """Every served command and subcommand."""
    found = []
    for name, spec in sorted(COMMANDS.items()):
        if name in NOT_SENT:
            continue
        if not spec.subcommands or spec.run is not None:
            tokens = _tokens(META[name]["docs2"])
            found.append(Line([name.encode()], spec.arity, tokens, "blocking" in spec.flags))
        for sub in spec.subcommands.values():
            parent, _, word = sub.name.partition("|")
            docs = META["|subcommands"].get(sub.name)
            tokens = _tokens(docs["docs2"]) if docs else []
            head = [parent.encode(), word.encode()]
            found.append(Line(head, sub.arity, tokens, "blocking" in sub.flags))
    return found


COMMAND_LINES = _commands()


def _arguments(line: Line) -> st.SearchStrategy[list[bytes]]:
    """Argument lists, mostly of a length the arity allows (so handlers run, not only the
    arity check), sometimes of any length."""
    words = st.sampled_from(KEYS) | st.sampled_from(NUMBERS) | st.sampled_from(ODD)
    if line.tokens:
        words = words | st.sampled_from(line.tokens) | st.sampled_from(line.tokens).map(bytes.lower)
    words = words | st.binary(max_size=12)
    least = abs(line.arity) - len(line.head)
    most = least if line.arity > 0 else least + 8
    return st.lists(words, min_size=least, max_size=most) | st.lists(words, max_size=9)


def _tame(line: Line, args: list[bytes]) -> list[bytes]:
    """The argument vector as sent (see the module docstring)."""
    head = line.head
    argv = [*head, *args]
    name = head[0]
    if name == b"debug" and len(argv) > 2 and argv[1].lower() == b"sleep":
        argv[2] = b"0"
    if head == [b"config", b"set"]:
        argv[2::2] = [CONFIG_SETTABLE[len(v) % len(CONFIG_SETTABLE)] for v in argv[2::2]]
    if line.blocking and len(argv) > 2:
        argv[1 if name in (b"blmpop", b"bzmpop") else -1] = b"0.01"
    if head == [b"client", b"pause"] and len(argv) > 2:
        argv[2] = b"5"  # a pause holds every client back, the fuzzer's PING too
    if head == [b"script", b"debug"] and len(argv) > 2:
        argv[2] = b"no"  # a debugging session reads the connection's next lines itself
    if head == [b"client", b"reply"] and len(argv) > 2:
        argv[2] = b"on"  # OFF and SKIP answer nothing, and the fuzzer reads a reply
    if line.blocking:  # XREAD and XREADGROUP: the timeout follows BLOCK, anywhere
        for index, word in enumerate(argv[:-1]):
            if word.lower() == b"block":
                argv[index + 1] = b"10"
    return argv


class Fuzzer:
    """A connection that reconnects when a command closed it (QUIT, CLIENT KILL ...)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.conn = RawConnection(server.port)
        self.pids: list[int] = []

    def send(self, argv: list[bytes]) -> None:
        """Send one command and read its reply (``read_reply`` raises on a malformed or
        missing one); a connection an earlier command closed is opened again, once."""
        for attempt in (1, 2):
            try:
                self.conn.send(encode_command(*argv))
                self.conn.read_reply(timeout=20)
                return
            except (ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = RawConnection(self.server.port)
                if attempt == 2 and argv[0].lower() not in (b"quit", b"client"):
                    raise

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="module")
def server(module_servers: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-data")
    return module_servers.start_clone(shards=4, args=[*DEBUG_ENABLED, "--dir", str(data_dir)])


def shard_pids(server: ServerProcess) -> list[int]:
    """Every shard's pid (a restarted shard has a new one)."""
    shards = server.client().info("shards")
    return [shards[f"shard{i}"]["pid"] for i in range(shards["shards"])]


@pytest.fixture(scope="module")
def fuzzer(server: ServerProcess) -> Iterator[Fuzzer]:
    fuzz = Fuzzer(server)
    fuzz.pids = shard_pids(server)
    yield fuzz
    fuzz.close()


@pytest.mark.parametrize(
    "line", COMMAND_LINES, ids=[b" ".join(line.head).decode() for line in COMMAND_LINES]
)
def test_random_arguments_get_a_well_formed_reply(fuzzer: Fuzzer, line: Line) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(args=_arguments(line))
    def run(args: list[bytes]) -> None:
        fuzzer.send(_tame(line, args))

    run()
    with RawConnection(fuzzer.server.port) as probe:
        assert probe.command("PING") == b"+PONG\r\n"
    assert shard_pids(fuzzer.server) == fuzzer.pids, "a shard was restarted"
    assert "restarting" not in fuzzer.server.log_text()
