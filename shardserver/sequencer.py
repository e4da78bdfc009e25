"""The sequencer: the one order in which every shard sees its commands, and how they are batched.

Every command, or every part of a multi-shard command, is appended to its shard's queue by
the acceptor in the order the acceptor takes commands, all parts of one command in one step.
Each shard executes its queue strictly in order, so there is one global order and every
multi-shard command is atomic (docs/architecture.md gives the argument). The primitives that
features build on:

``step(parts)``
    these parts on these shards as one step (MSET across shards, fan-outs, consistent cuts);
``hold(owner, shards)`` / ``at_hold(owner)`` / ``release(owner, writes)``
    hold these shards, read, decide, write: nothing queued after the hold is sent until the
    owner releases it with its writes in front (MSETNX, RENAME, COPY, SORT ... BY).

Batching: a shard's queue is sent as one frame per event-loop turn, while fewer than
:data:`MAX_INFLIGHT` of its batches are unanswered; what arrives meanwhile goes out as one
larger batch when a reply comes back, so under load batches grow to the shard's speed.

Each shard's queue is a *ready* segment (sent at the next flush) followed by one segment per
hold, oldest first: ``[owner, runs, targets]``. New commands go to the tail (``batches`` and
``targets`` point at it); a release moves the held segment, behind the owner's writes, into
the ready one.

With several acceptors (a :class:`shardserver.ordering.TicketBook` is given), each shard
interleaves several acceptors' streams, so the order above holds within one acceptor only.
Every step over more than one shard then takes a ticket, which each of its runs carries, and
shards run tickets in one global order (:mod:`shardserver.scheduler`); a hold also marks its
first runs *hold*, so the shard runs only this acceptor's stream until the *release* that
follows the writes. The ticket stays pending in the book until every run carrying it has
been written whole to the pipes.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import Any

from shardserver.links import ShardLinks
from shardserver.ordering import NONE
from shardserver.receivers import DISCARD
from shardserver.scheduler import HOLD, RELEASE

#: Batches a shard may have in flight; later commands wait for a reply, then go together.
MAX_INFLIGHT = 2
_RELEASE_ARGV = [b"@release"]


class Sequencer:
    """Per-shard queues of runs and their reply targets, and the flush that sends them."""

    def __init__(self, links: ShardLinks, book: Any = None, index: int = 0) -> None:
        self.links = links
        #: The shared ticket book with several acceptors (None with one), and our number.
        self.book = book
        self.index = index
        #: Ticketed runs queued and not yet handed to a pipe, by ticket; and the smallest
        #: ticket handed to pipes since they last held nothing unwritten.
        self.unsent: Counter[int] = Counter()
        self.buffered: int | None = None
        count = len(links)
        self.ready_runs: list[list] = [[] for _ in range(count)]
        self.ready_targets: list[list] = [[] for _ in range(count)]
        self.held: list[deque[list]] = [deque() for _ in range(count)]
        #: The tail segment of each shard's queue, where new commands go (the ready segment
        #: unless the shard is held). The acceptor's single-key fast path appends here.
        self.batches: list[list] = list(self.ready_runs)
        self.targets: list[list] = list(self.ready_targets)
        #: Counts flushes: a client's open run may still grow while the turn it was queued in
        #: has not been flushed.
        self.turn = 0
        self.flush_scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    # -- appending -----------------------------------------------------------------------

    def append(self, shard: int, run: list, target: tuple) -> None:
        """Queue one run at the tail of a shard's queue."""
        self.batches[shard].append(run)
        self.targets[shard].append(target)
        self.schedule_flush()

    def step(
        self,
        ctx: int,
        parts: list[tuple[int, list]],
        receiver: Any,
        contexts: list[int] | None = None,
    ) -> None:
        """Queue one-command runs (``(shard, argv)``) as one step of the order; part i's value
        goes to ``receiver.deliver(i, value)``. ``contexts`` gives each part its own run
        context (a transaction's commands after a SELECT), else every part runs in ``ctx``."""
        head = self._ticketed(ctx, {shard for shard, _ in parts}, 0)
        ticketed = head.__class__ is tuple
        if ticketed:
            self.unsent[head[1]] += len(parts)
        batches, targets = self.batches, self.targets
        for index, (shard, argv) in enumerate(parts):
            if contexts is None:
                batches[shard].append([head, argv])
            elif ticketed:
                batches[shard].append([(contexts[index], head[1], head[2]), argv])
            else:
                batches[shard].append([contexts[index], argv])
            targets[shard].append((receiver, index))
        self.schedule_flush()

    def _ticketed(self, ctx: int, shards: set[int] | list[int], mark: int) -> Any:
        """The context runs of a step over ``shards`` carry: with several acceptors and more
        than one shard, ``(ctx, ticket, mark)`` (and the runs count as unsent), else ctx.
        A hold is ticketed on one shard too: its later runs come in other batches, and only
        the shard's scheduler can keep the other acceptors' runs from coming between."""
        if self.book is None or (len(shards) < 2 and mark != HOLD):
            return ctx
        return (ctx, self.book.take(self.index), mark)

    # -- holds ---------------------------------------------------------------------------

    def hold(
        self, owner: object, shards: list[int], parts: list[tuple[int, int, list]], receiver: Any
    ) -> int:
        """Queue a coordination's first reads (``(shard, ctx, argv)``; part i's value goes to
        ``receiver.deliver(i, value)``) and hold ``shards``: from now on, what is queued for
        them waits behind ``owner``'s hold. Every held shard gets at least one run (a
        *barrier* that reads nothing where the plan reads nothing), so every hold point
        runs, on its shard, after every earlier hold there was released. Returns how many
        parts were queued (the barriers come after the reads)."""
        touched = {shard for shard, _ctx, _argv in parts}
        parts = parts + [(shard, 0, [b"@barrier"]) for shard in shards if shard not in touched]
        ticket = self._ticketed(0, shards, HOLD)
        for index, (shard, ctx, argv) in enumerate(parts):
            head = ctx if ticket.__class__ is int else (ctx, ticket[1], HOLD)
            if head.__class__ is tuple:
                self.unsent[head[1]] += 1
            self.batches[shard].append([head, argv])
            self.targets[shard].append((receiver, index))
        for shard in shards:
            segment = [owner, [], []]
            self.held[shard].append(segment)
            self.batches[shard] = segment[1]
            self.targets[shard] = segment[2]
        self.schedule_flush()
        return len(parts)

    def at_hold(self, owner: object, shards: list[int]) -> dict[int, tuple[list, list]]:
        """Per shard, the (runs, targets) segment that ends at ``owner``'s hold point: what is
        appended there runs after everything queued before the hold (an earlier hold's
        writes included) and before anything queued behind it."""
        found = {}
        for shard in shards:
            segments = self.held[shard]
            mine = next(i for i, segment in enumerate(segments) if segment[0] is owner)
            if mine == 0:
                found[shard] = (self.ready_runs[shard], self.ready_targets[shard])
            else:
                _, runs, targets = segments[mine - 1]
                found[shard] = (runs, targets)
        return found

    def release(self, owner: object, shards: list[int], writes: dict[int, list]) -> None:
        """Put ``owner``'s writes (``(run, target)`` per shard) first on each shard it held,
        then let what waited behind the hold go."""
        for shard in shards:
            queue = self.held[shard]
            holder, runs, targets = queue.popleft()
            assert holder is owner, "holds are released in the order they were taken"
            ready_runs, ready_targets = self.ready_runs[shard], self.ready_targets[shard]
            for run, target in writes.pop(shard, ()):
                ready_runs.append(run)
                ready_targets.append(target)
            if self.book is not None:
                ready_runs.append([(0, None, RELEASE), _RELEASE_ARGV])
                ready_targets.append((DISCARD, 0))
            ready_runs.extend(runs)
            ready_targets.extend(targets)
            if not queue:
                self.batches[shard] = ready_runs
                self.targets[shard] = ready_targets
        assert not writes, "writes go only to shards the owner held"
        self.schedule_flush()

    # -- sending -------------------------------------------------------------------------

    def flush(self) -> None:
        """Send each shard its ready batch: one frame per shard, while few are in flight.

        A shard still working on earlier batches gets nothing new; what arrives meanwhile
        waits and goes as one larger batch when a reply comes back. Under load, batches grow
        to match the shard's speed (fewer crossings, each cheaper per command); when idle,
        a command leaves at the end of the turn it arrived in.
        """
        self.flush_scheduled = False
        self.turn += 1
        links = self.links
        for index in range(len(self.ready_runs)):
            batch = self.ready_runs[index]
            if not batch or not links.can_send(index, MAX_INFLIGHT):
                continue
            targets = self.ready_targets[index]
            fresh_runs: list = []
            fresh_targets: list = []
            self.ready_runs[index] = fresh_runs
            self.ready_targets[index] = fresh_targets
            if not self.held[index]:
                self.batches[index] = fresh_runs
                self.targets[index] = fresh_targets
            if self.unsent:
                self._handed(batch)
            links.send(index, batch, targets)
        if self.book is not None:
            self.publish()

    def _handed(self, batch: list) -> None:
        """The ticketed runs of a batch handed to its pipe: no longer unsent, but maybe not
        yet written whole (a full pipe)."""
        unsent = self.unsent
        for run in batch:
            head = run[0]
            if head.__class__ is tuple and head[1] is not None:
                ticket = head[1]
                unsent[ticket] -= 1
                if not unsent[ticket]:
                    del unsent[ticket]
                if self.buffered is None or ticket < self.buffered:
                    self.buffered = ticket

    def publish(self) -> None:
        """Tell the ticket book our smallest ticket not yet written whole (:mod:`ordering`)."""
        if self.buffered is not None and self.links.all_written():
            self.buffered = None
        lowest = min(self.unsent, default=NONE)
        if self.buffered is not None:
            lowest = min(lowest, self.buffered)
        if lowest != self.book.pending(self.index):
            self.book.publish(self.index, lowest)

    def replied(self, shard: int) -> None:
        """A shard answered: send what waited for it."""
        if self.ready_runs[shard]:
            self.schedule_flush()
