"""MONITOR: every command any client runs, as a line, to every monitoring client.

A line is Redis's: ``+<unix seconds>.<micros> [<db> <addr>] "arg" "arg" ...``, each argument
quoted as ``sdscatrepr`` quotes it (``\\"``, ``\\\\``, ``\\r``, ``\\n``, ``\\t``, ``\\a``,
``\\b``, other bytes outside printable ASCII as ``\\xHH``), AUTH's and HELLO ... AUTH's
secrets as ``(redacted)``. As in Redis 7.0: commands the acceptor refuses before running
(unknown, wrong arity, NOAUTH) and admin commands (CONFIG, CLIENT LIST, SAVE, DEBUG ...) are
not shown; a transaction's commands are shown as EXEC runs them, before the EXEC line; a
monitoring client may still run commands that touch no key (PING, CLIENT ...), and others get
Redis's ``Replica can't interact with the keyspace``.

Where a line is written decides the order a monitor sees. With one acceptor, the acceptor
writes every line, when it dispatches a command to the shards or when it has run one of its
own (so RESET and SELECT show the state they leave, as Redis's lines do): it dispatches in
the order every shard executes (each shard runs its pipe in arrival order), so its lines are
in execution order, at no cost to the shards.

With several acceptors, dispatch order is no longer execution order (a shard interleaves
the acceptors' streams), so a command that runs on shards has its line written by a shard,
as it runs it: the acceptor formats everything after the time (:func:`tail`: what a
monitor may see is still decided here) and wraps the command's first run on the lowest
shard of its first step in ``@monitored ctx tails command``; that shard stamps each tail
with its own clock, runs the command and sends the lines as a ``MONITORED`` event to every
acceptor's stream (:func:`monitored_part`), and each acceptor hands them to its monitors.
One command, one line, whatever the shards its parts run on; EXEC's line and those of the
commands it ran ride together. The commands an acceptor runs itself (PING, CLIENT, SELECT
...) are still written by it: to its monitors at once, to the other acceptors once per
event-loop turn. docs/architecture.md ("CLIENT PAUSE and MONITOR") gives the order this
guarantees.

While any acceptor has a monitor, every acceptor takes the checked path for every command
(no single-key fast path), so MONITOR costs nothing when nobody watches: no wrapper, no
event.
"""

from __future__ import annotations

import time
from typing import Any

from shardserver import events
from shardserver.errors import error
from shardserver.resp import Resp2, Resp3

_ENCODERS = (Resp2, Resp3)
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


def tail(db: int, addr: str, spec: Any, argv: list[bytes]) -> bytes:
    """A line without its time: `` [<db> <addr>] "arg" ...``."""
    shown = b" ".join(map(quoted, redacted(spec, argv)))
    return b" [%d %b] %b\r\n" % (db, addr.encode(), shown)


