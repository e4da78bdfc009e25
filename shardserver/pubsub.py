"""Pub/sub subscriptions of one acceptor's clients, and the delivery of messages to them.

A :class:`PubSub` registry belongs to each acceptor (``acceptor.pubsub``) and knows which of
*its* clients subscribe to what: channels, patterns and shard channels, each to its
subscribers in subscription order. Each client keeps its own three sets too (``channels``,
``patterns``, ``shard_channels``: dicts used as insertion-ordered sets), so UNSUBSCRIBE with
no argument, CLIENT LIST and the end of a connection need no search.

Why subscriptions live in the acceptor and not in the shards (docs/architecture.md, "Pub/sub"):
Redis promises that a subscriber gets one publisher's messages in the order they were
published, across channels too. Channels kept on different shards would send their messages
back over different pipes, in any order; one acceptor's control socket to each other acceptor
is first in, first out. And every pattern would have to be copied to every shard.

A subscriber is anything with ``protocol`` (2 or 3), ``channels``, ``patterns``,
``shard_channels`` and ``push(data)`` (:class:`shardserver.client.ClientConnection`; the
unit tests use a small stand-in). ``push`` puts a message on the client's ordered reply path.

Patterns match as Redis's ``stringmatchlen`` (:mod:`shardserver.glob`, bounded time); unlike
KEYS, a lone ``*`` does not match the empty channel (Redis never enters its loop then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shardserver.glob import compile_glob

#: A client as the registry sees it (see the module docstring).
Subscriber = Any


def frame(protocol: int, head: bytes, items: list[bytes | None]) -> bytes:
    """A pub/sub frame: an array in RESP2, a push (``>``) in RESP3, of bulk strings
    (``head`` first; None is a null) and, when the last item is an int, that integer."""
    parts = [
        b"%c%d\r\n$%d\r\n%b\r\n" % (62 if protocol == 3 else 42, len(items) + 1, len(head), head)
    ]
    for item in items:
        if item is None:
            parts.append(b"_\r\n" if protocol == 3 else b"$-1\r\n")
        elif item.__class__ is int:
            parts.append(b":%d\r\n" % item)
        else:
            parts.append(b"$%d\r\n%b\r\n" % (len(item), item))
    return b"".join(parts)


def _pattern_matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """Redis's stringmatchlen for PSUBSCRIBE and PUBSUB CHANNELS: the empty channel matches
    only the empty pattern (a lone ``*`` included)."""
    match = compile_glob(pattern)
    if not pattern:
        return match
    return lambda channel: bool(channel) and match(channel)


class _Kind:
    """Subscriptions of one kind (channels, patterns or shard channels) in one acceptor."""

    __slots__ = ("attribute", "subscribers")

    def __init__(self, attribute: str) -> None:
        #: The client's own set of this kind (``channels``, ``patterns``, ``shard_channels``).
        self.attribute = attribute
        #: Name to its subscribers, in subscription order.
        self.subscribers: dict[bytes, dict[Subscriber, None]] = {}

    def add(self, client: Subscriber, name: bytes) -> bool:
        mine = getattr(client, self.attribute)
        if name in mine:
            return False
        mine[name] = None
        self.subscribers.setdefault(name, {})[client] = None
        return True

    def remove(self, client: Subscriber, name: bytes) -> bool:
        mine = getattr(client, self.attribute)
        if name not in mine:
            return False
        del mine[name]
        clients = self.subscribers.get(name)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self.subscribers[name]
        return True


class PubSub:
    """One acceptor's subscriptions, and delivery to its subscribers."""

    def __init__(self) -> None:
        self.channels = _Kind("channels")
        self.patterns = _Kind("patterns")
        self.shard_channels = _Kind("shard_channels")
        #: A compiled matcher per subscribed pattern.
        self._matchers: dict[bytes, Callable[[bytes], bool]] = {}

    # -- subscribing -----------------------------------------------------------------------

    def subscribe(self, client: Subscriber, channel: bytes) -> bool:
        """Subscribe ``client`` to ``channel``; whether it was not subscribed already."""
        return self.channels.add(client, channel)

    def unsubscribe(self, client: Subscriber, channel: bytes) -> bool:
        return self.channels.remove(client, channel)

    def psubscribe(self, client: Subscriber, pattern: bytes) -> bool:
        added = self.patterns.add(client, pattern)
        if added and pattern not in self._matchers:
            self._matchers[pattern] = _pattern_matcher(pattern)
        return added

    def punsubscribe(self, client: Subscriber, pattern: bytes) -> bool:
        removed = self.patterns.remove(client, pattern)
        if removed and pattern not in self.patterns.subscribers:
            self._matchers.pop(pattern, None)
        return removed

    def ssubscribe(self, client: Subscriber, channel: bytes) -> bool:
        return self.shard_channels.add(client, channel)

    def sunsubscribe(self, client: Subscriber, channel: bytes) -> bool:
        return self.shard_channels.remove(client, channel)

    def drop(self, client: Subscriber) -> None:
        """Forget every subscription of ``client`` (RESET, the end of its connection)."""
        for channel in list(client.channels):
            self.unsubscribe(client, channel)
        for pattern in list(client.patterns):
            self.punsubscribe(client, pattern)
        for channel in list(client.shard_channels):
            self.sunsubscribe(client, channel)

    # -- delivering ------------------------------------------------------------------------

    def deliver(self, channel: bytes, message: bytes) -> int:
        """Deliver ``message`` on ``channel`` to this acceptor's subscribers of the channel
        (``message`` frames) and of every matching pattern (``pmessage``), in that order;
        how many receivers got it (a client subscribed both ways counts twice, as in Redis).

        This is also the entry point for messages the server itself publishes (keyspace
        notifications, tracking invalidations)."""
        count = 0
        clients = self.channels.subscribers.get(channel)
        if clients:
            count = _send(clients, b"message", [channel, message])
        for pattern, match in list(self._matchers.items()):
            if match(channel):
                clients = self.patterns.subscribers.get(pattern)
                if clients:
                    count += _send(clients, b"pmessage", [pattern, channel, message])
        return count

    def deliver_shard(self, channel: bytes, message: bytes) -> int:
        """SPUBLISH here: ``smessage`` frames to the shard channel's subscribers; how many."""
        clients = self.shard_channels.subscribers.get(channel)
        return _send(clients, b"smessage", [channel, message]) if clients else 0

    # -- PUBSUB's questions, answered for this acceptor --------------------------------------

    def active(self, shard: bool, pattern: bytes | None) -> list[bytes]:
        """Channels (or shard channels) with a subscriber here that match ``pattern``
        (every one when None)."""
        kind = self.shard_channels if shard else self.channels
        if pattern is None:
            return list(kind.subscribers)
        match = _pattern_matcher(pattern)
        return [name for name in kind.subscribers if match(name)]

    def counts(self, shard: bool, names: Iterable[bytes]) -> list[int]:
        """Subscribers here of each channel (or shard channel), patterns not counted."""
        subscribers = (self.shard_channels if shard else self.channels).subscribers
        return [len(subscribers.get(name, ())) for name in names]

    def pattern_names(self) -> list[bytes]:
        """The patterns some client here subscribes to."""
        return list(self.patterns.subscribers)


def _send(clients: dict[Subscriber, None], head: bytes, items: list[bytes]) -> int:
    """Push one frame to each client (encoded once per protocol); how many got it."""
    encoded: dict[int, bytes] = {}
    receivers = list(clients)  # a push may close a client, which then unsubscribes
    for client in receivers:
        data = encoded.get(client.protocol)
        if data is None:
            data = encoded[client.protocol] = frame(client.protocol, head, items)
        client.push(data)
    return len(receivers)
