"""The acceptor's scripts: the script cache, shebang flags, and where each EVAL runs.

Redis keeps every script EVAL or SCRIPT LOAD saw, by SHA1, until SCRIPT FLUSH. Here the
acceptor keeps the bodies (and tells the other acceptors, so EVALSHA works on every one);
each shard compiles a script the first time it is sent there with its body, and later gets
the SHA alone (a shard that restarted says it lacks the script, and gets the body again).

Where a script runs (docs/architecture.md, "Scripts"):

- the **fast path**, on the one shard that owns every key it declares, as one internal part
  (:mod:`shardserver.scripting.runner`): when the server has one shard, or when this acceptor
  has seen the script run over every shard held and keep to the shard of its keys (a script
  with no keys: touch no key at all). A script that then reaches another shard's key before
  it wrote is run again over every shard; the SHA loses the fast path;
- otherwise **over every shard held** (:mod:`shardserver.scripting.held`): any key, any
  command a script may call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import lupa.lua51 as lua

from shardserver.commands.spec import LOCAL_CALLS
from shardserver.errors import BUSY, BUSY_FUNCTION, NOREPLICAS, NOT_INTEGER, error
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.keyspace import now_ms
from shardserver.memory import OOM, server_full
from shardserver.numbers import parse_int
from shardserver.receivers import DISCARD
from shardserver.resp import ProtocolError, split_inline_args
from shardserver.scripting import debugging
from shardserver.scripting.board import ScriptBoard
from shardserver.scripting.functions import Functions
from shardserver.scripting.held import HeldScript, ScriptThread
from shardserver.scripting.runner import ESCAPED, RAN, UNKNOWN

NOSCRIPT = error("NOSCRIPT No matching script. Please use EVAL.")
_NOTBUSY = error("NOTBUSY No scripts in execution right now.")
_UNKILLABLE = error(
    "UNKILLABLE Sorry the script already executed write commands against the dataset. You can "
    "either wait the script termination or kill the server in a hard way using the SHUTDOWN "
    "NOSAVE command."
)
#: What Redis spends on a cached script besides its body (its SHA, objects, dict entry).
_SCRIPT_OVERHEAD = 120
#: How often an acceptor reads the board for scripts past the threshold.
_BOARD_EVERY_S = 0.02
_NEGATIVE = error("ERR Number of keys can't be negative")
_TOO_MANY = error("ERR Number of keys can't be greater than number of args")
_BAD_NUMKEYS = error("ERR Bad number of keys provided")
_NO_FUNCTION = error("ERR Function not found")
_WRITES_IN_RO = error("ERR Can not execute a script with write flag using *_ro command.")
#: The shebang flags Redis 7.0 knows; ``no-writes`` and ``allow-oom`` change something here
#: (no cluster, no replicas).
SHEBANG_FLAGS = frozenset(
    {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}
)


class Script:
    """A cached script: its body as Lua compiles it, and its shebang's read-only flag; or a
    FUNCTION LOAD function (``source`` None, ``sha`` its name)."""

    __slots__ = ("sha", "body", "source", "read_only", "key", "command", "told")

    def __init__(
        self,
        sha: bytes,
        body: bytes,
        source: bytes | None,
        read_only: bool,
        command: list[bytes] | None = None,
    ) -> None:
        self.sha = sha
        self.body = body
        self.source = source
        self.read_only = read_only
        #: What the fast path is learned by (a function's name cannot be taken for a SHA).
        self.key = sha if source is not None else b"function:" + sha
        #: A function's call as the client wrote it (FCALL and the name): FUNCTION STATS
        #: shows the command line that runs.
        self.command = command
        #: With other acceptors: their answer to the ask sent after the tell that taught
        #: them this script; the first EVAL's reply waits for it (an EVALSHA on any
        #: acceptor after it finds the script). None once known everywhere, or alone.
        self.told: asyncio.Future | None = None


def shebang(body: bytes) -> tuple[bytes, bool] | bytes:
    """The source Lua compiles (a shebang line kept as a comment, so line numbers hold) and
    whether the script may not write; or Redis's error for a bad shebang. Redis splits the
    line as ``sdssplitargs`` does and reads it as a C string (a NUL before its end: no line)."""
    if not body.startswith(b"#!"):
        return body, False
    end = body.find(b"\n")
    if end < 0 or 0 <= body.find(b"\0") < end:
        return error("ERR Invalid script shebang")
    try:
        words = split_inline_args(body[:end])
    except ProtocolError:
        return error("ERR Invalid engine in script shebang")
    if words[0] != b"#!lua":
        return error(
            f"ERR Unexpected engine in script shebang: {words[0].decode('utf-8', 'replace')}"
        )
    read_only = False
    for word in words[1:]:
        text = word.decode("utf-8", "replace")
        if not text.startswith("flags="):
            return error(f"ERR Unknown lua shebang option: {text}")
        for flag in text[6:].split(",") if text[6:] else ():
            if flag not in SHEBANG_FLAGS:
                return error(f"ERR Unexpected flag in script shebang: {flag}")
            read_only = read_only or flag == "no-writes"
    return b"--" + body, read_only


def _refused_oom(body: bytes) -> bool:
    """Whether a script that may write is refused before it runs while a shard is out of
    memory: one with a shebang and no ``allow-oom`` is flagged denyoom in Redis 7.0 (one
    without a shebang runs, and its first denyoom call fails)."""
    if not body.startswith(b"#!"):
        return False
    return b"allow-oom" not in body[: body.find(b"\n")] and server_full()


#: The numkeys nearly every call gives, read without parsing.
_SMALL_NUMKEYS = {b"%d" % count: count for count in range(10)}
#: EVAL and its forms: whether it names its script by SHA, and whether it may not write.
_EVAL_FORMS = {
    "eval": (False, False),
    "evalsha": (True, False),
    "eval_ro": (False, True),
    "evalsha_ro": (True, True),
}


def _keys_and_args(argv: list[bytes], not_integer: bytes) -> tuple[list, list] | bytes:
    """An EVAL-like line's keys and arguments, by its ``numkeys``; or Redis's error
    (``not_integer`` for one that is no integer: EVAL's and FCALL's differ)."""
    numkeys = _SMALL_NUMKEYS.get(argv[2])
    if numkeys is None:
        numkeys = parse_int(argv[2])
        if numkeys is None:
            return not_integer
    if numkeys > len(argv) - 3:
        return _TOO_MANY
    if numkeys < 0:
        return _NEGATIVE
    return argv[3 : 3 + numkeys], argv[3 + numkeys :]


class Scripts:
    """One acceptor's script cache and EVAL dispatch."""

    def __init__(self, server: Any, board: ScriptBoard | None = None) -> None:
        self.server = server
        #: Which scripts run now, in every shard and acceptor; this acceptor's own row.
        self.board = board if board is not None else ScriptBoard(server.shard_count + 1)
        self.place = server.shard_count + server.index if board is not None else server.shard_count
        #: One shard owns every key (a script's keys need no hashing for the fast path).
        self.single = server.shard_count == 1
        #: Whether a script has run past ``busy-reply-threshold``: every command but those
        #: Redis flags ``allow_busy`` gets ``-BUSY`` (read off the board every few ms).
        self.busy = False
        #: What a refused command gets meanwhile: Redis's text names SCRIPT KILL, or
        #: FUNCTION KILL when only functions run long.
        self.busy_reply = BUSY
        self.cache: dict[bytes, Script] = {}
        #: Per shard, the SHAs it was sent with their body (so it has them compiled).
        self.sent: list[set[bytes]] = [set() for _ in range(server.shard_count)]
        #: SHAs seen to keep to the shard of their keys: they take the fast path.
        self.local: set[bytes] = set()
        self.thread = ScriptThread()
        #: FUNCTION LOAD's libraries (FCALL runs their functions the way EVAL runs scripts).
        self.functions = Functions(server, self.thread)
        #: Compiles a new script once, for its error (the shards compile it again).
        self.checker = lua.LuaRuntime(encoding=None, register_eval=False)
        self._loadstring = self.checker.eval("loadstring")
        self._lua_kilobytes = self.checker.eval("function() return collectgarbage('count') end")

    # -- long scripts --------------------------------------------------------------------

    def start(self, loop: Any) -> None:
        """Watch the board while the server runs."""
        loop.call_later(_BOARD_EVERY_S, self._watch_board, loop)

    def _watch_board(self, loop: Any) -> None:
        self.look_at_board()
        loop.call_later(_BOARD_EVERY_S, self._watch_board, loop)

    def look_at_board(self) -> None:
        """Whether a script is past the threshold now (also as soon as one of ours ends)."""
        if self.busy or self.board.running():
            long = self._long_scripts()
            self.busy = bool(long)
            # Redis's -BUSY names the command that stops what runs: SCRIPT KILL for EVAL
            self.busy_reply = BUSY_FUNCTION if long and all(row[3] for row in long) else BUSY

    def _long_scripts(self) -> list[tuple[int, int, bool, bool]]:
        """The scripts that have run past ``busy-reply-threshold``."""
        threshold = int(self.server.config["busy-reply-threshold"])
        now = now_ms()
        return [row for row in self.board.running() if now - row[1] >= threshold]

    def kill(self, functions: bool = False) -> bytes:
        """SCRIPT KILL (FUNCTION KILL with ``functions``): stop every long script (function)
        that has not written; in Redis's order of refusals (nothing runs, it wrote, it is
        of the other kind: the -BUSY that names the other KILL)."""
        long = self._long_scripts()
        if not long:
            return _NOTBUSY
        killable = [row for row in long if not row[2]]
        if not killable:
            return _UNKILLABLE
        chosen = [place for place, _started, _wrote, function in killable if function == functions]
        if not chosen:
            return BUSY if functions else BUSY_FUNCTION
        for place in chosen:
            self.board.ask_kill(place)
        return b"+OK\r\n"

    def running_function(self) -> tuple[bytes, list[bytes], int] | bytes | None:
        """FUNCTION STATS's running_script: the long function's name, command line and
        milliseconds so far; Redis's -BUSY while an EVAL runs long; None when none runs."""
        long = self._long_scripts()
        if any(not row[3] for row in long):
            return BUSY
        if not long:
            return None
        place, started, _wrote, _function = long[0]
        name, command = self.board.function(place)
        return name, command, max(0, now_ms() - started)

    def memory(self) -> dict[str, int]:
        """INFO memory's scripting numbers, as Redis 7.0 names them. The VMs are this
        acceptor's checkers (every script and library is compiled in each); the caches'
        sizes are estimates: the code and about what Redis spends on each entry."""
        functions = self.functions
        eval_vm = int(self._lua_kilobytes() * 1024)
        functions_vm = functions.vm_memory()
        scripts = sum(len(script.body) + _SCRIPT_OVERHEAD for script in self.cache.values())
        libraries = functions.memory()
        return {
            "vm_eval": eval_vm,
            "scripts_eval": scripts,
            "cached_scripts": len(self.cache),
            "functions": sum(len(library.functions) for library in functions.libraries.values()),
            "libraries": len(functions.libraries),
            "vm_functions": functions_vm,
            "functions_memory": libraries,
        }

    # -- the cache -----------------------------------------------------------------------

    def load(self, body: bytes) -> Script | bytes:
        """A script by its body, compiled once and cached (here and on every acceptor)."""
        sha = hashlib.sha1(body).hexdigest().encode()
        script = self.cache.get(sha)
        if script is not None:
            return script
        parsed = shebang(body)
        if parsed.__class__ is bytes:
            return parsed
        source, read_only = parsed
        compiled = self._loadstring(source, b"@user_script")
        if compiled.__class__ is tuple and compiled[0] is None:
            problem = compiled[1].decode("utf-8", "replace")
            return error(f"ERR Error compiling script (new function): {problem}")
        script = self.cache[sha] = Script(sha, body, source, read_only)
        peers = self.server.peers
        if len(peers):
            peers.tell("script_load", body)
            told = script.told = peers.ask("barrier")
            told.add_done_callback(lambda _answered: setattr(script, "told", None))
        return script

    def learned(self, body: bytes) -> None:
        """Another acceptor cached a script."""
        sha = hashlib.sha1(body).hexdigest().encode()
        if sha not in self.cache:
            parsed = shebang(body)
            if parsed.__class__ is not bytes:
                self.cache[sha] = Script(sha, body, parsed[0], parsed[1])

    def flush(self) -> None:
        """SCRIPT FLUSH here and on every shard (the other acceptors do theirs)."""
        self.cache.clear()
        self.local.clear()
        for sent in self.sent:
            sent.clear()
        parts = [(shard, [b"@script-flush"]) for shard in range(self.server.shard_count)]
        self.server.sequencer.step(0, parts, DISCARD)

    def shard_restarted(self, shard: int) -> None:
        """A new shard process has no scripts compiled, and no libraries."""
        self.sent[shard].clear()
        self.functions.shard_restarted(shard)

    # -- EVAL ----------------------------------------------------------------------------

    def route(self, client: Any, spec: Any, argv: list[bytes]) -> None:
        """The SCRIPT route: EVAL, EVALSHA and their _RO forms, sent where they run."""
        name = spec.name
        LOCAL_CALLS[name] += 1  # INFO commandstats (the shards count the script's calls)
        if client.script_debug is not None and debugging.route(self, client, spec, argv):
            return
        prepared = self.prepare(name, argv)
        if prepared.__class__ is bytes:
            ERRORS.script_replied(name, prepared, None)
            client.reply(prepared)
            return
        script, keys = prepared[0], prepared[1]
        entry = client.new_entry()
        if script.told is not None:
            self._reply_once_told(client, entry, prepared, name)
            return
        # a user with ACL rules runs its scripts here, where each call is checked
        if script.key in self.local and client.user.unrestricted:
            # the shard of every key, or -1 for keys of several; one shard owns them all
            # when there is one (no hashing), and none is asked for then
            if self.single or not keys:
                shard = 0
            else:
                shard_of_key = self.server.shard_of_key
                shard = shard_of_key(keys[0])
                for key in keys[1:]:
                    if shard_of_key(key) != shard:
                        shard = -1
                        break
            if shard >= 0:
                _FastReply(self, client, entry, prepared, name).send(shard)
                return
        self.run_held(client, lambda reply: client.fill(entry, reply), prepared, name=name)

    def _reply_once_told(self, client: Any, entry: list, prepared: tuple, name: str) -> None:
        """The first EVAL of a script new here: run now, reply once the other acceptors
        have it too (as SCRIPT LOAD does), so a client's EVALSHA right after, through
        any acceptor, cannot get -NOSCRIPT."""
        told = prepared[0].told

        def finished(reply: bytes) -> None:
            if told.done():
                client.fill(entry, reply)
            else:
                told.add_done_callback(lambda _answered: client.fill(entry, reply))

        self.run_held(client, finished, prepared, name=name)

    def prepare(self, name: str, argv: list[bytes]) -> tuple | bytes:
        """``(script, keys, args, read_only)`` of an EVAL-like command line, or its error."""
        form = _EVAL_FORMS.get(name)
        if form is None:
            return self._prepare_call(name, argv)
        split = _keys_and_args(argv, NOT_INTEGER)
        if split.__class__ is bytes:
            return split
        by_sha, read_only = form
        if by_sha:
            cache = self.cache
            # SHAs are cached in lower case, as clients nearly always send them
            script = cache.get(argv[1]) or cache.get(argv[1].lower())
            if script is None:
                return NOSCRIPT
        else:
            script = self.load(argv[1])
            if script.__class__ is bytes:
                return script
        read_only = read_only or script.read_only
        if self.server.maxmemory and not read_only and _refused_oom(script.body):
            return OOM  # Redis's processCommand refuses it as a denyoom command
        if self.server.writes_refused and not read_only and script.body.startswith(b"#!"):
            return NOREPLICAS  # a script with a shebang may write: refused before it runs
        return script, split[0], split[1], read_only

    def _prepare_call(self, name: str, argv: list[bytes]) -> tuple | bytes:
        """FCALL and FCALL_RO: the function, keys, arguments and whether it may not write."""
        found = self.functions.owners.get(argv[1].lower())
        if found is None:
            return _NO_FUNCTION
        split = _keys_and_args(argv, _BAD_NUMKEYS)
        if split.__class__ is bytes:
            return split
        owner, function_name = found
        flags = self.functions.libraries[owner].functions[function_name][0]
        read_only = b"no-writes" in flags
        if name == "fcall_ro" and not read_only:
            return _WRITES_IN_RO
        if self.server.maxmemory and not read_only and b"allow-oom" not in flags and server_full():
            return OOM  # a function without no-writes or allow-oom is denyoom
        if self.server.writes_refused and not read_only:
            return NOREPLICAS  # a function without no-writes may write: refused before it runs
        function = Script(function_name, b"", None, read_only, argv[:2])
        return function, *split, read_only

    def run_held(
        self,
        client: Any,
        done: Callable[[bytes], None],
        prepared: tuple,
        owner: Any = None,
        name: str = "",
    ) -> None:
        """Run a script over every shard held (by ``owner``, an EXEC that holds them, or by
        the script itself); learn whether it kept to its keys' shard. ``name``: the
        command (EVAL ...) whose reply's errors count here."""
        if (
            owner is not None
            and client.script_debug is not None
            and debugging.run_in_exec(self, client, done, prepared, owner, name)
        ):
            return
        script, keys, args, read_only = prepared
        declared = {self.server.shard_of_key(key) for key in keys}

        def finished(reply: bytes) -> None:
            if not held.beyond and len(declared) <= 1 and held.touched <= declared:
                self.local.add(script.key)
            if self.busy:
                self.look_at_board()
            if name:
                ERRORS.script_replied(name, reply, held.reply_errors)
            done(reply)

        run = (script.sha, script.source, keys, args, read_only, script.command)
        held = HeldScript(self.thread, client, finished, run, owner, (self.board, self.place))
        held.start()


