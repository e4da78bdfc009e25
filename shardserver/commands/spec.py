"""How a command family declares its commands: one :class:`Command` row per command.

Each family module (``strings``, ``keys``, ``multikey``, ``connection``, ``server``) ends with
a ``ROWS`` list; :mod:`shardserver.commands.table` joins them into the one command table and
adds Redis's arity, flags and key positions.

Routes, and the signature of ``run`` for each:

``LOCAL``
    the acceptor answers: ``run(session, argv)`` returns the encoded reply, or
    :class:`Later` (a reply that a future will give: SAVE), or :data:`NO_REPLY` (SHUTDOWN).
``KEY``
    the shard owning the first key: ``run(shard, db, argv, enc) -> bytes``.
``KEYS``
    multi-key, atomic across shards (the keys are where Redis's metadata says, or where the
    row's ``keys(argv)`` says for commands with a ``numkeys`` argument). When every key is
    on one shard, ``run`` as for KEY; otherwise each shard gets its keys and runs
    ``part(shard, db, argv) -> value`` and the acceptor merges:
    ``merge(session, argv, parts, layout) -> bytes``.
``ALL``
    every shard runs ``part(shard, db, argv) -> value``; ``merge(session, argv, parts) ->
    bytes`` gets the values in shard order. ``check(session, argv) -> bytes | None`` may
    refuse the command before anything is sent.
``COORD``
    multi-key with a condition across shards (RENAME, MSETNX, COPY): ``check(session, argv)``
    may refuse it or rewrite argv; one shard runs ``run`` natively when it owns every key;
    otherwise ``plan(session, argv)`` returns a two-phase
    :class:`shardserver.commands.multikey.Plan` that the acceptor's coordinator runs while
    it holds the shards involved (see docs/architecture.md).
``BLOCK``
    a blocking pop: as COORD (its ``run`` and ``plan`` are the non-blocking twin's, which is
    all it does inside MULTI), and when there is nothing to pop the client waits
    (:mod:`shardserver.blocked`).
``SCRIPT``
    EVAL and its kin: the acceptor's script service (:mod:`shardserver.scripting.scripts`)
    sends the script to the one shard of its keys, or runs it with every shard held.
``CURSOR``
    the shard named by the client's cursor (SCAN): ``plan(session, argv)`` returns
    ``(shard, part argv)`` or an error reply; ``merge(session, shard, value) -> bytes``.

A ``part`` returns plain data (None, int, bytes, lists, tuples), which crosses the pipe as is
and is encoded by the acceptor for the client's protocol.

How a write reaches the append-only log (``propagate``, Redis's word for it): by default a
command flagged ``write`` is logged as executed, unless its reply is an error, and replaying
it must give the same effect. A command whose arguments would not replay the same (relative
times, randomness, a float's formatting) says instead:

``Propagate.KEY_STATE``
    log the final state of the keys it names (a rebuild of each key, its deadline included);
``propagate(shard, db, argv, reply) -> list[list[bytes]]``
    log these commands (SPOP as the SREM of what it popped, HINCRBYFLOAT as an HSET of the
    result ...), computed right after the command ran.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.latency import ACCEPTOR as TIMES


class Propagate(enum.Enum):
    """How a write is logged when a row says other than "as executed" (see above)."""

    KEY_STATE = "the final state of its keys"


class Route(enum.Enum):
    LOCAL = "acceptor"
    KEY = "one shard"
    KEYS = "shards of its keys"
    ALL = "all shards"
    COORD = "coordinated"
    CURSOR = "shard named by the cursor"
    BLOCK = "coordinated, waits while there is nothing"
    SCRIPT = "the shard of its keys, or every shard held"


#: Routes that read, decide and write across shards (a BLOCK command is a COORD command
#: that waits when there is nothing to pop).
COORDINATED = frozenset({Route.COORD, Route.BLOCK})


@dataclass(frozen=True)
class Command:
    """One row of the command table, as a family module declares it."""

    name: str
    route: Route
    run: Callable[..., Any] | None = None
    part: Callable[..., Any] | None = None
    merge: Callable[..., bytes] | None = None
    check: Callable[..., Any] | None = None
    plan: Callable[..., Any] | None = None
    propagate: Propagate | Callable[..., list[list[bytes]]] | None = None
    #: For commands whose keys move with their arguments (``numkeys`` ...): the positions of
    #: the keys in argv, once ``check`` (or the handler) has validated the arguments.
    keys: Callable[[list[bytes]], list[int]] | None = None
    #: Whether a command line may touch keys it does not name (SORT ... BY/GET patterns):
    #: then it is coordinated across every shard (its plan sets ``hold_all``), unless the
    #: server has one shard.
    undeclared_keys: Callable[[list[bytes]], bool] | None = None
    notes: str = ""


class Later:
    """A LOCAL handler's reply that is not known yet: the client's entry waits for the
    future, whose result is the encoded reply; replies after it wait behind it."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future

    @staticmethod
    def result(done: asyncio.Future) -> bytes:
        """The reply a finished future gives (an error reply if it failed)."""
        if done.cancelled():
            return b"-ERR the command was cancelled\r\n"
        problem = done.exception()
        if problem is not None:
            return b"-ERR internal error: %b\r\n" % type(problem).__name__.encode()
        return done.result()


