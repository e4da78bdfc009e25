"""Transactions (Redis's ``multi.c``): MULTI, EXEC, DISCARD.

After MULTI a client's commands are checked and queued (``+QUEUED``) instead of run; a
command refused at that point (unknown, wrong arity, not authenticated ...) marks the
transaction failed, and EXEC then discards it with ``-EXECABORT``. EXEC runs the queue as
**one step** of the command order (:meth:`shardserver.sequencer.Sequencer.step`): every
queued command becomes the runs its route makes of it (:data:`shardserver.routing.PLANNERS`:
a native run on its key's shard, or the internal parts of a multi-shard or fan-out command),
all queued in one go, so the transaction takes effect at one point of the order on every
shard it touches, as MSET does, and no client sees part of it (docs/architecture.md). The
commands the acceptor answers itself (PING, ECHO, SELECT ...) run when EXEC is dispatched,
their replies in their places; a SELECT moves the commands after it to its database. One
that asks the shards (INFO, SAVE) takes its cut as it runs, so before the transaction's
writes, wherever it stands in the queue.

WATCH registers its keys on their shards (:mod:`shardserver.watching`: a version per key,
moved by every write that names it, by its expiry, by a FLUSHDB/FLUSHALL/SWAPDB that
removes it). A watching client's EXEC holds every shard, reads the versions again and
decides: if one moved, the null array and nothing runs; else the queued commands go at the
hold point, first on every shard, and the holds are released. So the check and the
transaction take effect at one point of the order.

A transaction with a conditional command over keys on several shards (RENAME, MSETNX,
SMOVE, LMOVE ... across shards: each reads, decides and writes), or with a script, holds
every shard too and runs at the hold point command by command (:class:`_Rounds`): such a
command's reads are answered and its plan decides before what follows is queued behind its
writes; a script runs to its end there (:mod:`shardserver.scripting.held`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shardserver.commands.multikey import Plan
from shardserver.commands.spec import COORDINATED, Later, Route, local
from shardserver.coordination import checked_shards, step_ctx
from shardserver.errors import error, first_error, is_error
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.receivers import DISCARD, Relay, merged
from shardserver.routing import PLANNERS

log = logging.getLogger("shardserver.transactions")

QUEUED = b"+QUEUED\r\n"
#: Commands that run at once inside MULTI instead of being queued (as Redis's processCommand
#: has it).
NOT_QUEUED = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
_NESTED = error("ERR MULTI calls can not be nested")
_EXEC_WITHOUT = error("ERR EXEC without MULTI")
_DISCARD_WITHOUT = error("ERR DISCARD without MULTI")
_EXECABORT = error("EXECABORT Transaction discarded because of previous errors.")
_WATCH_IN_MULTI = error("ERR WATCH inside MULTI is not allowed")


def multi(session: Any, argv: list[bytes]) -> bytes:
    if session.multi is not None:
        return _NESTED  # does not fail the transaction: Redis goes on queueing
    session.multi = []
    session.multi_failed = False
    return b"+OK\r\n"


def discard(session: Any, argv: list[bytes]) -> bytes:
    if session.multi is None:
        return _DISCARD_WITHOUT
    session.multi = None
    session.multi_failed = False
    unwatch_all(session)
    return b"+OK\r\n"


def watch(session: Any, argv: list[bytes]) -> bytes | Later:
    """Register the keys on their shards; their versions arrive with the shards' answers
    (before any later EXEC of this client reads them again: same shards, later in order)."""
    if session.multi is not None:
        return _WATCH_IN_MULTI
    db = session.db
    by_shard: dict[int, list[bytes]] = {}
    for key in dict.fromkeys(argv[1:]):
        if (db, key) not in session.watched:  # watched already: the first WATCH counts
            session.watched[(db, key)] = None
            by_shard.setdefault(session.server.shard_of_key(key), []).append(key)
    if not by_shard:
        return b"+OK\r\n"
    future = session.server.loop.create_future()
    parts = [(shard, [b"@watch", *keys]) for shard, keys in by_shard.items()]
    receiver = _Versions(future, session.watched, db, list(by_shard.values()))
    session.server.sequencer.step(session.ctx, parts, receiver)
    return Later(future)


def unwatch(session: Any, argv: list[bytes]) -> bytes:
    unwatch_all(session)
    return b"+OK\r\n"


def unwatch_all(session: Any) -> None:
    """Forget every key the client watches, here and on the shards (EXEC, DISCARD, UNWATCH,
    RESET, the connection's end)."""
    watched = session.watched
    if not watched:
        return
    session.watched = {}
    server = session.server
    by_place = _by_place(server, watched)
    parts = [(shard, [b"@unwatch", *keys]) for (shard, _db), keys in by_place.items()]
    contexts = [db * 2 for _shard, db in by_place]
    server.sequencer.step(0, parts, DISCARD, contexts=contexts)


def _by_place(server: Any, watched: dict) -> dict[tuple[int, int], list[bytes]]:
    """Watched keys by (shard, database)."""
    by_place: dict[tuple[int, int], list[bytes]] = {}
    for db, key in watched:
        by_place.setdefault((server.shard_of_key(key), db), []).append(key)
    return by_place


class _Versions:
    """Receives WATCH's parts: each key's version, into the client's watched keys."""

    __slots__ = ("future", "watched", "db", "keys", "remaining", "problem")

    def __init__(self, future: asyncio.Future, watched: dict, db: int, keys: list) -> None:
        self.future = future
        self.watched = watched
        self.db = db
        self.keys = keys
        self.remaining = len(keys)
        self.problem: bytes | None = None

    def deliver(self, index: int, value: Any) -> None:
        if value.__class__ is bytes:  # the shard failed: those keys count as changed
            self.problem = value
        else:
            for key, version in zip(self.keys[index], value, strict=True):
                if (self.db, key) in self.watched:
                    self.watched[(self.db, key)] = version
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(self.problem or b"+OK\r\n")


def queue(session: Any, spec: Any, argv: list[bytes]) -> bytes:
    """Queue a command that passed the dispatcher's checks."""
    session.multi.append((spec, argv))
    return QUEUED


def _conditional(session: Any, queued: list[tuple[Any, list[bytes]]]) -> bool:
    """Whether a queued command needs a coordination: a conditional command (RENAME,
    MSETNX, SMOVE ...) over keys on several shards, or a script (which may touch any key)."""
    for spec, argv in queued:
        if spec.route is Route.SCRIPT:
            return True
        if spec.route in COORDINATED:
            checked = checked_shards(session.server, session, spec, list(argv))
            if checked.__class__ is not bytes and len(checked[1]) > 1:
                return True
    return False


def exec_(session: Any, argv: list[bytes]) -> bytes | Later:
    queued = session.multi
    if queued is None:
        return _EXEC_WITHOUT
    failed = session.multi_failed
    session.multi = None
    session.multi_failed = False
    if failed:
        unwatch_all(session)
        return _EXECABORT
    if not session.user.unrestricted:  # ACL rules may have changed since the queueing
        queued = session.server.acl.recheck(session, queued)
    rounds = _conditional(session, queued)
    if session.watched or rounds:
        watched = session.watched
        session.watched = {}
        future = session.server.loop.create_future()
        _HeldExec(session, queued, watched, future, rounds).start()
        return Later(future)
    return _run(session, queued)


def _run(session: Any, queued: list[tuple[Any, list[bytes]]]) -> bytes | Later:
    """Every queued command's runs in one step; the replies, in order, in one array."""
    plan = _Transaction(session, queued)
    if not plan.parts and not plan.waiting:
        return _array(plan.replies, [])
    future = session.server.loop.create_future()
    receiver = plan.receiver(future)
    if plan.parts:
        parts = plan.parts
        monitors = session.server.monitors
        if monitors.riding is not None:  # the lowest shard writes EXEC's lines
            parts = monitors.carry_step(session.ctx, parts, plan.contexts)
        session.server.sequencer.step(session.ctx, parts, receiver, contexts=plan.contexts)
    return Later(future)


class _Transaction:
    """What a queue of commands becomes: per command a reply known now, or the runs its
    route makes of it; the runs in order, each with its database."""

    def __init__(self, session: Any, queued: list[tuple[Any, list[bytes]]]) -> None:
        server = session.server
        replies: list[Any] = []
        parts: list[tuple[int, list]] = []
        contexts: list[int] = []
        waiting: list[tuple[int, asyncio.Future]] = []
        written: set[int] = set()
        for spec, argv in queued:
            if spec.route is Route.LOCAL:
                reply = _local(session, spec, argv)
                if reply.__class__ is Later:  # INFO, SAVE ...: its reply comes later
                    waiting.append((len(replies), reply.future))
                    reply = None
                replies.append(reply)
                continue
            planned = PLANNERS[spec.route](server, session, spec, argv)
            if planned.__class__ is bytes:
                replies.append(planned)
                continue
            if planned is None:  # a COORD command's keys moved shards since it was queued
                replies.append(error(f"ERR '{spec.name}' over keys on several shards"))
                continue
            replies.append((len(parts), len(planned.parts), planned.merge))
            parts.extend(planned.parts)
            contexts.extend([session.ctx] * len(planned.parts))
            if "write" in spec.flags:
                written.update(shard for shard, _argv in planned.parts)
        if written:
            parts, contexts, replies = _served_after(session, written, parts, contexts, replies)
        if session.tracking is not None:  # reads inside a transaction are tracked too
            parts = server.tracking.wrap_parts(session, parts)
        self.replies = replies
        self.parts = parts
        self.contexts = contexts
        self.waiting = waiting

    def receiver(self, future: asyncio.Future) -> _Replies:
        """The receiver of the runs' values, which resolves ``future`` with the array."""
        receiver = _Replies(future, self.replies, len(self.parts), len(self.waiting))
        for slot, later in self.waiting:
            later.add_done_callback(lambda done, slot=slot: receiver.answered(slot, done))
        return receiver


def _served_after(
    session: Any, shards: set[int], parts: list, contexts: list, replies: list
) -> tuple[list, list, list]:
    """The runs with a ``@txbegin`` before and a ``@txend`` after each written shard's:
    clients blocked on a key the transaction pushes to are served after it, as Redis
    serves them after EXEC (a push and a pop inside it leave nothing for the waiter)."""
    begin = [(shard, [b"@txbegin"]) for shard in sorted(shards)]
    end = [(shard, [b"@txend"]) for shard in sorted(shards)]
    shift = len(begin)
    moved = [
        (reply[0] + shift, *reply[1:]) if reply.__class__ is tuple else reply for reply in replies
    ]
    ctx = [session.ctx] * shift
    return begin + parts + end, ctx + contexts + ctx, moved


class _HeldExec:
    """An EXEC that holds every shard: a watching client's (the watched versions read
    again: if one moved, the null array and nothing runs) or one with conditional commands
    across shards (run command by command at the hold point: :class:`_Rounds`)."""

    def __init__(
        self,
        session: Any,
        queued: list,
        watched: dict,
        future: asyncio.Future,
        rounds: bool,
    ) -> None:
        self.session = session
        self.queued = queued
        self.watched = watched
        self.future = future
        self.rounds = rounds
        self.shards = list(range(session.server.shard_count))
        self.reads: list[tuple[int, int, list]] = []
        self.values: list[Any] = []
        self.remaining = 0

    def start(self) -> None:
        server = self.session.server
        self.reads = [
            (shard, db * 2, [b"@watched", *keys])
            for (shard, db), keys in _by_place(server, self.watched).items()
        ]
        reads = self.reads
        if server.monitors.riding is not None:  # the lowest shard writes EXEC's lines
            reads = server.monitors.carry_hold(self.shards, reads)
        count = server.sequencer.hold(self, self.shards, reads, self)
        self.values = [None] * count
        self.remaining = count

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if not self.remaining:
            self._decide()

    def _decide(self) -> None:
        sequencer = self.session.server.sequencer
        failed = first_error(self.values)
        if failed is not None or self._moved():
            sequencer.release(self, self.shards, {})
            self.future.set_result(failed or self.session.enc.NULL_ARRAY)
            return
        if self.rounds:
            _Rounds(self, self.queued).next()
            return
        try:
            plan = _Transaction(self.session, self.queued)
        except Exception as problem:
            log.exception("a watched transaction failed")
            sequencer.release(self, self.shards, {})
            self.future.set_result(error(f"ERR internal error: {type(problem).__name__}"))
            return
        receiver = plan.receiver(self.future)
        writes: dict[int, list] = {}
        for index, (shard, argv) in enumerate(plan.parts):
            writes.setdefault(shard, []).append(([plan.contexts[index], argv], (receiver, index)))
        sequencer.release(self, self.shards, writes)
        if not plan.parts and not plan.waiting:
            self.future.set_result(_array(plan.replies, []))

    def _moved(self) -> bool:
        """Whether a watched key's version differs from the one its WATCH got."""
        for (_shard, db, argv), versions in zip(self.reads, self.values, strict=False):
            for key, version in zip(argv[1:], versions, strict=True):
                if version is None or version != self.watched.get((db, key)):
                    return True
        return False


class _Rounds:
    """A transaction with conditional commands across shards, run at its EXEC's hold point
    on every shard, command by command: a conditional command's reads are queued there and
    answered, its plan decides, its writes are queued there, and only then what follows, so
    every command sees the effects of those before it, and nothing of any other client runs
    in between (all shards are held until the last command is queued)."""

    def __init__(self, owner: _HeldExec, queued: list) -> None:
        self.owner = owner
        self.session = owner.session
        self.queued = queued
        self.position = 0
        #: Per command: its reply, (first value, count, merge) over ``values``, or None
        #: until it is known.
        self.replies: list[Any] = []
        self.values: list[Any] = []
        self.outstanding = 0
        self.queued_all = False
        self.plan: Any = None
        self.plan_slot = 0
        self.plan_ctx = 0
        self.plan_values: list[Any] = []
        self.plan_remaining = 0
        self.parts = Relay(self._part)
        self.reads = Relay(self._read)
        self.acks = Relay(self._ack)

    def _segments(self) -> dict[int, tuple[list, list]]:
        return self.session.server.sequencer.at_hold(self.owner, self.owner.shards)

    def next(self) -> None:
        """Queue the commands from the current one on, up to a conditional one across
        shards (whose reads go out: the rest waits for its decision)."""
        session = self.session
        server = session.server
        at = self._segments()
        while self.position < len(self.queued):
            spec, argv = self.queued[self.position]
            self.position += 1
            if spec.route is Route.LOCAL:
                reply = _local(session, spec, argv)
                if reply.__class__ is Later:
                    slot = len(self.replies)
                    self.outstanding += 1
                    reply.future.add_done_callback(lambda done, slot=slot: self._later(slot, done))
                    reply = None
                self.replies.append(reply)
                continue
            if spec.route is Route.SCRIPT:
                prepared = server.scripts.prepare(spec.name, argv)
                if prepared.__class__ is bytes:
                    ERRORS.script_replied(spec.name, prepared, None)
                    self.replies.append(prepared)
                    continue
                slot = len(self.replies)
                self.replies.append(None)
                server.scripts.run_held(
                    session,
                    lambda reply, slot=slot: self._scripted(slot, reply),
                    prepared,
                    owner=self.owner,
                    name=spec.name,
                )
                return
            if spec.route in COORDINATED:
                checked = checked_shards(server, session, spec, argv)
                if checked.__class__ is not bytes and len(checked[1]) > 1:
                    self.plan_slot = len(self.replies)
                    self.replies.append(None)
                    try:
                        plan = spec.plan(session, checked[0])
                    except Exception as problem:
                        log.exception("a coordinated command's plan failed inside EXEC")
                        self.replies[-1] = error(f"ERR internal error: {type(problem).__name__}")
                        continue
                    self.plan_ctx = session.ctx
                    self._queue_reads(plan, at)
                    return
            planned = PLANNERS[spec.route](server, session, spec, argv)
            if planned.__class__ is bytes or planned is None:
                self.replies.append(planned or error(f"ERR '{spec.name}' failed to plan"))
                continue
            self.replies.append((len(self.values), len(planned.parts), planned.merge))
            for shard, part in planned.parts:
                self.outstanding += 1
                self._append(at, shard, session.ctx, part, (self.parts, len(self.values)))
                self.values.append(None)
        self.queued_all = True
        server.sequencer.release(self.owner, self.owner.shards, {})
        self._maybe_done()

    def _append(self, at: dict, shard: int, ctx: int, argv: list, target: tuple) -> None:
        runs, targets = at[shard]
        if self.session.tracking is not None:
            argv = self.session.server.tracking.wrap(self.session, argv)
        runs.append([ctx, argv])
        targets.append(target)
        self.session.server.sequencer.schedule_flush()

    def _queue_reads(self, plan: Any, at: dict) -> None:
        self.plan = plan
        self.plan_values = [None] * len(plan.reads)
        self.plan_remaining = len(plan.reads)
        if not plan.reads:
            self._decide()
            return
        shard_of_key = self.session.server.shard_of_key
        for index, step in enumerate(plan.reads):
            ctx = step_ctx(self.plan_ctx, step.db)
            self._append(at, shard_of_key(step.key), ctx, step.argv, (self.reads, index))

    def _read(self, index: int, value: Any) -> None:
        self.plan_values[index] = value
        self.plan_remaining -= 1
        if not self.plan_remaining:
            self._decide()

    def _decide(self) -> None:
        values = self.plan_values
        failed = first_error(values)
        if failed is not None:
            self.replies[self.plan_slot] = failed
            self.next()
            return
        try:
            decision = self.plan.decide(values)
        except Exception as problem:
            log.exception("a coordinated command's plan failed inside EXEC")
            self.replies[self.plan_slot] = error(f"ERR internal error: {type(problem).__name__}")
            self.next()
            return
        if isinstance(decision, Plan):  # another round of reads
            self._queue_reads(decision, self._segments())
            return
        reply, writes = decision
        self.replies[self.plan_slot] = reply
        at = self._segments()
        shard_of_key = self.session.server.shard_of_key
        for step in writes:
            self.outstanding += 1
            ctx = step_ctx(self.plan_ctx, step.db)
            self._append(at, shard_of_key(step.key), ctx, step.argv, (self.acks, self.plan_slot))
        self.next()

    def _scripted(self, slot: int, reply: bytes) -> None:
        """A script of the transaction ended (at the hold point): on with the rest."""
        self.replies[slot] = reply
        self.next()

    def _part(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.outstanding -= 1
        self._maybe_done()

    def _ack(self, slot: int, value: Any) -> None:
        if is_error(value):  # a write failed (a shard died)
            self.replies[slot] = value
        self.outstanding -= 1
        self._maybe_done()

    def _later(self, slot: int, done: asyncio.Future) -> None:
        self.replies[slot] = Later.result(done)
        self.outstanding -= 1
        self._maybe_done()

    def _maybe_done(self) -> None:
        future = self.owner.future
        if self.queued_all and not self.outstanding and not future.done():
            future.set_result(_array(self.replies, self.values))


def _local(session: Any, spec: Any, argv: list[bytes]) -> bytes | Later:
    try:
        reply = spec.run(session, argv)
    except Exception as problem:
        log.exception("command %r failed inside EXEC", spec.name)
        return error(f"ERR internal error: {type(problem).__name__}")
    if reply.__class__ is bytes or reply.__class__ is Later:
        return reply
    return error(f"ERR '{spec.name}' cannot run inside MULTI")  # SHUTDOWN


class _Replies:
    """Receives a transaction's parts; once all are in, the EXEC array."""

    __slots__ = ("future", "replies", "values", "remaining")

    def __init__(self, future: asyncio.Future, replies: list, parts: int, later: int) -> None:
        self.future = future
        #: Per command: its reply (bytes), (first part, parts, merge) for runs on shards, or
        #: None until a command the acceptor answers later has answered.
        self.replies = replies
        self.values: list[Any] = [None] * parts
        self.remaining = parts + later

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self._one_less()

    def answered(self, slot: int, done: asyncio.Future) -> None:
        """A command the acceptor answers later (its future) has answered."""
        self.replies[slot] = Later.result(done)
        self._one_less()

    def _one_less(self) -> None:
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(_array(self.replies, self.values))


def _array(replies: list, values: list) -> bytes:
    out = [b"*%d\r\n" % len(replies)]
    for reply in replies:
        if reply.__class__ is tuple:
            first, count, merge = reply
            native = merge is None  # the run's reply is the command's
            reply = values[first] if native else merged(values[first : first + count], merge)
        if reply.__class__ is bytes:
            out.append(reply)
        else:  # a reply that came in chunks
            out.extend(bytes(piece) for piece in reply)
    return b"".join(out)


ROWS = [
    local("multi", multi),
    local("exec", exec_),
    local("discard", discard),
    local(
        "watch",
        watch,
        notes="a pop of a missing key or a ZADD of the score a member has fails the EXEC",
    ),
    local("unwatch", unwatch),
]
