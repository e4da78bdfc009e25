"""Two acceptors' real sequencers and the real ticket book against shards' real schedulers,
with pipes in between that take one or two frames before a write must wait (EAGAIN) and
the sequencer's limit of batches in flight: any interleaving of flushes, pipe drains, shard
wake-ups and replies must finish every command (nothing waits for ever on a watermark, a
hold or a full pipe) and run each shard's tickets in ticket order. The server's own tests
meet these interleavings only by chance; here a seed picks them.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

import pytest

from shardserver.ordering import TicketBook
from shardserver.scheduler import Scheduler
from shardserver.sequencer import Sequencer

ACCEPTORS = 2
SHARDS = 3


class Loop:
    """Callbacks the sequencer schedules, run when the model picks them."""

    def __init__(self) -> None:
        self.callbacks: deque[Callable[[], None]] = deque()

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


class PipeLinks:
    """One acceptor's links: per shard a pipe of bounded frames, and the frames a writer
    keeps while the pipe is full (all but the pipe are what ShardLinks keeps)."""

    def __init__(self, pipes: list[deque], capacity: int) -> None:
        self.pipes = pipes
        self.capacity = capacity
        self.inflight: list[deque[list]] = [deque() for _ in pipes]
        self.waiting: list[deque[list]] = [deque() for _ in pipes]

    def __len__(self) -> int:
        return len(self.pipes)

    def can_send(self, index: int, most_inflight: int) -> bool:
        return len(self.inflight[index]) < most_inflight

    def send(self, index: int, runs: list, targets: list) -> None:
        self.inflight[index].append(targets)
        self.waiting[index].append(runs)
        self.write(index)

    def write(self, index: int) -> None:
        while self.waiting[index] and len(self.pipes[index]) < self.capacity:
            self.pipes[index].append(self.waiting[index].popleft())

    def writable(self, index: int) -> bool:
        return bool(self.waiting[index]) and len(self.pipes[index]) < self.capacity

    def all_written(self) -> bool:
        return not any(self.waiting)


class Done:
    """Counts a command's parts; the command is done when all have answered."""

    def __init__(self, model: Model, parts: int) -> None:
        self.model = model
        self.left = parts
        model.open += 1

    def deliver(self, _index: int, _value: object) -> None:
        self.left -= 1
        if not self.left:
            self.model.open -= 1


class Coordination:
    """Holds its shards, reads, maybe reads again at its hold point, writes, releases."""

    def __init__(self, model: Model, acceptor: int, shards: list[int]) -> None:
        self.model = model
        self.sequencer = model.sequencers[acceptor]
        self.shards = shards
        self.rounds = model.rng.randint(0, 2)
        self.done = Done(model, 1)
        ticket = model.take_ticket()
        reads = [(shard, 0, [b"read", ticket]) for shard in shards if model.rng.random() < 0.6]
        self.left = self.sequencer.hold(self, shards, reads, self)

    def deliver(self, _index: int, _value: object) -> None:
        self.left -= 1
        if self.left:
            return
        if self.rounds:
            self.rounds -= 1
            runs, targets = self.sequencer.at_hold(self, self.shards)[self.shards[-1]]
            runs.append([0, [b"again"]])
            targets.append((self, 0))
            self.left = 1
            self.sequencer.schedule_flush()
            return
        writes = {shard: [([0, [b"write"]], (Done(self.model, 1), 0))] for shard in self.shards}
        self.sequencer.release(self, self.shards, writes)
        self.done.deliver(0, None)