class _NoReply:
    """The reply of a command that sends none (SHUTDOWN: the connection just closes)."""

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY = _NoReply()

#: Calls of the commands the acceptor answers itself, by full name (``client|list``), for
#: INFO commandstats (shards count their own).
LOCAL_CALLS: Counter[str] = Counter()


def local(
    name: str, handler: Callable[..., Any], notes: str = "", part: Callable[..., Any] | None = None
) -> Command:
    """A table row for a command the acceptor answers, with its calls counted and timed
    (INFO commandstats and latencystats, SLOWLOG, LATENCY); ``part`` is
    what shards run when the handler asks them (INFO's numbers)."""

    @functools.wraps(handler)
    def run(session: Any, argv: list[bytes]) -> Any:
        start = perf_counter_ns()
        reply = handler(session, argv)
        took = perf_counter_ns() - start  # its execution, as Redis's call() times it
        TIMES.record(name, took)
        if took >= TIMES.watch_ns:
            session.server.introspection.local_was_slow(session, name, argv, took)
        # counted once it has run, as Redis's call() counts (INFO's report does not hold
        # its own call; CONFIG RESETSTAT's own call survives it); its error reply counts
        # here, where the acceptor makes it (one byte to look at)
        if reply.__class__ is Later:
            reply.future.add_done_callback(lambda done: _count_later(name, done))
        else:
            LOCAL_CALLS[name] += 1
            if reply.__class__ is bytes and reply[:1] == b"-":
                ERRORS.failed_call(name, reply)
        return reply

    return Command(name, Route.LOCAL, run, part=part, notes=notes)


def _count_later(name: str, done: asyncio.Future) -> None:
    LOCAL_CALLS[name] += 1
    reply = Later.result(done)
    if reply.__class__ is bytes and reply[:1] == b"-":
        ERRORS.failed_call(name, reply)


def bad_arity(arity: int, count: int) -> bool:
    """Redis's arity rule for ``count`` arguments: positive means exactly, negative at least."""
    return count != arity if arity > 0 else count < -arity


def key_positions(spec: Any, argv: list[bytes]) -> list[int]:
    """Where a command line's keys are: the row's ``keys(argv)``, else Redis's first key,
    last key (negative: from the end) and step."""
    if spec.keys is not None:
        return spec.keys(argv)
    if spec.first_key <= 0:
        return []
    last = spec.last_key if spec.last_key >= 0 else len(argv) + spec.last_key
    return list(range(spec.first_key, min(last, len(argv) - 1) + 1, spec.step or 1))
