"""Coordinated commands: read on several shards, decide, write, as one step of the order.

A COORD command (MSETNX, RENAME, COPY, cross-shard LCS, SORT ... BY, the data types'
STORE forms) runs natively on one shard when every key it touches lives there. Otherwise its
row's ``plan`` gives a :class:`shardserver.commands.multikey.Plan`, and this module runs it
on the sequencer's "hold these shards, read, decide, write" primitive:

1. the plan's reads are queued on their shards, then those shards (or every shard, for a
   plan that may touch any key) are held: what arrives for them afterwards waits;
2. when every read has answered, the plan decides: the reply and the writes, or another
   round of reads, queued at this command's own hold point on each shard;
3. the writes are put in front of what waited behind the holds, and the holds released.

So the command takes effect at one point of the global order, as a single-shard command
would (docs/architecture.md). Holds on a shard are released in the order they were taken,
so coordinations never deadlock.
"""

from __future__ import annotations

import logging
from typing import Any

from shardserver.commands.multikey import Plan
from shardserver.commands.spec import key_positions
from shardserver.errors import error, first_error
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.receivers import Gather

log = logging.getLogger("shardserver.coordination")


def step_ctx(ctx: int, db: int | None) -> int:
    """The run context of a coordination step: the client's, or another database's (COPY DB)."""
    return ctx if db is None else db * 2 + (ctx & 1)


class Coordination:
    """A conditional multi-shard command in flight: its plan, its held shards, its client.

    It receives its own reads' values (``deliver``). The first round also puts a *barrier*
    (a part that reads nothing) on each held shard it reads nothing from (the sequencer's
    ``hold`` does): a part queued on a shard runs only after every earlier hold there was
    released, so once every part of the first round has answered, this coordination is first
    in line on all its shards, and its later rounds and writes go right at its hold point.
    Whatever happens (a shard failed, the plan raised), the holds are released: a
    coordination never leaves a shard held.
    """

    __slots__ = (
        "server",
        "client",
        "entry",
        "plan",
        "shards",
        "ctx",
        "track_reads",
        "track_writes",
        "name",
        "values",
        "remaining",
    )

    def __init__(self, server: Any, client: Any, entry: list, plan: Plan, shards: list[int]):
        self.server = server
        self.client = client
        self.entry = entry
        self.plan = plan
        self.shards = shards
        #: The client's database and protocol when the command arrived: a SELECT pipelined
        #: after it must not move its reads or writes.
        self.ctx = client.ctx
        #: A tracking client's command: a read's steps (SINTER, LCS ... across shards) are
        #: wrapped so each shard remembers the step's key, and writes so the shards know
        #: who wrote (NOLOOP).
        self.track_reads = False
        self.track_writes = False
        #: The command's name, whose error reply the acceptor counts ("": not a client's
        #: command, as a blocked pop's look).
        self.name = ""
        self.values: list[Any] = []
        self.remaining = 0

    def start(self) -> None:
        """Queue the first round's reads (and barriers) and hold the shards."""
        parts = [
            (self.server.shard_of_key(step.key), step_ctx(self.ctx, step.db), self._argv(step))
            for step in self.plan.reads
        ]
        if self.server.monitors.riding is not None:  # the lowest held shard writes its line
            parts = self.server.monitors.carry_hold(self.shards, parts)
        count = self.server.sequencer.hold(self, self.shards, parts, self)
        self.values = [None] * count
        self.remaining = count

    def queue_reads(self, batches: dict[int, tuple[list, list]]) -> None:
        """Queue a later round's reads in the given per-shard (runs, targets) segments: this
        coordination's hold point on each shard."""
        reads = self.plan.reads
        self.values = [None] * len(reads)
        self.remaining = len(reads)
        for index, step in enumerate(reads):
            shard = self.server.shard_of_key(step.key)
            assert shard in batches, "a later round reads only held shards"
            runs, targets = batches[shard]
            runs.append([step_ctx(self.ctx, step.db), self._argv(step)])
            targets.append((self, index))
        self.server.sequencer.schedule_flush()

    def _argv(self, step: Any) -> list:
        if not self.track_reads or self.client.tracking is None:
            return step.argv
        return self.server.tracking.wrap(self.client, step.argv, [step.key])

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if self.remaining:
            return
        results = self.values[: len(self.plan.reads)]
        failed = first_error(self.values)
        if failed is not None:
            self._finish(failed, [])
            return
        try:
            decision = self.plan.decide(results)
        except Exception as problem:
            log.exception("a coordinated command's plan failed")
            self._finish(error(f"ERR internal error: {type(problem).__name__}"), [])
            return
        if isinstance(decision, Plan):
            self.plan = decision
            self.queue_reads(self.server.sequencer.at_hold(self, self.shards))
            return
        self._finish(*decision)

    def _finish(self, reply: bytes, writes: list) -> None:
        """Queue the writes first on the held shards, release them; the reply comes when the
        writes have answered (at once when there are none)."""
        if self.name and reply[:1] == b"-":
            ERRORS.failed_call(self.name, reply)
        by_shard: dict[int, list] = {}
        acks = Gather(self.client, self.entry, lambda _parts: reply, len(writes))
        for index, step in enumerate(writes):
            shard = self.server.shard_of_key(step.key)
            argv = step.argv
            if self.track_writes and self.client.tracking is not None:
                argv = self.server.tracking.wrap(self.client, argv, [])
            run = [step_ctx(self.ctx, step.db), argv]
            by_shard.setdefault(shard, []).append((run, (acks, index)))
        self.server.sequencer.release(self, self.shards, by_shard)
        if not writes:
            self.client.fill(self.entry, reply)


def checked_shards(server: Any, client: Any, spec: Any, argv: list) -> bytes | tuple[list, set]:
    """A COORD command's arguments once its check has passed them (possibly rewritten), and
    the shards it may touch; or the check's error reply."""
    if spec.check is not None:
        checked = spec.check(client, argv)
        if checked.__class__ is bytes:
            return checked
        if checked is not None:
            argv = checked
    if spec.undeclared_keys is not None and spec.undeclared_keys(argv):
        return argv, set(range(server.shard_count))
    return argv, {server.shard_of_key(argv[p]) for p in key_positions(spec, argv)}


def coordinate(server: Any, client: Any, spec: Any, argv: list) -> None:
    """COORD route: natively on one shard when it can; else the plan, shards held."""
    checked = checked_shards(server, client, spec, argv)
    if checked.__class__ is bytes:
        ERRORS.counted(spec.name, checked, False)
        client.reply(checked)
        return
    argv, shards = checked
    if len(shards) == 1:
        argv[0] = spec.wire_name
        client.enqueue(shards.pop(), argv)
        return
    plan = spec.plan(client, argv)
    entry = client.new_entry()
    if plan.hold_all:
        held = list(range(server.shard_count))
    else:
        held = sorted({server.shard_of_key(step.key) for step in plan.reads})
    coordination = Coordination(server, client, entry, plan, held)
    coordination.name = spec.name
    coordination.track_writes = client.tracking is not None
    coordination.track_reads = coordination.track_writes and "readonly" in spec.flags
    coordination.start()
