"""SLOWLOG: the commands that ran longer than ``slowlog-log-slower-than``, newest first.

Where the time is measured: as Redis measures a command's execution (``call()``), not the
time it waited. A shard times each command it runs (:meth:`shardserver.shard.Shard.
execute_batch`, one clock reading per command), an acceptor each command it answers itself
(the ``local`` row wrapper). A shard does not know its clients, so a slow command's note
(:func:`note`: when, how long, its arguments trimmed as Redis trims them) rides with its
run's reply (:data:`SLOW` wrapper); the acceptor's link unwraps it and this acceptor's
:class:`SlowLog` adds the client's address and name and a server-wide id. A command over
several shards (KEYS, DEBUG SLEEP, an MSET across shards) is one entry, with its slowest
shard's time and arguments: the parts' notes of one command are joined by the command's
receiver.

Each acceptor keeps the entries of its own clients (at most ``slowlog-max-len``); SLOWLOG
GET and LEN through any acceptor ask the others and merge by id, RESET clears them all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

#: SLOWLOG_ENTRY_MAX_ARGC and SLOWLOG_ENTRY_MAX_STRING: Redis keeps at most 32 arguments
#: (the last saying how many more there were) and 128 bytes of each.
MAX_ARGS = 32
MAX_STRING = 128
#: The mark of a run's reply that carries slow notes: ``(SLOW, reply, notes)``. Parts never
#: reply a tuple that starts with Ellipsis.
SLOW = ...
#: Fan-out commands whose part notes may still come, by receiver: a few are enough (the
#: parts of one command come back within one batch round on each shard).
_RECENT_RECEIVERS = 64


def trimmed(argv: list[bytes]) -> list[bytes]:
    """Arguments as slowlogCreateEntry keeps them."""
    count = len(argv)
    kept = argv[:MAX_ARGS]
    out = [
        arg[:MAX_STRING] + b"... (%d more bytes)" % (len(arg) - MAX_STRING)
        if len(arg) > MAX_STRING
        else arg
        for arg in kept
    ]
    if count > MAX_ARGS:
        out[-1] = b"... (%d more arguments)" % (count - MAX_ARGS + 1)
    return out


def shown_argv(argv: list[bytes]) -> list[bytes]:
    """A command line as a shard has it, as the client sent it: a part's ``@`` and a
    subcommand's wire name (``object|encoding``) go back to the command's own name."""
    name = argv[0]
    if name[:1] == b"@":
        name = name[1:]
    name = name.partition(b"|")[0]
    return [name, *argv[1:]]


def note(argv: list[bytes], ns: int, fast: bool, slower_ns: int, monitor_ns: int) -> tuple:
    """A slow call's note as plain data: (unix time, µs, trimmed argv or None, latency
    event or None, ms). ``argv`` is logged when ``ns`` reaches ``slower_ns``, the latency
    monitor hears of it when ``ns`` reaches ``monitor_ns``."""
    logged = trimmed(shown_argv(argv)) if ns >= slower_ns else None
    event = ("fast-command" if fast else "command") if ns >= monitor_ns else None
    return (int(time.time()), ns // 1000, logged, event, ns // 1_000_000)


class SlowLog:
    """This acceptor's slow log (Redis's ``server.slowlog``), newest first."""

    def __init__(self, next_id: Any) -> None:
        #: Server-wide ids (shared by the acceptors): ``next_id() -> int``.
        self.next_id = next_id
        #: [id, time, µs, argv, addr, name], newest first.
        self.entries: list[list[Any]] = []
        self.max_len = 128
        self._by_receiver: OrderedDict[int, list[Any]] = OrderedDict()

    def add(
        self, when: int, usec: int, argv: list[bytes], client: Any, receiver: Any = None
    ) -> None:
        """slowlogPushEntryIfNeeded's push: the entry first, then the log cut to its
        length (so a lowered ``slowlog-max-len`` shows at the next push, as in Redis).
        ``receiver``: the fan-out this note is one part of (its notes make one entry)."""
        if receiver is not None:
            known = self._by_receiver.get(id(receiver))
            if known is not None and known[0] is receiver:
                entry = known[1]
                if usec > entry[2]:  # the slowest part's time and arguments
                    entry[2], entry[3] = usec, argv
                return
        # a script's session has no address or name of its own, an internal step no client
        addr = getattr(client, "addr", "")
        name = getattr(client, "name", None) or b""
        entry = [self.next_id(), when, usec, argv, addr.encode(), name]
        self.entries.insert(0, entry)
        del self.entries[self.max_len :]
        if receiver is not None:
            self._by_receiver[id(receiver)] = [receiver, entry]
            while len(self._by_receiver) > _RECENT_RECEIVERS:
                self._by_receiver.popitem(last=False)

    def reset(self) -> None:
        self.entries.clear()
        self._by_receiver.clear()

    def numbers(self) -> list[list[Any]]:
        """The entries as plain data (what another acceptor sends for SLOWLOG GET)."""
        return [list(entry) for entry in self.entries]
