"""Scripting commands (Redis's ``eval.c``): EVAL, EVALSHA, their _RO forms, SCRIPT.

The acceptor answers them through its script service (``session.server.scripts``,
:mod:`shardserver.scripting.scripts`), which keeps the script cache and sends each script to
where it runs: one shard, or every shard held (docs/architecture.md, "Scripts").
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import local
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


def eval_(session: Any, argv: list[bytes]) -> Any:
    return session.server.scripts.eval(session, argv, by_sha=False, read_only=False)


def evalsha(session: Any, argv: list[bytes]) -> Any:
    return session.server.scripts.eval(session, argv, by_sha=True, read_only=False)


def eval_ro(session: Any, argv: list[bytes]) -> Any:
    return session.server.scripts.eval(session, argv, by_sha=False, read_only=True)


def evalsha_ro(session: Any, argv: list[bytes]) -> Any:
    return session.server.scripts.eval(session, argv, by_sha=True, read_only=True)


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
    return error("NOTBUSY No scripts in execution right now.")


def script_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


ROWS = [
    local("eval", eval_),
    local("evalsha", evalsha),
    local("eval_ro", eval_ro),
    local("evalsha_ro", evalsha_ro),
    local("script|load", script_load),
    local("script|exists", script_exists),
    local("script|flush", script_flush),
    local("script|kill", script_kill),
    local("script|help", script_help),
]