class Model:
    def __init__(self, seed: int, capacity: int) -> None:
        self.rng = random.Random(seed)
        self.book = TicketBook(ACCEPTORS)
        self.pipes = [[deque() for _ in range(SHARDS)] for _ in range(ACCEPTORS)]
        self.replies = [[deque() for _ in range(SHARDS)] for _ in range(ACCEPTORS)]
        self.loops = [Loop() for _ in range(ACCEPTORS)]
        self.links = [PipeLinks(self.pipes[a], capacity) for a in range(ACCEPTORS)]
        self.sequencers = [Sequencer(self.links[a], self.book, a) for a in range(ACCEPTORS)]
        for sequencer, loop in zip(self.sequencers, self.loops, strict=True):
            sequencer.start(loop)
        #: Per shard, the tickets its ticketed runs carried, in the order they ran.
        self.tickets_ran: list[list[int]] = [[] for _ in range(SHARDS)]
        self.schedulers = [
            Scheduler(lambda runs, shard=shard: self.execute(shard, runs), ACCEPTORS)
            for shard in range(SHARDS)
        ]
        self.open = 0
        self.tickets = 0

    def take_ticket(self) -> int:
        """The ticket the next step over several shards takes (the model is the book's only
        user: they count from 0)."""
        self.tickets += 1
        return self.tickets - 1

    def execute(self, shard: int, runs: list) -> list:
        for run in runs:
            if len(run[1]) > 1:  # a ticketed step's part names its ticket
                self.tickets_ran[shard].append(run[1][1])
        return [None] * len(runs)

    def issue(self, acceptor: int) -> None:
        sequencer = self.sequencers[acceptor]
        kind = self.rng.random()
        shards = sorted(self.rng.sample(range(SHARDS), self.rng.randint(2, SHARDS)))
        if kind < 0.4:
            sequencer.append(self.rng.randrange(SHARDS), [0, [b"get"]], (Done(self, 1), 0))
        elif kind < 0.6:
            ticket = self.take_ticket()
            parts = [(shard, [b"step", ticket]) for shard in shards]
            sequencer.step(0, parts, Done(self, len(parts)))
        else:
            Coordination(self, acceptor, shards)

    def wake_shard(self, shard: int) -> None:
        """The worker's loop: the watermarks, then every pipe drained, then run."""
        watermarks = self.book.watermarks()
        for acceptor in range(ACCEPTORS):
            pipe = self.pipes[acceptor][shard]
            while pipe:
                self.schedulers[shard].add(acceptor, pipe.popleft())
        for acceptor, replies in self.schedulers[shard].run(watermarks):
            self.replies[acceptor][shard].append(replies)

    def reply(self, acceptor: int, shard: int) -> None:
        replies = self.replies[acceptor][shard].popleft()
        targets = self.links[acceptor].inflight[shard].popleft()
        for (receiver, index), value in zip(targets, replies, strict=True):
            receiver.deliver(index, value)
        self.sequencers[acceptor].replied(shard)

    def events(self) -> list[Callable[[], None]]:
        found: list[Callable[[], None]] = [
            lambda shard=shard: self.wake_shard(shard) for shard in range(SHARDS)
        ]
        for a in range(ACCEPTORS):
            if self.loops[a].callbacks:
                found.append(lambda a=a: self.loops[a].callbacks.popleft()())
            for shard in range(SHARDS):
                if self.links[a].writable(shard):
                    found.append(lambda a=a, shard=shard: self.drained(a, shard))
                if self.replies[a][shard]:
                    found.append(lambda a=a, shard=shard: self.reply(a, shard))
        return found

    def drained(self, acceptor: int, shard: int) -> None:
        """The pipe took what waited: ShardLinks' written callback publishes."""
        self.links[acceptor].write(shard)
        if not self.links[acceptor].waiting[shard]:
            self.sequencers[acceptor].publish()


@pytest.mark.parametrize("capacity", [1, 2])
@pytest.mark.parametrize("seed", range(30))
def test_every_command_finishes_and_tickets_keep_their_order(seed: int, capacity: int) -> None:
    model = Model(seed, capacity)
    for _ in range(120):
        model.issue(model.rng.randrange(ACCEPTORS))
        for _ in range(model.rng.randint(0, 6)):
            model.rng.choice(model.events())()
    for _ in range(100_000):
        if not model.open:
            break
        model.rng.choice(model.events())()
    assert not model.open, "commands still waiting after every step the model could take"
    for shard, tickets in enumerate(model.tickets_ran):
        assert tickets == sorted(tickets), f"shard {shard} ran tickets out of order"
