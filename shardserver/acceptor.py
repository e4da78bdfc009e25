"""The acceptor: the process that listens, and the services its commands use.

Clients connect here (:class:`shardserver.client.ClientConnection` serves each); their
commands go to the shards through the sequencer (:mod:`shardserver.sequencer`) over the shard
links (:mod:`shardserver.links`), by the routes of :mod:`shardserver.routing` and
:mod:`shardserver.coordination`. This module owns what is left: the listening socket, start
and stop, the registry of clients, and the server-wide services that command handlers reach
through their session (``session.server``): settings, passwords, the command table,
consistent internal steps across every shard, snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import signal
import socket
import time
from binascii import crc_hqx
from collections.abc import Callable
from typing import Any

from shardserver import events, info
from shardserver.blocked import Blocking
from shardserver.client import ClientConnection
from shardserver.commands import connection
from shardserver.commands.acl import AccessControl
from shardserver.commands.spec import Later
from shardserver.commands.table import COMMANDS
from shardserver.config import Config
from shardserver.errors import writes_refused
from shardserver.eventclasses import KEYEVENT, KEYSPACE
from shardserver.introspection import SETTINGS as INTROSPECTION_SETTINGS
from shardserver.introspection import Introspection
from shardserver.invalidations import Invalidations
from shardserver.limits import ClientLimits
from shardserver.links import ShardLink, ShardLinks
from shardserver.monitoring import Monitors
from shardserver.pausing import Pause
from shardserver.peers import Peers
from shardserver.persistence import aof
from shardserver.persistence.loader import library_failure
from shardserver.persistence.snapshots import Snapshots
from shardserver.pubsub import PubSub
from shardserver.receivers import DISCARD, Collector
from shardserver.scripting.scripts import Scripts
from shardserver.sequencer import Sequencer
from shardserver.shared import ServerWords
from shardserver.slots import shard_table, slot_for_key
from shardserver.tls import TlsError, TlsPort, plain_port_wanted

log = logging.getLogger("shardserver.acceptor")
_TRACKING_EVENTS = frozenset({events.INVALIDATED, events.WRITTEN})


class Acceptor:
    """Owns the listening socket, the clients and the links to the shards."""

    def __init__(
        self,
        config: Config,
        links: list[ShardLink],
        launcher: Callable[[int], list[ShardLink]] | None,
        index: int = 0,
        book: Any = None,
        listener: socket.socket | None = None,
        words: ServerWords | None = None,
        peers: Peers | None = None,
        board: Any = None,
    ) -> None:
        self.config = config
        #: min-replicas-to-write asks for replicas, and none ever connects: writes get
        #: -NOREPLICAS (the client's fast path is off meanwhile).
        self.writes_refused = writes_refused(config)
        #: maxmemory is set: denyoom commands take the checked path (shardserver/memory.py).
        self.maxmemory = bool(config["maxmemory"])
        self.commands = COMMANDS
        #: Our number among the acceptors, and the socket we listen on when there are
        #: several (else we open our own).
        self.index = index
        #: The server's main process (acceptor 0, the shards' parent): INFO's process_id.
        #: A forked acceptor is built right after the fork, while that parent is alive.
        self.main_pid = os.getpid() if index == 0 else os.getppid()
        self.listener = listener
        #: The other acceptors (none when there is one), and what they may ask of us.
        self.peers = peers if peers is not None else Peers({})
        #: This acceptor's clients' subscriptions (docs/architecture.md, "Pub/sub").
        self.pubsub = PubSub()
        self.peers.handlers.update(
            client_lines=lambda ids, kind=None: connection.listed_here(self, ids, None, kind),
            client_kill=lambda filters: connection.killed_here(self, tuple(filters)),
            stats=lambda: info.acceptor_numbers(self),
            config=lambda pairs: self._set_configs(pairs),
            resetstat=self.reset_stats,
            shutdown=self._asked_to_stop,
            shard_reborn=lambda index, pid, why, fds: self.links.adopt(index, pid, why, *fds),
            client_unblock=lambda client_id, how: connection.unblocked_here(self, client_id, how),
            monitors=lambda index, count: self.monitors.counted(index, count),
            monitor_lines=lambda lines: self.monitors.heard(lines),
            pause=lambda mode, milliseconds: self.pause.start(mode, milliseconds),
            unpause=lambda: self.pause.end(),
            script_load=lambda body: self.scripts.learned(body),
            script_flush=lambda: self.scripts.flush(),
            function_load=lambda code: self.scripts.functions.load(code, True, tell=False),
            function_delete=lambda name: self.scripts.functions.delete(name, tell=False),
            function_flush=lambda: self.scripts.functions.flush(tell=False),
            # answered after every message before it: a change is applied everywhere
            barrier=lambda: None,
            publish=self.pubsub.deliver,
            spublish=self.pubsub.deliver_shard,
            pubsub_active=self.pubsub.active,
            pubsub_counts=self.pubsub.counts,
            pubsub_patterns=self.pubsub.pattern_names,
        )
        self.peers.on_lost = self._peer_lost
        #: ACL users, the ACL LOG, the ACL file (:mod:`shardserver.commands.acl`).
        self.acl = AccessControl(self)
        self.peers.handlers.update(self.acl.handlers())
        #: This acceptor's tracking clients (docs/architecture.md, "Client-side caching").
        self.tracking = Invalidations(self)
        #: Starts a shard process afresh, with pipes for every acceptor (the shards' parent
        #: only: acceptor 0).
        self.launcher = launcher
        respawn = self._respawn if launcher is not None else None
        self.links = ShardLinks(links, respawn, self._replied, self._written, config)
        self.sequencer = Sequencer(self.links, book, index)
        #: The clients waiting in a blocking command, and what the shards say unasked.
        self.blocking = Blocking(self)
        #: CLIENT PAUSE: what it holds back, until when.
        self.pause = Pause(self)
        #: MONITOR clients here, and how many the other acceptors have.
        self.monitors = Monitors(self)
        self.links.on_events = self._heard
        self.links.on_failed = self._shard_failed
        self.shard_count = len(links)
        self.shard_of_slot = shard_table(len(links))
        #: The script cache, and where each script runs (EVAL, EVALSHA, SCRIPT); the board
        #: that says which scripts run now, in any shard or acceptor.
        self.scripts = Scripts(self, board)
        self.clients: dict[int, ClientConnection] = {}
        #: maxclients, timeout, output and query buffer limits, maxmemory-clients.
        self.limits = ClientLimits(self)
        #: Server-wide words (client IDs, the snapshot's state), shared by the acceptors.
        self.words = words if words is not None else ServerWords()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.base_events.Server | None = None
        self.stopping: asyncio.Future | None = None
        self.started_at = time.time()
        self.max_bulk_len = config["proto-max-bulk-len"]
        #: Counters for INFO: connections accepted, commands parsed (all routes).
        self.connections_received = 0
        self.commands_received = 0
        #: This acceptor's TLS port (tls-port; none while it is 0).
        self.tls = TlsPort(config, lambda: ClientConnection(self))
        #: Snapshots (SAVE, BGSAVE, save rules); whether SHUTDOWN asked to save (None: by
        #: the save rules).
        self.snapshots = Snapshots(self)
        self.shutdown_save: bool | None = None
        #: SLOWLOG and the latency monitor (shardserver/introspection.py).
        self.introspection = Introspection(self)
        self.links.on_slow = self.introspection.heard_slow

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> int:
        """Listen, serve until SIGTERM/SIGINT or SHUTDOWN, then stop everything; exit status."""
        loop = self.loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        self.links.start(loop)
        self.sequencer.start(loop)
        self.scripts.start(loop)
        # The libraries on disk first, and only then what the other acceptors tell: a change
        # one of them made meanwhile then comes after the libraries it changed.
        problem = await self.scripts.functions.load_saved()
        if problem is not None:
            log.warning("%s", library_failure(problem))
            self.links.close()
            return 1
        self.peers.start(loop)
        try:
            if self.listener is not None:
                self.server = await loop.create_server(
                    lambda: ClientConnection(self), sock=self.listener
                )
            elif plain_port_wanted(self.config):
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
            self.links.close()
            return 1
        try:
            await self.tls.start(loop)
        except (TlsError, OSError) as problem:
            log.warning("Could not listen on the TLS port %s: %s", self.config["tls-port"], problem)
            self.links.close()
            return 1
        port = self.server.sockets[0].getsockname()[1] if self.server is not None else 0
        self.config.values["port"] = port
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        log.info(
            "acceptor %d pid %d listening on %s:%d (TLS: %d) with %d shards",
            self.index,
            os.getpid(),
            self.config["bind"],
            port,
            self.config["tls-port"],
            self.shard_count,
        )
        if self.index == 0:
            log.info("Ready to accept connections tcp")
        cron = loop.create_task(self.snapshots.cron()) if self.index == 0 else None
        self.limits.start(loop)
        while True:
            await self.stopping
            # Acceptor 0 decides the final snapshot (SHUTDOWN SAVE/NOSAVE, the save rules);
            # another acceptor stops when acceptor 0 has gone, and never saves on its own.
            if self.index != 0 or await self.snapshots.save_before_exit():
                break
            self.stopping = loop.create_future()
            self.shutdown_save = None
        if cron is not None:
            cron.cancel()
        self._shutdown()
        return 0

    def shutting_down(self) -> bool:
        """Whether the server is stopping (the shards' pipes may be closed already)."""
        return self.stopping is not None and self.stopping.done()

    def request_stop(self, reason: str = "SHUTDOWN") -> None:
        """Stop the server. Acceptor 0 stops it (saving first when asked to); another
        acceptor passes the request on and stops when acceptor 0 is gone."""
        if self.index != 0:
            self.peers.tell("shutdown", self.shutdown_save, reason, to=0)
            return
        self._stop(reason)

    def _stop(self, reason: str) -> None:
        log.warning("Received %s, shutting down", reason)
        if self.stopping is not None and not self.stopping.done():
            self.stopping.set_result(None)

    def _asked_to_stop(self, save: bool | None, reason: str) -> None:
        self.shutdown_save = save
        self._stop(reason)

    def _peer_lost(self, index: int) -> None:
        self.monitors.elsewhere.pop(index, None)
        self.words.acceptor_gone(index)  # its clients no longer count for maxclients
        if index == 0:
            self._stop("the end of acceptor 0")
        elif self.stopping is not None and not self.stopping.done():
            log.warning("acceptor %d is gone; its clients are disconnected", index)

    def _shutdown(self) -> None:
        if self.server is not None:
            self.server.close()
        self.tls.close()
        for client in list(self.clients.values()):
            client.transport.abort()
        self.peers.close()  # the other acceptors see end of file and stop
        self.links.close()
        self.links.wait_exit(1.5)
        if self.index == 0:
            log.warning("redis-clone is now ready to exit, bye bye...")

    def _respawn(self, index: int) -> ShardLink:
        """A fresh process for a shard that died: our link to it; the other acceptors get
        their ends of its pipes over the control channel."""
        links = self.launcher(index)
        for peer, link in enumerate(links):
            if peer != self.index:
                self.peers.hand_over(
                    "shard_reborn",
                    (index, link.process.pid, self.links.last_restart_reason[index]),
                    [link.command_fd, link.reply_fd],
                    to=peer,
                )
                link.close_fds()
        return links[self.index]

    def _replied(self, shard: int) -> None:
        self.sequencer.replied(shard)

    def _heard(self, shard: int, told: list) -> None:
        """Events from a shard, each to what listens: waiters served or ready
        (:mod:`shardserver.waiters`), tracking invalidations (:mod:`shardserver.tracking`),
        keyspace notifications (:mod:`shardserver.notifications`), MONITOR's lines
        (:mod:`shardserver.monitoring`), each kind in order."""
        pubsub = self.pubsub
        listening = pubsub.channels.subscribers or pubsub.patterns.subscribers
        waits = []
        for event in told:
            kind = event[0]
            if kind == events.NOTIFIED:
                if listening:
                    _kind, forms, index, name, key = event
                    if forms & KEYSPACE:
                        pubsub.deliver(b"__keyspace@%d__:%b" % (index, key), name)
                    if forms & KEYEVENT:
                        pubsub.deliver(b"__keyevent@%d__:%b" % (index, name), key)
            elif kind in _TRACKING_EVENTS:
                self.tracking.heard(event)
            elif kind == events.MONITORED:
                self.monitors.heard(event[1])
            elif kind == events.LATENCY:
                self.introspection.heard_sample(*event[1:])
            else:
                waits.append(event)
        if waits:
            self.blocking.heard(shard, waits)

    def _shard_failed(self, shard: int) -> None:
        self.blocking.shard_failed(shard)
        self.tracking.shard_failed(shard)
        self.scripts.shard_restarted(shard)

    def _written(self) -> None:
        if self.sequencer.book is not None:
            self.sequencer.publish()

    # -- clients -------------------------------------------------------------------------

    def register(self, client: ClientConnection) -> int:
        """A new connection's client ID; 0 when it is past maxclients (every acceptor's
        clients counted), and then not counted as received, as in Redis."""
        client_id = self.words.admit_client(self.index, self.config["maxclients"])
        if client_id:
            self.clients[client_id] = client
            self.connections_received += 1
        return client_id

    def unregister(self, client: ClientConnection) -> None:
        if client.id and self.clients.pop(client.id, None) is not None:
            self.words.client_gone(self.index)
            self.limits.client_gone(client)

    def shard_of_key(self, key: bytes) -> int:
        slot = slot_for_key(key) if b"{" in key else crc_hqx(key, 0) & 0x3FFF
        return self.shard_of_slot[slot]

    # -- services for command handlers ---------------------------------------------------

    def set_config(self, name: str, value: str, push: bool = True) -> None:
        """CONFIG SET one setting; raises ConfigError. Shards learn the new value (from the
        acceptor that got the command: ``push``)."""
        if name.startswith("tls-"):  # the acceptors' own: the shards need none
            self.tls.set([(name, value)])
            return
        name = self.config.set(name, value)
        self.writes_refused = writes_refused(self.config)
        self.maxmemory = bool(self.config["maxmemory"])
        if name == "proto-max-bulk-len":
            self.max_bulk_len = self.config[name]
        elif name in ClientLimits.SETTINGS:
            self.limits.configure()
        elif name in INTROSPECTION_SETTINGS:
            self.introspection.configure()
        elif name == "requirepass":
            self.acl.requirepass_changed()
        if not push:
            return
        if name == "appendonly" and self.config[name] == "yes":
            aof.commit_layout(self.config["dir"], self.config["appendfilename"], self.shard_count)
        self.push_settings({name: self.config[name]})

    def _set_configs(self, pairs: list[tuple[str, str]]) -> None:
        """Another acceptor's CONFIG SET (it validated the values and told the shards)."""
        tls = [(name, value) for name, value in pairs if name.startswith("tls-")]
        if tls:
            self.tls.set(tls)  # together, as that acceptor set them
        for name, value in pairs:
            if not name.startswith("tls-"):
                self.set_config(name, value, push=False)

    def told_everywhere(self, reply: bytes, op: str, *args: Any) -> bytes | Later:
        """Tell every other acceptor ``op``; ``reply`` once they all have done it (at once
        with one acceptor), so what the command changed holds everywhere from its reply on."""
        return self.everywhere(None, lambda _answers: reply, op, *args)

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT in this acceptor: its counters start again."""
        self.connections_received = 0
        self.commands_received = 0
        self.limits.reset_stats()
        info.STATS.reset(0)
        self.introspection.reset_times()

    def everywhere(
        self, mine: Any, finish: Callable[[list[Any]], bytes], op: str, *args: Any
    ) -> bytes | Later:
        """``finish`` of every acceptor's answer to ``op`` (ours, ``mine``, first): at once
        with one acceptor, else when the others have answered (a reply that comes later)."""
        if not len(self.peers):
            return finish([mine])
        reply = self.loop.create_future()

        def answered(asked: asyncio.Future) -> None:
            try:
                others = [each for each in asked.result().values() if each is not None]
                reply.set_result(finish([mine, *others]))
            except Exception as problem:
                reply.set_exception(problem)

        self.peers.ask(op, *args).add_done_callback(answered)
        return Later(reply)

    def call_shards(self, parts: list[list]) -> asyncio.Future:
        """Queue one internal part per shard (``parts[i]`` for shard i) in one step, so all
        shards run it at the same point of the command order (a consistent cut); the
        future gets their values in shard order (an error reply for a shard that failed)."""
        future = self.loop.create_future()
        self.sequencer.step(0, list(enumerate(parts)), Collector(future, len(parts)))
        return future

    def push_settings(self, changes: dict[str, Any]) -> None:
        """Tell every shard about changed settings (CONFIG SET); no reply is awaited."""
        part = [b"@settings", marshal.dumps(changes)]
        self.sequencer.step(0, [(shard, part) for shard in range(self.shard_count)], DISCARD)
