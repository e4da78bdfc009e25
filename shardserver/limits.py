"""Client limits: how many clients, how idle, how much they may hold, as Redis 7.0 limits them.

One :class:`ClientLimits` belongs to each acceptor (``acceptor.limits``) and owns:

- ``maxclients``: a connection past the limit, counted over every acceptor (a word in shared
  memory, :class:`shardserver.shared.ServerWords`), gets ``-ERR max number of clients
  reached`` and is closed, as Redis's ``acceptCommonHandler`` does (INFO's
  ``rejected_connections``);
- ``client-output-buffer-limit`` for the normal and pubsub classes (no replica ever connects
  here): a client whose unsent output passes its class's hard limit, or its soft limit for
  longer than the soft seconds, is closed asynchronously with Redis's log line (Redis's
  ``closeClientOnOutputBufferLimitReached`` and ``freeClientAsync``);
- ``client-query-buffer-limit``: a client whose unparsed input passes it is closed;
- ``timeout``: a client idle longer is closed, except one that is blocked, subscribed or a
  MONITOR (Redis's ``clientsCronHandleTimeout``);
- ``maxmemory-clients``: while every acceptor's clients together hold more, the largest
  evictable clients are closed (``CLIENT NO-EVICT on`` exempts one; INFO's
  ``evicted_clients``), as Redis's ``evictClients``;
- the count of every client's memory (:mod:`shardserver.clientmemory`), INFO's
  ``mem_clients_normal`` and ``client_recent_max_input_buffer``/``_output_buffer``.

Nothing here runs per command. A client's output is measured where it can grow past a limit:
the socket's write-buffer high-water mark is set at or below the smallest output limit, so
the transport calls ``pause_writing`` before any limit is passed, and from then on each write
of replies (and each pub/sub message) checks the limit with integer arithmetic. A cron, ``hz``
times a second, visits a slice of the clients (each about once a second, as Redis's
``clientsCron``) for what time decides: soft limits, timeouts, the memory count.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from shardserver.client import WRITE_HIGH, WRITE_LOW
from shardserver.clientmemory import client_memory
from shardserver.commands.connection import client_line
from shardserver.config import PASSIVE, ConfigError, buffer_limits, parse_memory

log = logging.getLogger("shardserver.limits")

#: Redis's reply to a connection past ``maxclients`` (written before the close).
MAX_CLIENTS_REACHED = b"-ERR max number of clients reached\r\n"
#: Redis's floor for ``maxmemory-clients`` (``getClientEvictionLimit``): below 128 KB no client
#: could talk to the server at all.
EVICTION_FLOOR = 128 * 1024
#: Descriptors kept beyond one per client (Redis's CONFIG_MIN_RESERVED_FDS, for its own
#: files). An acceptor's own are its two pipes per shard and a few more: they fit in it up
#: to 8 shards, and the reserve grows past that.
RESERVED_FDS = 32
#: Redis's clientsCron visits at least this many clients a tick.
CRON_MIN_CLIENTS = 5
#: Below loglevel notice and above debug, as Redis's verbose.
VERBOSE = logging.INFO - 5


def _subscribed(client: Any) -> bool:
    return bool(client.channels or client.patterns or client.shard_channels)


def _repr(data: bytes) -> str:
    """Bytes as Redis's ``sdscatrepr`` quotes them."""
    escapes = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x07: "\\a", 0x08: "\\b"}
    out = []
    for byte in data:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif byte in escapes:
            out.append(escapes[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def open_files_for(maxclients: int, reserved: int) -> int:
    """Raise this process's limit of open files towards ``maxclients`` and ``reserved``
    more, as far as the hard limit allows, as Redis's ``adjustOpenFilesLimit`` does; how
    many clients the limit allows now."""
    wanted = maxclients + reserved
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return maxclients
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError):
        pass
    return min(maxclients, soft - reserved)


class ClientLimits:
    """One acceptor's enforcement of the client limits (see the module docstring)."""

    #: The settings it reads: CONFIG SET of one of them calls :meth:`configure`.
    SETTINGS = frozenset(
        {"client-output-buffer-limit", "timeout", "client-query-buffer-limit", "maxclients"}
    )

    def __init__(self, server: Any) -> None:
        self.server = server
        #: INFO stats: connections refused by maxclients, clients evicted by
        #: maxmemory-clients (this acceptor's; INFO sums them).
        self.rejected = 0
        self.evicted = 0
        #: The memory each client held at its last visit, and their sum (INFO's
        #: ``mem_clients_normal``, published for maxmemory-clients).
        self.memory: dict[Any, int] = {}
        self.memory_total = 0
        #: When the cron last saw each client blocked, subscribed or monitoring: Redis counts
        #: the writes such a client gets as interaction, so its idle time starts after them.
        self.exempt_at: dict[Any, float] = {}
        #: The largest input and output buffers of the last round of visits (INFO's
        #: client_recent_max_input_buffer and _output_buffer), and of this one so far.
        self.recent_peaks = (0, 0)
        self._peaks = (0, 0)
        self._round: list = []
        self._next = 0
        self.normal: tuple[int, int, int] | None = None
        self.pubsub: tuple[int, int, int] | None = None
        self.write_high = WRITE_HIGH
        self.write_low = WRITE_LOW
        #: maxclients as last accepted (None until the start's check).
        self._maxclients: int | None = None
        self.configure()

    # -- settings --------------------------------------------------------------------------

    def configure(self) -> None:
        """Read the settings again (at start and after CONFIG SET)."""
        config = self.server.config
        self._check_maxclients()
        classes = buffer_limits(config["client-output-buffer-limit"])
        normal, pubsub = classes["normal"], classes["pubsub"]
        self.normal = normal if normal[0] or normal[1] else None
        self.pubsub = pubsub if pubsub[0] or pubsub[1] else None
        self.timeout = config["timeout"]
        self.query_limit = config["client-query-buffer-limit"]
        smallest = min([WRITE_HIGH, *(size for size in (*normal[:2], *pubsub[:2]) if size)])
        if smallest != self.write_high:
            self.write_high, self.write_low = smallest, min(WRITE_LOW, smallest // 4)
            for client in list(self.server.clients.values()):
                if client.transport is not None and not client.closed:
                    self.set_write_limits(client.transport)

    def _check_maxclients(self) -> None:
        """As Redis: at start a maxclients the open-files limit cannot serve is reduced,
        with Redis's warnings; CONFIG SET of one is refused with Redis's error (and the
        setting keeps its value)."""
        config = self.server.config
        wanted = config["maxclients"]
        reserved = max(RESERVED_FDS, 16 + 2 * config["shards"])
        allowed = open_files_for(wanted, reserved)
        if allowed < wanted and self._maxclients is not None:
            config.values["maxclients"] = self._maxclients
            raise ConfigError(
                "The operating system is not able to handle the specified number of "
                f"clients, try with {allowed}"
            )
        if allowed < wanted:
            log.warning(
                "You requested maxclients of %d requiring at least %d max file descriptors.",
                wanted,
                wanted + reserved,
            )
            log.warning(
                "Current maximum open files is %d. maxclients has been reduced to %d to "
                "compensate for low ulimit. If you need higher maxclients increase "
                "'ulimit -n'.",
                allowed + reserved,
                max(allowed, 1),
            )
            config.values["maxclients"] = max(allowed, 1)
        self._maxclients = config["maxclients"]

    def set_write_limits(self, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(high=self.write_high, low=self.write_low)

    def eviction_limit(self) -> int:
        """Redis's ``getClientEvictionLimit``: ``maxmemory-clients`` in bytes (a percentage
        of ``maxmemory``; with no maxmemory, none), at least 128 KB; 0 for no eviction."""
        setting = self.server.config["maxmemory-clients"]
        limit = self._maxmemory() * -setting // 100 if setting < 0 else setting
        return max(limit, EVICTION_FLOOR) if limit else 0

    def _maxmemory(self) -> int:
        """``maxmemory`` in bytes, in whatever form the settings keep it (0 if unreadable)."""
        value = self.server.config.values.get("maxmemory", PASSIVE.get("maxmemory", "0"))
        if value.__class__ is int:
            return value
        try:
            return parse_memory(str(value))
        except ConfigError:
            return 0

    # -- connections -----------------------------------------------------------------------

    def refuse(self, client: Any) -> None:
        """A connection past ``maxclients``: Redis's error, then the close."""
        self.rejected += 1
        client.closing = True
        client.transport.write(MAX_CLIENTS_REACHED)
        client.transport.close()

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: Redis's resetServerStats zeroes both counters."""
        self.rejected = self.evicted = 0

    def peaks(self) -> tuple[int, int]:
        """The largest input and output buffer seen in about the last second."""
        return max(self.recent_peaks[0], self._peaks[0]), max(self.recent_peaks[1], self._peaks[1])

    def client_gone(self, client: Any) -> None:
        self.memory_total -= self.memory.pop(client, 0)
        self.exempt_at.pop(client, None)

    def close_async(self, client: Any) -> None:
        """Close a client as Redis's ``freeClientAsync``: nothing more is read, dispatched or
        written for it, and the connection drops on the next turn of the loop."""
        client.closing = True
        client.pending.clear()
        client.inbox.clear()
        client.out.clear()
        self.server.loop.call_soon(client.transport.abort)

    # -- output buffers --------------------------------------------------------------------

    def check_output(self, client: Any, arriving: int = 0) -> None:
        """Redis's ``checkClientOutputBufferLimits`` for the client's class (pubsub while it
        subscribes to anything, else normal; a MONITOR is normal): past ``hard`` bytes
        unsent (with ``arriving``, a large reply's pieces come so far), or past ``soft`` for
        more than ``soft_seconds``, it is closed."""
        limits = self.pubsub if _subscribed(client) else self.normal
        if limits is None or client.closing or client.transport is None:
            return
        hard, soft, soft_seconds = limits
        size = client.transport.get_write_buffer_size() + client.messages_queued + arriving
        if not (hard and size >= hard or soft and size >= soft):
            client.over_soft_limit_since = None
            return
        if client.messages_queued:  # an upper bound until counted
            client.messages_queued = sum(
                len(entry[0]) for entry in client.pending if len(entry) == 2
            )
            size = client.transport.get_write_buffer_size() + client.messages_queued + arriving
        over_hard = hard and size >= hard
        over_soft = False
        if soft and size >= soft:
            now = time.monotonic()
            if client.over_soft_limit_since is None:
                client.over_soft_limit_since = now
            else:
                over_soft = now - client.over_soft_limit_since > soft_seconds
        else:
            client.over_soft_limit_since = None
        if over_hard or over_soft:
            log.warning(
                "Client %s scheduled to be closed ASAP for overcoming of output buffer limits.",
                client_line(client),
            )
            self.close_async(client)

    def chunk_arrived(self, client: Any, held: list, piece: Any) -> bool:
        """A piece of a large reply for ``client`` came from its shard (``held``: the
        pieces of that reply so far); whether to keep it. Redis adds each reply to the
        output buffer as it is made and checks the limit then; here a run's replies come
        whole, so a burst of GETs of a large value would be held entire before the check:
        the pieces count as they come, and a client closed meanwhile keeps none."""
        if client.closing or client.closed:
            return False
        if self.normal is not None or self.pubsub is not None:
            self.check_output(client, sum(map(len, held)) + len(piece))
        return not client.closing

    # -- query buffers ---------------------------------------------------------------------

    def check_query(self, client: Any) -> None:
        """After a read that completed no command: past ``client-query-buffer-limit`` of
        unparsed input the client is closed, with Redis's log line. (A read that completes
        a command can leave at most one read's worth of a new one behind, so checking here
        alone bounds the buffer.)"""
        reader = client.reader
        if reader.buffered() > self.query_limit:
            log.warning(
                "Closing client that reached max query buffer length: %s (qbuf initial bytes: %s)",
                client_line(client),
                _repr(reader.head(64)),
            )
            self.close_async(client)

    # -- the cron --------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the cron (it runs until the loop ends)."""
        loop.call_later(1 / self.server.config["hz"], self._tick)

    def _tick(self) -> None:
        """One visit of a slice of the clients: each is seen about once a second."""
        hz = self.server.config["hz"]
        self.server.loop.call_later(1 / hz, self._tick)
        if self._next >= len(self._round):
            self._round = list(self.server.clients.values())
            self._next = 0
            self.recent_peaks, self._peaks = self._peaks, (0, 0)
        start = self._next
        self._next += max(CRON_MIN_CLIENTS, len(self._round) // hz)
        now = time.monotonic()
        for client in self._round[start : self._next]:
            if client.closing or client.closed or client.transport is None:
                continue
            if self.timeout and self._timed_out(client, now):
                continue
            if client.over_soft_limit_since is not None or client.transport.get_write_buffer_size():
                self.check_output(client)
                if client.closing:
                    continue
            memory = client_memory(client)
            self.memory_total += memory.tot_mem - self.memory.get(client, 0)
            self.memory[client] = memory.tot_mem
            self._peaks = (max(self._peaks[0], memory.qbuf), max(self._peaks[1], memory.omem))
        words = self.server.words
        words.set_client_memory(self.server.index, self.memory_total)
        limit = self.eviction_limit()
        if limit and words.client_memory() >= limit:
            self._evict(limit)

    def _timed_out(self, client: Any, now: float) -> bool:
        """Redis's ``clientsCronHandleTimeout``: no timeout while blocked (a blocking
        command, or held by CLIENT PAUSE), subscribed, or a MONITOR."""
        if client.blocked is not None or client.postponed or client.monitoring:
            self.exempt_at[client] = now
            return False
        if _subscribed(client):
            self.exempt_at[client] = now
            return False
        if client.pending:  # the shards work for it: replies will be written
            return False
        last = max(client.last_active, self.exempt_at.get(client, 0.0))
        if now - last <= self.timeout:
            return False
        log.log(VERBOSE, "Closing idle client")
        self.close_async(client)
        return True

    def _evict(self, limit: int) -> None:
        """Redis's ``evictClients``: while every acceptor's clients together hold
        ``limit`` or more, close the largest evictable client here (no CLIENT NO-EVICT;
        normal and pubsub clients are all there are). Every client is measured afresh."""
        others = self.server.words.client_memory() - self.memory_total
        sizes = []
        total = 0
        for client in list(self.server.clients.values()):
            if client.closing or client.closed or client.transport is None:
                continue
            size = client_memory(client).tot_mem
            self.memory[client] = size
            total += size
            if not client.no_evict:
                sizes.append((size, client.id, client))
        self.memory_total = total  # the evicted leave it when their connections end
        sizes.sort(reverse=True)
        for size, _id, client in sizes:
            if others + total < limit:
                break
            log.info("Evicting client: %s", client_line(client))
            self.evicted += 1
            total -= size
            self.close_async(client)
        self.server.words.set_client_memory(self.server.index, total)
