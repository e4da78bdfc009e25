"""The order in which a shard runs what several acceptors send it.

A shard reads one stream of batches per acceptor. Each stream is first in, first out: an
acceptor's commands for this shard run in the order it sent them, so each client's commands
keep their order. Between streams:

- an unticketed run (a single-shard command) runs as soon as it heads its stream;
- a ticketed run (part of a multi-shard step, :mod:`shardserver.ordering`) runs when it holds
  the smallest ticket among the streams' heads and that ticket is below its stream's
  watermark (no smaller ticket can still arrive from another stream; its own stream's smaller
  ones came first). Every shard therefore runs the multi-shard steps that concern it in one
  global order, the same on every shard;
- a ticketed run marked *hold* (a coordination's first read, or its barrier) leaves the shard
  held by its stream: only that stream runs (the coordination's later reads and its writes
  come on it) until its *release* run.

A batch's reply frame is sent once every run of the batch has run, so a stream waiting for a
ticket holds back that batch's replies, never another stream's.

Pure: fed decoded batches, it runs them with a shard's ``execute_batch`` and hands back the
finished batches' replies; :mod:`shardserver.worker` does the I/O.

A ticketed run is ``[(ctx, ticket, mark), argv ...]`` where ``mark`` is :data:`HOLD` or 0; a
release is ``[(0, None, RELEASE), [b"@release"]]``, whose reply is None.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

#: Marks of a ticketed run.
HOLD = 1
RELEASE = 2


class _Batch:
    __slots__ = ("runs", "replies")

    def __init__(self, runs: list) -> None:
        self.runs = runs
        self.replies: list = []


class Scheduler:
    """Per-stream queues of batches, run in the order described above."""

    def __init__(self, execute: Callable[[list], list], streams: int, ordered: bool = True) -> None:
        #: Runs a list of plain runs (a shard's ``execute_batch``, guarded) to their replies.
        self.execute = execute
        #: False only for the tests' broken control: tickets and holds are ignored, so
        #: multi-shard commands from different acceptors may interleave (and tear).
        self.ordered = ordered
        self.queues: list[deque[_Batch]] = [deque() for _ in range(streams)]
        #: The stream that holds the shard (a coordination in progress), or None.
        self.holder: int | None = None
        #: Whether the last :meth:`run` stopped at a ticket above the watermark.
        self.waiting = False

    def add(self, stream: int, runs: list) -> None:
        if not self.ordered:
            runs = [
                run
                if run[0].__class__ is not tuple or run[0][2] == RELEASE
                else [run[0][0], *run[1:]]
                for run in runs
            ]
        self.queues[stream].append(_Batch(runs))

    def close(self, stream: int) -> None:
        """The stream's acceptor is gone: what it sent and not finished is dropped, and its
        hold, if it holds the shard, ends."""
        self.queues[stream].clear()
        if self.holder == stream:
            self.holder = None

    def run(self, watermarks: Sequence[int]) -> list[tuple[int, list]]:
        """Run everything that may run now; the replies of the batches finished, by stream.

        ``watermarks`` (one per stream, :meth:`shardserver.ordering.TicketBook.watermarks`)
        must have been read before the streams' pipes were last drained: then every ticket
        below a stream's watermark that concerns this shard has been added."""
        done: list[tuple[int, list]] = []
        self.waiting = False
        progress = True
        while progress:
            progress = False
            for stream in self._runnable_streams():
                progress |= self._run_unticketed(stream, done)
            if self.holder is None:
                progress |= self._run_next_ticket(watermarks, done)
        return done

    def _runnable_streams(self) -> range | list[int]:
        if self.holder is not None:
            return [self.holder]
        return range(len(self.queues))

    def _run_unticketed(self, stream: int, done: list) -> bool:
        """Run the stream's runs from its head up to its first ticketed one (or, for the
        holder, everything up to its release: its runs were ordered when the hold began).
        A release ends the holder's hold."""
        queue = self.queues[stream]
        held = self.holder == stream
        progress = False
        while queue:
            batch = queue[0]
            runs = batch.runs
            start = end = len(batch.replies)
            while end < len(runs):
                head = runs[end][0]
                if head.__class__ is tuple and (head[2] == RELEASE or not held):
                    break
                end += 1
            if end > start:
                batch.replies.extend(self.execute(_plain(runs[start:end])))
                progress = True
            if end < len(runs):
                if runs[end][0][2] != RELEASE:
                    return progress  # a ticketed run: it waits for its turn
                batch.replies.append(None)
                if held:
                    self.holder = None
                    held = False
                progress = True
                continue
            queue.popleft()
            done.append((stream, batch.replies))
        return progress

    def _run_next_ticket(self, watermarks: Sequence[int], done: list) -> bool:
        """Run the smallest ticketed run at a stream's head, if it is below that stream's
        watermark.

        Only when every stream's head is ticketed: a free run at a head (one that waited
        while another stream held the shard) may hide a smaller ticket behind it, so it runs
        first, in the next unticketed pass."""
        best = None
        for stream, queue in enumerate(self.queues):
            if not queue:
                continue
            batch = queue[0]
            head = batch.runs[len(batch.replies)][0]
            if head.__class__ is not tuple or head[1] is None:
                return False
            if best is None or head[1] < best[1]:
                best = (stream, head[1])
        if best is None:
            return False
        stream, ticket = best
        if ticket >= watermarks[stream]:
            self.waiting = True
            return False
        batch = self.queues[stream][0]
        position = len(batch.replies)
        run = batch.runs[position]
        ctx, _ticket, mark = run[0]
        batch.replies.extend(self.execute([[ctx, *run[1:]]]))
        if mark == HOLD:
            self.holder = stream
        if len(batch.replies) == len(batch.runs):
            self.queues[stream].popleft()
            done.append((stream, batch.replies))
        return True


def _plain(runs: list) -> list:
    """Runs with any ticket taken off their context (the holder's ordered runs)."""
    return [[run[0][0], *run[1:]] if run[0].__class__ is tuple else run for run in runs]
