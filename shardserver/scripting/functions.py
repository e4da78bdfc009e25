"""FUNCTION LOAD's libraries, as an acceptor keeps them (Redis's ``functions.c``).

A library is Lua code with a ``#!lua name=<library>`` first line that registers functions
(``redis.register_function``); FCALL calls them by name. Every acceptor keeps every library
(for FUNCTION LIST, STATS and FCALL's checks), and so does every shard's interpreter and
every acceptor's script thread, since a function runs where a script would (one shard, or
every shard held: :mod:`shardserver.scripting.scripts`). A load is checked here first, in an
interpreter of the acceptor's own, so its errors are Redis's and nothing half-loaded goes
anywhere; then it goes to every shard in one step, to the script thread and to the other
acceptors.

Shard 0 keeps the libraries' history on disk (its log and its snapshot fragment,
docs/persistence.md, "Functions"), so only the acceptor that made a change sends it as one to
log; the others, told by it, send theirs (which put the change on their own pipes, ahead of
their clients' FCALLs) as copies. An acceptor that starts takes the libraries from shard 0.
"""

from __future__ import annotations

import re
from typing import Any

from shardserver.errors import error
from shardserver.persistence import rdb
from shardserver.receivers import DISCARD, Collector
from shardserver.resp import ProtocolError, split_inline_args
from shardserver.scripting.environment import Engine

_NAME = re.compile(rb"[A-Za-z0-9_]+")
#: How long a library's code may run while it loads (Redis's LOAD_TIMEOUT_MS): it only
#: registers functions, and the acceptor waits for it. The shards' loads of a library that
#: passed need no limit: with nothing but ``redis`` in reach, a load is deterministic.
LOAD_TIME_LIMIT = 0.5
#: What Redis spends on a library and on a function besides the code (names, dict entries).
_LIBRARY_OVERHEAD = 160
_FUNCTION_OVERHEAD = 96


class Library:
    """A loaded library: its code, and its functions' flags and descriptions."""

    __slots__ = ("name", "code", "functions")

    def __init__(self, name: bytes, code: bytes, functions: dict[bytes, tuple]) -> None:
        self.name = name
        self.code = code
        self.functions = functions


def metadata(code: bytes) -> bytes | tuple[bytes, bytes]:
    """A library's name and the code Lua compiles (its first line a comment, so line numbers
    hold), or Redis's error for its first line, which Redis splits as ``sdssplitargs`` does
    (quotes allowed) and reads as a C string (a NUL before the line's end: no line)."""
    if not code.startswith(b"#!"):
        return error("ERR Missing library metadata")
    end = code.find(b"\n")
    if end < 0 or 0 <= code.find(b"\0") < end:
        return error("ERR Invalid library metadata")
    try:
        words = split_inline_args(code[:end])
    except ProtocolError:
        words = []
    if not words:
        return error("ERR Invalid library metadata")
    name = None
    for word in words[1:]:
        if word[:5].lower() != b"name=":
            return error(f"ERR Invalid metadata value given: {word.decode('utf-8', 'replace')}")
        if name is not None:
            return error("ERR Invalid metadata value, name argument was given multiple times")
        name = word[5:]
    if words[0][2:].lower() != b"lua":  # engine names are case-insensitive
        return error(f"ERR Engine '{words[0][2:].decode('utf-8', 'replace')}' not found")
    if name is None:
        return error("ERR Library name was not given")
    if not _NAME.fullmatch(name):
        return error(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must "
            "be at least one character long"
        )
    return name, b"--" + code


