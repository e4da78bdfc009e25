"""The acceptors' control channel: what one acceptor asks of, or tells, the others.

Every pair of acceptors shares a Unix socket pair, made by the launcher before it forks them.
Messages are ``marshal`` data, ``(kind, id, op, args)``: an *ask* expects an *answer* with
the same id; a *tell* expects nothing. Those sent to one peer in one event-loop turn travel
as one frame (:mod:`shardserver.framing`) holding their list, so a pipeline of PUBLISHes
costs a write per turn, not one per message, and their order is kept. What an op
does is a handler of the receiving acceptor (``handlers[op](*args) -> plain data``). This is
how CLIENT LIST and CLIENT KILL see every acceptor's clients, INFO sums every acceptor's
counters, CONFIG SET reaches every acceptor, and SHUTDOWN reaches acceptor 0, which stops
the server. With one acceptor there are no peers and every ask answers at once.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import select
import socket
import time
from collections.abc import Callable
from itertools import count
from typing import Any

from shardserver.framing import FrameDecoder, FrameWriter, frame_header

log = logging.getLogger("shardserver.peers")

_ASK, _TELL, _ANSWER = 0, 1, 2
#: The longest a hand-over waits for room in a peer's socket before giving that peer up.
HAND_OVER_TIMEOUT_S = 5.0


class _Peer:
    __slots__ = ("index", "sock", "decoder", "writer", "alive", "fds", "outbox")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        sock.setblocking(False)
        self.decoder = FrameDecoder()
        self.writer = FrameWriter(sock.fileno())
        self.alive = True
        #: Descriptors received and not yet taken by the message they came with.
        self.fds: list[int] = []
        #: Messages of this event-loop turn, written together at its end.
        self.outbox: list[tuple] = []


class _Ask:
    """An ask in flight: the answers so far, by peer."""

    __slots__ = ("future", "answers", "waiting")

    def __init__(self, future: asyncio.Future, peers: list[int]) -> None:
        self.future = future
        self.answers: dict[int, Any] = {}
        self.waiting = set(peers)

    def answered(self, peer: int, value: Any) -> None:
        self.answers[peer] = value
        self.waiting.discard(peer)
        if not self.waiting and not self.future.done():
            self.future.set_result(self.answers)


class Peers:
    """This acceptor's links to the other acceptors."""

    def __init__(self, sockets: dict[int, socket.socket]) -> None:
        self.peers = {index: _Peer(index, sock) for index, sock in sockets.items()}
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ids = count(1)
        self._asks: dict[int, _Ask] = {}
        self._flush_scheduled = False
        #: Called with the peer's number when an acceptor's socket closes.
        self.on_lost: Callable[[int], None] = lambda _index: None

    def __len__(self) -> int:
        return len(self.peers)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for peer in self.peers.values():
            loop.add_reader(peer.sock.fileno(), self._on_readable, peer)

    def close(self) -> None:
        self._flush_outboxes()  # best effort: what this turn said still goes
        for peer in self.peers.values():
            if self.loop is not None and peer.alive:
                self.loop.remove_reader(peer.sock.fileno())
            peer.sock.close()

    # -- sending -------------------------------------------------------------------------

    def ask(self, op: str, *args: Any) -> asyncio.Future:
        """Ask every live peer; the future gets ``{peer: answer}`` (a peer that is gone
        answers nothing)."""
        future = self.loop.create_future()
        live = [index for index, peer in self.peers.items() if peer.alive]
        if not live:
            future.set_result({})
            return future
        message_id = next(self._ids)
        self._asks[message_id] = _Ask(future, live)
        for index in live:
            self._send(self.peers[index], (_ASK, message_id, op, args))
        return future

    def tell(self, op: str, *args: Any, to: int | None = None) -> None:
        """Tell every live peer (or only peer ``to``); no answer comes."""
        for index, peer in self.peers.items():
            if peer.alive and (to is None or index == to):
                self._send(peer, (_TELL, 0, op, args))

    def hand_over(self, op: str, args: tuple, fds: list[int], to: int) -> None:
        """Tell peer ``to``, passing it copies of these descriptors (SCM_RIGHTS); its
        handler for ``op`` gets them after ``args``."""
        peer = self.peers[to]
        if not peer.alive:
            return
        if peer.outbox:
            self._write(peer)  # what was said before goes first
        data = marshal.dumps([(_TELL, len(fds), op, args)])
        frame = memoryview(frame_header(len(data)) + data)
        # The descriptors ride on the frame's first byte, so the frame goes straight to the
        # socket, after what waits in the writer (the order of messages is kept). This is
        # rare (a shard restarted) and small: wait for room, but not forever.
        deadline = time.monotonic() + HAND_OVER_TIMEOUT_S
        try:
            while peer.writer.waiting:
                _wait_writable(peer.sock, deadline)
                peer.writer.flush()
            _wait_writable(peer.sock, deadline)
            sent = socket.send_fds(peer.sock, [frame], fds)
            while sent < len(frame):
                _wait_writable(peer.sock, deadline)
                sent += peer.sock.send(frame[sent:])
        except (OSError, TimeoutError) as problem:
            log.error("could not hand over %r to acceptor %d: %s", op, to, problem)
            self._lost(peer)

    def _send(self, peer: _Peer, message: tuple) -> None:
        """Queue a message; the turn's messages to each peer leave together at its end."""
        peer.outbox.append(message)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_outboxes)

    def _flush_outboxes(self) -> None:
        self._flush_scheduled = False
        for peer in self.peers.values():
            if peer.outbox and peer.alive:
                self._write(peer)

    def _write(self, peer: _Peer) -> None:
        messages, peer.outbox = peer.outbox, []
        try:
            if not peer.writer.write(marshal.dumps(messages)):
                self.loop.add_writer(peer.sock.fileno(), self._on_writable, peer)
        except OSError:
            self._lost(peer)

    def _on_writable(self, peer: _Peer) -> None:
        try:
            if peer.writer.flush():
                self.loop.remove_writer(peer.sock.fileno())
        except OSError:
            self._lost(peer)

    # -- receiving -----------------------------------------------------------------------

    def _on_readable(self, peer: _Peer) -> None:
        try:
            data, fds, _flags, _address = socket.recv_fds(peer.sock, 1 << 16, 16)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        peer.fds.extend(fds)
        if not data:
            self._lost(peer)
            return
        for payload in peer.decoder.feed(data):
            for message in marshal.loads(payload):
                self._received(peer, *message)

    def _received(self, peer: _Peer, kind: int, message_id: int, op: str, body: Any) -> None:
        if kind == _ANSWER:
            ask = self._asks.get(message_id)
            if ask is not None:
                ask.answered(peer.index, body)
                if ask.future.done():
                    del self._asks[message_id]
            return
        if kind == _TELL and message_id:  # a hand-over: its descriptors came with it
            body = (*body, peer.fds[:message_id])
            del peer.fds[:message_id]
        try:
            result = self.handlers[op](*body)
        except Exception:
            log.exception("acceptor control message %r failed", op)
            result = None
        if kind == _ASK:
            self._send(peer, (_ANSWER, message_id, None, result))

    def _lost(self, peer: _Peer) -> None:
        if not peer.alive:
            return
        peer.alive = False
        peer.outbox.clear()
        if self.loop is not None:
            self.loop.remove_reader(peer.sock.fileno())
            self.loop.remove_writer(peer.sock.fileno())
        for message_id, ask in list(self._asks.items()):
            if peer.index in ask.waiting:
                ask.waiting.discard(peer.index)
                if not ask.waiting and not ask.future.done():
                    ask.future.set_result(ask.answers)
                    del self._asks[message_id]
        self.on_lost(peer.index)


def _wait_writable(sock: socket.socket, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([], [sock], [], left)[1]:
        raise TimeoutError("the peer's socket stayed full")


def socket_pairs(count: int) -> list[dict[int, socket.socket]]:
    """For each of ``count`` acceptors, its end of a socket pair with every other one."""
    ends: list[dict[int, socket.socket]] = [{} for _ in range(count)]
    for first in range(count):
        for second in range(first + 1, count):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ends[first][second] = a
            ends[second][first] = b
    return ends


def close_others(ends: list[dict[int, socket.socket]], keep: int) -> None:
    """In acceptor ``keep``: close every socket that belongs to another acceptor."""
    for index, mine in enumerate(ends):
        if index != keep:
            for sock in mine.values():
                os.close(sock.detach())
