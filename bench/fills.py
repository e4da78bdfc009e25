"""One key of each data type filled with many members, for the memory-per-type measurement.

A fill sends one command per member (ZADD key score member, HSET key field value, SADD key
member, RPUSH key member) as raw RESP over one connection, BATCH commands per write, and reads a
batch's replies before it sends the next, so the server never holds more than one batch of unread
input. Members are `member:000123`, hash values the member's number, scores the number plus 0.25
(distinct, not integers).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from servers import Server, ServerError, command

KEY = b"bench:members"
BATCH = 1000


def member(index: int) -> bytes:
    """The member (field, element) with this index."""
    return b"member:%06d" % index


def _zadd(index: int) -> list[bytes]:
    return [b"ZADD", KEY, b"%d.25" % index, member(index)]


def _hset(index: int) -> list[bytes]:
    return [b"HSET", KEY, member(index), b"%d" % index]


def _sadd(index: int) -> list[bytes]:
    return [b"SADD", KEY, member(index)]


def _rpush(index: int) -> list[bytes]:
    return [b"RPUSH", KEY, member(index)]


@dataclass(frozen=True)
class TypeFill:
    """How to fill one data type: the command adding member `index`, and the one counting them."""

    name: str
    add: Callable[[int], list[bytes]]
    count: str


TYPE_FILLS = (
    TypeFill("sorted set", _zadd, "ZCARD"),
    TypeFill("hash", _hset, "HLEN"),
    TypeFill("set", _sadd, "SCARD"),
    TypeFill("list", _rpush, "LLEN"),
)


def encode(args: list[bytes]) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """The next `count` replies, each a single line (the fills' commands answer integers)."""
    buffer = b""
    while buffer.count(b"\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ServerError("the server closed the connection during a fill")
        buffer += chunk
    return buffer.split(b"\r\n")[:count]


def fill(server: Server, kind: TypeFill, members: int) -> int:
    """Add `members` members to KEY on `server`; return the count the server then reports."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        for start in range(0, members, BATCH):
            indexes = range(start, min(start + BATCH, members))
            sock.sendall(b"".join(encode(kind.add(index)) for index in indexes))
            errors = [r for r in read_replies(sock, len(indexes)) if not r.startswith(b":")]
            if errors:
                raise ServerError(
                    f"{server.label} answered {errors[0]!r} during the {kind.name} fill"
                )
    reply = command(server.port, kind.count, KEY.decode())
    if not reply.startswith(b":"):
        raise ServerError(f"{server.label} answered {kind.count} with {reply!r}")
    return int(reply[1:])
