"""The acceptor: accepts clients, parses RESP, routes commands to shards, relays replies in order.

It is the sequencer of the whole server. Everything a client sends is parsed here and, in the
order received, either answered on the spot (connection and server commands), appended to
the batch of the shard that owns the key's hash slot, or appended to every shard's batch (a
fan-out, whose parts the acceptor merges). All parts of one command are appended in one step,
before the next command is looked at, and each shard executes its pipe strictly in arrival
order, so every command is atomic and the server is serializable (docs/architecture.md).

Batching: commands bound for a shard during one event-loop turn travel as one frame (a list
of *runs*, see :mod:`shardserver.shard`), written at the end of the turn; each shard answers a
frame with one frame. Consecutive commands of one client for one shard form a run whose
replies come back already concatenated.

Ordering: each client keeps a queue of entries, one per run or local reply, in request order.
A reply fills its entry; the filled prefix of the queue is written out, in one write per
client per reply frame. A client whose queue grows past a limit is paused (asyncio
``pause_reading``) until it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
import time
from binascii import crc_hqx
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any

from shardserver.commands.multikey import Plan
from shardserver.commands.spec import Route, bad_arity
from shardserver.commands.table import COMMANDS, CommandSpec, key_positions
from shardserver.config import Config
from shardserver.errors import error, unknown_command, unknown_subcommand, wrong_arity
from shardserver.framing import FrameDecoder, FrameWriter
from shardserver.persistence import aof
from shardserver.persistence.snapshots import Snapshots
from shardserver.resp import CommandReader, ProtocolError, Resp2, encoder_for
from shardserver.slots import shard_table, slot_for_key
from shardserver.worker import wait_for_exit

log = logging.getLogger("shardserver.acceptor")

#: Pause reading from a client with this many unanswered entries; resume below the low mark.
PENDING_HIGH = 4096
PENDING_LOW = 1024
#: Bytes asked of one pipe read: below glibc's mmap threshold, so no mmap per read.
READ_SIZE = 1 << 16
#: Batches a shard may have in flight; later commands wait for a reply, then go together.
MAX_INFLIGHT = 2


def _lookup_table() -> dict[bytes, CommandSpec]:
    """Commands by name as clients send them: lower and upper case (others are lowered)."""
    table: dict[bytes, CommandSpec] = {}
    for name, spec in COMMANDS.items():
        table[name.encode()] = spec
        table[name.upper().encode()] = spec
    return table


LOOKUP = _lookup_table()
#: Single-key commands as clients usually spell them (lower or upper case), to what the
#: acceptor's fast path needs: (arity, position of the key, name as shards know it).
FAST_KEY: dict[bytes, tuple[int, int, bytes]] = {
    name: (spec.arity, spec.first_key, spec.wire_name)
    for name, spec in LOOKUP.items()
    if spec.route is Route.KEY and not spec.subcommands
}
_NO_FAST = {}.get  # before AUTH, every command takes the checked path
_NOAUTH = error("NOAUTH Authentication required.")
_NOAUTH_HELLO = error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)
_KEY, _LOCAL = Route.KEY, Route.LOCAL


class ShardLink:
    """The acceptor's end of one shard: its process, pipes, and the batches in flight."""

    def __init__(self, index: int, process: Any, command_fd: int, reply_fd: int) -> None:
        self.index = index
        self.process = process
        self.command_fd = command_fd
        self.reply_fd = reply_fd
        self.writer = FrameWriter(command_fd)
        self.decoder = FrameDecoder()
        #: Targets of each batch sent and not yet answered, oldest first.
        self.inflight: deque[list] = deque()
        self.alive = True


class Gather:
    """Collects the parts of a multi-shard command; the merge fills the client's entry.

    ``merge(parts)`` gets the parts' values in order and returns the encoded reply, or None
    when something else fills the entry later (a coordination's writes). An error reply
    from any part (a shard that failed) becomes the reply instead. Parts therefore never
    return bare bytes: values travel inside lists or tuples.
    """

    __slots__ = ("client", "entry", "merge", "parts", "remaining")

    def __init__(
        self, client: ClientConnection, entry: list, merge: Callable[[list], bytes], parts: int
    ) -> None:
        self.client = client
        self.entry = entry
        self.merge = merge
        self.parts: list[Any] = [None] * parts
        self.remaining = parts

    def deliver(self, index: int, value: Any) -> None:
        self.parts[index] = value
        self.remaining -= 1
        if self.remaining:
            return
        failed = [p for p in self.parts if p.__class__ is bytes and p[:1] == b"-"]
        reply = failed[0] if failed else self.merge(self.parts)
        if reply is not None:
            fill(self.client, self.entry, reply)


