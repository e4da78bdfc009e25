"""Debugging sessions of scripts: SCRIPT DEBUG YES|SYNC|NO and the EVAL that follows it.

After ``SCRIPT DEBUG YES`` or ``SYNC`` a client's next EVAL (or EVAL_RO) is a debugging
session, as in Redis 7.0 (``evalGenericCommandWithDebugging``): the script runs over every
shard held (:class:`DebuggedScript`, the held path of :mod:`shardserver.scripting.held`),
with the debugger (:mod:`shardserver.scripting.ldb`) as its line hook. From the EVAL on, the
client's raw input goes to the session (:class:`Session` takes the connection's reader's
place) instead of being parsed as commands, and the debugger's output goes straight to the
socket; its first stop is what the client reads as the EVAL's reply. When the script ends,
the client gets the last lines with ``<endsession>``, then the script's reply, and the
connection is closed, as Redis closes it in both modes. EVALSHA is refused meanwhile, with
Redis's error; FCALL is not debugged (as in Redis).

The two modes (docs/architecture.md, "Debugging scripts"):

- **SYNC**: the script holds every shard, as any held script does: every other client's
  command for a shard waits until the session ends (Redis blocks the whole server), and the
  script's writes stay.
- **YES**: Redis forks and debugs in the child, so nothing the session writes stays. Here
  the session runs on the real data, holding every shard, and keeps an undo record: before
  its first write to a key, the key's DUMP and PEXPIRETIME; when the script ends (however it
  ends), each such key is restored (or deleted), before the shards are released. A write
  that names no key it changes (FLUSHALL, FLUSHDB, SWAPDB, MOVE, COPY ... DB) cannot be undone
  so, and is refused with an error that says so.

Nothing here runs unless a client asked for SCRIPT DEBUG: the EVAL route checks one
attribute of the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shardserver.commands.spec import key_positions
from shardserver.errors import error
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.numbers import parse_int
from shardserver.scripting import calls
from shardserver.scripting.environment import Engine
from shardserver.scripting.held import HeldScript
from shardserver.scripting.ldb import Debugger, encode_logs, lua_side

log = logging.getLogger("shardserver.scripting")

_USE_EVAL = error("ERR Please use EVAL instead of EVALSHA for debugging")
_NOSCRIPT = error("NOSCRIPT No matching script. Please use EVAL.")
#: Writes whose effect reaches past the keys they name: a YES session cannot undo them.
_UNDOABLE_NOT = frozenset({"flushall", "flushdb", "swapdb", "move"})
#: How often a session waiting for input looks whether its client is gone.
_INPUT_POLL_S = 0.1


def route(scripts: Any, client: Any, spec: Any, argv: list[bytes]) -> bool:
    """An EVAL-like command of a client in debug mode: a session for EVAL and EVAL_RO,
    Redis's refusal for EVALSHA; False for FCALL, which runs as always."""
    name = spec.name
    if name.startswith("fcall"):
        return False
    if name.startswith("evalsha"):
        refused = _NOSCRIPT if len(argv[1]) != 40 else _USE_EVAL
        ERRORS.script_replied(name, refused, None)
        client.reply(refused)
        return True
    session = Session(scripts, client, name)
    prepared = scripts.prepare(name, argv)
    if prepared.__class__ is bytes:  # Redis starts the session, then fails the EVAL
        session.finish(prepared)
    else:
        session.start(prepared)
    return True


def run_in_exec(
    scripts: Any, client: Any, done: Callable[[bytes], None], prepared: tuple, owner: Any, name: str
) -> bool:
    """A script EXEC runs for a client in debug mode: EVAL and EVAL_RO are a session at
    the EXEC's hold point (its reply is the EXEC's item, the connection closes after the
    EXEC's reply), EVALSHA Redis's refusal; False for FCALL, which runs as always."""
    if name.startswith("fcall"):
        return False
    if name.startswith("evalsha"):
        ERRORS.script_replied(name, _USE_EVAL, None)
        done(_USE_EVAL)
        return True
    Session(scripts, client, name, done).start(prepared, owner)
    return True


