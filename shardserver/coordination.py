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

from typing import Any

from shardserver.commands.multikey import Plan
from shardserver.commands.spec import key_positions
from shardserver.receivers import Gather


def step_ctx(ctx: int, db: int | None) -> int:
    """The run context of a coordination step: the client's, or another database's (COPY DB)."""
    return ctx if db is None else db * 2 + (ctx & 1)


class Coordination:
    """A conditional multi-shard command in flight: its plan, its held shards, its client."""

    __slots__ = ("server", "client", "entry", "plan", "shards", "ctx")

    def __init__(self, server: Any, client: Any, entry: list, plan: Plan, shards: list[int]):
        self.server = server
        self.client = client
        self.entry = entry
        self.plan = plan
        self.shards = shards
        #: The client's database and protocol when the command arrived: a SELECT pipelined
        #: after it must not move its reads or writes.
        self.ctx = client.ctx

    def queue_reads(self, batches: dict[int, tuple[list, list]] | None) -> None:
        """Queue the plan's reads: at the tail of each shard's queue (``batches`` None), or
        in the given per-shard (runs, targets) segments."""
        reads = self.plan.reads
        gather = Gather(self.client, self.entry, self.decided, len(reads))
        sequencer = self.server.sequencer
        for index, step in enumerate(reads):
            shard = self.server.shard_of_key(step.key)
            run = [step_ctx(self.ctx, step.db), step.argv]
            if batches is None:
                sequencer.batches[shard].append(run)
                sequencer.targets[shard].append((gather, index))
            else:
                assert shard in batches, "a later round reads only held shards"
                runs, targets = batches[shard]
                runs.append(run)
                targets.append((gather, index))
        sequencer.schedule_flush()

    def decided(self, results: list) -> bytes | None:
        """Every read is in (this is their Gather's merge): decide, then write and release,
        or read again."""
        decision = self.plan.decide(results)
        sequencer = self.server.sequencer
        if isinstance(decision, Plan):
            self.plan = decision
            self.queue_reads(sequencer.at_hold(self, self.shards))
            return None
        reply, writes = decision
        by_shard: dict[int, list] = {}
        acks = Gather(self.client, self.entry, lambda _parts: reply, len(writes))
        for index, step in enumerate(writes):
            shard = self.server.shard_of_key(step.key)
            run = [step_ctx(self.ctx, step.db), step.argv]
            by_shard.setdefault(shard, []).append((run, (acks, index)))
        sequencer.release(self, self.shards, by_shard)
        return None if writes else reply


def coordinate(server: Any, client: Any, spec: Any, argv: list) -> None:
    """COORD route: natively on one shard when it can; else the plan, shards held."""
    if spec.check is not None:
        checked = spec.check(client, argv)
        if checked.__class__ is bytes:
            client.reply(checked)
            return
        if checked is not None:
            argv = checked
    if spec.undeclared_keys is not None and spec.undeclared_keys(argv):
        shards = set(range(server.shard_count))
    else:
        shards = {server.shard_of_key(argv[p]) for p in key_positions(spec, argv)}
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
    coordination.queue_reads(None)
    server.sequencer.hold(coordination, held)
