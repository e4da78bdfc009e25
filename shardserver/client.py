"""One client connection: its parser, its session, and its replies leaving in request order.

A :class:`ClientConnection` is the asyncio protocol of one client (uvicorn's ``H11Protocol``
is the model: per-connection state here, per-command state in the routes). It parses what
arrives (:class:`shardserver.resp.CommandReader`), dispatches each command in order, and
keeps a queue of *entries*, one per run of commands sent to a shard or per reply known at
once. A reply fills its entry; the filled head of the queue is written out. So replies leave
in request order whatever order the shards answer in.

Memory per client is bounded by how fast it reads:

- a client pipelining more than a *burst* of commands in one go has the rest kept, parsed,
  in its inbox, and reading stops; the next burst is dispatched once every reply of the last
  one is written. The burst shrinks when replies are large (3,000 pipelined GETs of a 1 MB
  value go about 8 at a time) and grows when they are small, so ordinary pipelines never
  wait for it;
- reading also stops while the socket's unsent output passes :data:`WRITE_HIGH` bytes (asyncio
  ``pause_writing``; less when an output limit is smaller) or the queue passes
  :data:`PENDING_HIGH` entries, and resumes as they drain.

The client limits (``maxclients``, output and query buffer limits, ``timeout``) are the
acceptor's :class:`shardserver.limits.ClientLimits`: this module only calls it where input
or output can grow past a limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from binascii import crc_hqx
from collections import deque
from time import perf_counter_ns
from typing import Any

from shardserver import monitoring, protection
from shardserver.commands import replymode, transactions
from shardserver.commands.pubsub import ALLOWED_WHEN_SUBSCRIBED, refused_when_subscribed
from shardserver.commands.spec import LOCAL_CALLS, NO_REPLY, Later, Route, bad_arity
from shardserver.commands.table import COMMANDS, CommandSpec
from shardserver.commands.transactions import NOT_QUEUED
from shardserver.errors import NOREPLICAS, error, unknown_command, unknown_subcommand, wrong_arity
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.latency import ACCEPTOR as TIMES
from shardserver.memory import OOM, server_full
from shardserver.resp import CommandReader, ProtocolError, Resp2, encoder_for
from shardserver.routing import ROUTES
from shardserver.slots import slot_for_key

log = logging.getLogger("shardserver.client")

#: Pause reading from a client with this many unanswered entries; resume below the low mark.
PENDING_HIGH = 4096
PENDING_LOW = 1024
#: The socket's unsent bytes at which reading pauses, and below which it resumes (unless an
#: output limit is smaller: :mod:`shardserver.limits`).
WRITE_HIGH = 1 << 20
WRITE_LOW = 1 << 18
#: Commands of one client dispatched before their replies are seen: the first burst, the
#: bounds, and the reply bytes a burst aims at.
BURST_START = 64
BURST_MIN = 8
BURST_MAX = 16384
BURST_BYTES = 8 << 20
#: Above this many bytes ready at once, replies are written as a list (no joined copy).
JOIN_LIMIT = 1 << 16


def _lookup_table() -> dict[bytes, CommandSpec]:
    """Commands by name as clients send them: lower and upper case (others are lowered)."""
    table: dict[bytes, CommandSpec] = {}
    for name, spec in COMMANDS.items():
        table[name.encode()] = spec
        table[name.upper().encode()] = spec
    return table


LOOKUP = _lookup_table()
#: Single-key commands as clients usually spell them (lower or upper case), to what the
#: fast path needs: (arity, position of the key, name as shards know it).
FAST_KEY: dict[bytes, tuple[int, int, bytes]] = {
    name: (spec.arity, spec.first_key, spec.wire_name)
    for name, spec in LOOKUP.items()
    if spec.route is Route.KEY and not spec.subcommands
}
#: EVAL, EVALSHA, FCALL and their _RO forms as clients usually spell them: while the fast
#: path is on, none of the checked path's refusals, queueing or watching applies to them.
FAST_SCRIPT: dict[bytes, CommandSpec] = {
    name: spec for name, spec in LOOKUP.items() if spec.route is Route.SCRIPT
}
#: The fast path while a shard is out of memory: the commands flagged denyoom take the
#: checked path, where they are refused (``_refuse_oom``).
FAST_KEY_NO_DENYOOM = {
    name: each for name, each in FAST_KEY.items() if "denyoom" not in LOOKUP[name].flags
}
_NO_FAST = {}.get  # before AUTH, every command takes the checked path
_NOAUTH = error("NOAUTH Authentication required.")
_NOAUTH_HELLO = error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)
_LOCAL = Route.LOCAL
_PING = {b"PING", b"ping"}
_PONG = b"+PONG\r\n"


def _address(pair: Any) -> str:
    if isinstance(pair, tuple) and len(pair) >= 2:
        return f"{pair[0]}:{pair[1]}"
    return ""


class ClientConnection(asyncio.Protocol):
    """One client: its parser, its session state, and its replies waiting to leave in order."""

    #: A client's own commands are no script's (a script's session says True).
    in_script = False
    #: SCRIPT DEBUG's mode for the next EVAL: "yes", "sync", or None (no debugging).
    script_debug: str | None = None

    def __init__(self, server: Any) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = CommandReader(server.max_bulk_len)
        #: Entries in request order: ``[reply]``, the reply None until it arrives (bytes, or
        #: a list of pieces for a reply that came in chunks).
        self.pending: deque[list] = deque()
        self.out: list[bytes] = []
        #: Parsed commands beyond the current burst, and the burst's size and progress.
        self.inbox: list = []
        self.burst = BURST_START
        self.burst_commands = 0
        self.sent_bytes = 0
        self.burst_started_at = 0
        self.id = 0
        self.protocol = 2
        self.enc: type[Resp2] = Resp2
        self.db = 0
        self.ctx = 0
        self.name: bytes | None = None
        self.library: dict[str, bytes] = {}
        #: The run this client is extending, the shard it is for, and the sequencer turn it
        #: was queued in (a run grows only within its turn).
        self.run: list | None = None
        self.run_shard = -1
        self.run_turn = -1
        self.draining = False
        self.paused = False
        self.writing_paused = False
        self.pump_scheduled = False
        self.closing = False
        self.closed = False
        #: For CLIENT LIST / INFO: when it connected (Unix s), last input (monotonic s),
        #: the last command it sent (name), its addresses as "host:port".
        self.created_at = time.time()
        self.last_active = time.monotonic()
        self.last_command = b"NULL"
        self.addr = ""
        self.laddr = ""
        #: The peer's address alone (protection.py: is it local?).
        self.host = ""
        self.no_evict = False
        #: The ACL user this connection runs as, and whether it authenticated (a new one
        #: is the default user's, authenticated when that needs no password).
        server.acl.start_session(self)
        #: After MULTI: the commands queued for EXEC, and whether one was refused.
        self.multi: list | None = None
        self.multi_failed = False
        #: WATCHed keys: (db, key) to the version the shard gave (None until it answers).
        self.watched: dict[tuple[int, bytes], int | None] = {}
        #: The blocking command this client waits in (:class:`shardserver.blocked.Wait`):
        #: until it is answered, nothing more of this client's is dispatched.
        self.blocked: Any = None
        #: Whether a CLIENT PAUSE holds this client's next command back (it waits, with what
        #: followed it, at the head of the inbox: :mod:`shardserver.pausing`).
        self.postponed = False
        #: Whether this client is a MONITOR (:mod:`shardserver.monitoring`).
        self.monitoring = False
        #: Pub/sub: what this client subscribes to (insertion-ordered sets, kept with the
        #: acceptor's registry, :mod:`shardserver.pubsub`); whether it is in RESP2's
        #: subscribed mode (only the commands of ALLOWED_WHEN_SUBSCRIBED run, no fast path);
        #: the bytes of messages waiting in ``pending`` behind replies (at most: the output
        #: limits count them again), and since when its output is past the soft limit.
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard_channels: dict[bytes, None] = {}
        self.pubsub_only = False
        self.messages_queued = 0
        self.over_soft_limit_since: float | None = None
        #: CLIENT TRACKING's mode while it is on (:class:`shardserver.invalidations.
        #: ClientTracking`): its commands then take the checked path (no fast path), where
        #: each run is wrapped for its shard to remember what it reads.
        self.tracking: Any = None
        #: CLIENT REPLY's flags (:mod:`shardserver.commands.replymode`; the checked path
        #: while any is set) and how many silent entries wait in ``pending``.
        self.reply_flags = 0
        self.silenced = 0

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.limits.set_write_limits(transport)
        self.id = self.server.register(self)
        if not self.id:  # past maxclients
            self.server.limits.refuse(self)
            return
        self.addr = _address(transport.get_extra_info("peername"))
        self.laddr = _address(transport.get_extra_info("sockname"))
        self.host = protection.peer_host(transport)
        server = self.server
        if protection.denies_connection(
            server.config, self.host, server.acl.registry.default.nopass
        ):
            self.server.limits.rejected += 1  # INFO rejected_connections, as maxclients
            self.closing = True
            transport.write(protection.DENIED)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pending.clear()
        self.inbox.clear()
        if not self.server.shutting_down():
            if self.watched:
                transactions.unwatch_all(self)
            if self.blocked is not None:
                self.blocked.client_gone()
        self.server.pause.held.discard(self)
        if self.monitoring:
            self.server.monitors.remove(self)
        if self.channels or self.patterns or self.shard_channels:
            self.server.pubsub.drop(self)
        if self.tracking is not None:
            self.server.tracking.disable(self)
        self.server.unregister(self)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()
        self.server.limits.check_output(self)

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()
        if self.inbox and not self.pending:
            self._schedule_pump()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        commands = self.reader.read(data)
        if not commands:  # part of a command: it counts as interaction, and may be too big
            self.last_active = time.monotonic()
            self.server.limits.check_query(self)
            return
        self.last_active = time.monotonic()
        self.server.commands_received += len(commands)
        if self.inbox or len(commands) > self.burst:
            self.inbox.extend(commands)
            self._pump()
        else:
            self._run(commands)
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        if len(self.pending) > PENDING_HIGH and not self.paused:
            self._update_reading()

    def _run(self, commands: list) -> None:
        """Dispatch parsed commands; a trailing ProtocolError ends the connection after them."""
        problem = None
        if commands[-1].__class__ is not list:
            problem = commands.pop()
        if commands:
            self.last_command = commands[-1][0]
            self._dispatch(commands)
        if problem is not None and not self.closing:
            if self.blocked is not None or self.postponed:
                self.inbox.append(problem)  # after the commands parked behind the wait
            else:
                self._protocol_error(problem)

    # -- bursts --------------------------------------------------------------------------

    def _pump(self) -> None:
        """Dispatch the next burst from the inbox, once the last burst's replies are out."""
        self.pump_scheduled = False
        if self.closing or self.closed:
            self.inbox.clear()
            return
        if self.postponed:
            return  # the pause's end comes back here (resume_after_pause)
        if self.pending or self.writing_paused:
            self._update_reading()
            return  # drain() or resume_writing() comes back here
        if self.burst_commands:
            size = max(1, self.sent_bytes - self.burst_started_at) / self.burst_commands
            self.burst = int(min(BURST_MAX, max(BURST_MIN, BURST_BYTES / size)))
        inbox = self.inbox
        take = inbox[: self.burst]
        del inbox[: self.burst]
        self.burst_commands = len(take)
        self.burst_started_at = self.sent_bytes
        self._run(take)
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        self._update_reading()
        if inbox and not self.pending:
            self._schedule_pump()  # all answered at once (local replies): go on next turn

    def _schedule_pump(self) -> None:
        if not self.pump_scheduled:
            self.pump_scheduled = True
            self.server.loop.call_soon(self._pump)

    def _update_reading(self) -> None:
        """Pause or resume reading from the socket by the rules in the module docstring."""
        if self.closed or self.transport is None:
            return
        limit = PENDING_LOW if self.paused else PENDING_HIGH
        wanted = (
            not self.closing
            and not self.writing_paused
            and not self.inbox
            and len(self.pending) <= limit
        )
        if wanted and self.paused:
            self.paused = False
            self.transport.resume_reading()
        elif not wanted and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, commands: list[list]) -> None:
        """Route each command in order. The single-key path, nearly all traffic, is inline;
        scripts go straight to their route while the fast path is on.

        A client's consecutive commands for one shard in one turn extend one run (see
        :meth:`enqueue`); the run state lives in locals here and goes back to ``self``
        around every other kind of command. This loop appends to the sequencer's tail
        segments directly (what :meth:`enqueue` does, inlined): measured, the calls cost
        more than the rest of the routing.
        """
        server = self.server
        sequencer = server.sequencer
        scripts = server.scripts
        fast = self._fast_lookup()
        shard_of_slot = server.shard_of_slot
        single = server.shard_count == 1
        batches, targets, pending = sequencer.batches, sequencer.targets, self.pending
        turn = sequencer.turn
        run = self.run
        run_shard = self.run_shard if self.run_turn == turn else -1
        queued = False
        for argv in commands:
            known = fast(argv[0])
            if known is not None:
                arity, first_key, wire_name = known
                if len(argv) != arity if arity > 0 else len(argv) < -arity:  # bad_arity, inline
                    refused = wrong_arity(wire_name.decode())
                    ERRORS.rejected_call(wire_name.decode(), refused)
                    self.reply(refused)
                    run_shard = -1
                    continue
                if single:
                    shard = 0
                else:
                    key = argv[first_key]
                    slot = slot_for_key(key) if b"{" in key else crc_hqx(key, 0) & 0x3FFF
                    shard = shard_of_slot[slot]
                argv[0] = wire_name
                if shard == run_shard:
                    run.append(argv)
                    continue
                run = [self.ctx, argv]
                entry = [None]
                batches[shard].append(run)
                targets[shard].append((self, entry))
                pending.append(entry)
                run_shard = shard
                queued = True
                continue
            if argv[0] in _PING and len(argv) == 1 and fast is not _NO_FAST:
                LOCAL_CALLS["ping"] += 1  # PING alone, as benchmarks send it: inline too
                start = perf_counter_ns()
                self.reply(_PONG)
                TIMES.record("ping", perf_counter_ns() - start)
                run_shard = -1
                continue
            spec = FAST_SCRIPT.get(argv[0]) if fast is not _NO_FAST else None
            if spec is not None and not bad_arity(spec.arity, len(argv)):
                self.run, self.run_shard, self.run_turn = run, run_shard, turn
                scripts.route(self, spec, argv)
                run, run_shard = self.run, self.run_shard
                continue
            spec = LOOKUP.get(argv[0]) or LOOKUP.get(argv[0].lower())
            self.run, self.run_shard, self.run_turn = run, run_shard, turn
            if self.reply_flags:  # CLIENT REPLY OFF or SKIP
                replymode.quietly(self, self._dispatch_other, spec, argv)
            else:
                self._dispatch_other(spec, argv)
            if self.closing:
                break
            if self.blocked is not None or self.postponed:
                # what follows waits for the blocking command (or the pause, and this one too)
                rest = next(i for i, each in enumerate(commands) if each is argv)
                self.inbox[:0] = commands[rest if self.postponed else rest + 1 :]
                break
            fast = self._fast_lookup()
            run = self.run
            run_shard = self.run_shard if self.run_turn == turn else -1
        self.run, self.run_shard, self.run_turn = run, run_shard, turn
        if queued:
            sequencer.schedule_flush()

    def _fast_lookup(self) -> Any:
        """The single-key fast path's lookup, or the one that finds nothing (scripts then
        take the checked path too): off before
        AUTH, in MULTI, in RESP2 subscribed mode, while tracking, paused, monitored, busy
        with a long script or with replies switched off (each needs the checked path)."""
        server = self.server
        if (
            not self.authenticated
            or not self.user.unrestricted
            or self.multi is not None
            or self.pubsub_only
            or server.pause
            or server.monitors
            or self.tracking is not None
            or server.scripts.busy
            or server.writes_refused
            or self.reply_flags
        ):
            return _NO_FAST
        # while a shard is out of memory, denyoom commands take the checked path (its OOM
        # refusal); the board is read once per dispatch
        if server.maxmemory and server_full():
            return FAST_KEY_NO_DENYOOM.get
        return FAST_KEY.get

    def _dispatch_other(self, spec: CommandSpec | None, argv: list) -> None:
        """Everything but an authenticated single-key command outside MULTI."""
        if spec is None:
            self._refuse(unknown_command(argv))
            return
        if bad_arity(spec.arity, len(argv)):
            self._refuse(wrong_arity(spec.name), spec.name)
            return
        if spec.name in protection.GUARDED:  # before NOAUTH, as processCommand
            refused = protection.command_refusal(self.server.config, spec, argv, self.host)
            if refused is not None:
                self._refuse(refused, spec.name)
                return
        if not self.authenticated and self._refuse_unauthenticated(spec, argv):
            return
        if spec.subcommands:
            if len(argv) == 1 and spec.run is not None:  # COMMAND alone
                if self.user.unrestricted or not self._refuse_by_acl(spec, argv):
                    self._run_or_queue(spec, argv)
                return
            sub = spec.subcommands.get(argv[1].lower().decode("utf-8", "replace"))
            if sub is None:
                self._refuse(unknown_subcommand(argv))
                return
            if bad_arity(sub.arity, len(argv)):
                self._refuse(wrong_arity(sub.name), sub.name)
                return
            spec = sub
        if not self.user.unrestricted and self._refuse_by_acl(spec, argv):
            return
        self._run_or_queue(spec, argv)

    def _refuse_by_acl(self, spec: CommandSpec, argv: list) -> bool:
        """A user that may not run everything: its ACL rules, checked after authentication
        as Redis checks them (:mod:`shardserver.commands.acl`); after MULTI a refusal fails
        the transaction."""
        refused = self.server.acl.refusal(self, spec.name, argv)
        if refused is None:
            return False
        self._refuse(refused, spec.name)
        return True

    def _run_or_queue(self, spec: CommandSpec, argv: list) -> None:
        """Run a checked command, or after MULTI queue it (all but EXEC, DISCARD ...)."""
        if self.server.maxmemory and self._refuse_oom(spec):
            return
        if self.server.writes_refused and self._refuse_write(spec):
            return
        if self.server.scripts.busy and self._refuse_busy(spec, argv):
            return
        if self.pubsub_only and spec.name not in ALLOWED_WHEN_SUBSCRIBED:
            self._refuse_subscribed(spec.name)
        elif self.multi is not None and spec.name not in NOT_QUEUED:
            self.reply(transactions.queue(self, spec, argv))
        elif self.server.pause and self.server.pause.holds_back(spec, argv, self.multi):
            self.postponed = True
            self.server.pause.held.add(self)
        elif self.monitoring and monitoring.refused(spec):
            ERRORS.rejected_call(spec.name, monitoring.REFUSED)
            self.reply(monitoring.REFUSED)
        elif spec.route is _LOCAL:
            if not self.server.monitors:
                self._local(spec, argv)
            else:
                self._local_monitored(spec, argv)
        elif self.server.monitors:
            self.server.monitors.dispatching(self, spec, argv)
            ROUTES[spec.route](self.server, self, spec, argv)
            self.server.monitors.dispatched()
        else:
            ROUTES[spec.route](self.server, self, spec, argv)
        if self.tracking is not None:
            self.server.tracking.command_done(self, spec.name)

    def _local_monitored(self, spec: CommandSpec, argv: list) -> None:
        """A command the acceptor answers, while some client monitors: its line follows it
        (it shows the state it leaves); an EXEC's, with several acceptors, rides with the
        transaction's step, with the lines of the commands it runs."""
        monitors = self.server.monitors
        ran = None  # what an EXEC runs, as the client sent it (planners rename argv[0])
        if spec.name == "exec" and self.multi and not self.multi_failed:
            ran = [(queued, list(queued_argv)) for queued, queued_argv in self.multi]
        db = self.db
        if ran is not None and monitors.by_shards:
            monitors.dispatching(self, spec, argv, ran, db)
            self._local(spec, argv)
            monitors.dispatched()
        else:
            self._local(spec, argv)
            monitors.feed(self, spec, argv, ran, db)

    def _local(self, spec: CommandSpec, argv: list) -> None:
        """A command the acceptor answers: now, later (a future), or never (SHUTDOWN)."""
        try:
            reply = spec.run(self, argv)
        except Exception as problem:
            log.exception("command %r failed in the acceptor", spec.name)
            reply = error(f"ERR internal error: {type(problem).__name__}")
        if reply.__class__ is bytes:
            self.reply(reply)
        elif reply.__class__ is Later:
            entry = self.new_entry()
            reply.future.add_done_callback(lambda done: self.fill(entry, Later.result(done)))
        elif reply is not NO_REPLY:
            log.error("command %r returned %r in the acceptor", spec.name, type(reply))
            self.reply(error("ERR internal error: no reply"))

    def _refuse_busy(self, spec: CommandSpec, argv: list) -> bool:
        """While a script runs past ``busy-reply-threshold``, only what Redis flags
        ``allow_busy`` runs (SHUTDOWN only with NOSAVE), as in Redis. The board is read
        again first: a script that just ended on another acceptor's watch is not busy."""
        scripts = self.server.scripts
        scripts.look_at_board()
        if not scripts.busy:
            return False
        if "allow_busy" in spec.flags and (
            spec.name != "shutdown" or any(arg.lower() == b"nosave" for arg in argv[1:])
        ):
            return False
        if spec.name == "exec" and self.multi is not None:
            self._abort_exec(scripts.busy_reply)
        else:
            self._refuse(scripts.busy_reply, spec.name)
        return True

    def _refuse_write(self, spec: CommandSpec) -> bool:
        """While min-replicas-to-write refuses writes, a write (an EXEC with one queued)
        gets -NOREPLICAS, in Redis's place in its checks: before -BUSY and the queueing."""
        return self._refuse_flagged(spec, "write", NOREPLICAS)

    def _refuse_oom(self, spec: CommandSpec) -> bool:
        """Redis's OOM check in processCommand (before -NOREPLICAS and -BUSY): while some
        shard is out of memory, a command flagged denyoom is refused, an EXEC with one
        queued is aborted, and after MULTI every command but EXEC, DISCARD, QUIT and RESET
        is refused (a queue could grow without bound), failing the transaction."""
        if not server_full():
            return False
        if self.multi is not None and spec.name not in ("exec", "discard", "quit", "reset"):
            self._refuse(OOM, spec.name)
            return True
        return self._refuse_flagged(spec, "denyoom", OOM)

    def _refuse_flagged(self, spec: CommandSpec, flag: str, reply: bytes) -> bool:
        """A command flagged ``flag`` gets ``reply``; an EXEC with such a command queued is
        aborted with it (as Redis checks the transaction's flags at EXEC)."""
        if spec.name == "exec" and self.multi is not None:
            if any(flag in queued.flags for queued, _argv in self.multi):
                self._abort_exec(reply)
                return True
            return False
        if flag not in spec.flags:
            return False
        self._refuse(reply, spec.name)
        return True

    def _abort_exec(self, reply: bytes) -> None:
        """EXEC refused before it runs: the transaction goes, and the reply says why, as
        Redis's ``execCommandAbort`` words it."""
        self.multi = None
        self.multi_failed = False
        transactions.unwatch_all(self)
        aborted = b"-EXECABORT Transaction discarded because of: " + reply[1:]
        ERRORS.rejected_call("exec", aborted)
        self.reply(aborted)

    def _refuse_unauthenticated(self, spec: CommandSpec, argv: list) -> bool:
        """While the default user needs a password, only commands flagged no_auth run
        before AUTH (Redis's authRequired looks at the default user now, so a connection
        made while it needed one runs once it needs none)."""
        if self.authenticated or "no_auth" in spec.flags or self.server.acl.opens_authenticated():
            return False
        if spec.name == "hello" and len(argv) > 2:
            return False  # HELLO ... AUTH user pass
        self._refuse(_NOAUTH_HELLO if spec.name == "hello" else _NOAUTH, spec.name)
        return True

    def _refuse(self, reply: bytes, name: str | None = None) -> None:
        """A command refused before it runs (``name``: None for one unknown here); after
        MULTI that fails the transaction."""
        if self.multi is not None:
            self.multi_failed = True
        ERRORS.rejected_call(name, reply)
        self.reply(reply)

    def _refuse_subscribed(self, name: str) -> None:
        """A RESP2 subscriber's command other than (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET:
        refused as Redis refuses it (after the checks above, before MULTI's queueing); a
        refused EXEC discards the transaction."""
        if name == "exec" and self.multi is not None:
            self.multi = None
            self.multi_failed = False
            transactions.unwatch_all(self)
        self._refuse(refused_when_subscribed(name), name)

    def _protocol_error(self, problem: ProtocolError) -> None:
        log.log(logging.INFO - 5, "client %d: %s", self.id, problem)
        reply = error(f"ERR {problem}")
        ERRORS.replied(reply)  # as Redis: no command to count it against
        self.reply(reply)
        self.close_after_reply()

    # -- the reply queue -----------------------------------------------------------------

    def reply(self, data: bytes) -> None:
        """A reply known now: it leaves after every earlier reply of this client."""
        if self.pending:
            self.pending.append([data])
            self.run_shard = -1
        else:
            self.out.append(data)

    def new_entry(self) -> list:
        """An entry for a reply that comes later; nothing after it joins an earlier run."""
        entry = [None]
        self.pending.append(entry)
        self.run_shard = -1
        return entry

    def enqueue(self, shard: int, argv: list) -> None:
        """Send a command to its shard, extending this client's open run if it can."""
        sequencer = self.server.sequencer
        monitors = self.server.monitors
        extend = self.run_shard == shard and self.run_turn == sequencer.turn
        if self.tracking is not None:
            if extend and monitors.riding is None:  # the run is one @track: the command joins it
                self.run[1].append(self.server.tracking.item(self, argv))
                return
            argv = self.server.tracking.wrap(self, argv)
            extend = False
        if monitors.riding is not None:  # its shard writes its line (monitoring.py)
            argv = monitors.carry(self.ctx, argv)
        if extend:
            self.run.append(argv)
            return
        run = [self.ctx, argv]
        entry = [None]
        self.pending.append(entry)
        sequencer.append(shard, run, (self, entry))
        self.run = run
        # a tracking client's run grows inside its @track, which is wrapped here
        self.run_shard = -1 if self.tracking is not None and argv[0] != b"@track" else shard
        self.run_turn = sequencer.turn

    def fill(self, entry: list, reply: bytes) -> None:
        """Fill an entry and write out whatever is ready at the head of the queue."""
        entry[0] = reply
        pending = self.pending
        if pending and pending[0] is entry:
            self.drain()

    def drain(self) -> None:
        """Write the replies at the head of the queue that are ready."""
        if self.closed:
            return
        pending = self.pending
        ready = []
        size = 0
        silenced = self.silenced
        while pending and pending[0][0] is not None:
            entry = pending.popleft()
            if silenced and len(entry) == 3:  # CLIENT REPLY OFF/SKIP dropped it
                self.silenced -= 1
                continue
            reply = entry[0]
            if reply.__class__ is list:  # it came in chunks
                ready.extend(reply)
                size += JOIN_LIMIT
            else:
                ready.append(reply)
                size += len(reply)
        if ready:
            if size < JOIN_LIMIT:
                data = b"".join(ready)
                self.sent_bytes += len(data)
                self.transport.write(data)
            else:
                self.sent_bytes += sum(map(len, ready))
                self.transport.writelines(ready)
        if self.paused:
            self._update_reading()
            if self.writing_paused:  # past the high-water mark: maybe past a limit
                self.server.limits.check_output(self)
        if not pending:
            self.messages_queued = 0
            if self.closing:
                self.transport.close()
            elif self.inbox:
                self._schedule_pump()

    # -- pub/sub messages ------------------------------------------------------------------

    def push(self, data: bytes) -> None:
        """A pub/sub message for this client: it leaves after every reply the client is
        already owed, never inside one, whatever its reading pace. Past its class of
        ``client-output-buffer-limit`` the connection is dropped, as Redis drops it."""
        if self.closing or self.closed:
            return
        if self.pending:
            self.pending.append([data, True])  # [reply, is a message]: counted below
            self.messages_queued += len(data)
            self.run_shard = -1
        elif self.out:  # this client is being dispatched: its replies so far are there
            self.out.append(data)
        else:
            self.transport.write(data)
        self.server.limits.check_output(self)

    def subscriptions_changed(self) -> None:
        """After a (P|S)(UN)SUBSCRIBE, RESET or HELLO: RESP2's subscribed mode is on while
        the client subscribes to anything."""
        self.pubsub_only = self.protocol == 2 and bool(
            self.channels or self.patterns or self.shard_channels
        )

    # -- session state used by handlers -------------------------------------------------

    def close_after_reply(self) -> None:
        """Close once every reply so far is written (QUIT, protocol errors, CLIENT KILL)."""
        self.closing = True
        self.inbox.clear()
        if self.transport is not None and not self.closed:
            self._update_reading()
            self.server.loop.call_soon(self._close_if_done)

    def _close_if_done(self) -> None:
        if self.closed or self.pending:
            return  # drain() closes when the last pending reply is written
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        self.transport.close()

    def resume_after_pause(self) -> None:
        """The pause is over: go on with the command it held back."""
        self.postponed = False
        if self.inbox and not self.closed:
            self._schedule_pump()

    def select_db(self, index: int) -> None:
        self.db = index
        self.ctx = index * 2 + (1 if self.protocol == 3 else 0)
        self.run_shard = -1

    def set_protocol(self, protocol: int) -> None:
        self.protocol = protocol
        self.enc = encoder_for(protocol)
        self.select_db(self.db)
        self.subscriptions_changed()
