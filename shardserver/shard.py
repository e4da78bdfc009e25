"""A shard: one partition of the keyspace and the commands that run against it.

A plain object first: :meth:`Shard.execute_batch` takes a batch as the acceptor builds it and
returns the replies, with no pipes, processes or sockets involved, so unit tests call it
directly. :mod:`shardserver.worker` runs one in a process.

A batch is a list of *runs*. A run is ``[ctx, argv, argv, ...]``: consecutive commands of one
client, with ``ctx = db_index * 2 + (1 if the client speaks RESP3 else 0)``. The reply to a
run is the concatenation of its commands' encoded replies, so the acceptor relays it as one
piece; when that would be larger than a chunk, the replies stay apart in a :class:`Pieces`
list (the worker sends them as chunks). A run of one internal fan-out part (``argv[0]``
starting with ``@``) returns that part's plain value instead, for the acceptor to merge.

Every command is timed (one clock reading per command, :mod:`shardserver.latency`); a run
with a call past ``slowlog-log-slower-than`` or ``latency-monitor-threshold`` replies
``(SLOW, reply, notes)`` instead, and the acceptor's link unwraps it
(:mod:`shardserver.slowlog`).

A shard outlives every command: a handler that raises, or returns something that is not a
reply, costs that command an error reply and nothing else.
"""

from __future__ import annotations

import logging
import marshal
import random
import time
from collections import Counter
from operator import itemgetter
from time import perf_counter_ns
from typing import Any

from shardserver.commands.spec import Route
from shardserver.commands.table import COMMANDS, INTERNAL_PARTS
from shardserver.errors import error, writes_refused
from shardserver.errorstats import ErrorStats
from shardserver.events import LATENCY
from shardserver.framing import CHUNK_SIZE
from shardserver.keyspace import Database, active_expire_cycle, now_ms
from shardserver.latency import NEVER, CommandTimes
from shardserver.monitoring import INTERNAL_PARTS as MONITOR_PARTS
from shardserver.notifications import Notifications
from shardserver.persistence.journal import ShardPersistence
from shardserver.resp import Resp2, Resp3
from shardserver.scripting.runner import INTERNAL_PARTS as SCRIPT_PARTS
from shardserver.scripting.runner import ShardScripts
from shardserver.slowlog import SLOW, note
from shardserver.tracking import INTERNAL_PARTS as TRACKING_PARTS
from shardserver.tracking import Tracking
from shardserver.waiters import INTERNAL_PARTS as WAIT_PARTS
from shardserver.waiters import Waiters
from shardserver.watching import INTERNAL_PARTS as WATCH_PARTS
from shardserver.watching import Watches

log = logging.getLogger("shardserver.shard")

_ENCODERS = (Resp2, Resp3)
_first = itemgetter(0)
_BYTES = {bytes}


class Pieces(list):
    """A run's replies left unjoined: together they are larger than one chunk."""


#: Settings a shard reads, for a Shard made without a server (unit tests).
DEFAULT_SETTINGS: dict[str, Any] = {
    "databases": 16,
    "hz": 10,
    "proto-max-bulk-len": 512 * 1024 * 1024,
    "min-replicas-to-write": 0,
    "min-replicas-max-lag": 10,
    "slowlog-log-slower-than": 10000,
    "latency-monitor-threshold": 0,
    "latency-tracking": "yes",
}


def _shard_handlers() -> dict[bytes, Any]:
    """Handlers by the wire name the acceptor puts in ``argv[0]``."""
    handlers: dict[bytes, Any] = {}
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if each.route is not Route.LOCAL and each.run is not None:
                handlers[each.name.encode()] = each.run
            if each.part is not None:
                handlers[b"@" + each.name.encode()] = each.part
    return handlers


def _apply_settings(shard: Shard, db: Database, argv: list[bytes]) -> None:
    """Internal part: CONFIG SET changed settings (argv[1] is a marshalled dict)."""
    shard.settings.update(marshal.loads(argv[1]))
    shard.hz = shard.settings["hz"]
    shard.writes_refused = writes_refused(shard.settings)
    shard.persistence.configure()
    shard.notifications.configure()
    shard.configure_timing()


def _fast_names() -> frozenset[bytes]:
    """Wire names (parts too) of the commands Redis flags ``fast``: their slow calls are the
    latency monitor's ``fast-command`` event, the others' ``command``."""
    names = set()
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if "fast" in each.flags:
                names |= {each.name.encode(), b"@" + each.name.encode()}
    return frozenset(names)


FAST = _fast_names()
HANDLERS = _shard_handlers()
#: What SLOWLOG may show: clients' commands and commands' parts, not the internal parts of
#: plans, scripts, settings ... (their time still counts for the latency monitor).
LOGGED = frozenset(HANDLERS)
HANDLERS.update(INTERNAL_PARTS)
HANDLERS.update(WATCH_PARTS)
HANDLERS.update(WAIT_PARTS)
HANDLERS.update(TRACKING_PARTS)
HANDLERS.update(MONITOR_PARTS)
HANDLERS.update(SCRIPT_PARTS)
HANDLERS[b"@settings"] = _apply_settings


