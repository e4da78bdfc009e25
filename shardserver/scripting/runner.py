"""Scripts that run inside a shard: the fast path of EVAL, EVALSHA and FCALL.

When every key a script declares lives on one shard (and the acceptor has seen the script
keep to its shard), the acceptor sends it there as one internal part, ``@eval``, and the
shard runs it to its end between two of its other commands: nothing else runs on the shard
meanwhile, so the script is atomic, and it costs one crossing, like a GET. Its
``redis.call``\\ s run the shard's current handler table, so every write is logged, moves
WATCH versions, wakes blocked clients and notifies, exactly as the same command sent alone.

A ``redis.call`` this shard cannot run alone (a key of another shard, a command over every
shard such as DBSIZE or SCAN, one the acceptor answers such as INFO) stops the script
(:class:`~shardserver.scripting.environment.Abort`). If it wrote nothing yet, the part says
so and the acceptor runs the script again as a coordination over every shard
(:mod:`shardserver.scripting.held`), where every call works; its reads here left nothing
behind (the notifications they queued are dropped). If it had written, those writes stay,
as a failing Redis script's do, and the reply is an error that says why.

``@eval sha body read_only protocol numkeys key... arg...`` (``body`` empty when the shard
should have the script compiled already) returns ``(RAN, reply)``, ``(ESCAPED, reason)`` or
``(UNKNOWN,)`` (a restarted shard that lost its scripts: the acceptor sends the body).
``@fcall name fcall called read_only protocol numkeys key... arg...`` (``fcall called``: the
command and function name as the client wrote them, for FUNCTION STATS) runs a FUNCTION LOAD
function the same way; ``@function-load mode code``, ``@function-delete mode name`` and
``@function-flush mode`` keep the shard's libraries as the acceptors' (every shard has every
library), and ``@function-codes`` answers their code, in load order. ``mode`` is ``log`` for
the change as the acceptor that made it sends it, ``copy`` for what another acceptor, or an
acceptor that starts, sends again: shard 0 logs the ``log`` ones (docs/persistence.md,
"Functions"), so each
change is in the log once. ``@script-flush`` forgets every script. ``@clock ms`` stops the
shard's clock at a held script's start (:mod:`shardserver.scripting.held`), ``@clock``
starts it again.
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import Route, key_positions
from shardserver.errors import NOREPLICAS, error
from shardserver.keyspace import now_ms
from shardserver.persistence import aof
from shardserver.resp import Resp2, Resp3
from shardserver.scripting.board import ScriptBoard
from shardserver.scripting.calls import answered_here, checked, refused_name
from shardserver.scripting.environment import KILLED, Abort, Engine, Killed
from shardserver.scripting.functions import metadata
from shardserver.slots import shard_table, slot_for_key

RAN = 0
ESCAPED = 1
UNKNOWN = 2

_ENCODERS = (None, None, Resp2, Resp3)
_WROTE_THEN_ESCAPED = error(
    "ERR this script wrote, then called a command over keys of another shard: its keys are "
    "not all declared (redis-clone runs it on one shard); it will run over every shard from "
    "now on"
)


class ShardScripts:
    """One shard's Lua interpreter, its compiled scripts, and the script running now."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.engine = Engine(self._call)
        count = int(shard.settings.get("shards", 1))
        table = shard_table(count)
        #: Which slots are this shard's: a script's key outside them makes it escape.
        self.owned = bytes(1 if owner == shard.index else 0 for owner in table)
        self.single = count == 1
        self.db: Any = None
        self.read_only = False
        self.wrote = False
        #: Whether a script runs here now (SORT then sorts what it would leave unsorted).
        self.running = False
        #: Shared with the acceptors (:mod:`shardserver.scripting.board`): they read that a
        #: script runs here, and ask it to stop; None in a shard made without a server.
        self.board: ScriptBoard | None = None
        self.engine.tick = self._tick
        #: FUNCTION LOAD's libraries' code by name, in load order: what shard 0 writes in
        #: its snapshot fragment and log base, and tells an acceptor that starts.
        self.library_code: dict[bytes, bytes] = {}
        #: DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call DEBUG.
        self.deny_disabled = False

    def attach(self, board: ScriptBoard) -> None:
        """The server's script board: this shard's row, and math.random's sequence."""
        self.board = board
        self.engine.random = board.random

    def run(self, db: Any, argv: list[bytes]) -> tuple:
        """``@eval``: run a script on this shard (see the module's docstring)."""
        sha, body, read_only, protocol = argv[1], argv[2], argv[3] == b"1", int(argv[4])
        engine = self.engine
        if sha not in engine.functions:
            if not body:
                return (UNKNOWN,)
            problem = engine.compile(sha, body)
            if problem is not None:
                return (RAN, problem)
        numkeys = int(argv[5])
        keys, args = argv[6 : 6 + numkeys], argv[6 + numkeys :]
        return self._execute(db, read_only, engine.run, sha, keys, args, protocol)

    def call(self, db: Any, argv: list[bytes]) -> tuple:
        """``@fcall``: FCALL on this shard (see the module's docstring)."""
        name, read_only, protocol = argv[1], argv[4] == b"1", int(argv[5])
        if name not in self.engine.library_functions:
            return (UNKNOWN,)
        keys, args = argv[7 : 7 + int(argv[6])], argv[7 + int(argv[6]) :]
        function = (name, [argv[2], argv[3], argv[6], *keys, *args])
        return self._execute(
            db, read_only, self.engine.call_function, name, keys, args, protocol, function
        )

    def _execute(
        self,
        db: Any,
        read_only: bool,
        runs: Any,
        name: bytes,
        keys: list[bytes],
        args: list[bytes],
        protocol: int,
        function: tuple[bytes, list[bytes]] | None = None,
    ) -> tuple:
        shard = self.shard
        self.db = db
        self.read_only = read_only
        self.wrote = False
        events = len(shard.events)
        board = self.board
        if board is not None:
            board.started(shard.index, now_ms(), function)
        self.running = True
        # expiry decided at the script's start (the batch's time), the deadlines and TTLs
        # its commands compute on the real clock (Shard.clock), as Redis 7.0
        stopped = shard.frozen_ms
        if stopped is None:
            shard.frozen_ms = shard.now
        try:
            reply = runs(name, keys, args, protocol)
        except Abort as abort:
            if self.wrote:
                return (RAN, _WROTE_THEN_ESCAPED)
            del shard.events[events:]
            return (ESCAPED, abort.reason)
        finally:
            self.running = False
            shard.frozen_ms = stopped
            if board is not None:
                board.ended(shard.index)
        return (RAN, reply, self.engine.reply_errors)

    def _tick(self) -> None:
        """Every so many Lua instructions: stop the script if SCRIPT KILL asked, and it
        has not written."""
        board = self.board
        if board is not None and not self.wrote and board.kill_asked(self.shard.index):
            raise Killed(KILLED)

    def forget(self) -> None:
        """``@script-flush``: every script compiled here goes."""
        self.engine.forget()

    # -- FUNCTION LOAD's libraries --------------------------------------------------------

    def load_library(self, code: bytes, replace: bool = True) -> bytes | None:
        """Load a library's code (replacing one of its name, if ``replace``); Redis's error
        reply if it does not load (a library from disk that the acceptors never checked)."""
        parsed = metadata(code)
        if parsed.__class__ is bytes:
            return parsed
        name, source = parsed
        if not replace and name in self.library_code:
            return error(f"ERR Library '{name.decode('utf-8', 'replace')}' already exists")
        loaded = self.engine.load_library(name, source)
        if loaded.__class__ is bytes:
            return loaded
        # A replaced library moves to the end, as in the acceptors' FUNCTION LIST.
        self.library_code.pop(name, None)
        self.library_code[name] = code
        return None

    def delete_library(self, name: bytes) -> None:
        self.engine.delete_library(name)
        self.library_code.pop(name, None)

    def flush_libraries(self) -> None:
        self.engine.flush_libraries()
        self.library_code.clear()

    # -- redis.call ----------------------------------------------------------------------

    def _call(self, argv: list[bytes], resp: int) -> bytes:
        spec = checked(argv, self.read_only, self.deny_disabled)
        if spec.__class__ is not bytes and self.shard.writes_refused and "write" in spec.flags:
            spec = NOREPLICAS  # as Redis's scriptVerifyWriteCommandAllow: no replicas here
        if spec.__class__ is bytes:
            self.shard.errors.rejected_call(refused_name(argv), spec)
            return spec
        route = spec.route
        if route is Route.LOCAL:
            return self._local(spec.name, argv)
        if route is Route.ALL or route is Route.CURSOR:
            raise Abort(f"{spec.name} runs over every shard")
        owned = self.owned
        if not self.single:
            if spec.undeclared_keys is not None and spec.undeclared_keys(argv):
                raise Abort(f"{spec.name} may touch keys of any shard")
            for position in key_positions(spec, argv):
                if not owned[slot_for_key(argv[position])]:
                    raise Abort("a key of another shard")
        if "write" in spec.flags and not self.wrote:
            self.wrote = True
            if self.board is not None:
                self.board.wrote(self.shard.index)
        shard = self.shard
        shard.calls[spec.wire_name] += 1
        line = [spec.wire_name, *argv[1:]]
        try:
            reply = shard.handlers[spec.wire_name](shard, self.db, line, _ENCODERS[resp])
        except Exception as problem:  # as in execute_batch: a bug costs this command
            reply = shard._internal_error(line, problem)
        if reply[:1] == b"-":  # counted here, as execute_batch counts its commands' errors
            shard.errors.failed_call(spec.wire_name, reply)
        return reply

    def _local(self, name: str, argv: list[bytes]) -> bytes:
        """The commands the acceptor answers that a script's shard answers the same."""
        answered = answered_here(name, argv, len(self.shard.dbs))
        if answered is None:
            raise Abort(f"{name} is answered by the acceptor")
        reply, index = answered
        self.shard.calls[name.encode()] += 1
        if reply[:1] == b"-":
            self.shard.errors.failed_call(name, reply)
        if index is not None:
            self.db = self.shard.dbs[index]
        return reply


