"""Pub/sub commands (Redis's ``pubsub.c``), answered by the acceptor.

Subscriptions are this acceptor's (:mod:`shardserver.pubsub`, ``session.server.pubsub``): a
client's subscriptions live where its connection does. PUBLISH delivers to this acceptor's
subscribers at once and, with several acceptors, asks every other acceptor to deliver to
theirs (the ``publish`` op of :mod:`shardserver.peers`); its reply, the number of receivers
over the whole server, comes when they have answered. One acceptor's control socket to each
other one is first in, first out, so every subscriber gets one publisher's messages in the
order they were published (docs/architecture.md, "Pub/sub"). PUBSUB's subcommands gather
every acceptor's answer.

The confirmations (``subscribe``, channel, count) are what each handler returns, in the reply
stream: arrays in RESP2, pushes in RESP3. The count is the client's channels plus patterns;
for the shard forms, its shard channels (Redis 7.0 counts them apart). While a RESP2 client
subscribes to anything it is in *subscribed mode*: only :data:`ALLOWED_WHEN_SUBSCRIBED` run
(the dispatcher refuses the rest with :func:`refused_when_subscribed`; the single-key fast
path is off meanwhile), and PING answers ``pong`` as an array.
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import Later, local
from shardserver.errors import error, subcommand_syntax
from shardserver.pubsub import frame

#: What a RESP2 client in subscribed mode may run (Redis's processCommand).
ALLOWED_WHEN_SUBSCRIBED = frozenset(
    {
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "ping",
        "quit",
        "reset",
    }
)
_ONLY = "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"


def refused_when_subscribed(name: str) -> bytes:
    """Redis's refusal of a command in subscribed mode; EXEC's also discards a transaction,
    and says so as Redis's ``execCommandAbort`` does."""
    text = f"Can't execute '{name}': {_ONLY}"
    if name == "exec":
        return error(f"EXECABORT Transaction discarded because of: {text}")
    return error(f"ERR {text}")


# -- SUBSCRIBE and UNSUBSCRIBE, in their three kinds ---------------------------------------


def _count(session: Any) -> int:
    return len(session.channels) + len(session.patterns)


def _shard_count(session: Any) -> int:
    return len(session.shard_channels)


def _subscribe(session: Any, names: list[bytes], add: Any, head: bytes, count: Any) -> bytes:
    replies = []
    for name in names:
        add(session, name)
        replies.append(frame(session.protocol, head, [name, count(session)]))
    session.subscriptions_changed()
    return b"".join(replies)


def _unsubscribe(
    session: Any, names: list[bytes], mine: dict, remove: Any, head: bytes, count: Any
) -> bytes:
    """Each name's confirmation; with no names every subscription of the kind goes, and
    with none at all the confirmation names nothing (a null)."""
    if not names:
        names = list(mine)
        if not names:
            return frame(session.protocol, head, [None, count(session)])
    replies = []
    for name in names:
        remove(session, name)
        replies.append(frame(session.protocol, head, [name, count(session)]))
    session.subscriptions_changed()
    return b"".join(replies)


def subscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _subscribe(session, argv[1:], registry.subscribe, b"subscribe", _count)


def unsubscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _unsubscribe(
        session, argv[1:], session.channels, registry.unsubscribe, b"unsubscribe", _count
    )


def psubscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _subscribe(session, argv[1:], registry.psubscribe, b"psubscribe", _count)


def punsubscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _unsubscribe(
        session, argv[1:], session.patterns, registry.punsubscribe, b"punsubscribe", _count
    )


def ssubscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _subscribe(session, argv[1:], registry.ssubscribe, b"ssubscribe", _shard_count)


def sunsubscribe(session: Any, argv: list[bytes]) -> bytes:
    registry = session.server.pubsub
    return _unsubscribe(
        session,
        argv[1:],
        session.shard_channels,
        registry.sunsubscribe,
        b"sunsubscribe",
        _shard_count,
    )