class _FastReply:
    """The fast path's part: sent to one shard; its value is the reply, or the news that
    the script must run over every shard, or that the shard lacks it."""

    __slots__ = ("scripts", "client", "entry", "prepared", "shard", "name")

    def __init__(
        self, scripts: Scripts, client: Any, entry: list, prepared: tuple, name: str
    ) -> None:
        self.scripts = scripts
        self.name = name
        self.client = client
        self.entry = entry
        #: What :meth:`Scripts.prepare` made of the command: (script, keys, args, read_only).
        self.prepared = prepared

    def send(self, shard: int, with_body: bool = False) -> None:
        self.shard = shard
        script, keys, args, read_only = self.prepared
        client = self.client
        read_only_flag = b"1" if read_only else b"0"
        protocol = b"3" if client.protocol == 3 else b"2"
        numkeys = b"%d" % len(keys)
        if script.source is None:
            part = [b"@fcall", script.sha, *script.command, read_only_flag, protocol, numkeys]
        else:
            sent = self.scripts.sent[shard]
            body = b"" if script.sha in sent and not with_body else script.source
            sent.add(script.sha)
            part = [b"@eval", script.sha, body, read_only_flag, protocol, numkeys]
        part += keys
        part += args
        # one part on one shard is a step as it stands (Sequencer.step tickets only steps
        # over several shards): queued as a run, without the step's per-part bookkeeping
        self.scripts.server.sequencer.append(shard, [client.ctx, part], (self, 0))

    def deliver(self, index: int, value: Any) -> None:
        if value.__class__ is bytes:  # the shard failed
            ERRORS.script_replied(self.name, value, None)
            self.client.fill(self.entry, value)
            return
        outcome = value[0]
        if outcome == RAN:
            if self.scripts.busy:
                self.scripts.look_at_board()
            # its errors count here: (RAN, reply, its errors), or (RAN, reply) for a
            # reply made before or instead of the script's; a script with no error
            # reply in it has nothing to count
            errors = value[2] if len(value) > 2 else None
            if errors is None or errors:
                ERRORS.script_replied(self.name, value[1], errors)
            self.client.fill(self.entry, value[1])
        elif outcome == UNKNOWN and self.prepared[0].source is None:  # a library not there yet
            ERRORS.script_replied(self.name, _NO_FUNCTION, None)
            self.client.fill(self.entry, _NO_FUNCTION)
        elif outcome == UNKNOWN:
            self.send(self.shard, with_body=True)
        elif outcome == ESCAPED:
            scripts = self.scripts
            scripts.local.discard(self.prepared[0].key)
            client, entry = self.client, self.entry
            scripts.run_held(
                client, lambda reply: client.fill(entry, reply), self.prepared, name=self.name
            )
