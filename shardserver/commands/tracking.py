"""CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO: client-side caching's commands.

The acceptor answers them from the client's :class:`shardserver.invalidations.ClientTracking`;
the keys a client read are remembered on their shards (docs/architecture.md, "Client-side
caching"). Argument checks and their order are Redis 7.0's (``clientCommand``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from shardserver.commands.spec import Later, local
from shardserver.errors import NOT_INTEGER, SYNTAX, error, error_bytes
from shardserver.invalidations import redirect_of
from shardserver.numbers import parse_int

_OPTIONS = {b"bcast", b"optin", b"optout", b"noloop"}
_NO_SUCH_CLIENT = error("ERR The client ID you want redirect to does not exist")


def _overlap(first: bytes, second: bytes) -> bool:
    """Whether one prefix is a prefix of the other (Redis's stringCheckPrefix)."""
    size = min(len(first), len(second))
    return first[:size] == second[:size]


def _check_on(session: Any, options: set[bytes], prefixes: list[bytes]) -> bytes | None:
    """CLIENT TRACKING ON's checks of its options against each other and the client's mode."""
    current = session.tracking
    bcast = b"bcast" in options
    if not bcast and prefixes:
        return error("ERR PREFIX option requires BCAST mode to be enabled")
    if current is not None and current.bcast != bcast:
        return error(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this "
            "client, and then re-enabling it with a different mode."
        )
    if bcast and options & {b"optin", b"optout"}:
        return error("ERR OPTIN and OPTOUT are not compatible with BCAST")
    if {b"optin", b"optout"} <= options:
        return error("ERR You can't specify both OPTIN mode and OPTOUT mode")
    if current is not None and (
        b"optin" in options and current.optout or b"optout" in options and current.optin
    ):
        return error(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
            "client, and then re-enabling it with a different mode."
        )
    if bcast:
        existing = list(current.prefixes) if current is not None else []
        for i, prefix in enumerate(prefixes):
            for other in existing:
                if _overlap(other, prefix):
                    return error_bytes(
                        b"ERR Prefix '" + prefix + b"' overlaps with an existing prefix '"
                        b"" + other + b"'. Prefixes for a single client must not overlap."
                    )
            for other in prefixes[i + 1 :]:
                if _overlap(prefix, other):
                    return error_bytes(
                        b"ERR Prefix '" + prefix + b"' overlaps with another provided prefix '"
                        b"" + other + b"'. Prefixes for a single client must not overlap."
                    )
    return None


def client_tracking(session: Any, argv: list[bytes]) -> bytes | Later:
    """CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]."""
    server = session.server
    redirect = 0
    redirect_at = server.index
    remote = False
    options: set[bytes] = set()
    prefixes: list[bytes] = []
    j = 3
    while j < len(argv):
        option = argv[j].lower()
        more = len(argv) - 1 - j
        if option == b"redirect" and more:
            j += 1
            if redirect:
                return error("ERR A client can only redirect to a single other client")
            redirect = parse_int(argv[j])
            if redirect is None:
                return NOT_INTEGER
            if redirect not in server.clients:
                if not len(server.peers) or redirect <= 0:
                    return _NO_SUCH_CLIENT
                remote = True  # looked for on the other acceptors once the rest is checked
        elif option in _OPTIONS:
            options.add(option)
        elif option == b"prefix" and more:
            j += 1
            prefixes.append(argv[j])
        else:
            return SYNTAX
        j += 1
    mode = argv[2].lower()
    if mode == b"off":
        server.tracking.disable(session)
        return b"+OK\r\n"
    if mode != b"on":
        return SYNTAX
    problem = _check_on(session, options, prefixes)
    if problem is not None:
        return problem
    if not remote:
        server.tracking.enable(session, redirect, redirect_at, options, prefixes)
        return b"+OK\r\n"
    reply = server.loop.create_future()

    def found(asked: asyncio.Future) -> None:
        holders = [peer for peer, lines in asked.result().items() if lines]
        if not holders:
            reply.set_result(_NO_SUCH_CLIENT)
            return
        problem = _check_on(session, options, prefixes)  # its mode may have moved meanwhile
        if problem is None:
            server.tracking.enable(session, redirect, holders[0], options, prefixes)
        reply.set_result(problem or b"+OK\r\n")

    server.peers.ask("client_lines", [redirect], None).add_done_callback(found)
    return Later(reply)


def client_caching(session: Any, argv: list[bytes]) -> bytes:
    """CLIENT CACHING YES|NO: whether the next command's reads are remembered (OPTIN/OPTOUT)."""
    tracking = session.tracking
    if tracking is None:
        return error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with "
            "OPTIN or OPTOUT mode enabled"
        )
    answer = argv[2].lower()
    if answer == b"yes":
        if not tracking.optin:
            return error(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
            )
    elif answer == b"no":
        if not tracking.optout:
            return error(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
            )
    else:
        return SYNTAX
    tracking.caching = True
    return b"+OK\r\n"


def client_getredir(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.integer(redirect_of(session))


def client_trackinginfo(session: Any, argv: list[bytes]) -> bytes:
    """Redis's map: flags (a set), redirect, prefixes (in order)."""
    enc = session.enc
    tracking = session.tracking
    flags = [b"off"] if tracking is None else [b"on", *tracking.flags()]
    prefixes = sorted(tracking.prefixes) if tracking is not None else []
    return enc.map(
        [
            (enc.bulk(b"flags"), enc.set([enc.bulk(flag) for flag in flags])),
            (enc.bulk(b"redirect"), enc.integer(redirect_of(session))),
            (enc.bulk(b"prefixes"), enc.array([enc.bulk(prefix) for prefix in prefixes])),
        ]
    )


ROWS = [
    local(
        "client|tracking",
        client_tracking,
        notes="keys remembered on their shards; REDIRECT across acceptors via the control "
        "channel; BCAST groups keys per prefix per acceptor turn",
    ),
    local("client|caching", client_caching),
    local("client|getredir", client_getredir),
    local("client|trackinginfo", client_trackinginfo),
]
