"""The order of multi-shard steps when several acceptors send to the same shards.

With one acceptor, the order in which it appends to the shards' pipes is the global order
(docs/architecture.md). With several, each shard reads one stream per acceptor, and two
acceptors' multi-shard steps could reach two shards in opposite orders. So every multi-shard
step (a cross-shard MSET, a fan-out, a coordination's first reads, a snapshot) takes a
*ticket*: a number from one counter that all acceptors share, and every shard executes
ticketed runs in ticket order, whatever stream they come on. Single-shard commands take no
ticket and pay nothing: they run as soon as they reach the head of their stream.

A shard may run ticket t once no acceptor can still send it a smaller one. The book keeps,
for each acceptor, the smallest of its tickets that some run carrying it has not yet been
written whole to the pipes (``pending``); the *watermark* is the smallest of those and the
counter. Every ticket below the watermark is in the pipes already, so a shard that reads the
watermark, then everything its pipes hold, knows every ticket below the watermark that
concerns it.

The acceptor that sent t is left out of t's watermark (:meth:`TicketBook.watermarks`): the
sequencer queues a step's runs at the tail of each shard's queue as it takes the ticket, so
one acceptor's tickets reach a shard in increasing order on one first-in, first-out stream,
and its smaller ones for that shard are in hand before t is. Counting its own mark made
nearly every ticket wait: an acceptor lowers its mark only once its whole flush is written,
and the shard, woken by the first frame, reads the mark before that, then sleeps a poll.

Memory is one shared array of 64-bit words (``multiprocessing.RawArray``): the counter, then
one word per acceptor; a lock (a POSIX semaphore) guards taking tickets. Readers take no lock:
a ticket's taker stores ``pending`` before it raises the counter, and readers load the
counter before ``pending``, so a reader never sees the counter past a ticket whose pending
mark it misses (x86-64 and ARM64 keep aligned 8-byte stores whole; the lock's release orders
them).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

#: No ticket pending.
NONE = (1 << 64) - 1


class TicketBook:
    """The shared ticket counter and each acceptor's smallest pending ticket."""

    def __init__(self, acceptors: int, context: Any = multiprocessing) -> None:
        self.acceptors = acceptors
        self._words = context.RawArray("Q", 1 + acceptors)
        for index in range(acceptors):
            self._words[1 + index] = NONE
        self._lock = context.Lock()

    def take(self, acceptor: int) -> int:
        """A new ticket for ``acceptor``, pending until :meth:`publish` says otherwise."""
        words = self._words
        with self._lock:
            ticket = words[0]
            if words[1 + acceptor] == NONE:
                words[1 + acceptor] = ticket
            words[0] = ticket + 1
        return ticket

    def publish(self, acceptor: int, lowest: int) -> None:
        """``acceptor``'s smallest ticket not yet written whole (:data:`NONE`: none). Only
        that acceptor writes its word, and only it takes tickets that lower it."""
        self._words[1 + acceptor] = lowest

    def pending(self, acceptor: int) -> int:
        return self._words[1 + acceptor]

    def watermarks(self) -> list[int]:
        """Per acceptor, the watermark for the tickets that came from it: no smaller ticket
        can still be sent by another acceptor (every one is in the pipes already), nor taken
        (the counter, loaded first)."""
        words = self._words
        counter = words[0]
        pending = [words[index] for index in range(1, 1 + self.acceptors)]
        return [
            min([counter, *pending[:index], *pending[index + 1 :]])
            for index in range(self.acceptors)
        ]
