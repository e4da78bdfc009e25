"""The acceptor's side of the blocking pops: each waiting client, its timeout, its wake-up.

A blocking command (route BLOCK: BLPOP, BZPOPMIN, BLMOVE ...) is its non-blocking twin plus a
wait (:mod:`shardserver.commands.blocking`). How it waits depends on where its keys are:

- **one shard** (the usual case, and always with hash tags): ``@block`` runs the twin there
  and, when it found nothing, leaves a *direct* waiter on that shard in the same step, so no
  push can slip between the look and the wait. The shard serves it itself, in arrival order
  among the key's waiters, right after the write that gave the key something (an event
  carries the reply back, :mod:`shardserver.waiters`);
- **several shards**: the twin runs as a coordination (the shards held, every key read,
  the first that has something popped). When it found nothing, its writes leave a *remote*
  waiter on each shard, still under the holds, so again nothing slips between. A shard
  whose key becomes ready tells the acceptor and keeps the key for it (no later waiter is
  served from it first); the acceptor runs the twin again the same way: it pops and the
  waiters go (``@bcancel``), or (another client's plain pop got there first) it waits again
  (``@brearm``).

The acceptor owns the timeouts (floating seconds, 0 for ever) and CLIENT UNBLOCK: a direct
waiter is cancelled on its shard, and a "not here" answer means the shard served it first
(its reply is the event that follows); a remote waiter's cancellation needs no answer, since
only the acceptor's own coordinations pop for it.

A client that waits dispatches nothing more until its command is answered (its later
pipelined commands wait in its inbox, as Redis's blocked client reads nothing): see
:class:`shardserver.client.ClientConnection`.
"""

from __future__ import annotations

import asyncio
import logging
from itertools import count
from typing import Any

from shardserver import events
from shardserver.commands.blocking import SHAPES, TIMED_OUT
from shardserver.commands.multikey import Plan, Step
from shardserver.coordination import Coordination, checked_shards, coordinate
from shardserver.errors import error, is_error
from shardserver.receivers import DISCARD

log = logging.getLogger("shardserver.blocked")

#: Waits longer than this (about 30 years) have no timer: they wait for ever, as 0 does.
FOREVER_MS = 10**12
UNBLOCKED = error("UNBLOCKED client unblocked via CLIENT UNBLOCK")


class Blocking:
    """This acceptor's waiting clients, by the id each wait has on the shards."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.waits: dict[int, Wait] = {}
        self._ids = count(1)

    def __len__(self) -> int:
        return len(self.waits)

    def start(self, client: Any, spec: Any, argv: list[bytes], shards: set[int]) -> None:
        wait = Wait(self, next(self._ids), client, spec, argv, sorted(shards))
        self.waits[wait.id] = wait
        client.blocked = wait
        wait.start()

    def heard(self, shard: int, told: list) -> None:
        """What a shard said unasked, in order."""
        for event in told:
            wait = self.waits.get(event[1])
            if wait is None:
                continue  # it ended meanwhile (its cancellation crossed the event)
            if event[0] == events.SERVED:
                wait.finish(event[2])
            elif event[0] == events.READY:
                wait.ready()

    def shard_failed(self, shard: int) -> None:
        """A shard died: its waiters' clients get the error other commands in flight got."""
        failure = error(f"ERR shard {shard} failed while running this command")
        for wait in list(self.waits.values()):
            if shard in wait.shards:
                wait.finish(failure)