def step_ctx(ctx: int, db: int | None) -> int:
    """The run context of a coordination step: the client's, or another database's (COPY DB)."""
    return ctx if db is None else db * 2 + (ctx & 1)


def fill(client: ClientConnection, entry: list, reply: bytes) -> None:
    """Fill a client's entry and write out whatever is ready at the head of its queue."""
    entry[0] = reply
    pending = client.pending
    if pending and pending[0] is entry:
        client.drain()


class Coordination:
    """A conditional multi-shard command in flight: reads, decision, writes, reply.

    The shards it reads from are held from the moment its reads are queued until its
    decision's writes are queued in front of everything that arrived for them meanwhile.
    """

    __slots__ = ("server", "client", "entry", "plan", "shards", "ctx")

    def __init__(
        self, server: Acceptor, client: ClientConnection, entry: list, plan: Any, shards: list[int]
    ) -> None:
        self.server = server
        self.client = client
        self.entry = entry
        self.plan = plan
        self.shards = shards
        #: The client's database and protocol when the command arrived: a SELECT pipelined
        #: after it must not move its writes.
        self.ctx = client.ctx

    def decided(self, results: list) -> bytes | None:
        """All reads are in (this is their Gather's merge): decide, queue writes, release;
        or queue the next round's reads, in front of what waits behind the holds."""
        decision = self.plan.decide(results)
        if isinstance(decision, Plan):
            self.plan = decision
            self.server.read_round(self)
            return None
        reply, writes = decision
        by_shard: dict[int, list] = {}
        acks = Gather(self.client, self.entry, lambda _parts: reply, len(writes))
        for index, step in enumerate(writes):
            shard = self.server.shard_of_key(step.key)
            ctx = step_ctx(self.ctx, step.db)
            by_shard.setdefault(shard, []).append(([ctx, step.argv], (acks, index)))
        self.server.release(self, by_shard)
        return None if writes else reply


class _Discard:
    """Target for parts whose replies nobody waits for."""

    def deliver(self, index: int, value: Any) -> None:
        pass


_DISCARD = _Discard()


class _Collector:
    """Target for internal parts sent to every shard; resolves a future with their values."""

    __slots__ = ("future", "values", "remaining")

    def __init__(self, future: asyncio.Future, parts: int) -> None:
        self.future = future
        self.values: list[Any] = [None] * parts
        self.remaining = parts

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(self.values)


def _address(pair: Any) -> str:
    if isinstance(pair, tuple) and len(pair) >= 2:
        return f"{pair[0]}:{pair[1]}"
    return ""


