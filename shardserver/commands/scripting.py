"""Scripting commands (Redis's ``eval.c``): EVAL, EVALSHA, their _RO forms, SCRIPT.

EVAL and its kin take the SCRIPT route: the acceptor's script service
(``server.scripts``, :mod:`shardserver.scripting.scripts`) keeps the script cache and sends
each script to where it runs: one shard, or every shard held (docs/architecture.md,
"Scripts"); FCALL and FCALL_RO too, for FUNCTION LOAD's functions. SCRIPT's and FUNCTION's
subcommands are answered here, with that service.
"""

from __future__ import annotations

from typing import Any

from shardserver.commands.spec import Command, Later, Route, local
from shardserver.errors import error, subcommand_syntax
from shardserver.glob import compile_glob
from shardserver.numbers import parse_int

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


def applied_everywhere(session: Any, reply: bytes) -> bytes | Later:
    """A change of the script cache or the libraries (told to the other acceptors as it was
    made), replied once they all have applied it: a peer answers an ask after every tell
    before it. So the client's next command, on any acceptor, finds it, and a later change
    made elsewhere cannot be overtaken by this one (a DELETE, then a LOAD through the other
    acceptor, once left that acceptor without the library)."""
    if reply[:1] == b"-" or not len(session.server.peers):
        return reply
    return session.server.told_everywhere(reply, "barrier")


def script_load(session: Any, argv: list[bytes]) -> bytes | Later:
    script = session.server.scripts.load(argv[2])
    if script.__class__ is bytes:
        return script
    return applied_everywhere(session, session.enc.bulk(script.sha))


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


def function_kill(session: Any, argv: list[bytes]) -> bytes:
    return session.server.scripts.kill(functions=True)


_DEBUG_MODES = {b"yes": "yes", b"sync": "sync", b"no": None}


def script_debug(session: Any, argv: list[bytes]) -> bytes:
    """SCRIPT DEBUG YES|SYNC|NO: whether the client's next EVAL is a debugging session
    (:mod:`shardserver.scripting.debugging`). Redis refuses it behind replies not yet
    written (a pipeline)."""
    if session.pending or session.out:
        return error("ERR SCRIPT DEBUG must be called outside a pipeline")
    mode = argv[2].lower()
    if mode not in _DEBUG_MODES:
        return error("ERR Use SCRIPT DEBUG YES/SYNC/NO")
    session.script_debug = _DEBUG_MODES[mode]
    return b"+OK\r\n"


def script_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _HELP])


_FUNCTION_HELP = [
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using "
    "FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore "
    "policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, "
    "replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance "
    "of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
]


def function_load(session: Any, argv: list[bytes]) -> bytes:
    replace = False
    for option in argv[2:-1]:
        if option.lower() != b"replace":
            return error(f"ERR Unknown option given: {option.decode('utf-8', 'replace')}")
        replace = True
    return applied_everywhere(session, session.server.scripts.functions.load(argv[-1], replace))


def function_list(session: Any, argv: list[bytes]) -> bytes:
    pattern = None
    with_code = False
    position = 2
    while position < len(argv):
        word = argv[position].lower()
        if word == b"withcode" and not with_code:
            with_code = True
        elif word == b"libraryname" and pattern is None:
            if position + 1 >= len(argv):
                return error("ERR library name argument was not given")
            position += 1
            pattern = compile_glob(argv[position], nocase=True)  # as Redis: case-insensitive
        else:
            return error(f"ERR Unknown argument {argv[position].decode('utf-8', 'replace')}")
        position += 1
    return session.server.scripts.functions.listed(session.enc, pattern, with_code)


def function_delete(session: Any, argv: list[bytes]) -> bytes | Later:
    return applied_everywhere(session, session.server.scripts.functions.delete(argv[2]))


def function_flush(session: Any, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        return subcommand_syntax(argv)
    if len(argv) == 3 and argv[2].lower() not in _FLUSH_MODES:
        return error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    session.server.scripts.functions.flush()
    return applied_everywhere(session, b"+OK\r\n")


def function_stats(session: Any, argv: list[bytes]) -> bytes:
    running = session.server.scripts.running_function()
    if running.__class__ is bytes:
        return running
    return session.server.scripts.functions.stats(session.enc, running)


def function_dump(session: Any, argv: list[bytes]) -> bytes:
    return session.server.scripts.functions.dump()


def function_restore(session: Any, argv: list[bytes]) -> bytes:
    if len(argv) > 4:
        return subcommand_syntax(argv)
    policy = argv[3].lower() if len(argv) == 4 else b"append"
    if policy not in (b"flush", b"append", b"replace"):
        return error(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
        )
    return applied_everywhere(session, session.server.scripts.functions.restore(argv[2], policy))


def function_help(session: Any, argv: list[bytes]) -> bytes:
    return session.enc.array([session.enc.simple(line) for line in _FUNCTION_HELP])


def script_keys(argv: list[bytes]) -> list[int]:
    """EVAL's and FCALL's keys: as many after ``numkeys`` as it says (none if it is no
    count of the arguments there are)."""
    count = parse_int(argv[2]) if len(argv) > 2 else None
    if count is None or not 0 <= count <= len(argv) - 3:
        return []
    return list(range(3, 3 + count))


ROWS = [
    Command("eval", Route.SCRIPT, keys=script_keys),
    Command("evalsha", Route.SCRIPT, keys=script_keys),
    Command("eval_ro", Route.SCRIPT, keys=script_keys),
    Command("evalsha_ro", Route.SCRIPT, keys=script_keys),
    local("script|load", script_load),
    local("script|exists", script_exists),
    local("script|flush", script_flush),
    local("script|kill", script_kill),
    local(
        "script|debug",
        script_debug,
        notes="the next EVAL is a Lua debugger session over every shard held; YES undoes "
        "its writes at the end (Redis forks)",
    ),
    local("script|help", script_help),
    Command("fcall", Route.SCRIPT, keys=script_keys),
    Command("fcall_ro", Route.SCRIPT, keys=script_keys),
    local("function|load", function_load),
    local("function|list", function_list),
    local("function|delete", function_delete),
    local("function|flush", function_flush),
    local("function|stats", function_stats),
    local("function|kill", function_kill),
    local("function|dump", function_dump),
    local("function|restore", function_restore),
    local("function|help", function_help),
]