class Functions:
    """One acceptor's libraries, and where FCALL finds each function."""

    def __init__(self, server: Any, thread: Any) -> None:
        self.server = server
        self.thread = thread
        self.libraries: dict[bytes, Library] = {}
        #: Each function's library and its name as registered, by its name in lower case
        #: (Redis finds functions whatever their case; libraries only as spelt).
        self.owners: dict[bytes, tuple[bytes, bytes]] = {}
        self.checker = Engine(_no_calls)

    def load(self, code: bytes, replace: bool, tell: bool = True) -> bytes:
        """FUNCTION LOAD: the library's name as a reply, or Redis's error."""
        parsed = metadata(code)
        if parsed.__class__ is bytes:
            return parsed
        name, source = parsed
        if name in self.libraries and not replace:
            return error(f"ERR Library '{name.decode('utf-8', 'replace')}' already exists")
        checked = self.checker.load_library(b"check", source, LOAD_TIME_LIMIT)
        self.checker.delete_library(b"check")
        if checked.__class__ is bytes:
            return checked
        for function_name in checked:
            owner = self.owners.get(function_name.lower())
            if owner is not None and owner[0] != name:
                return error(
                    f"ERR Function {function_name.decode('utf-8', 'replace')} already exists"
                )
        self._forget(name)
        self.libraries[name] = Library(name, code, checked)
        for function_name in checked:
            self.owners[function_name.lower()] = (name, function_name)
        self._everywhere(b"@function-load", _mode(tell), code)
        self.thread.submit(lambda engine: engine.load_library(name, source))
        if tell and len(self.server.peers):
            self.server.peers.tell("function_load", code)
        return b"$%d\r\n%b\r\n" % (len(name), name)

    def delete(self, name: bytes, tell: bool = True) -> bytes:
        if name not in self.libraries:
            return error("ERR Library not found")
        self._forget(name)
        self._everywhere(b"@function-delete", _mode(tell), name)
        self.thread.submit(lambda engine: engine.delete_library(name))
        if tell and len(self.server.peers):
            self.server.peers.tell("function_delete", name)
        return b"+OK\r\n"

    def flush(self, tell: bool = True) -> None:
        self.libraries.clear()
        self.owners.clear()
        self._everywhere(b"@function-flush", _mode(tell))
        self.thread.submit(lambda engine: engine.flush_libraries())
        if tell and len(self.server.peers):
            self.server.peers.tell("function_flush")

    def shard_restarted(self, shard: int) -> None:
        """A new shard process has no libraries, or those of its files: make them ours.
        The shards' parent sends them to log (shard 0's log then holds the libraries even if
        a change was in flight when it died), the other acceptors as copies."""
        mode = _mode(self.server.index == 0)
        parts = [(shard, [b"@function-flush", mode])]
        parts += [(shard, [b"@function-load", mode, each.code]) for each in self.libraries.values()]
        self.server.sequencer.step(0, parts, DISCARD)

    async def load_saved(self) -> bytes | None:
        """At start-up: the libraries shard 0 loaded from disk, here and (as copies) on every
        shard; Redis's error for one that does not load, which stops the start."""
        future = self.server.loop.create_future()
        self.server.sequencer.step(0, [(0, [b"@function-codes"])], Collector(future, 1))
        (codes,) = await future
        if codes.__class__ is bytes:  # shard 0 failed
            return codes
        for code in codes:
            loaded = self.load(code, replace=False, tell=False)
            if loaded[:1] == b"-":
                return loaded
        return None

    def _forget(self, name: bytes) -> None:
        library = self.libraries.pop(name, None)
        if library is not None:
            for function_name in library.functions:
                self.owners.pop(function_name.lower(), None)

    def _everywhere(self, *part: bytes) -> None:
        parts = [(shard, list(part)) for shard in range(self.server.shard_count)]
        self.server.sequencer.step(0, parts, DISCARD)

    # -- FUNCTION DUMP and RESTORE ------------------------------------------------------------

    def dump(self) -> bytes:
        payload = rdb.functions_payload([library.code for library in self.libraries.values()])
        return b"$%d\r\n%b\r\n" % (len(payload), payload)

    def restore(self, payload: bytes, policy: bytes) -> bytes:
        """FUNCTION RESTORE payload FLUSH|APPEND|REPLACE: every library checked first, so a
        refused restore changes nothing."""
        if not rdb.payload_intact(payload):
            return error("ERR DUMP payload version or checksum are wrong")
        try:
            codes = rdb.load_functions_payload(payload)
        except EOFError:
            codes = None
        if codes is None:
            return error("ERR given type is not a function")
        names = []
        for code in codes:
            parsed = metadata(code)
            if parsed.__class__ is bytes:
                return parsed
            names.append(parsed[0])
        if policy == b"append":
            for name in names:
                if name in self.libraries:
                    return error(f"ERR Library {name.decode('utf-8', 'replace')} already exists")
        if policy == b"flush":
            self.flush()
        for code in codes:
            loaded = self.load(code, replace=True)
            if loaded[:1] == b"-":
                return loaded
        return b"+OK\r\n"

    # -- DEBUG RELOAD ------------------------------------------------------------------------

    def reload(self, codes: list[bytes], flush: bool, merge: bool) -> bool:
        """DEBUG RELOAD's libraries, the dump's ``codes``, as Redis's load takes them: after
        a flush, or replacing those that exist with MERGE; False where Redis's load fails (a
        library that exists already without MERGE, checked first, so nothing changes then;
        one that does not load, after those before it)."""
        if not flush and not merge:
            for code in codes:
                parsed = metadata(code)
                if parsed.__class__ is not bytes and parsed[0] in self.libraries:
                    return False
        if flush:
            self.flush()
        return all(self.load(code, replace=True)[:1] != b"-" for code in codes)

    # -- INFO memory ---------------------------------------------------------------------

    def vm_memory(self) -> int:
        """The bytes of the checking interpreter, which has every library loaded."""
        return int(self.checker.runtime.eval("collectgarbage('count')") * 1024)

    def memory(self) -> int:
        """About what the libraries take besides their interpreters: their code, and an
        entry for each library and function."""
        return sum(
            len(library.code) + _LIBRARY_OVERHEAD + _FUNCTION_OVERHEAD * len(library.functions)
            for library in self.libraries.values()
        )

    # -- FUNCTION LIST and STATS -------------------------------------------------------------

    def listed(self, enc: Any, pattern: Any, with_code: bool) -> bytes:
        out = []
        for library in self.libraries.values():
            if pattern is not None and not pattern(library.name):
                continue
            functions = [
                enc.map(
                    [
                        (enc.bulk(b"name"), enc.bulk(function_name)),
                        (enc.bulk(b"description"), enc.bulk_or_null(description)),
                        (enc.bulk(b"flags"), enc.set([b"+%b\r\n" % flag for flag in flags])),
                    ]
                )
                for function_name, (flags, description) in library.functions.items()
            ]
            fields = [
                (enc.bulk(b"library_name"), enc.bulk(library.name)),
                (enc.bulk(b"engine"), enc.bulk(b"LUA")),
                (enc.bulk(b"functions"), enc.array(functions)),
            ]
            if with_code:
                fields.append((enc.bulk(b"library_code"), enc.bulk(library.code)))
            out.append(enc.map(fields))
        return enc.array(out)

    def stats(self, enc: Any, running: tuple[bytes, list[bytes], int] | None) -> bytes:
        """FUNCTION STATS; ``running``: the function that runs long (name, command line,
        milliseconds)."""
        functions = sum(len(library.functions) for library in self.libraries.values())
        counts = enc.map(
            [
                (enc.bulk(b"libraries_count"), enc.integer(len(self.libraries))),
                (enc.bulk(b"functions_count"), enc.integer(functions)),
            ]
        )
        return enc.map(
            [
                (enc.bulk(b"running_script"), _running_script(enc, running)),
                (enc.bulk(b"engines"), enc.map([(enc.bulk(b"LUA"), counts)])),
            ]
        )


def _mode(made_here: bool) -> bytes:
    """How a change goes to the shards: to log, from the acceptor that made it; else a copy."""
    return b"log" if made_here else b"copy"


def _running_script(enc: Any, running: tuple[bytes, list[bytes], int] | None) -> bytes:
    if running is None:
        return enc.NULL
    name, command, duration = running
    return enc.map(
        [
            (enc.bulk(b"name"), enc.bulk(name)),
            (enc.bulk(b"command"), enc.array([enc.bulk(arg) for arg in command])),
            (enc.bulk(b"duration_ms"), enc.integer(duration)),
        ]
    )


def _no_calls(argv: list[bytes], resp: int) -> bytes:
    raise RuntimeError("a library ran a command while it loaded")
