"""The acceptor's introspection service: its slow log and latency monitor, fed by its shards
and its own commands, and merged with the other acceptors' for SLOWLOG and LATENCY.

- A shard's slow calls reach here with their run's reply (:mod:`shardserver.slowlog`): the
  link hands the notes and the run's target to :meth:`Introspection.heard_slow`, which knows
  the client (a client's own run, or the client of a fan-out's gather).
- The commands this acceptor answers are timed by the ``local`` row wrapper
  (:mod:`shardserver.commands.spec`), which calls :meth:`Introspection.local_was_slow`.
- A shard's samples of its own work (the expiry sweep's ``expire-cycle``, the log's
  ``aof-fsync-always``) come as shard events (:data:`shardserver.events.LATENCY`) to
  acceptor 0.
- SLOWLOG GET/LEN and LATENCY ask every other acceptor (``slowlog``, ``latency`` peer
  messages) and merge: entries by id, newest first; latency samples second by second.
"""

from __future__ import annotations

import time
from typing import Any

from shardserver import latency
from shardserver.latency import ACCEPTOR as ACCEPTOR_TIMES
from shardserver.latency import LatencyMonitor
from shardserver.slowlog import SlowLog, trimmed

#: Settings this service follows (CONFIG SET, at start from the configuration).
SETTINGS = frozenset(
    {
        "slowlog-log-slower-than",
        "slowlog-max-len",
        "latency-monitor-threshold",
        "latency-tracking",
    }
)


class Introspection:
    """One acceptor's SLOWLOG entries and latency samples."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.slowlog = SlowLog(server.words.next_slowlog_id)
        self.monitor = LatencyMonitor()
        self.configure()
        server.peers.handlers.update(
            slowlog=self.slowlog.numbers,
            slowlog_reset=self.slowlog.reset,
            latency=self.monitor.numbers,
            latency_reset=self.monitor.reset,
            times=ACCEPTOR_TIMES.numbers,
        )

    def configure(self) -> None:
        config = self.server.config
        self.slowlog.max_len = config["slowlog-max-len"]
        ACCEPTOR_TIMES.configure(config)

    # -- what is heard ---------------------------------------------------------------------

    def heard_slow(self, receiver: Any, entry: Any, notes: list[tuple]) -> None:
        """A shard's notes of a run's slow calls; the run's target was ``(receiver, entry)``:
        a client's reply entry, or a receiver (a gather knows its client)."""
        if entry.__class__ is list:
            client, fanout = receiver, None
        else:
            client, fanout = getattr(receiver, "client", None), receiver
        for when, usec, argv, event, ms in notes:
            if argv is not None:
                self.slowlog.add(when, usec, argv, client, fanout)
            if event is not None:
                self.monitor.add(event, when, ms)

    def heard_sample(self, event: str, when: int, ms: int) -> None:
        """A shard's sample of its own work (``expire-cycle``)."""
        self.monitor.add(event, when, ms)

    def local_was_slow(self, session: Any, name: str, argv: list[bytes], ns: int) -> None:
        """The command ``name`` this acceptor answered took ``ns``, past a threshold."""
        parent, _, sub = name.partition("|")
        spec = self.server.commands[parent]
        flags = spec.subcommands[sub].flags if sub else spec.flags
        when, times = int(time.time()), ACCEPTOR_TIMES
        if ns >= times.slower_ns and "skip_slowlog" not in flags:
            self.slowlog.add(when, ns // 1000, trimmed(argv), session)
        if ns >= times.monitor_ns:
            event = "fast-command" if "fast" in flags else "command"
            self.monitor.add(event, when, ns // 1_000_000)

    # -- what is answered ------------------------------------------------------------------

    def slowlog_entries(self, every: list[list[list[Any]]]) -> list[list[Any]]:
        """Every acceptor's entries (``every``: each one's), newest first, at most
        ``slowlog-max-len``."""
        entries = [entry for each in every for entry in each]
        entries.sort(key=lambda entry: entry[0], reverse=True)
        return entries[: self.slowlog.max_len]

    def latency_events(self, others: list[dict[str, Any]]) -> dict[str, Any]:
        return latency.merged([self.monitor.numbers(), *others])

    def reset_times(self) -> None:
        """CONFIG RESETSTAT: this acceptor's command times start again."""
        ACCEPTOR_TIMES.clear()