# -- PUBLISH, SPUBLISH -----------------------------------------------------------------------


def _published(session: Any, op: str, here: int, argv: list[bytes]) -> bytes | Later:
    """The receivers here plus every other acceptor's, once they have delivered too."""
    integer = session.enc.integer
    return session.server.everywhere(here, lambda counts: integer(sum(counts)), op, *argv[1:])


def publish(session: Any, argv: list[bytes]) -> bytes | Later:
    here = session.server.pubsub.deliver(argv[1], argv[2])
    return _published(session, "publish", here, argv)


def spublish(session: Any, argv: list[bytes]) -> bytes | Later:
    here = session.server.pubsub.deliver_shard(argv[1], argv[2])
    return _published(session, "spublish", here, argv)


# -- PUBSUB ----------------------------------------------------------------------------------


def _active(session: Any, argv: list[bytes], shard: bool) -> bytes | Later:
    if len(argv) > 3:
        return subcommand_syntax(argv)
    pattern = argv[2] if len(argv) == 3 else None
    mine = session.server.pubsub.active(shard, pattern)

    def reply(found: list[list[bytes]]) -> bytes:
        names = dict.fromkeys(name for each in found for name in each)
        return session.enc.bulk_array(list(names))

    return session.server.everywhere(mine, reply, "pubsub_active", shard, pattern)


def _numsub(session: Any, argv: list[bytes], shard: bool) -> bytes | Later:
    names = argv[2:]
    mine = session.server.pubsub.counts(shard, names)
    enc = session.enc

    def reply(found: list[list[int]]) -> bytes:
        totals = [sum(counts) for counts in zip(*found, strict=True)] if names else []
        items = []
        for name, total in zip(names, totals, strict=True):
            items += [enc.bulk(name), enc.integer(total)]
        return enc.array(items)

    return session.server.everywhere(mine, reply, "pubsub_counts", shard, names)


def pubsub_channels(session: Any, argv: list[bytes]) -> bytes | Later:
    return _active(session, argv, shard=False)


def pubsub_shardchannels(session: Any, argv: list[bytes]) -> bytes | Later:
    return _active(session, argv, shard=True)


def pubsub_numsub(session: Any, argv: list[bytes]) -> bytes | Later:
    return _numsub(session, argv, shard=False)


def pubsub_shardnumsub(session: Any, argv: list[bytes]) -> bytes | Later:
    return _numsub(session, argv, shard=True)


def pubsub_numpat(session: Any, argv: list[bytes]) -> bytes | Later:
    """The distinct patterns subscribed to anywhere in the server."""
    mine = session.server.pubsub.pattern_names()

    def reply(found: list[list[bytes]]) -> bytes:
        return session.enc.integer(len({name for each in found for name in each}))

    return session.server.everywhere(mine, reply, "pubsub_patterns")


_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


def pubsub_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


_ORDER = "messages of one publisher arrive in publish order, across acceptors too"

ROWS = [
    local("subscribe", subscribe, notes="subscriptions live in the subscriber's acceptor"),
    local("unsubscribe", unsubscribe, notes="without arguments: in subscription order"),
    local("psubscribe", psubscribe),
    local("punsubscribe", punsubscribe),
    local("ssubscribe", ssubscribe, notes="no cluster: any shard channel is served here"),
    local("sunsubscribe", sunsubscribe, notes="without arguments: in subscription order"),
    local("publish", publish, notes=_ORDER),
    local("spublish", spublish, notes=_ORDER),
    local("pubsub|channels", pubsub_channels, notes="in order of first subscription"),
    local("pubsub|numsub", pubsub_numsub),
    local("pubsub|numpat", pubsub_numpat),
    local("pubsub|shardchannels", pubsub_shardchannels, notes="in order of first subscription"),
    local("pubsub|shardnumsub", pubsub_shardnumsub),
    local("pubsub|help", pubsub_help),
]
