"""The ticket book (shared by acceptors) and the sequencer's part of it: which tickets an
acceptor still reports pending, so that no shard runs a ticket while a smaller one can still
arrive. A stand-in for the shard links decides what can be sent and what is written whole."""

from __future__ import annotations

import multiprocessing

from shardserver.ordering import NONE, TicketBook
from shardserver.receivers import DISCARD
from shardserver.scheduler import Scheduler
from shardserver.sequencer import MAX_INFLIGHT, Sequencer


def test_tickets_count_up_and_the_first_taken_stays_pending() -> None:
    book = TicketBook(2)
    assert book.watermarks() == [0, 0]
    assert [book.take(0), book.take(1), book.take(0)] == [0, 1, 2]
    assert book.pending(0) == 0 and book.pending(1) == 1
    # each acceptor's tickets wait only for the other's mark
    assert book.watermarks() == [1, 0]
    book.publish(0, NONE)
    assert book.watermarks() == [1, 3]
    book.publish(1, NONE)
    assert book.watermarks() == [3, 3]  # the counter: every ticket taken is sent
    assert book.take(1) == 3 and book.watermarks() == [3, 4]


def test_the_book_is_shared_with_forked_processes() -> None:
    context = multiprocessing.get_context("fork")
    book = TicketBook(2, context)

    def child() -> None:
        book.take(1)
        book.take(1)
        book.publish(1, 1)

    process = context.Process(target=child)
    process.start()
    process.join(10)
    assert process.exitcode == 0
    assert book.take(0) == 2
    assert book.pending(1) == 1
    assert book.watermarks() == [1, 2]


class FakeLinks:
    """What the sequencer needs of ShardLinks: per shard, batches in flight and written."""

    def __init__(self, count: int) -> None:
        self.sent: list[list[list]] = [[] for _ in range(count)]
        self.inflight = [0] * count
        self.unwritten = False

    def __len__(self) -> int:
        return len(self.sent)

    def can_send(self, index: int, most_inflight: int) -> bool:
        return self.inflight[index] < most_inflight

    def send(self, index: int, runs: list, targets: list) -> None:
        self.sent[index].append(runs)
        self.inflight[index] += 1

    def all_written(self) -> bool:
        return not self.unwritten


class ManualLoop:
    """Flushes happen when the test calls them."""

    def call_soon(self, callback: object) -> None:
        pass


class Sink:
    def deliver(self, index: int, value: object) -> None:
        pass


def make(shards: int = 3) -> tuple[Sequencer, FakeLinks, TicketBook]:
    links = FakeLinks(shards)
    book = TicketBook(2)
    sequencer = Sequencer(links, book, index=0)
    sequencer.start(ManualLoop())
    return sequencer, links, book


def test_a_step_is_pending_until_flushed_and_written_whole() -> None:
    sequencer, links, book = make()
    sequencer.step(0, [(0, [b"SET", b"a", b"1"]), (1, [b"SET", b"b", b"1"])], Sink())
    assert book.pending(0) == 0
    links.unwritten = True  # the frames sit in a writer: a full pipe
    sequencer.flush()
    assert book.pending(0) == 0, "a ticket whose frame is not wholly in the pipe is pending"
    links.unwritten = False
    sequencer.publish()  # what the links' "written" callback does
    assert book.pending(0) == NONE
    assert [run[0][1] for run in links.sent[0][0]] == [0]


def test_a_step_waiting_for_a_busy_shard_keeps_its_ticket_pending() -> None:
    sequencer, links, book = make()
    links.inflight[1] = MAX_INFLIGHT
    sequencer.step(0, [(0, [b"x"]), (1, [b"y"])], Sink())
    sequencer.flush()
    assert links.sent[0] and not links.sent[1]
    assert book.pending(0) == 0, "one run of the ticket is still unsent"
    links.inflight[1] = 0
    sequencer.replied(1)
    sequencer.flush()
    assert book.pending(0) == NONE


def test_runs_behind_a_hold_keep_their_tickets_pending_until_the_release() -> None:
    sequencer, links, book = make()
    owner = object()
    assert sequencer.hold(owner, [0, 1], [(0, 0, [b"@read"])], Sink()) == 2  # read + barrier
    sequencer.step(0, [(1, [b"w1"]), (2, [b"w2"])], Sink())  # ticket 1, waits behind shard 1
    sequencer.flush()
    assert book.pending(0) == 1
    assert [run[0][1:] for run in links.sent[1][0]] == [(0, 1)]  # the barrier, marked HOLD
    sequencer.release(owner, [0, 1], {1: [([0, [b"write"]], (DISCARD, 0))]})
    sequencer.flush()
    assert book.pending(0) == NONE
    after = links.sent[1][1]
    assert after[0] == [0, [b"write"]] and after[1][0][2] == 2 and after[2][0][1] == 1


def test_a_single_shard_step_takes_no_ticket() -> None:
    sequencer, links, book = make()
    sequencer.step(5, [(2, [b"GET", b"k"])], Sink())
    sequencer.flush()
    assert links.sent[2] == [[[5, [b"GET", b"k"]]]]
    assert book.pending(0) == NONE and book.watermarks() == [0, 0]


class EagerShards(FakeLinks):
    """Links whose shards wake as a frame lands, as a shard on another core does: each reads
    the watermarks and runs what it got before the acceptor's flush has finished."""

    def __init__(self, count: int, book: TicketBook) -> None:
        super().__init__(count)
        self.book = book
        self.ran: list[list] = [[] for _ in range(count)]
        self.schedulers = [
            Scheduler(lambda runs, shard=shard: self._execute(shard, runs), 2)
            for shard in range(count)
        ]

    def _execute(self, shard: int, runs: list) -> list:
        self.ran[shard].extend(runs)
        return [None] * len(runs)

    def send(self, index: int, runs: list, targets: list) -> None:
        super().send(index, runs, targets)
        self.schedulers[index].add(0, runs)
        self.schedulers[index].run(self.book.watermarks())


def test_a_shard_woken_by_the_first_frame_runs_the_ticket_before_the_flush_ends() -> None:
    """The acceptor lowers its pending mark only once its whole flush is written; a shard
    that reads the mark in between must not wait for it (it did: every ticketed step from
    two acceptors waited a poll on each shard, which halved the queue pattern's speed)."""
    book = TicketBook(2)
    links = EagerShards(2, book)
    sequencer = Sequencer(links, book, index=0)
    sequencer.start(ManualLoop())
    sequencer.step(0, [(0, [b"SET", b"a", b"1"]), (1, [b"SET", b"b", b"1"])], Sink())
    sequencer.flush()
    assert [len(ran) for ran in links.ran] == [1, 1]
    assert not any(scheduler.waiting for scheduler in links.schedulers)


def test_a_ticket_still_waits_for_another_acceptors_smaller_one() -> None:
    book = TicketBook(2)
    assert book.take(1) == 0  # acceptor 1's ticket 0: not yet in any pipe
    links = EagerShards(2, book)
    sequencer = Sequencer(links, book, index=0)
    sequencer.start(ManualLoop())
    sequencer.step(0, [(0, [b"x"]), (1, [b"y"])], Sink())  # ticket 1
    sequencer.flush()
    assert links.ran == [[], []]
    assert all(scheduler.waiting for scheduler in links.schedulers)
    book.publish(1, NONE)
    for scheduler in links.schedulers:
        scheduler.run(book.watermarks())
    assert [len(ran) for ran in links.ran] == [1, 1]
