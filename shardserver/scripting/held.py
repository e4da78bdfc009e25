"""Scripts over any keys: a coordination that holds every shard while the script runs.

A script whose keys are on several shards, or that may touch keys it did not declare (as Redis
standalone allows, and RQ's and others' scripts do), cannot run inside one shard. It runs in
the acceptor instead, as a coordination (docs/architecture.md, "Scripts"): every shard is held
(the sequencer's ``hold``, with a barrier on each), and once the barriers have answered,
nothing of any other client runs on any shard until the script ends. The script runs in the
acceptor's script thread, in its own Lua interpreter; each ``redis.call`` crosses to the event
loop, which sends the command to the shards at the hold point, as the command's route plans
it (a native run, the parts of a multi-shard command, a coordinated command's rounds of reads
and its writes), and hands the reply back. When the script returns, the holds are released.

The shards' clocks stand still at the script's start while it runs (Redis decides expiry at
its script's start time, however long the script runs): the first run the script sends to a
shard is ``@clock <start>``, and at its end each such shard gets ``@clock`` (going again),
before the hold is released.

What it costs: a round trip to a shard per ``redis.call`` (and a thread hand-over), with
every shard held for the whole script; the fast path (:mod:`shardserver.scripting.runner`)
is for scripts that keep to one shard.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from shardserver.acl import full_name
from shardserver.commands.multikey import Plan
from shardserver.commands.spec import COORDINATED, LOCAL_CALLS, Later, Route
from shardserver.coordination import checked_shards, step_ctx
from shardserver.errors import NOREPLICAS, error, first_error, is_error
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.memory import OOM, server_full
from shardserver.receivers import DISCARD, Collector, Relay, merged
from shardserver.resp import Resp2, Resp3
from shardserver.routing import PLANNERS
from shardserver.scripting import calls
from shardserver.scripting.environment import KILLED, Engine, Killed

log = logging.getLogger("shardserver.scripting")

_ENCODERS = {2: Resp2, 3: Resp3}


class ScriptThread:
    """The acceptor's thread for scripts that hold every shard, and its Lua interpreter.

    One at a time is all there can be: each holds every shard, and a hold waits for the one
    before it to be released. A daemon thread: a script that loops for ever (and wrote, so
    SCRIPT KILL cannot stop it) must not keep SHUTDOWN NOSAVE from ending the process."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def submit(self, job: Callable[[Engine], None]) -> None:
        """Run ``job(engine)`` in the thread, after the jobs before it."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="scripts", daemon=True)
            self.thread.start()
        self.jobs.put(job)

    def _work(self) -> None:
        engine = Engine(_unset_call)
        while True:
            self.jobs.get()(engine)


def _unset_call(argv: list[bytes], resp: int) -> bytes:
    raise RuntimeError("a script ran without its coordination")


#: Coordinated commands a held script runs by their plan even on one shard.
_PLANNED_IN_SCRIPTS = frozenset({"sort", "sort_ro"})


class _HeldServer:
    """The server as a command the acceptor answers sees it inside a held script: the
    same, except that what it asks of every shard (INFO's numbers) runs at the script's
    hold point; a new step would wait behind the hold for ever."""

    def __init__(self, script: HeldScript) -> None:
        self._script = script
        self._server = script.server

    def call_shards(self, parts: list[list]) -> asyncio.Future:
        script = self._script
        future = script.loop.create_future()
        collector = Collector(future, len(parts))
        at = script.at_hold(script.shards)
        for shard, part in enumerate(parts):
            runs, targets = at[shard]
            runs.append([script.session.ctx, part])
            targets.append((collector, shard))
        self._server.sequencer.schedule_flush()
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class ScriptSession:
    """What a command's planners and merges see of a script: its database and protocol
    (which SELECT and ``redis.setresp`` change), its client for everything else."""

    def __init__(self, client: Any, server: Any = None) -> None:
        self.client = client
        self.server = server if server is not None else client.server
        self.db = client.db
        self.protocol = 2
        self.tracking = None
        self.multi = None
        #: Commands that behave otherwise in scripts (SORT) ask this.
        self.in_script = True

    #: What DEBUG PROTOCOL asks: a script has no connection to push to.
    in_script = True

    @property
    def ctx(self) -> int:
        return self.db * 2 + (1 if self.protocol == 3 else 0)

    @property
    def enc(self) -> type[Resp2]:
        return _ENCODERS[self.protocol]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class HeldScript:
    """One script run over every shard held (see the module's docstring)."""

    def __init__(
        self,
        thread: ScriptThread,
        client: Any,
        done: Callable[[bytes], None],
        run: tuple[bytes, bytes | None, list[bytes], list[bytes], bool, list[bytes] | None],
        owner: Any = None,
        board: tuple[Any, int] | None = None,
    ) -> None:
        self.thread = thread
        self.server = client.server
        self.loop = self.server.loop
        self.session = ScriptSession(client, _HeldServer(self))
        self.done = done
        #: Whose hold the script's commands go at: its own, or an EXEC's that holds every
        #: shard already (and releases them itself).
        self.owner = owner if owner is not None else self
        self.sha, self.body, self.keys, self.args, self.read_only, self.command = run
        self.protocol = client.protocol
        self.shards = list(range(self.server.shard_count))
        self.remaining = 0
        #: The shards the script's keys were on, and whether it needed more than its
        #: shard could give (the acceptor, every shard): the acceptor learns from it
        #: whether the script may take the fast path.
        self.touched: set[int] = set()
        self.beyond = False
        #: The script board and this acceptor's row on it (SCRIPT KILL, -BUSY).
        self.board, self.place = board if board is not None else (None, 0)
        self.wrote = False
        #: A script without a shebang that starts while a shard is out of memory: its
        #: denyoom calls fail until it wrote (Redis's scriptVerifyOOM). A body None is a
        #: function's (they always have flags).
        self.oom = (
            self.body is not None
            and not self.body.startswith((b"#!", b"--#!"))  # a shebang is sent commented
            and server_full()
        )
        #: The error replies in the script's reply, for its error statistics (see
        #: ``Engine.reply_errors``); None when it did not run (it did not compile ...).
        self.reply_errors: list[tuple[bytes, bool]] | None = None
        #: When the script started, in microseconds (where the shards' clocks stand while
        #: it runs), and the shards stopped at it so far.
        self.started_us = 0
        self.frozen: set[int] = set()

    def start(self) -> None:
        if self.owner is not self:
            self.thread.submit(self._run)
            return
        self.remaining = self.server.sequencer.hold(self, self.shards, [], self)

    def deliver(self, index: int, value: Any) -> None:
        """A barrier answered: once all have, this script is first on every shard."""
        self.remaining -= 1
        if not self.remaining:
            self.thread.submit(self._run)

    # -- in the script thread -------------------------------------------------------------

    def _run(self, engine: Engine) -> None:
        engine.call = self._call_from_thread
        engine.tick = self._tick
        user = self.session.client.user
        engine.permits = lambda argv: user.unrestricted or not user.check(full_name(argv), argv)[0]
        self.started_us = time.time_ns() // 1000
        board = self.board
        if board is not None:
            engine.random = board.random
            function = None
            if self.body is None:
                line = [*self.command, b"%d" % len(self.keys), *self.keys, *self.args]
                function = (self.sha, line)
            board.started(self.place, self.started_us // 1000, function)
        try:
            if self.body is None:  # a function (FCALL): its library is loaded in the thread
                reply = engine.call_function(self.sha, self.keys, self.args, self.protocol)
                self.reply_errors = engine.reply_errors
            else:
                problem = engine.compile(self.sha, self.body)
                reply = problem or engine.run(self.sha, self.keys, self.args, self.protocol)
                if problem is None:
                    self.reply_errors = engine.reply_errors
        except Exception as failure:  # a bug costs this script, never the thread
            log.exception("a script over every shard failed")
            reply = error(f"ERR internal error: {type(failure).__name__}")
        finally:
            if board is not None:
                board.ended(self.place)
        self.loop.call_soon_threadsafe(self._finish, reply)

    def _tick(self) -> None:
        if self.board is not None and not self.wrote and self.board.kill_asked(self.place):
            raise Killed(KILLED)

    def _call_from_thread(self, argv: list[bytes], resp: int) -> bytes:
        answer: concurrent.futures.Future = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self._call, argv, resp, answer)
        return answer.result()

    # -- in the event loop ----------------------------------------------------------------

    def _finish(self, reply: bytes) -> None:
        if self.frozen:
            at = self.server.sequencer.at_hold(self.owner, sorted(self.frozen))
            for runs, targets in at.values():
                runs.append([0, [b"@clock"]])
                targets.append((DISCARD, 0))
            self.server.sequencer.schedule_flush()
        if self.owner is self:
            self.server.sequencer.release(self, self.shards, {})
        self.done(reply)

    def _call(self, argv: list[bytes], resp: int, answer: concurrent.futures.Future) -> None:
        try:
            self._dispatch(argv, resp, answer)
        except Exception as failure:
            log.exception("a script's command failed in the acceptor")
            answer.set_result(error(f"ERR internal error: {type(failure).__name__}"))

    def _dispatch(self, argv: list[bytes], resp: int, answer: concurrent.futures.Future) -> None:
        client = self.session.client
        spec = calls.checked(
            argv,
            self.read_only,
            self.server.words.deny_scripts_disabled,
            None if client.user.unrestricted else self._refused_by_acl,
        )
        if spec.__class__ is not bytes and self.server.writes_refused and "write" in spec.flags:
            spec = NOREPLICAS  # as Redis's scriptVerifyWriteCommandAllow: no replicas here
        if self.oom and not self.wrote and spec.__class__ is not bytes and "denyoom" in spec.flags:
            spec = OOM
        if spec.__class__ is bytes:
            ERRORS.rejected_call(calls.refused_name(argv), spec)
            answer.set_result(spec)
            return
        session = self.session
        session.protocol = resp
        if "write" in spec.flags and not self.wrote:
            self.wrote = True
            if self.board is not None:
                self.board.wrote(self.place)
        if spec.route is Route.LOCAL:
            self.beyond = True
            databases = self.server.config["databases"]
            answered = calls.answered_here(spec.name, argv, databases)
            if answered is None:
                self._acceptor_command(spec, argv, answer)
                return
            reply, db = answered
            LOCAL_CALLS[spec.name] += 1
            ERRORS.counted(spec.name, reply, False)
            if db is not None:
                session.db = db
            answer.set_result(reply)
            return
        argv = list(argv)
        if spec.route in COORDINATED:
            checked = checked_shards(self.server, session, spec, argv)
            if checked.__class__ is bytes:
                ERRORS.counted(spec.name, checked, False)
                answer.set_result(checked)
                return
            # SORT always by its plan here: the plan knows the script asks (it sorts an
            # unsorted set's output); a native run on a shard could not tell
            if len(checked[1]) > 1 or spec.name in _PLANNED_IN_SCRIPTS:
                self.beyond = self.beyond or len(checked[1]) > 1
                _Rounds(self, spec.plan(session, checked[0]), answer).read()
                return
        planned = PLANNERS[spec.route](self.server, session, spec, argv)
        if planned.__class__ is bytes:
            answer.set_result(planned)
            return
        if planned is None:
            answer.set_result(error(f"ERR '{spec.name}' failed to plan"))
            return
        shards = {shard for shard, _part in planned.parts}
        self.touched |= shards
        if spec.route is Route.ALL or spec.route is Route.CURSOR:
            self.beyond = True
        receiver = _Answer(answer, planned.merge, len(planned.parts))
        at = self.at_hold(self.shards)
        for index, (shard, part) in enumerate(planned.parts):
            runs, targets = at[shard]
            runs.append([session.ctx, part])
            targets.append((receiver, index))
        self.server.sequencer.schedule_flush()

    def _refused_by_acl(self, spec: Any, argv: list[bytes]) -> bytes | None:
        """The script's caller's ACL rules on one ``redis.call`` (Redis's scriptVerifyACL)."""
        return self.server.acl.script_refusal(self.session.client, spec.name, argv)

    def _acceptor_command(
        self, spec: Any, argv: list[bytes], answer: concurrent.futures.Future
    ) -> None:
        """A command the acceptor answers (PUBLISH, PUBSUB, INFO, COMMAND ...), run as the
        client's own would be, in the script's session; a reply that comes later (PUBLISH's
        count from the other acceptors) answers the script when it comes."""
        reply = spec.run(self.session, argv)
        if reply.__class__ is Later:
            reply.future.add_done_callback(lambda done: answer.set_result(Later.result(done)))
        elif reply.__class__ is bytes:
            answer.set_result(reply)
        else:
            answer.set_result(error(f"ERR '{spec.name}' cannot run inside a script"))

    def at_hold(self, shards: list[int]) -> dict[int, tuple[list, list]]:
        """The sequencer's ``at_hold`` for this script's runs, each shard's clock stopped
        at the script's start before its first one."""
        at = self.server.sequencer.at_hold(self.owner, shards)
        clock = [b"@clock", b"%d" % (self.started_us // 1000)]
        for shard in shards:
            if shard not in self.frozen:
                self.frozen.add(shard)
                runs, targets = at[shard]
                runs.append([0, clock])
                targets.append((DISCARD, 0))
        return at

    def queue(self, shard: int, ctx: int, argv: list, target: tuple) -> None:
        """One run at this script's hold point on ``shard``."""
        self.touched.add(shard)
        runs, targets = self.at_hold([shard])[shard]
        runs.append([ctx, argv])
        targets.append(target)
        self.server.sequencer.schedule_flush()


class _Answer:
    """A command's runs at the hold point: their values, merged, are the script's reply."""

    __slots__ = ("answer", "merge", "values", "remaining")

    def __init__(self, answer: concurrent.futures.Future, merge: Any, parts: int) -> None:
        self.answer = answer
        self.merge = merge
        self.values: list[Any] = [None] * parts
        self.remaining = parts

    def deliver(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if self.remaining:
            return
        if self.merge is None:  # a native run: its reply is the command's
            reply = self.values[0]
            if reply.__class__ is not bytes:  # a reply that came in chunks
                reply = b"".join(bytes(piece) for piece in reply)
        else:
            reply = merged(self.values, self.merge)
        self.answer.set_result(reply)


class _Rounds:
    """A conditional command over several shards inside a held script: its reads at the
    hold point, its plan's decision, its writes there; the reply once they are done."""

    def __init__(self, owner: HeldScript, plan: Plan, answer: concurrent.futures.Future):
        self.owner = owner
        self.plan = plan
        self.answer = answer
        self.ctx = owner.session.ctx
        self.values: list[Any] = []
        self.remaining = 0
        self.reply = b""

    def read(self) -> None:
        reads = self.plan.reads
        self.values = [None] * len(reads)
        self.remaining = len(reads)
        if not reads:
            self._decide()
            return
        shard_of_key = self.owner.server.shard_of_key
        for index, step in enumerate(reads):
            target = (Relay(self._read), index)
            self.owner.queue(shard_of_key(step.key), step_ctx(self.ctx, step.db), step.argv, target)

    def _read(self, index: int, value: Any) -> None:
        self.values[index] = value
        self.remaining -= 1
        if not self.remaining:
            self._decide()

    def _decide(self) -> None:
        failed = first_error(self.values)
        if failed is not None:
            self.answer.set_result(failed)
            return
        decision = self.plan.decide(self.values)
        if isinstance(decision, Plan):
            self.plan = decision
            self.read()
            return
        self.reply, writes = decision
        if not writes:
            self.answer.set_result(self.reply)
            return
        self.remaining = len(writes)
        shard_of_key = self.owner.server.shard_of_key
        for index, step in enumerate(writes):
            target = (Relay(self._written), index)
            self.owner.queue(shard_of_key(step.key), step_ctx(self.ctx, step.db), step.argv, target)

    def _written(self, index: int, value: Any) -> None:
        if is_error(value):
            self.reply = value
        self.remaining -= 1
        if not self.remaining:
            self.answer.set_result(self.reply)
