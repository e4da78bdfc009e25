"""Length-prefixed frames over a pipe between the acceptor and a shard.

A frame is an 8-byte little-endian header followed by the payload; the header is the payload's
length, with the top bit set for a *chunk* and the next one for an *event* (what a shard says
unasked: a waiting client served, a key ready; see :mod:`shardserver.waiters`), which is no
batch's reply. The payload is opaque here (the acceptor and the
shards put ``marshal`` data in it). One frame carries a whole batch, so the fixed cost of a
pipe crossing (a syscall and a wake-up on each side) is paid once per batch, not once per
command.

A reply too large for one frame (``GET`` of a 512 MB value, thousands of pipelined replies in
one run) travels as chunks ahead of its batch's reply frame: each names the run it belongs to
and carries at most :data:`CHUNK_SIZE` bytes of its reply, so no frame, marshal object or
buffer on either side needs the whole reply in one piece (see :mod:`shardserver.worker`).

:class:`FrameDecoder` is pure (fed bytes, hands back payloads and :class:`Chunk` objects);
:func:`write_all` and :class:`FrameWriter` do the blocking and the non-blocking writes.
"""

from __future__ import annotations

import errno
import os

HEADER_SIZE = 8
#: The header bit that marks a chunk frame.
CHUNK_FLAG = 1 << 63
#: The header bit that marks an event frame.
EVENT_FLAG = 1 << 62
#: The most reply bytes one chunk carries.
CHUNK_SIZE = 4 << 20
_RUN_INDEX_SIZE = 4
_KINDS = CHUNK_FLAG | EVENT_FLAG


def frame_header(payload_length: int) -> bytes:
    """The header that precedes a payload of this many bytes."""
    return payload_length.to_bytes(HEADER_SIZE, "little")


class Chunk:
    """A piece of the reply to run ``run`` of the batch whose reply frame follows."""

    __slots__ = ("run", "data")

    def __init__(self, run: int, data: memoryview) -> None:
        self.run = run
        self.data = data


def chunk_frames(run: int, data: bytes | memoryview) -> list[bytes | memoryview]:
    """The pieces (for ``writev``) of the chunk frames that carry ``data`` for run ``run``;
    the data is sliced, never copied."""
    view = memoryview(data)
    index = run.to_bytes(_RUN_INDEX_SIZE, "little")
    pieces: list[bytes | memoryview] = []
    for start in range(0, len(view), CHUNK_SIZE):
        piece = view[start : start + CHUNK_SIZE]
        pieces.append(frame_header((_RUN_INDEX_SIZE + len(piece)) | CHUNK_FLAG))
        pieces.append(index)
        pieces.append(piece)
    return pieces


class Event:
    """The payload of an event frame."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def event_frame(payload: bytes) -> list[bytes]:
    """The pieces (for ``writev``) of an event frame."""
    return [frame_header(len(payload) | EVENT_FLAG), payload]


def encode_frame(payload: bytes) -> bytes:
    """Header and payload as one bytes object (copies; for small payloads)."""
    return len(payload).to_bytes(HEADER_SIZE, "little") + payload


class FrameDecoder:
    """Reassembles frames from pipe reads of any size.

    Reads of a large frame are kept as a list and joined once, when the frame's length (known
    from its header) has arrived, so a frame of n bytes costs O(n) whatever the read size.
    """

    __slots__ = ("_parts", "_held", "_needed")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._held = 0
        self._needed = HEADER_SIZE

    def buffered(self) -> int:
        """How many bytes of an incomplete frame are held."""
        return self._held

    def feed(self, data: bytes) -> list[bytes | Chunk | Event]:
        """The payloads of every frame that ``data`` completes, in order (a chunk frame as a
        :class:`Chunk`, an event frame as an :class:`Event`)."""
        if self._parts:
            self._parts.append(data)
            self._held += len(data)
            if self._held < self._needed:
                return []
            data = b"".join(self._parts)
            self._parts.clear()
        payloads = []
        pos, end = 0, len(data)
        while end - pos >= HEADER_SIZE:
            length = int.from_bytes(data[pos : pos + HEADER_SIZE], "little")
            kind = length & _KINDS
            length &= ~_KINDS
            start = pos + HEADER_SIZE
            if end - start < length:
                self._needed = HEADER_SIZE + length
                break
            if kind == CHUNK_FLAG:
                view = memoryview(data)[start : start + length]
                run = int.from_bytes(view[:_RUN_INDEX_SIZE], "little")
                payloads.append(Chunk(run, view[_RUN_INDEX_SIZE:]))
            elif kind:
                payloads.append(Event(data[start : start + length]))
            else:
                payloads.append(data[start : start + length])
            pos = start + length
        else:
            self._needed = HEADER_SIZE
        if pos < end:
            rest = data[pos:] if pos else data
            self._parts.append(rest)
            self._held = len(rest)
        else:
            self._held = 0
        return payloads


def write_all(fd: int, chunks: list[bytes | memoryview]) -> None:
    """Write every byte of ``chunks`` to a blocking file descriptor."""
    views = [memoryview(chunk) for chunk in chunks if chunk]
    while views:
        written = os.writev(fd, views[:64])
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


class FrameWriter:
    """Writes frames to a non-blocking file descriptor, keeping what the pipe cannot take yet.

    :meth:`write` returns True when everything was written, False when bytes are waiting;
    call :meth:`flush` when the descriptor is writable again, until it returns True.
    """

    __slots__ = ("_fd", "_pending")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending: list[memoryview] = []

    @property
    def waiting(self) -> bool:
        """Whether bytes are waiting for the pipe to drain."""
        return bool(self._pending)

    def discard(self) -> None:
        """Forget what waits (the pipe's reader is gone)."""
        self._pending.clear()

    def write(self, payload: bytes) -> bool:
        """Queue one frame and write as much as the pipe takes now."""
        self._pending.append(memoryview(frame_header(len(payload))))
        self._pending.append(memoryview(payload))
        return self.flush()

    def flush(self) -> bool:
        """Write waiting bytes; True when none are left."""
        pending = self._pending
        while pending:
            try:
                written = os.writev(self._fd, pending[:64])
            except BlockingIOError:
                return False
            except InterruptedError:
                continue
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return False
                raise
            while written:
                head = pending[0]
                if written >= len(head):
                    written -= len(head)
                    pending.pop(0)
                else:
                    pending[0] = head[written:]
                    written = 0
        return True
