"""Client-side caching in the acceptor: which clients track, and the invalidations they get.

The keys a client read live on the keys' shards (:mod:`shardserver.tracking`); the acceptor
keeps each tracking client's mode (:class:`ClientTracking`: REDIRECT, BCAST and its
prefixes, OPTIN/OPTOUT and CLIENT CACHING, NOLOOP) and turns what shards tell it into
Redis's messages:

- a tracking client's commands go to shards wrapped in ``@track`` (:meth:`Invalidations.wrap`:
  who it is, NOLOOP, and per command whether its reads are remembered, which OPTIN/OPTOUT
  and CLIENT CACHING decide here, when the command is dispatched). Its fast path is off, as
  in MULTI, so every command of it passes here;
- ``INVALIDATED`` events (keys a client read were written or expired) become one
  ``invalidate`` message per key; ``WRITTEN`` events (keys under some BCAST prefix of a
  client here) are grouped per prefix until the end of the event-loop turn, then each
  client of the prefix gets one message with the keys in order (without those it wrote
  itself, with NOLOOP), as Redis sends them before it sleeps;
- FLUSHDB and FLUSHALL send the null invalidation to every tracking client of every
  acceptor (:meth:`Invalidations.flushed`), and so does a shard's death here (its new
  process knows nothing of what was read; it gets the BCAST prefixes again).

A message goes to the client itself as a RESP3 push, or with REDIRECT to the client it names:
a RESP3 client gets the push, a RESP2 client that subscribes to anything gets a ``message``
on ``__redis__:invalidate``. A redirect to a client on another acceptor is forwarded over
the control channel (:mod:`shardserver.peers`) to the acceptor that had it when tracking was
turned on; if it is gone, that acceptor says so and the tracking client gets Redis's
``tracking-redir-broken`` push (RESP3), on every invalidation, as Redis sends it.
"""

from __future__ import annotations

from typing import Any

from shardserver import events
from shardserver.receivers import DISCARD

_PUSH = b">2\r\n$10\r\ninvalidate\r\n"
_MESSAGE = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
_NULLS = {2: b"$-1\r\n", 3: b"_\r\n"}


class ClientTracking:
    """One client's CLIENT TRACKING mode (while it is on)."""

    __slots__ = (
        "redirect", "redirect_at", "bcast", "optin", "optout", "noloop", "caching", "broken",
        "prefixes",
    )  # fmt: skip

    def __init__(self) -> None:
        #: The client id invalidations go to (0: this client), and the acceptor it was on.
        self.redirect = 0
        self.redirect_at = 0
        self.bcast = False
        self.optin = False
        self.optout = False
        self.noloop = False
        #: CLIENT CACHING YES (OPTIN) or NO (OPTOUT) given for the next command.
        self.caching = False
        self.broken = False
        #: BCAST prefixes, insertion-ordered.
        self.prefixes: dict[bytes, None] = {}

    def remembers(self) -> bool:
        """Whether the reads of the command dispatched now are remembered (Redis's
        trackingRememberKeys: not in OPTIN without CACHING YES, nor OPTOUT after NO)."""
        if self.bcast:
            return False
        if self.optin:
            return self.caching
        return not (self.optout and self.caching)

    def flags(self) -> list[bytes]:
        """CLIENT TRACKINGINFO's flags after ``on``."""
        found = [b"bcast"] if self.bcast else []
        if self.optin:
            found += [b"optin", b"caching-yes"] if self.caching else [b"optin"]
        if self.optout:
            found += [b"optout", b"caching-no"] if self.caching else [b"optout"]
        if self.noloop:
            found.append(b"noloop")
        if self.broken:
            found.append(b"broken_redirect")
        return found


def list_flags(client: Any) -> str:
    """CLIENT LIST's tracking flags: ``t``, then ``R`` (broken redirect) and ``B`` (BCAST)."""
    tracking = client.tracking
    if tracking is None:
        return ""
    return "t" + ("R" if tracking.broken else "") + ("B" if tracking.bcast else "")


def redirect_of(client: Any) -> int:
    """CLIENT GETREDIR and CLIENT LIST's ``redir``: -1 when not tracking."""
    return -1 if client.tracking is None else client.tracking.redirect


