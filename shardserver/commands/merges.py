"""Merges of fan-out replies, shared by the command families.

A merge takes ``(session, argv, parts)``, the shards' plain values in shard order, and returns
the reply encoded for the client's protocol; merges of multi-key commands also get the
``layout`` (for each part, the positions of its keys among the command's keys).
``check_*`` functions refuse bad arguments in the acceptor, before any part is sent.
"""

from __future__ import annotations

from shardserver.errors import SYNTAX


def total(session, argv: list[bytes], parts: list[int], layout: object = None) -> bytes:
    """The sum of integer parts (DBSIZE, DEL, EXISTS ...)."""
    return session.enc.integer(sum(parts))


def ok(session, argv: list[bytes], parts: list, layout: object = None) -> bytes:
    return b"+OK\r\n"


def check_flush(session, argv: list[bytes]) -> bytes | None:
    """FLUSHALL/FLUSHDB [ASYNC|SYNC]: one optional mode."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"async", b"sync")):
        return SYNTAX
    return None
