"""Scripting commands (Redis's ``eval.c``): EVAL, EVALSHA, their _RO forms, SCRIPT.

EVAL and its kin take the SCRIPT route: the acceptor's script service
(``server.scripts``, :mod:`shardserver.scripting.scripts`) keeps the script cache and sends
each script to where it runs: one shard, or every shard held (docs/architecture.md,
"Scripts"). SCRIPT's subcommands are answered here, with that service.
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import Command, Route, local
from shardserver.errors import error

_FLUSH_MODES = {b"async", b"sync"}
_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


def script_load(session: Any, argv: list[bytes]) -> bytes:
    script = session.server.scripts.load(argv[2])
    if script.__class__ is bytes:
        return script
    return session.enc.bulk(script.sha)


def script_exists(session: Any, argv: list[bytes]) -> bytes:
    cache = session.server.scripts.cache
    return session.enc.array([b":1\r\n" if sha.lower() in cache else b":0\r\n" for sha in argv[2:]])


def script_flush(session: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in _FLUSH_MODES):
        return error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    server = session.server
    server.scripts.flush()
    return server.told_everywhere(b"+OK\r\n", "script_flush")


def script_kill(session: Any, argv: list[bytes]) -> bytes:
    return session.server.scripts.kill()


def script_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


ROWS = [
    Command("eval", Route.SCRIPT),
    Command("evalsha", Route.SCRIPT),
    Command("eval_ro", Route.SCRIPT),
    Command("evalsha_ro", Route.SCRIPT),
    local("script|load", script_load),
    local("script|exists", script_exists),
    local("script|flush", script_flush),
    local("script|kill", script_kill),
    local("script|help", script_help),
]