class Wait:
    """One client's blocking command, from its dispatch to its reply."""

    __slots__ = (
        "blocking", "id", "client", "spec", "argv", "shards", "shape", "ctx", "enc",
        "entry", "state", "timer", "registered", "ending", "again",
    )  # fmt: skip

    def __init__(
        self, blocking: Blocking, wait_id: int, client: Any, spec: Any, argv: list, shards: list
    ) -> None:
        self.blocking = blocking
        self.id = wait_id
        self.client = client
        self.spec = spec
        self.argv = argv
        self.shards = shards
        self.shape = SHAPES[spec.wire_name]
        #: The client's database and protocol at dispatch (Coordination reads ``ctx``).
        self.ctx = client.ctx
        self.enc = client.enc
        self.entry = client.new_entry()
        #: "trying" (a look is in flight), "waiting", "cancelling", "done".
        self.state = "trying"
        self.timer: asyncio.TimerHandle | None = None
        #: Whether remote waiters of ours may be on the shards.
        self.registered = False
        #: The reply to give when the look in flight finds nothing (a timeout or CLIENT
        #: UNBLOCK came while it ran), or None.
        self.ending: bytes | None = None
        #: A shard said a key is ready while a look was in flight: look again after it.
        self.again = False

    @property
    def direct(self) -> bool:
        return len(self.shards) == 1

    def start(self) -> None:
        wait_ms = self.shape.wait_ms(self.argv)
        if 0 < wait_ms < FOREVER_MS:
            loop = self.blocking.server.loop
            self.timer = loop.call_later(wait_ms / 1000.0, self.end, TIMED_OUT[self._protocol])
        if self.direct:
            server = self.blocking.server
            part = [b"@block", server.index, self.id, self.ctx, *self.argv]
            if server.monitors.riding is not None:  # its shard writes its line
                part = server.monitors.carry(self.ctx, part)
            server.sequencer.append(self.shards[0], [self.ctx, part], (self, 0))
        else:
            self._look(first=True)

    @property
    def _protocol(self) -> int:
        return 3 if self.ctx & 1 else 2

    # -- one shard ---------------------------------------------------------------------

    def deliver(self, index: int, value: Any) -> None:
        """The answer to ``@block`` (index 0) or to ``@bcancel`` (index 1)."""
        if self.state == "done":
            return
        if is_error(value):  # the shard failed
            self.finish(value)
        elif index == 0:
            if value is not None:
                self.finish(value[0])
                return
            self.state = "waiting"
            if self.ending is not None:  # its timeout came while it looked
                self.end(self.ending)
        elif value[0]:  # cancelled before the shard served it
            self.finish(self.ending)
        # else: the shard served it first, and its reply is the event that follows

    # -- several shards: the twin as a coordination --------------------------------------

    def _look(self, first: bool) -> None:
        server = self.blocking.server
        self.state = "trying"
        plan = self._wrapped(self.shape.plan(self.spec, self.client, self.argv, first), first)
        held = sorted({server.shard_of_key(step.key) for step in plan.reads})
        Coordination(server, self, "look", plan, held).start()

    def _wrapped(self, plan: Plan, first: bool) -> Plan:
        """The twin's plan, with the waiters' writes added to its decision."""

        def decide(results: list[Any]) -> Any:
            decision = plan.decide(results)
            if isinstance(decision, Plan):
                return self._wrapped(decision, first)
            reply, writes = decision
            if reply != self.shape.nothing(self.enc):
                self.state = "popped"
                return reply, writes + self._cancels()
            if self.ending is not None:
                self.state = "ended"
                return self.ending, self._cancels()
            self.state = "rewait"
            if first:
                self.registered = True
                return reply, self._registrations()
            return reply, self._on_each_shard([b"@brearm", self.blocking.server.index, self.id])

        return Plan(plan.reads, decide, plan.hold_all)

    def _keys_by_shard(self) -> dict[int, list[bytes]]:
        server = self.blocking.server
        by_shard: dict[int, list[bytes]] = {}
        for key in self.shape.keys(self.argv):
            by_shard.setdefault(server.shard_of_key(key), []).append(key)
        return by_shard

    def _registrations(self) -> list[Step]:
        index = self.blocking.server.index
        return [
            Step(keys[0], [b"@bwait", index, self.id, *keys])
            for keys in self._keys_by_shard().values()
        ]

    def _on_each_shard(self, argv: list) -> list[Step]:
        return [Step(keys[0], argv) for keys in self._keys_by_shard().values()]

    def _cancels(self) -> list[Step]:
        if not self.registered:
            return []
        self.registered = False
        return self._on_each_shard([b"@bcancel", self.blocking.server.index, self.id])

    def fill(self, _entry: Any, reply: bytes) -> None:
        """A look's coordination has answered (as a client's entry would be filled)."""
        if self.state == "rewait" and not is_error(reply):
            self.state = "waiting"
            if self.ending is not None:  # the timeout came after the look decided
                self.end(self.ending)
            elif self.again:  # a key became ready before this look's writes all answered
                self.again = False
                self._look(first=False)
            return
        self.finish(reply)

    def ready(self) -> None:
        """A shard has something for this remote waiter: look again."""
        if self.state == "waiting":
            self._look(first=False)
        elif self.state in ("trying", "rewait"):
            self.again = True

    # -- the end -------------------------------------------------------------------------

    def end(self, reply: bytes) -> None:
        """Stop waiting (timeout, CLIENT UNBLOCK, the client gone) with this reply, unless
        the pop wins the race."""
        if self.state in ("done", "cancelling"):
            return
        self.ending = reply
        if self.state != "waiting":
            return  # the look in flight ends it
        if self.direct:
            self.state = "cancelling"
            part = [b"@bcancel", self.blocking.server.index, self.id]
            self.blocking.server.sequencer.append(self.shards[0], [self.ctx, part], (self, 1))
        else:
            self._send_cancels()
            self.finish(reply)

    def _send_cancels(self) -> None:
        steps = self._cancels()
        if steps:
            server = self.blocking.server
            parts = [(server.shard_of_key(step.key), step.argv) for step in steps]
            server.sequencer.step(self.ctx, parts, DISCARD)

    def finish(self, reply: bytes) -> None:
        if self.state == "done":
            return
        self.state = "done"
        if self.timer is not None:
            self.timer.cancel()
        self._send_cancels()  # a remote wait that failed: its waiters go too
        self.blocking.waits.pop(self.id, None)
        client = self.client
        if client.blocked is self:
            client.blocked = None
        if not client.closed:
            client.fill(self.entry, reply)

    def client_gone(self) -> None:
        self.end(TIMED_OUT[self._protocol])


def block(server: Any, client: Any, spec: Any, argv: list) -> None:
    """BLOCK route: the twin now, and a wait when it finds nothing."""
    checked = checked_shards(server, client, spec, argv)
    if checked.__class__ is bytes:
        client.reply(checked)
        return
    argv, shards = checked
    if not SHAPES[spec.wire_name].blocks(argv):  # XREAD without BLOCK: a plain command
        coordinate(server, client, spec, argv)
        return
    argv[0] = spec.wire_name
    server.blocking.start(client, spec, argv, shards)