class Session:
    """One debugging session: the client's input in, the debugger's output out, and the
    script's run (in the script thread) between them."""

    def __init__(
        self, scripts: Any, client: Any, name: str, in_exec: Callable[[bytes], None] | None = None
    ) -> None:
        self.scripts = scripts
        self.client = client
        self.name = name
        self.rolls_back = client.script_debug == "yes"
        self.loop = client.server.loop
        #: Inside EXEC: where the script's reply goes (the EXEC's item); else None, and
        #: ``entry`` is the EVAL's reply: the session's last lines and the script's reply.
        #: The lines before go straight to the socket: nothing before the EVAL is unwritten
        #: by then (SCRIPT DEBUG refuses to follow unwritten replies, and the hold waited
        #: for every command before it).
        self.in_exec = in_exec
        self.entry = client.new_entry() if in_exec is None else None
        client.reader = self  # from now on the client's bytes are the debugger's
        self.input: list[bytes] = []
        self.arrived = threading.Condition()
        self.debugger: Debugger | None = None
        self.held: DebuggedScript | None = None
        #: YES: each key written, by (db, key), with its DUMP and PEXPIRETIME replies.
        self.saved: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}

    # -- the client's side (event loop) ------------------------------------------------------

    def start(self, prepared: tuple, owner: Any = None) -> None:
        """Run the prepared script (at ``owner``'s hold point: an EXEC's) as a session."""
        client = self.client
        script, keys, args, read_only = prepared
        run = (script.sha, script.source, keys, args, read_only, None)
        self.debugger = Debugger(
            script.body,
            self._wait_input,
            self._write_threadsafe,
            lambda: int(client.server.config["busy-reply-threshold"]),
        )
        self.held = DebuggedScript(self, self.scripts.thread, client, self.finish, run, owner)
        self.held.start()
        # as Redis logs them (a YES session: in words of its own, there is no child here)
        if self.rolls_back:
            log.warning("Lua debugging session started (changes are rolled back at its end)")
        else:
            log.warning("Redis synchronous debugging eval session started")

    def read(self, data: bytes) -> list:
        """The connection's reader while the session runs: the bytes go to the debugger,
        no command is parsed."""
        with self.arrived:
            self.input.append(data)
            self.arrived.notify()
        return []

    def buffered(self) -> int:
        """What the client sent that the debugger has not taken yet (the query buffer that
        CLIENT LIST shows and client-query-buffer-limit bounds; the debugger's own limit,
        1 MB a command as Redis's, comes first)."""
        return sum(map(len, self.input))

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of what :meth:`buffered` counts (for a log line)."""
        return b"".join(self.input)[:size]

    def _write(self, data: bytes) -> None:
        if not self.client.closed:
            self.client.transport.write(data)

    def finish(self, reply: bytes) -> None:
        """The script ended (its holds are released): the last lines and ``<endsession>``,
        then its reply; then the connection closes, as Redis's ``ldbEndSession`` has it."""
        logs = self.debugger.logs if self.debugger is not None else []
        held = self.held
        ERRORS.script_replied(self.name, reply, held.reply_errors if held is not None else None)
        client = self.client
        client.script_debug = None
        lines = encode_logs([*logs, b"<endsession>"])
        if self.in_exec is not None:  # the EXEC's reply follows, then the connection closes
            self._write(lines)
            self.in_exec(reply)
            client.close_after_reply()
        else:
            # what the client sent behind the EVAL in the same packet is never answered,
            # as in Redis, which closes the connection before reading it
            pending = client.pending
            while pending and pending[-1] is not self.entry:
                pending.pop()
            client.fill(self.entry, lines + reply)
            client.close_after_reply()
        if held is not None:
            log.warning(
                "Lua debugging session ended, its changes rolled back"
                if self.rolls_back
                else "Redis synchronous debugging eval session ended"
            )

    # -- the script's side (script thread) ---------------------------------------------------

    def _wait_input(self) -> bytes | None:
        with self.arrived:
            while not self.input:
                if self.client.closed:
                    return None
                self.arrived.wait(_INPUT_POLL_S)
            data = b"".join(self.input)
            self.input.clear()
            return data

    def _write_threadsafe(self, data: bytes) -> None:
        self.loop.call_soon_threadsafe(self._write, data)

    def run(self, engine: Engine, held: DebuggedScript) -> bytes:
        """Run the script under the debugger (Redis 7.0 compiles a script as a chunk, as
        the engine does: its lines and line events are Redis's); undo a YES session's
        writes."""
        debugger = self.debugger
        problem = engine.compile(held.sha, held.body)
        if problem is not None:
            return problem
        side = lua_side(engine)
        inner = held.call_from_thread
        read_only = held.read_only
        words = held.server.words
        debugger.attach(
            side,
            side.getfenv(engine.functions[held.sha]),
            self._saving(inner) if self.rolls_back else inner,
            lambda argv: calls.checked(argv, read_only, words.deny_scripts_disabled),
            lambda: engine.resp,
        )
        side.hook_target = debugger.line_event
        slots = engine.debugging
        slots[b"breakpoint"] = debugger.breakpoint
        slots[b"debug"] = debugger.debug
        engine.call = debugger.call
        side.install()
        try:
            return engine.run(held.sha, held.keys, held.args, held.protocol)
        finally:
            side.uninstall()
            engine.call = inner
            slots[b"breakpoint"] = None
            slots[b"debug"] = None
            if self.saved:
                self._roll_back(inner)

    def _saving(self, inner: Any) -> Any:
        """YES: the script's calls, each write's keys saved first (their first state)."""

        def call(argv: list[bytes], resp: int) -> bytes:
            spec = self.debugger.checked(argv)
            if spec.__class__ is not bytes and "write" in spec.flags:
                if spec.name in _UNDOABLE_NOT or (
                    spec.name == "copy" and any(arg.lower() == b"db" for arg in argv[3:])
                ):
                    return error(
                        f"ERR redis-clone cannot roll back {spec.name.upper()} at the end of "
                        "a SCRIPT DEBUG YES session: use SCRIPT DEBUG SYNC"
                    )
                db = self.held.session.db
                for position in key_positions(spec, argv):
                    key = argv[position]
                    if (db, key) not in self.saved:
                        dump = inner([b"DUMP", key], 2)
                        self.saved[db, key] = (dump, inner([b"PEXPIRETIME", key], 2))
            return inner(argv, resp)

        return call

    def _roll_back(self, inner: Any) -> None:
        """Every key the YES session wrote, as it was before its first write."""
        for (db, key), (dump, expiry) in self.saved.items():
            inner([b"SELECT", b"%d" % db], 2)
            if not dump.startswith(b"$") or dump.startswith(b"$-1"):
                inner([b"DEL", key], 2)
                continue
            payload = dump[dump.index(b"\r\n") + 2 : -2]
            at = parse_int(expiry[1:-2]) or 0
            if at > 0:
                inner([b"RESTORE", key, b"%d" % at, payload, b"REPLACE", b"ABSTTL"], 2)
            else:
                inner([b"RESTORE", key, b"0", payload, b"REPLACE"], 2)


class DebuggedScript(HeldScript):
    """A held script run by a debugging session: no row on the script board (other
    clients wait for it as Redis's do, rather than get -BUSY, and SCRIPT KILL does not
    reach it)."""

    def __init__(
        self, session: Session, thread: Any, client: Any, done: Any, run: tuple, owner: Any
    ) -> None:
        super().__init__(thread, client, done, run, owner)
        self.debug_session = session

    def call_from_thread(self, argv: list[bytes], resp: int) -> bytes:
        """A command at the hold point, from the script thread."""
        return self._call_from_thread(argv, resp)

    def _run(self, engine: Engine) -> None:
        engine.tick = self._tick
        self.started_us = time.time_ns() // 1000
        try:
            reply = self.debug_session.run(engine, self)
            self.reply_errors = engine.reply_errors
        except Exception as failure:  # a bug costs this session, never the thread
            log.exception("a debugged script failed")
            reply = error(f"ERR internal error: {type(failure).__name__}")
        self.loop.call_soon_threadsafe(self._finish, reply)
