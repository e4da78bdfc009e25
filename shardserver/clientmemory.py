"""What the acceptor holds for one client, in the figures CLIENT LIST shows.

Redis's CLIENT LIST reports a client's query buffer, arguments, MULTI queue, output buffers
and their total. Here the same figures measure what the acceptor really holds: the input not
yet parsed or dispatched, the queue of replies and the socket's unsent bytes. The output
limits and ``maxmemory-clients`` (:mod:`shardserver.limits`) count the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: What an idle connection costs the acceptor beyond its buffers (measured: RSS over 2,000
#: idle connections, about 3.2 KB each): the base of ``tot-mem``.
CLIENT_BASE_BYTES = 3200


@dataclass
class ClientMemory:
    """The buffer figures of CLIENT LIST for one client, in bytes (``oll`` in replies)."""

    qbuf: int
    argv_mem: int
    multi_mem: int
    oll: int
    omem: int
    tot_mem: int


def _args_size(argv: Any) -> int:
    if argv.__class__ is not list:  # a protocol error parked behind a wait
        return 0
    return sum(len(arg) for arg in argv if arg.__class__ is bytes)


def _reply_size(reply: Any) -> int:
    if reply is None:
        return 0
    if reply.__class__ is list:  # it came in chunks
        return sum(map(len, reply))
    return len(reply)


def client_memory(client: Any, argv: list | None = None) -> ClientMemory:
    """What the acceptor holds for ``client``: unparsed input and parsed commands not yet
    dispatched (``qbuf``: Redis's query buffer holds pipelined commands the same way), the
    command being run (``argv``, given for the caller), MULTI's queue, and the unsent
    output: the socket's write buffer and the replies in its queue (``omem``, what the
    output limits count). ``oll`` is the number of entries in the reply queue."""
    qbuf = client.reader.buffered() + sum(map(_args_size, client.inbox))
    argv_mem = _args_size(argv) if argv else 0
    multi_mem = sum(_args_size(queued) for _spec, queued in client.multi or ())
    transport = client.transport
    omem = transport.get_write_buffer_size() if transport is not None else 0
    omem += sum(_reply_size(entry[0]) for entry in client.pending)
    total = CLIENT_BASE_BYTES + qbuf + argv_mem + multi_mem + omem
    return ClientMemory(qbuf, argv_mem, multi_mem, len(client.pending), omem, total)