def stamped(tails: list[bytes]) -> list[bytes]:
    """The lines, each with the time now (``+<unix seconds>.<micros>``) in front."""
    now = time.time()
    head = b"+%d.%06d" % (int(now), int(now * 1e6) % 1_000_000)
    return [head + each for each in tails]


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
    """This acceptor's monitoring clients, whether other acceptors have any, and the lines
    of the command being dispatched."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.clients: list[Any] = []
        #: Monitoring clients per other acceptor, as they told us.
        self.elsewhere: dict[int, int] = {}
        self._outgoing: list[bytes] = []
        #: With several acceptors, shards write the lines of the commands they run.
        self.by_shards = int(server.config["acceptors"]) > 1
        #: The tails of the command being dispatched, until its first run on a shard takes
        #: them (:meth:`carry`); None when there are none to take.
        self.riding: list[bytes] | None = None

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

    # -- the lines of one command ------------------------------------------------------------

    @staticmethod
    def tails(
        client: Any, spec: Any, argv: list[bytes], queued: list | None = None, db: int = 0
    ) -> list[bytes]:
        """A command's lines without their time; for EXEC, ``queued`` holds the commands it
        runs, from database ``db``. Each line names the database the client is in after its
        command, as Redis writes it (SELECT 3 shows 3)."""
        if spec.name == "monitor":
            return []
        found = []
        for each, each_argv in queued or ():
            db = _db_after(each, each_argv, db, client.server)
            if "admin" not in each.flags:
                found.append(tail(db, client.addr, each, each_argv))
        if "admin" not in spec.flags:
            found.append(tail(db if queued else client.db, client.addr, spec, argv))
        return found

    def feed(
        self, client: Any, spec: Any, argv: list[bytes], queued: list | None = None, db: int = 0
    ) -> None:
        """A command that ran (the acceptor's own) or, with one acceptor, is on its way to
        the shards: its lines, written here."""
        found = self.tails(client, spec, argv, queued, db)
        if found:
            self.tell(stamped(found))

    def dispatching(
        self, client: Any, spec: Any, argv: list[bytes], queued: list | None = None, db: int = 0
    ) -> None:
        """A command about to be dispatched: with several acceptors its lines wait for its
        first run on a shard (:meth:`carry`), with one they are written now."""
        if not self.by_shards:
            self.feed(client, spec, argv, queued, db)
            return
        found = self.tails(client, spec, argv, queued, db)
        self.riding = found or None

    def dispatched(self) -> None:
        """The command is dispatched: lines no shard took (it was answered here, refused by
        its check ...) are written here."""
        if self.riding is not None:
            found, self.riding = self.riding, None
            self.tell(stamped(found))

    def carry(self, ctx: int, argv: list) -> list:
        """``argv`` wrapped so its shard writes the riding lines as it runs it (run context
        ``ctx``)."""
        found, self.riding = self.riding, None
        return [b"@monitored", ctx, found, argv]

    def carry_step(
        self, ctx: int, parts: list[tuple[int, list]], contexts: list[int] | None = None
    ) -> list[tuple[int, list]]:
        """A step's parts (``(shard, argv)``, each run in ``ctx`` or its own of ``contexts``)
        with the first on the lowest shard carrying the riding lines."""
        chosen = min(range(len(parts)), key=lambda i: parts[i][0])
        shard, argv = parts[chosen]
        carried = list(parts)
        carried[chosen] = (shard, self.carry(ctx if contexts is None else contexts[chosen], argv))
        return carried

    def carry_hold(
        self, shards: list[int], parts: list[tuple[int, int, list]]
    ) -> list[tuple[int, int, list]]:
        """A hold's first runs (``(shard, ctx, argv)``) with the first on the lowest held
        shard carrying the riding lines (a barrier there, if nothing is read there): from
        that run to the release, nothing but the holder runs on that shard."""
        lowest = min(shards)
        carried = list(parts)
        chosen = next((i for i, part in enumerate(parts) if part[0] == lowest), None)
        if chosen is None:
            carried.append((lowest, 0, [b"@barrier"]))
            chosen = len(carried) - 1
        shard, ctx, argv = carried[chosen]
        carried[chosen] = (shard, ctx, self.carry(ctx, argv))
        return carried

    # -- who hears them ----------------------------------------------------------------------

    def tell(self, lines: list[bytes]) -> None:
        """Lines written here for every monitor: ours now, the other acceptors' at the end of
        this turn."""
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
        """Lines written elsewhere: another acceptor's (peers op ``monitor_lines``) or a
        shard's (a ``MONITORED`` event)."""
        for monitor in self.clients:
            for each in lines:
                monitor.push(each)


# -- on a shard ------------------------------------------------------------------------------


def monitored_part(shard: Any, db: Any, argv: list, enc: Any = None) -> Any:
    """Internal (``@monitored ctx tails command``): the command's lines, stamped with this
    shard's clock as it runs, to every acceptor; then the command. Its reply (a part's plain
    value, as the part would give it). Called as a part (a run of one) or, in a client's run
    of several, as a command (``enc`` given)."""
    lines = stamped(argv[2])
    out = shard.events
    last = out[-1][1] if out else None
    if last is not None and last[0] == events.MONITORED:
        last[1].extend(lines)  # not yet sent: one event per stream for a batch's lines
    else:
        told = (events.MONITORED, lines)
        out.extend([(stream, told) for stream in range(int(shard.settings.get("acceptors", 1)))])
    command = argv[3]
    name = command[0]
    shard.calls[name] += 1
    try:
        if name[0] == 0x40:  # '@': a part, or a wrapper of a tracking client's commands
            return shard.handlers[name](shard, db, command)
        reply = shard.handlers[name](shard, db, command, enc or _ENCODERS[argv[1] & 1])
    except Exception as problem:  # a bug costs one reply, never the shard
        return shard._internal_error(command, problem)
    if reply.__class__ is not bytes:
        return shard._internal_error(command, TypeError("handler returned no reply"))
    return reply


INTERNAL_PARTS = {b"@monitored": monitored_part}
