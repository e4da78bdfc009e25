"""Merges of fan-out replies, shared by the command families.

A merge takes ``(session, argv, parts)``, the shards' plain values in shard order, and returns
the reply encoded for the client's protocol. ``check_*`` functions refuse bad arguments in the
acceptor, before any part is sent.
"""

from __future__ import annotations

from shardserver.errors import SYNTAX


def total(session, argv: list[bytes], parts: list[int]) -> bytes:
    """The sum of integer parts (DBSIZE, DEL, EXISTS ...)."""
    return session.enc.integer(sum(parts))


def ok(session, argv: list[bytes], parts: list) -> bytes:
    return b"+OK\r\n"


def check_flush(session, argv: list[bytes]) -> bytes | None:
    """FLUSHALL/FLUSHDB [ASYNC|SYNC]: one optional mode."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"async", b"sync")):
        return SYNTAX
    return None
