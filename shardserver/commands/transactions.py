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

Not yet: WATCH and UNWATCH (issue 11), and, inside MULTI, a conditional command whose keys
span shards (MSETNX, RENAME, SMOVE, LMOVE ... across shards need a coordination, several
steps): it is refused when queued, which fails the transaction, rather than run torn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shardserver.commands.spec import Later, Route, local
from shardserver.coordination import checked_shards
from shardserver.errors import error
from shardserver.receivers import merged
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
    return b"+OK\r\n"


def queue(session: Any, spec: Any, argv: list[bytes]) -> bytes:
    """Queue a command that passed the dispatcher's checks; a command we cannot run as part
    of one step is refused here, failing the transaction."""
    if spec.route is Route.COORD:
        checked = checked_shards(session.server, session, spec, argv)
        if checked.__class__ is not bytes and len(checked[1]) > 1:
            session.multi_failed = True
            return error(
                f"ERR '{spec.name}' over keys on several shards is not supported inside MULTI yet"
            )
    session.multi.append((spec, argv))
    return QUEUED


def exec_(session: Any, argv: list[bytes]) -> bytes | Later:
    queued = session.multi
    if queued is None:
        return _EXEC_WITHOUT
    failed = session.multi_failed
    session.multi = None
    session.multi_failed = False
    if failed:
        return _EXECABORT
    return _run(session, queued)


def _run(session: Any, queued: list[tuple[Any, list[bytes]]]) -> bytes | Later:
    """Every queued command's runs in one step; the replies, in order, in one array."""
    server = session.server
    replies: list[Any] = []
    parts: list[tuple[int, list]] = []
    contexts: list[int] = []
    waiting: list[tuple[int, asyncio.Future]] = []
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
    if not parts and not waiting:
        return _array(replies, [])
    future = server.loop.create_future()
    receiver = _Replies(future, replies, len(parts), len(waiting))
    for slot, later in waiting:
        later.add_done_callback(lambda done, slot=slot: receiver.answered(slot, done))
    if parts:
        server.sequencer.step(session.ctx, parts, receiver, contexts=contexts)
    return Later(future)


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
    local("exec", exec_, notes="WATCH not yet; see the module docstring"),
    local("discard", discard),
]