class Invalidations:
    """This acceptor's tracking clients and the invalidations they are sent."""

    def __init__(self, server: Any) -> None:
        self.server = server
        #: Tracking clients here, by id.
        self.clients: dict[int, Any] = {}
        #: BCAST prefixes of clients here, to those clients.
        self.prefixes: dict[bytes, dict[Any, None]] = {}
        #: Keys written under each prefix this turn, to the id of their last writer (0: a
        #: client that does not track).
        self.written: dict[bytes, dict[bytes, int]] = {}
        self.flush_scheduled = False
        server.peers.handlers.update(
            tracking_message=self._redirected,
            tracking_broken=self._broken,
            tracking_flushed=self._flushed_here,
        )

    def __len__(self) -> int:
        return len(self.clients)

    # -- turning it on and off ---------------------------------------------------------------

    def enable(
        self,
        client: Any,
        redirect: int,
        redirect_at: int,
        options: set[bytes],
        prefixes: list[bytes],
    ) -> None:
        """CLIENT TRACKING ON (its options already checked): as Redis's enableTracking, the
        mode is replaced but a BCAST client keeps its earlier prefixes."""
        tracking = client.tracking
        if tracking is None:
            tracking = client.tracking = ClientTracking()
            self.clients[client.id] = client
        tracking.redirect = redirect
        tracking.redirect_at = redirect_at
        tracking.broken = False
        tracking.bcast = b"bcast" in options
        tracking.optin = b"optin" in options
        tracking.optout = b"optout" in options
        tracking.noloop = b"noloop" in options
        if tracking.bcast:
            added = [prefix for prefix in prefixes or [b""] if prefix not in tracking.prefixes]
            for prefix in added:
                tracking.prefixes[prefix] = None
                self.prefixes.setdefault(prefix, {})[client] = None
            self._tell_shards(1, added)
        client.run_shard = -1  # what follows goes in runs of its own (wrapped)

    def disable(self, client: Any) -> None:
        """CLIENT TRACKING OFF, RESET, the end of the connection."""
        tracking = client.tracking
        if tracking is None:
            return
        client.tracking = None
        client.run_shard = -1
        self.clients.pop(client.id, None)
        for prefix in tracking.prefixes:
            clients = self.prefixes.get(prefix)
            if clients is not None:
                clients.pop(client, None)
                if not clients:
                    del self.prefixes[prefix]
        if tracking.prefixes and not self.server.shutting_down():
            self._tell_shards(-1, list(tracking.prefixes))

    def _tell_shards(self, change: int, prefixes: list[bytes]) -> None:
        if not prefixes:
            return
        part = [b"@tprefix", self.server.index, change, *prefixes]
        parts = [(shard, part) for shard in range(self.server.shard_count)]
        self.server.sequencer.step(0, parts, DISCARD)

    def shard_failed(self, shard: int) -> None:
        """A shard died and its new process knows nothing of what was read there: every
        tracking client here drops everything it cached (the null invalidation), and the
        new process gets this acceptor's BCAST prefixes again."""
        for client in list(self.clients.values()):
            self.send(client, None)
        by_count: dict[int, list[bytes]] = {}
        for prefix, clients in self.prefixes.items():
            by_count.setdefault(len(clients), []).append(prefix)
        for count, prefixes in by_count.items():
            part = [b"@tprefix", self.server.index, count, *prefixes]
            self.server.sequencer.step(0, [(shard, part)], DISCARD)

    def command_done(self, client: Any, name: str) -> None:
        """After each command: CLIENT CACHING lasts for the next command only (a whole
        transaction, when given before MULTI or inside it), as in Redis."""
        tracking = client.tracking
        if tracking.caching and client.multi is None and name != "client|caching":
            tracking.caching = False

    # -- what tracking clients send ------------------------------------------------------

    def wrap(self, client: Any, argv: list, keys: list[bytes] | None = None) -> list:
        """``@track`` around one command of a tracking client (more join it: :meth:`item`)."""
        item = self.item(client, argv, keys)
        noloop = int(client.tracking.noloop)
        return [b"@track", self.server.index, client.id, noloop, client.ctx, item]

    @staticmethod
    def item(client: Any, argv: list, keys: list[bytes] | None = None) -> list:
        """One command inside ``@track``: whether its reads are remembered (or which keys,
        for a coordination's read), and the command."""
        if not client.tracking.remembers():
            return [0, argv]
        return [keys if keys is not None else 1, argv]

    def wrap_parts(self, client: Any, parts: list[tuple[int, list]]) -> list[tuple[int, list]]:
        """A step's one-command parts, each wrapped."""
        return [(shard, self.wrap(client, argv)) for shard, argv in parts]

    # -- what shards say ---------------------------------------------------------------------

    def heard(self, event: tuple) -> None:
        if event[0] == events.INVALIDATED:
            client = self.server.clients.get(event[1])
            if client is not None and client.tracking is not None and not client.tracking.bcast:
                for key in event[2]:
                    self.send(client, [key])
            return
        for key in event[1]:
            for prefix in self.prefixes:
                if key.startswith(prefix):
                    self.written.setdefault(prefix, {})[key] = event[2]
        if self.written and not self.flush_scheduled:
            self.flush_scheduled = True
            self.server.loop.call_soon(self._broadcast)

    def _broadcast(self) -> None:
        """BCAST: one message per prefix and client, the keys in order."""
        self.flush_scheduled = False
        written, self.written = self.written, {}
        for prefix in sorted(written):
            keys = written[prefix]
            for client in list(self.prefixes.get(prefix, ())):
                tracking = client.tracking
                if tracking is None or not tracking.bcast:
                    continue
                if tracking.noloop:
                    chosen = sorted(key for key, writer in keys.items() if writer != client.id)
                else:
                    chosen = sorted(keys)
                if chosen:
                    self.send(client, chosen)

    def flushed(self) -> None:
        """FLUSHDB or FLUSHALL ran: the null invalidation to every tracking client."""
        self._flushed_here()
        self.server.peers.tell("tracking_flushed")

    def _flushed_here(self) -> None:
        for client in list(self.clients.values()):
            self.send(client, None)

    # -- messages ------------------------------------------------------------------------

    def send(self, client: Any, keys: list[bytes] | None) -> None:
        """An invalidation of ``keys`` (None: everything) for a tracking client."""
        if keys is None:
            value = _NULLS[client.protocol]
        else:
            value = b"*%d\r\n" % len(keys) + b"".join(
                b"$%d\r\n%b\r\n" % (len(key), key) for key in keys
            )
        tracking = client.tracking
        if not tracking.redirect:
            if client.protocol == 3:
                client.push(_PUSH + value)
            return
        target = self.server.clients.get(tracking.redirect)
        if target is not None:
            _deliver(target, value)
        elif tracking.redirect_at != self.server.index:
            self.server.peers.tell(
                "tracking_message",
                tracking.redirect,
                value,
                self.server.index,
                client.id,
                to=tracking.redirect_at,
            )
        else:
            self._broken(client.id)

    def _redirected(self, target_id: int, value: bytes, origin: int, client_id: int) -> None:
        """Another acceptor's client redirects to one of ours."""
        target = self.server.clients.get(target_id)
        if target is not None:
            _deliver(target, value)
        else:
            self.server.peers.tell("tracking_broken", client_id, to=origin)

    def _broken(self, client_id: int) -> None:
        """The client a tracking client redirects to is gone."""
        client = self.server.clients.get(client_id)
        if client is None or client.tracking is None:
            return
        client.tracking.broken = True
        if client.protocol == 3:
            redirect = client.tracking.redirect
            client.push(b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % redirect)


def _deliver(target: Any, value: bytes) -> None:
    """An invalidation for the client a tracking client redirects to: a push in RESP3, a
    ``message`` of ``__redis__:invalidate`` to a RESP2 client that subscribes to anything
    (Redis's test is that it is in subscribed mode), else nothing."""
    if target.protocol == 3:
        target.push(_PUSH + value)
    elif target.channels or target.patterns or target.shard_channels:
        target.push(_MESSAGE + value)