class Acceptor:
    """Owns the listening socket, the clients and the links to the shards."""

    def __init__(
        self, config: Config, links: list[ShardLink], respawn: Callable[[int], ShardLink]
    ) -> None:
        self.config = config
        self.links = links
        self.respawn = respawn
        self.shard_of_slot = shard_table(len(links))
        #: Per shard, the runs and targets that the next flush sends ("ready"), and the
        #: segments held back by coordinations, oldest first: [coordination, runs, targets].
        #: ``batches``/``targets`` point at the tail, where new commands go.
        self.ready_runs: list[list] = [[] for _ in links]
        self.ready_targets: list[list] = [[] for _ in links]
        self.held: list[deque[list]] = [deque() for _ in links]
        self.batches: list[list] = list(self.ready_runs)
        self.targets: list[list] = list(self.ready_targets)
        self.turn = 0
        self.flush_scheduled = False
        self.clients: dict[int, ClientConnection] = {}
        self.next_client_id = count(1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.base_events.Server | None = None
        self.stopping: asyncio.Future | None = None
        self.started_at = time.time()
        self.max_bulk_len = config["proto-max-bulk-len"]
        #: Counters for INFO: connections accepted, commands parsed (all routes).
        self.connections_received = 0
        self.commands_received = 0
        #: Snapshots (SAVE, BGSAVE, save rules); whether SHUTDOWN asked to save (None: by
        #: the save rules).
        self.snapshots = Snapshots(self)
        self.shutdown_save: bool | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> int:
        """Listen, serve until SIGTERM/SIGINT or SHUTDOWN, then stop everything; exit status."""
        loop = self.loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        for link in self.links:
            self._attach(link)
        try:
            self.server = await loop.create_server(
                lambda: ClientConnection(self),
                host=self.config["bind"],
                port=self.config["port"],
                backlog=self.config["tcp-backlog"],
                reuse_address=True,
            )
        except OSError as problem:
            log.warning(
                "Could not create server TCP listening socket %s:%s: %s",
                self.config["bind"],
                self.config["port"],
                problem.strerror,
            )
            self._close_links()
            return 1
        port = self.server.sockets[0].getsockname()[1]
        self.config.values["port"] = port
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        log.info("Listening on %s:%d with %d shards", self.config["bind"], port, len(self.links))
        log.info("Ready to accept connections tcp")
        cron = loop.create_task(self.snapshots.cron())
        while True:
            await self.stopping
            if await self.snapshots.save_before_exit():
                break
            self.stopping = loop.create_future()
            self.shutdown_save = None
        cron.cancel()
        await self._shutdown()
        return 0

    def request_stop(self, reason: str = "SHUTDOWN") -> None:
        log.warning("Received %s, shutting down", reason)
        if self.stopping is not None and not self.stopping.done():
            self.stopping.set_result(None)

    async def _shutdown(self) -> None:
        if self.server is not None:
            self.server.close()
        for client in list(self.clients.values()):
            client.transport.abort()
        self._close_links()
        deadline = time.monotonic() + 1.5
        for link in self.links:
            if not wait_for_exit(link.process, max(0.0, deadline - time.monotonic())):
                link.process.kill()
                wait_for_exit(link.process, 0.2)
        log.warning("redis-clone is now ready to exit, bye bye...")

    def _close_links(self) -> None:
        for link in self.links:
            self._detach(link)
            for fd in (link.command_fd, link.reply_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _attach(self, link: ShardLink) -> None:
        os.set_blocking(link.command_fd, False)
        os.set_blocking(link.reply_fd, False)
        self.loop.add_reader(link.reply_fd, self._on_shard_readable, link)

    def _detach(self, link: ShardLink) -> None:
        if self.loop is not None:
            self.loop.remove_reader(link.reply_fd)
            self.loop.remove_writer(link.command_fd)

    # -- batching --------------------------------------------------------------------------

    def enqueue(self, client: ClientConnection, shard: int, argv: list) -> None:
        """Append a command to its shard's batch, extending the client's open run if it can."""
        if client.run_shard == shard and client.run_turn == self.turn:
            client.run.append(argv)
            return
        run = [client.ctx, argv]
        entry = [None]
        self.batches[shard].append(run)
        self.targets[shard].append((client, entry))
        client.pending.append(entry)
        client.run = run
        client.run_shard = shard
        client.run_turn = self.turn
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def shard_of_key(self, key: bytes) -> int:
        slot = slot_for_key(key) if b"{" in key else crc_hqx(key, 0) & 0x3FFF
        return self.shard_of_slot[slot]

    def send_parts(
        self,
        client: ClientConnection,
        parts: list[tuple[int, list]],
        merge: Callable[[list], bytes],
    ) -> list:
        """Queue one-command runs (``(shard, argv)``) in one step; merge fills a new entry."""
        entry = [None]
        client.pending.append(entry)
        client.run_shard = -1
        gather = Gather(client, entry, merge, len(parts))
        ctx = client.ctx
        batches, targets = self.batches, self.targets
        for index, (shard, argv) in enumerate(parts):
            batches[shard].append([ctx, argv])
            targets[shard].append((gather, index))
        self._schedule_flush()
        return entry

    def fan_out(self, client: ClientConnection, spec: CommandSpec, argv: list) -> None:
        """Send a command's part to every shard, in this same step; merge the parts later."""
        if spec.check is not None:
            problem = spec.check(client, argv)
            if problem is not None:
                client.reply(problem)
                return
        name = b"@" + spec.wire_name
        part = [name, *argv[1:]]
        merge = spec.merge
        self.send_parts(
            client,
            [(shard, part) for shard in range(len(self.links))],
            lambda parts: merge(client, argv, parts),
        )

    def single_key(self, client: ClientConnection, spec: CommandSpec, argv: list) -> None:
        """KEY route off the fast path (subcommands such as MEMORY USAGE, before AUTH ...)."""
        argv[0] = spec.wire_name
        self.enqueue(client, self.shard_of_key(argv[spec.first_key]), argv)

    def multi_key(self, client: ClientConnection, spec: CommandSpec, argv: list) -> None:
        """KEYS route: natively on one shard when it owns every key, else parts per shard."""
        if spec.check is not None:
            problem = spec.check(client, argv)
            if problem is not None:
                client.reply(problem)
                return
        step = spec.step
        by_shard: dict[int, list[int]] = {}
        shard_of_key = self.shard_of_key
        for position in key_positions(spec, argv):
            by_shard.setdefault(shard_of_key(argv[position]), []).append(position)
        if len(by_shard) == 1:
            argv[0] = spec.wire_name
            self.enqueue(client, next(iter(by_shard)), argv)
            return
        name = b"@" + spec.wire_name
        parts = []
        layout = []
        first = spec.first_key
        for shard, positions in by_shard.items():
            part = [name]
            for position in positions:
                part.extend(argv[position : position + step])
            parts.append((shard, part))
            layout.append([(position - first) // step for position in positions])
        merge = spec.merge
        self.send_parts(client, parts, lambda values: merge(client, argv, values, layout))

    def coordinate(self, client: ClientConnection, spec: CommandSpec, argv: list) -> None:
        """COORD route: natively on one shard when it can; else two phases, shards held."""
        if spec.check is not None:
            checked = spec.check(client, argv)
            if checked.__class__ is bytes:
                client.reply(checked)
                return
            if checked is not None:
                argv = checked
        if spec.undeclared_keys is not None and spec.undeclared_keys(argv):
            shards = set(range(len(self.links)))
        else:
            shards = {self.shard_of_key(argv[p]) for p in key_positions(spec, argv)}
        if len(shards) == 1:
            argv[0] = spec.wire_name
            self.enqueue(client, shards.pop(), argv)
            return
        plan = spec.plan(client, argv)
        entry = [None]
        client.pending.append(entry)
        client.run_shard = -1
        if plan.hold_all:
            held = list(range(len(self.links)))
        else:
            held = sorted({self.shard_of_key(step.key) for step in plan.reads})
        coordination = Coordination(self, client, entry, plan, held)
        self._queue_reads(coordination, self.batches, self.targets)
        for shard in held:
            segment = [coordination, [], []]
            self.held[shard].append(segment)
            self.batches[shard] = segment[1]
            self.targets[shard] = segment[2]
        self._schedule_flush()

    def _queue_reads(self, coordination: Coordination, batches: list, targets: list) -> None:
        """Append a coordination's reads to the given per-shard batches."""
        reads = coordination.plan.reads
        gather = Gather(coordination.client, coordination.entry, coordination.decided, len(reads))
        for index, step in enumerate(reads):
            shard = self.shard_of_key(step.key)
            batches[shard].append([step_ctx(coordination.ctx, step.db), step.argv])
            targets[shard].append((gather, index))

    def read_round(self, coordination: Coordination) -> None:
        """A later round of a coordination's reads, each at the coordination's own hold point
        on its shard: after what came before the hold (an earlier hold's writes included),
        before anything queued behind it."""
        batches: dict[int, list] = {}
        targets: dict[int, list] = {}
        for shard in coordination.shards:
            segments = self.held[shard]
            mine = next(i for i, segment in enumerate(segments) if segment[0] is coordination)
            if mine == 0:
                batches[shard], targets[shard] = self.ready_runs[shard], self.ready_targets[shard]
            else:
                _, batches[shard], targets[shard] = segments[mine - 1]
        for step in coordination.plan.reads:
            assert self.shard_of_key(step.key) in batches, "a later round reads only held shards"
        self._queue_reads(coordination, batches, targets)
        self._schedule_flush()

    def release(self, coordination: Coordination, writes: dict[int, list]) -> None:
        """Put a coordination's writes first on each held shard, then let the shard go."""
        for shard in coordination.shards:
            queue = self.held[shard]
            owner, runs, targets = queue.popleft()
            assert owner is coordination, "holds are released in the order they were taken"
            ready_runs, ready_targets = self.ready_runs[shard], self.ready_targets[shard]
            for run, target in writes.pop(shard, ()):
                ready_runs.append(run)
                ready_targets.append(target)
            ready_runs.extend(runs)
            ready_targets.extend(targets)
            if not queue:
                self.batches[shard] = ready_runs
                self.targets[shard] = ready_targets
        assert not writes, "writes go only to shards the coordination held"
        self._schedule_flush()

    def cursor(self, client: ClientConnection, spec: CommandSpec, argv: list) -> None:
        """CURSOR route (SCAN): one part, to the shard the cursor names."""
        planned = spec.plan(client, argv)
        if planned.__class__ is bytes:
            client.reply(planned)
            return
        shard, part = planned
        merge = spec.merge
        self.send_parts(client, [(shard, part)], lambda values: merge(client, shard, values[0]))

    def flush(self) -> None:
        """Send each shard its ready batch: one frame per shard, while few are in flight.

        A shard still working on earlier batches gets nothing new; what arrives meanwhile
        waits and goes as one larger batch when a reply comes back. Under load, batches grow
        to match the shard's speed (fewer crossings, each cheaper per command); when idle,
        a command leaves at the end of the turn it arrived in.
        """
        self.flush_scheduled = False
        self.turn += 1
        for index, link in enumerate(self.links):
            batch = self.ready_runs[index]
            if not batch or len(link.inflight) >= MAX_INFLIGHT:
                continue
            link.inflight.append(self.ready_targets[index])
            fresh_runs: list = []
            fresh_targets: list = []
            self.ready_runs[index] = fresh_runs
            self.ready_targets[index] = fresh_targets
            if not self.held[index]:
                self.batches[index] = fresh_runs
                self.targets[index] = fresh_targets
            if not link.alive:
                continue
            try:
                if not link.writer.write(marshal.dumps(batch)):
                    self.loop.add_writer(link.command_fd, self._on_shard_writable, link)
            except OSError as problem:
                self._shard_failed(link, f"write failed: {problem}")

    def _on_shard_writable(self, link: ShardLink) -> None:
        try:
            if link.writer.flush():
                self.loop.remove_writer(link.command_fd)
        except OSError as problem:
            self._shard_failed(link, f"write failed: {problem}")

    def _on_shard_readable(self, link: ShardLink) -> None:
        """Drain the reply pipe and hand every reply to its client entry or fan-out."""
        fd = link.reply_fd
        drain: list[ClientConnection] = []
        loads = marshal.loads
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as problem:
                self._shard_failed(link, f"read failed: {problem}")
                return
            if not data:
                self._shard_failed(link, "pipe closed")
                return
            for payload in link.decoder.feed(data):
                targets = link.inflight.popleft()
                for (client, entry), reply in zip(targets, loads(payload), strict=True):
                    if entry.__class__ is list:
                        entry[0] = reply
                        pending = client.pending
                        if pending and pending[0] is entry and not client.draining:
                            client.draining = True
                            drain.append(client)
                    else:
                        client.deliver(entry, reply)
            if len(data) < READ_SIZE:
                break
        for client in drain:
            client.draining = False
            client.drain()
        if self.ready_runs[link.index]:
            self._schedule_flush()

    def _shard_failed(self, link: ShardLink, why: str) -> None:
        """A shard died: fail what it had in flight, start a fresh one, carry on."""
        if not link.alive:
            return
        link.alive = False
        stopping = self.stopping is not None and self.stopping.done()
        if not stopping:
            log.warning(
                "shard %d (pid %s) failed: %s; restarting it", link.index, link.process.pid, why
            )
        self._detach(link)
        for fd in (link.command_fd, link.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        failure = error(f"ERR shard {link.index} failed while running this command")
        while link.inflight:
            for client, entry in link.inflight.popleft():
                if entry.__class__ is list:
                    fill(client, entry, failure)
                else:
                    client.deliver(entry, failure)
        if self.stopping is not None and self.stopping.done():
            return
        if not wait_for_exit(link.process, 0.5):
            link.process.kill()
            wait_for_exit(link.process, 0.5)
        fresh = self.respawn(link.index)
        self.links[link.index] = fresh
        self._attach(fresh)

    # -- services for command handlers ---------------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        required = self.config["requirepass"]
        return not required or password == required.encode()

    def set_config(self, name: str, value: str) -> None:
        """CONFIG SET one setting; raises ConfigError. Shards learn the new value."""
        name = self.config.set(name, value)
        if name == "proto-max-bulk-len":
            self.max_bulk_len = self.config[name]
        if name == "appendonly" and self.config[name] == "yes":
            aof.commit_layout(self.config["dir"], self.config["appendfilename"], len(self.links))
        self.push_settings({name: self.config[name]})

    def call_shards(self, parts: list[list]) -> asyncio.Future:
        """Queue one internal part per shard (``parts[i]`` for shard i) in one step, so all
        shards run it at the same point of the command order (a consistent cut); the
        future gets their values in shard order (an error reply for a shard that failed)."""
        future = self.loop.create_future()
        collector = _Collector(future, len(parts))
        for shard, argv in enumerate(parts):
            self.batches[shard].append([0, argv])
            self.targets[shard].append((collector, shard))
        self._schedule_flush()
        return future

    def register(self, client: ClientConnection) -> int:
        client_id = next(self.next_client_id)
        self.clients[client_id] = client
        self.connections_received += 1
        return client_id

    def push_settings(self, changes: dict[str, Any]) -> None:
        """Tell every shard about changed settings (CONFIG SET); no reply is awaited."""
        for shard in range(len(self.links)):
            self.batches[shard].append([0, [b"@settings", marshal.dumps(changes)]])
            self.targets[shard].append((_DISCARD, shard))
        self._schedule_flush()


class ClientConnection(asyncio.Protocol):
    """One client: its parser, its session state, and its replies waiting to leave in order."""

    def __init__(self, server: Acceptor) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = CommandReader(server.max_bulk_len)
        self.pending: deque[list] = deque()
        self.out: list[bytes] = []
        self.id = 0
        self.protocol = 2
        self.enc: type[Resp2] = Resp2
        self.db = 0
        self.ctx = 0
        self.name: bytes | None = None
        self.library: dict[str, bytes] = {}
        self.run: list | None = None
        self.run_shard = -1
        self.run_turn = -1
        self.draining = False
        self.paused = False
        self.writing_paused = False
        self.closing = False
        self.closed = False
        #: For CLIENT LIST / INFO: when it connected (Unix s), last input (monotonic s),
        #: the last command it sent (name), its addresses as "host:port".
        self.created_at = time.time()
        self.last_active = time.monotonic()
        self.last_command = b"NULL"
        self.addr = ""
        self.laddr = ""
        self.no_evict = False
        self.authenticated = not server.config["requirepass"]

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.id = self.server.register(self)
        self.addr = _address(transport.get_extra_info("peername"))
        self.laddr = _address(transport.get_extra_info("sockname"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pending.clear()
        self.server.clients.pop(self.id, None)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if not self.paused and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        commands = self.reader.read(data)
        if not commands:
            return
        server = self.server
        self.last_active = time.monotonic()
        server.commands_received += len(commands)
        problem = None
        if commands[-1].__class__ is not list:
            problem = commands.pop()
        if commands:
            self.last_command = commands[-1][0]
            self._dispatch(commands)
        if problem is not None and not self.closing:
            self._protocol_error(problem)
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        if len(self.pending) > PENDING_HIGH and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _dispatch(self, commands: list[list]) -> None:
        """Route each command in order. The single-key path, nearly all traffic, is inline.

        A client's consecutive commands for one shard in one turn extend one run (see
        :meth:`Acceptor.enqueue`); the run state lives in locals here and goes back to
        ``self`` around every other kind of command.
        """
        server = self.server
        fast = FAST_KEY.get if self.authenticated else _NO_FAST
        shard_of_slot = server.shard_of_slot
        single = len(server.links) == 1
        batches, targets, pending = server.batches, server.targets, self.pending
        turn = server.turn
        run = self.run
        run_shard = self.run_shard if self.run_turn == turn else -1
        queued = False
        for argv in commands:
            known = fast(argv[0])
            if known is not None:
                arity, first_key, wire_name = known
                if len(argv) != arity if arity > 0 else len(argv) < -arity:  # bad_arity, inline
                    self.reply(wrong_arity(wire_name.decode()))
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
            spec = LOOKUP.get(argv[0]) or LOOKUP.get(argv[0].lower())
            self.run, self.run_shard, self.run_turn = run, run_shard, turn
            self._dispatch_other(spec, argv)
            if self.closing:
                break
            run = self.run
            run_shard = self.run_shard if self.run_turn == turn else -1
        self.run, self.run_shard, self.run_turn = run, run_shard, turn
        if queued:
            server._schedule_flush()

    def _dispatch_other(self, spec: CommandSpec | None, argv: list) -> None:
        """Everything but an authenticated single-key command."""
        if spec is None:
            self.reply(unknown_command(argv))
            return
        if bad_arity(spec.arity, len(argv)):
            self.reply(wrong_arity(spec.name))
            return
        if not self.authenticated and self._refuse_unauthenticated(spec, argv):
            return
        route = spec.route
        if spec.subcommands:
            self._container(spec, argv)
        elif route is _LOCAL:
            self.reply(spec.run(self, argv))
        else:
            _ROUTES[route](self.server, self, spec, argv)

    def _container(self, spec: CommandSpec, argv: list) -> None:
        if len(argv) == 1 and spec.run is not None:  # COMMAND alone
            self.reply(spec.run(self, argv))
            return
        sub = spec.subcommands.get(argv[1].lower().decode("utf-8", "replace"))
        if sub is None:
            self.reply(unknown_subcommand(argv))
            return
        if bad_arity(sub.arity, len(argv)):
            self.reply(wrong_arity(sub.name))
        elif sub.route is _LOCAL:
            self.reply(sub.run(self, argv))
        else:
            _ROUTES[sub.route](self.server, self, sub, argv)

    def _refuse_unauthenticated(self, spec: CommandSpec, argv: list) -> bool:
        """With ``requirepass`` set, only commands flagged no_auth run before AUTH."""
        if self.authenticated or "no_auth" in spec.flags:
            return False
        if spec.name == "hello" and len(argv) > 2:
            return False  # HELLO ... AUTH user pass
        self.reply(_NOAUTH_HELLO if spec.name == "hello" else _NOAUTH)
        return True

    def _protocol_error(self, problem: ProtocolError) -> None:
        log.log(logging.INFO - 5, "client %d: %s", self.id, problem)
        self.reply(error(f"ERR {problem}"))
        self.close_after_reply()

    # -- replies -------------------------------------------------------------------------

    def reply(self, data: bytes) -> None:
        """A reply known now: it leaves after every earlier reply of this client."""
        if self.pending:
            self.pending.append([data])
            self.run_shard = -1
        else:
            self.out.append(data)

    def drain(self) -> None:
        """Write the replies at the head of the queue that are ready."""
        if self.closed:
            return
        pending = self.pending
        ready = []
        while pending and pending[0][0] is not None:
            ready.append(pending.popleft()[0])
        if ready:
            self.transport.write(b"".join(ready))
        if self.paused and len(pending) < PENDING_LOW:
            self.paused = False
            if not self.writing_paused and not self.closing:
                self.transport.resume_reading()
        if self.closing and not pending:
            self.transport.close()

    # -- session state used by handlers -------------------------------------------------

    def close_after_reply(self) -> None:
        """Close once every reply so far is written (QUIT, protocol errors, CLIENT KILL)."""
        self.closing = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()
            self.loop_call_soon(self._close_if_done)

    def _close_if_done(self) -> None:
        if self.closed or self.pending:
            return  # drain() closes when the last pending reply is written
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        self.transport.close()

    def loop_call_soon(self, callback: Callable[[], None]) -> None:
        self.server.loop.call_soon(callback)

    def select_db(self, index: int) -> None:
        self.db = index
        self.ctx = index * 2 + (1 if self.protocol == 3 else 0)
        self.run_shard = -1

    def set_protocol(self, protocol: int) -> None:
        self.protocol = protocol
        self.enc = encoder_for(protocol)
        self.select_db(self.db)


#: How the acceptor serves each route beyond KEY and LOCAL (which it inlines).
_ROUTES = {
    Route.KEY: Acceptor.single_key,
    Route.ALL: Acceptor.fan_out,
    Route.KEYS: Acceptor.multi_key,
    Route.COORD: Acceptor.coordinate,
    Route.CURSOR: Acceptor.cursor,
}