class Shard:
    """One shard's databases, statistics and command execution."""

    def __init__(self, index: int, settings: dict | None = None) -> None:
        self.index = index
        #: The server's settings as plain data (CONFIG SET updates reach shards through a part).
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, **(settings or {})}
        self.dbs = [Database() for _ in range(self.settings["databases"])]
        self.hz = self.settings["hz"]
        #: min-replicas-to-write asks for replicas, and none ever connects: scripts' writes
        #: are refused here (the acceptors refuse clients' own).
        self.writes_refused = writes_refused(self.settings)
        #: State that command families keep per shard (SCAN's key snapshots ...).
        self.scratch: dict[str, Any] = {}
        #: Calls per command wire name (INFO commandstats); counted per run, in C.
        self.calls: Counter[bytes] = Counter()
        #: Error replies of the commands run here (INFO errorstats, commandstats).
        self.errors = ErrorStats()
        #: Nanoseconds per command (INFO commandstats' usec, latencystats), and the
        #: durations from which a call is noted for SLOWLOG or LATENCY (slowlog.py).
        self.times = CommandTimes()
        self.configure_timing()
        self.now = now_ms()
        #: The milliseconds the clock stands at while a held script runs (``@clock``), else
        #: None: every batch's ``now`` is then that, and the sweep waits, as Redis decides
        #: expiry at a script's start time and sweeps nothing while a script runs.
        self.frozen_ms: int | None = None
        #: Whether the active expiry sweep runs (DEBUG SET-ACTIVE-EXPIRE turns it off).
        self.active_expire = True
        self.commands_processed = 0
        self.expired_by_sweep = 0
        self._rng = random.Random()
        #: Handlers by wire name: the plain table, or the persistence's logged one while
        #: persistence is configured (its ``configure`` sets ``base_handlers`` and the
        #: expiry hook), each wrapped while some client watches keys here (``watches``),
        #: while some client waits on keys here (``waiters``), while some client tracks
        #: keys or prefixes here (``tracking``) and while keyspace notifications are on
        #: (``notifications``).
        self.plain_handlers = HANDLERS
        self.base_handlers = HANDLERS
        self.handlers = HANDLERS
        self.expire_hook: Any = None
        self.watches = Watches(self)
        self.waiters = Waiters(self)
        self.tracking = Tracking(self)
        self.notifications = Notifications(self)
        #: The Lua interpreter of the scripts that run here (EVAL's fast path).
        self.scripts = ShardScripts(self)
        #: What this shard tells its acceptors unasked, as ``(stream, event)``: the worker
        #: sends them after the replies of the batch that made them.
        self.events: list[tuple[int, Any]] = []
        #: The append-only log and snapshot children (idle unless persistence is configured).
        self.persistence = ShardPersistence(self)
        self.persistence.configure(starting=True)
        self.notifications.configure()

    def configure_timing(self) -> None:
        """The thresholds and tracking of :attr:`times`, from the settings."""
        self.times.configure(self.settings)

    def slow_notes(self, commands: list[list], took: list[int], reply: Any) -> Any:
        """A run's reply with the notes of its calls past a threshold (see slowlog.py):
        ``(SLOW, reply, notes)``, or the reply alone when none is worth a note (an internal
        part is never logged, only heard by the latency monitor)."""
        times = self.times
        slower, monitor = times.slower_ns, times.monitor_ns
        notes = []
        for argv, ns in zip(commands, took, strict=True):
            logged = slower if argv[0] in LOGGED else NEVER
            if ns >= logged or ns >= monitor:
                notes.append(note(argv, ns, argv[0] in FAST, logged, monitor))
        return (SLOW, reply, notes) if notes else reply

    def refresh_handlers(self) -> None:
        """Point the shard at the handler table and expiry hook that its state needs."""
        watches = self.watches
        notifications = self.notifications
        handlers = watches.handlers(self.base_handlers) if watches else self.base_handlers
        if notifications:
            handlers = notifications.handlers(handlers)
        handlers = self.waiters.handlers(handlers) if self.waiters else handlers
        self.handlers = self.tracking.handlers(handlers) if self.tracking else handlers
        hooks = [each.expired for each in (watches, notifications) if each]
        hook = self.expire_hook
        if hooks:
            if hook is not None:
                hooks.append(hook)

            def hook(db: Database, key: bytes) -> None:
                for each in hooks:
                    each(db, key)

        if self.tracking:
            hook = self.tracking.expire_hook(hook)
        for db in self.dbs:
            db.on_expire = hook

    def freeze_clock(self, ms: int | None) -> None:
        """Stop the clock at ``ms`` (for the runs after this one too), or, with None, let it
        go again."""
        self.frozen_ms = ms
        self.now = now_ms() if ms is None else ms

    def clock(self) -> int:
        """Now, for the deadlines and TTLs commands compute: the batch's time, or the real
        time while a held script has stopped the clock (Redis 7.0 freezes a script's expiry
        decisions only; SET EX, PTTL and RESTORE still read mstime())."""
        return self.now if self.frozen_ms is None else now_ms()

    def execute_batch(self, batch: list[list]) -> list:
        """Run every command of a batch in order; one reply per run."""
        frozen = self.frozen_ms
        self.now = now_ms() if frozen is None else frozen
        dbs = self.dbs
        handlers = self.handlers
        calls = self.calls
        ready = self.waiters.ready
        replies = []
        count = 0
        times = self.times
        watch = times.watch_ns
        clock = perf_counter_ns
        for run in batch:
            if ready:  # the last run wrote a key that clients wait on: serve them first
                self.waiters.serve()
                handlers = self.handlers
            ctx = run[0]
            db = dbs[ctx >> 1]
            enc = _ENCODERS[ctx & 1]
            if len(run) == 2:
                argv = run[1]
                count += 1
                calls[argv[0]] += 1
                start = clock()
                try:
                    if argv[0][0] == 0x40:  # '@': a fan-out part, returns a plain value
                        value = handlers[argv[0]](self, db, argv)
                        took = clock() - start
                        times.record(argv[0], took)
                        if took >= watch:
                            value = self.slow_notes([argv], [took], value)
                        replies.append(value)
                        handlers = self.handlers  # a first WATCH or last UNWATCH switches them
                        continue
                    reply = handlers[argv[0]](self, db, argv, enc)
                except Exception as exc:  # a bug must cost one reply, never the shard
                    reply = self._internal_error(argv, exc)
                took = clock() - start
                times.record(argv[0], took)
                if reply.__class__ is not bytes:
                    reply = self._mend([argv], [reply])[0]
                if reply[:1] == b"-":  # an error reply, counted where it is made
                    self.errors.failed_call(argv[0], reply)
                replies.append(reply if took < watch else self.slow_notes([argv], [took], reply))
                continue
            out = []
            commands = run[1:]
            calls.update(map(_first, commands))
            spent = []  # each call's nanoseconds: one clock reading per command
            start = clock()
            for argv in commands:
                try:
                    out.append(handlers[argv[0]](self, db, argv, enc))
                except Exception as exc:
                    out.append(self._internal_error(argv, exc))
                end = clock()
                spent.append(end - start)
                start = end
            times.record_run(commands, spent)
            count += len(out)
            if {*map(type, out)} != _BYTES:
                out = self._mend(commands, out)
            try:  # one byte per reply, in C: is any an error ('-')?
                some_error = 0x2D in bytes(map(_first, out))
            except IndexError:  # an empty reply (no handler should make one)
                some_error = True
            if some_error:
                self._count_errors(commands, out)
            size = sum(map(len, out))
            reply = b"".join(out) if size <= CHUNK_SIZE else Pieces(out)
            if max(spent) >= watch:
                reply = self.slow_notes(commands, spent, reply)
            replies.append(reply)
        if ready:
            self.waiters.serve()
        self.commands_processed += count
        return replies

    def _count_errors(self, commands: list[list], out: list[bytes]) -> None:
        failed_call = self.errors.failed_call
        for argv, reply in zip(commands, out, strict=True):
            if reply[:1] == b"-":
                failed_call(argv[0], reply)

    def _mend(self, commands: list[list], out: list) -> list[bytes]:
        """Replies with every one that is not bytes (a handler's bug) replaced by an error."""
        mended = []
        for argv, reply in zip(commands, out, strict=True):
            if reply.__class__ is bytes:
                mended.append(reply)
            else:
                problem = TypeError(f"handler returned {type(reply).__name__}")
                mended.append(self._internal_error(argv, problem))
        return mended

    def _internal_error(self, argv: list[bytes], exc: Exception) -> bytes:
        log.error(
            "shard %d: command %r failed: %s: %s",
            self.index,
            argv[0][:64],
            type(exc).__name__,
            exc,
            exc_info=not isinstance(exc, MemoryError),
        )
        return error(f"ERR internal error in shard {self.index}: {type(exc).__name__}")

    def expire_cycle(self, budget_s: float | None = None) -> int:
        """One active-expiry sweep, with about a quarter of the sweep interval as budget."""
        if not self.active_expire or self.frozen_ms is not None:
            return 0
        if budget_s is None:
            budget_s = 0.25 / self.hz
        start = perf_counter_ns()
        removed = active_expire_cycle(self.dbs, budget_s, time.perf_counter, now_ms, self._rng)
        self.latency_sample("expire-cycle", perf_counter_ns() - start)
        self.expired_by_sweep += removed
        return removed

    def latency_sample(self, event: str, ns: int) -> None:
        """This shard's own work (the sweep, the log's fsync) took ``ns``: past
        ``latency-monitor-threshold`` it is a sample of ``event`` for acceptor 0."""
        if ns >= self.times.monitor_ns:
            self.events.append((0, (LATENCY, event, int(time.time()), ns // 1_000_000)))

    def key_count(self) -> int:
        return sum(len(db) for db in self.dbs)