def _load_library(shard: Any, db: Any, argv: list[bytes]) -> list:
    """``@function-load mode code``: a library, as FUNCTION LOAD checked it."""
    problem = shard.scripts.load_library(argv[2])
    if problem is None and argv[1] == b"log":
        shard.persistence.library_changed(aof.library_record(argv[2]))
    return [problem]


def _delete_library(shard: Any, db: Any, argv: list[bytes]) -> None:
    """``@function-delete mode name``."""
    shard.scripts.delete_library(argv[2])
    if argv[1] == b"log":
        shard.persistence.library_changed(aof.command(b"FUNCTION", b"DELETE", argv[2]))


def _flush_libraries(shard: Any, db: Any, argv: list[bytes]) -> None:
    """``@function-flush mode``."""
    shard.scripts.flush_libraries()
    if argv[1] == b"log":
        shard.persistence.library_changed(aof.command(b"FUNCTION", b"FLUSH"))


def _clock(shard: Any, db: Any, argv: list[bytes]) -> None:
    """``@clock [ms]``: the shard's clock stopped at ``ms`` (a held script's start, as Redis
    decides expiry at its script's start however long it runs), or going again."""
    shard.freeze_clock(int(argv[1]) if len(argv) > 1 else None)


INTERNAL_PARTS = {
    b"@clock": _clock,
    b"@eval": lambda shard, db, argv: shard.scripts.run(db, argv),
    b"@fcall": lambda shard, db, argv: shard.scripts.call(db, argv),
    b"@script-flush": lambda shard, db, argv: shard.scripts.forget(),
    b"@function-load": _load_library,
    b"@function-delete": _delete_library,
    b"@function-flush": _flush_libraries,
    b"@function-codes": lambda shard, db, argv: list(shard.scripts.library_code.values()),
}
