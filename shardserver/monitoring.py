"""MONITOR: every command any client runs, as a line, to every monitoring client.

A line is Redis's: ``+<unix seconds>.<micros> [<db> <addr>] "arg" "arg" ...``, each argument
quoted as ``sdscatrepr`` quotes it (``\\"``, ``\\\\``, ``\\r``, ``\\n``, ``\\t``, ``\\a``,
``\\b``, other bytes outside printable ASCII as ``\\xHH``), AUTH's and HELLO ... AUTH's
secrets as ``(redacted)``. As in Redis 7.0: commands the acceptor refuses before running
(unknown, wrong arity, NOAUTH) and admin commands (CONFIG, CLIENT LIST, SAVE, DEBUG ...) are
not shown; a transaction's commands are shown as EXEC runs them, before the EXEC line; a
monitoring client may still run commands that touch no key (PING, CLIENT ...), and others get
Redis's ``Replica can't interact with the keyspace``.

Lines are written when the acceptor dispatches a command to the shards, or when it has run
one of its own (so RESET and SELECT show the state they leave, as Redis's lines do). One
acceptor dispatches in the order every shard executes (each shard runs its pipe in arrival
order), so the lines are in execution order. With several acceptors, each sends its lines to
the others once per event-loop turn: one acceptor's lines stay in its order, and two
acceptors' lines interleave by when they arrive. While any acceptor has a monitor, every
acceptor takes the checked path for every command (no single-key fast path), so MONITOR
costs nothing when nobody watches.
"""

from __future__ import annotations

import time
from typing import Any

from shardserver.errors import error

REFUSED = error("ERR Replica can't interact with the keyspace")
#: The flags of commands a monitoring client may not run (Redis counts it a replica).
_TOUCHES_KEYS = frozenset({"readonly", "write", "may_replicate"})
_ESCAPES = {
    0x5C: b"\\\\",
    0x22: b'\\"',
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
    0x07: b"\\a",
    0x08: b"\\b",
}
_QUOTED = [
    _ESCAPES.get(byte, bytes([byte]) if 0x20 <= byte < 0x7F else b"\\x%02x" % byte)
    for byte in range(256)
]


def quoted(arg: bytes) -> bytes:
    """One argument as ``sdscatrepr`` writes it."""
    if arg.isalnum() and arg.isascii():
        return b'"' + arg + b'"'
    return b'"' + b"".join(_QUOTED[byte] for byte in arg) + b'"'


def redacted(spec: Any, argv: list[bytes]) -> list[bytes]:
    """The arguments as a monitor may see them."""
    if spec.name == "auth":
        return [argv[0], *[b"(redacted)"] * (len(argv) - 1)]
    if spec.name == "hello":
        shown = list(argv)
        for i in range(2, len(argv) - 2):
            if argv[i].lower() == b"auth":
                shown[i + 1] = shown[i + 2] = b"(redacted)"
        return shown
    return argv


def line(client: Any, spec: Any, argv: list[bytes], db: int | None = None) -> bytes:
    now = time.time()
    head = b"+%d.%06d [%d %b]" % (
        int(now),
        int(now * 1e6) % 1_000_000,
        client.db if db is None else db,
        client.addr.encode(),
    )
    return head + b" " + b" ".join(map(quoted, redacted(spec, argv))) + b"\r\n"


def refused(spec: Any) -> bool:
    """Whether a monitoring client may not run this command (it touches keys)."""
    return bool(_TOUCHES_KEYS.intersection(spec.flags))


def _db_after(spec: Any, argv: list[bytes], db: int, server: Any) -> int:
    if spec.name == "select" and argv[1].isdigit():
        chosen = int(argv[1])
        if chosen < int(server.config["databases"]):
            return chosen
    return db


class Monitors:
    """This acceptor's monitoring clients, and whether other acceptors have any."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.clients: list[Any] = []
        #: Monitoring clients per other acceptor, as they told us.
        self.elsewhere: dict[int, int] = {}
        self._outgoing: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self.clients) or any(self.elsewhere.values())

    def add(self, client: Any) -> None:
        """A new monitor (MONITOR tells the other acceptors, and answers once they know)."""
        if client not in self.clients:
            self.clients.append(client)
            client.monitoring = True

    def count(self) -> tuple[int, int]:
        """(this acceptor, its monitors): what the others are told."""
        return self.server.index, len(self.clients)

    def remove(self, client: Any) -> None:
        if client in self.clients:
            self.clients.remove(client)
            client.monitoring = False
            self._tell_count()

    def _tell_count(self) -> None:
        peers = self.server.peers
        if len(peers):
            peers.tell("monitors", self.server.index, len(self.clients))

    def counted(self, acceptor: int, count: int) -> None:
        """Another acceptor's monitors (peers op ``monitors``)."""
        self.elsewhere[acceptor] = count

    def feed(
        self, client: Any, spec: Any, argv: list[bytes], queued: list | None = None, db: int = 0
    ) -> None:
        """A command that ran (the acceptor's own) or is on its way to the shards; for EXEC,
        ``queued`` holds the commands it ran, from database ``db``. Each line names the
        database the client is in after its command, as Redis writes it (SELECT 3 shows 3)."""
        if spec.name == "monitor":
            return
        lines = []
        for each, each_argv in queued or ():
            db = _db_after(each, each_argv, db, client.server)
            if "admin" not in each.flags:
                lines.append(line(client, each, each_argv, db))
        if "admin" not in spec.flags:
            lines.append(line(client, spec, argv))
        if lines:
            self.tell(lines)

    def tell(self, lines: list[bytes]) -> None:
        """Lines for every monitor: ours now, the other acceptors' at the end of this turn."""
        for monitor in self.clients:
            for each in lines:
                monitor.push(each)
        if any(self.elsewhere.values()):
            if not self._outgoing:
                self.server.loop.call_soon(self._send)
            self._outgoing.extend(lines)

    def _send(self) -> None:
        lines, self._outgoing = self._outgoing, []
        self.server.peers.tell("monitor_lines", lines)

    def heard(self, lines: list[bytes]) -> None:
        """Another acceptor's lines (peers op ``monitor_lines``)."""
        for monitor in self.clients:
            for each in lines:
                monitor.push(each)
