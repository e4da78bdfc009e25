"""What a script may call: the checks Redis makes on a ``redis.call`` before it runs.

The same in a shard and in the acceptor, in Redis's order (``scriptCall``): the command
exists (a container's subcommand too), its arity, whether scripts may run it at all
(``noscript``: MULTI, BLPOP, SUBSCRIBE, CLIENT, CONFIG, EVAL ...), and whether a read-only
script (EVAL_RO, ``#!lua flags=no-writes``) asks for a write.

DEBUG SET-DISABLE-DENY-SCRIPTS 1 lifts the ``noscript`` refusal in Redis for every command;
here only for DEBUG (PROTOCOL, SLEEP ...: what Redis's test suite calls from scripts). The
others change the calling client's state (CLIENT, MONITOR, SUBSCRIBE, MULTI, HELLO), block
(BLPOP ...), end the server (SHUTDOWN) or run scripts (EVAL): a script runs in a shard or in
the acceptor's script thread, with no client of its own, so they are refused still, with an
error that says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shardserver.commands import streams
from shardserver.commands.metadata import META, redis_arity_and_flags
from shardserver.commands.spec import bad_arity
from shardserver.commands.table import COMMANDS, CommandSpec
from shardserver.errors import DB_INDEX, NOT_INTEGER, wrong_arity
from shardserver.numbers import parse_int

UNKNOWN = b"-ERR Unknown Redis command called from script\r\n"
ARITY = b"-ERR Wrong number of args calling Redis command from script\r\n"
NOT_ALLOWED = b"-ERR This Redis command is not allowed from script\r\n"
READ_ONLY = b"-ERR Write commands are not allowed from read-only scripts.\r\n"
NOT_ALLOWED_HERE = (
    b"-ERR This Redis command is not allowed from script (redis-clone lets scripts call "
    b"only DEBUG of the commands that DEBUG SET-DISABLE-DENY-SCRIPTS allows)\r\n"
)

#: Every command by its name as bytes, lower case.
BY_NAME: dict[bytes, CommandSpec] = {name.encode(): spec for name, spec in COMMANDS.items()}


def checked(
    argv: list[bytes],
    read_only: bool,
    deny_disabled: bool = False,
    acl_refusal: Callable[[CommandSpec, list[bytes]], bytes | None] | None = None,
) -> CommandSpec | bytes:
    """The command a script's ``redis.call`` names (a subcommand's own spec for a
    container), or Redis's error reply for it; ``deny_disabled``: DEBUG
    SET-DISABLE-DENY-SCRIPTS is on; ``acl_refusal``: the caller's ACL rules, for a user
    that may not run everything (checked where Redis checks them: after ``noscript``,
    before the read-only refusal)."""
    spec = BY_NAME.get(argv[0]) or BY_NAME.get(argv[0].lower())
    if spec is None:
        return _not_served(argv)
    if spec.subcommands and (len(argv) > 1 or spec.run is None):
        if bad_arity(spec.arity, len(argv)):
            return ARITY
        spec = spec.subcommands.get(argv[1].lower().decode("utf-8", "replace"))
        if spec is None:
            return _not_served(argv)
    if bad_arity(spec.arity, len(argv)):
        return ARITY
    flags = spec.flags
    if "noscript" in flags:
        if not deny_disabled:
            return NOT_ALLOWED
        if spec.name != "debug":
            return NOT_ALLOWED_HERE
    if acl_refusal is not None:
        refused = acl_refusal(spec, argv)
        if refused is not None:
            return refused
    if read_only and "write" in flags:
        return READ_ONLY
    if spec.name in ("xread", "xreadgroup"):  # BLOCK is refused in a script
        return streams.script_refusal(argv) or spec
    return spec


def refused_name(argv: list[bytes]) -> str | None:
    """The full name of the command a refused ``redis.call`` names (its rejected_calls
    count, as Redis's ``lookupCommand`` finds it), or None when none is served here."""
    spec = BY_NAME.get(argv[0]) or BY_NAME.get(argv[0].lower())
    if spec is None or not spec.subcommands or len(argv) == 1:
        return None if spec is None else spec.name
    sub = spec.subcommands.get(argv[1].lower().decode("utf-8", "replace"))
    return None if sub is None else sub.name


def command_exists(argv: list[bytes]) -> bool:
    """Whether ``argv`` names a command as Redis's ``lookupCommand`` finds one (a
    container's subcommand when there is a second word): ``redis.acl_check_cmd``."""
    spec = BY_NAME.get(argv[0]) or BY_NAME.get(argv[0].lower())
    if spec is None:
        return False
    if spec.subcommands and len(argv) > 1:
        return argv[1].lower().decode("utf-8", "replace") in spec.subcommands
    return True


def _not_served(argv: list[bytes]) -> bytes:
    """A command this server lacks: Redis's refusal where Redis refuses it in scripts
    (WAIT, ROLE, ACL, LATENCY, REPLICAOF ... are ``noscript``), else "unknown"."""
    name = argv[0].lower().decode("utf-8", "replace")
    if len(argv) > 1 and META.get(name, {}).get("subcommands"):
        name += "|" + argv[1].lower().decode("utf-8", "replace")
    found = redis_arity_and_flags(name)
    if found is None:
        return UNKNOWN
    arity, flags = found
    if bad_arity(arity, len(argv)):
        return ARITY
    return NOT_ALLOWED if "noscript" in flags else UNKNOWN


def answered_here(name: str, argv: list[bytes], databases: int) -> tuple[bytes, int | None] | None:
    """The commands the acceptor answers that a script's runner answers the same, wherever
    it runs: ``(reply, database)``, the database being SELECT's new one (else None); None
    for the others. TIME reads the clock as Redis 7.0 does (7.2 answers the script's start;
    expiry decisions stand still in a script here as in both: see the runner and held)."""
    if name == "ping":
        if len(argv) > 2:
            return wrong_arity("ping"), None
        return (b"+PONG\r\n" if len(argv) == 1 else _bulk(argv[1])), None
    if name == "echo":
        return _bulk(argv[1]), None
    if name == "time":
        now = time.time_ns() // 1000
        seconds, micros = b"%d" % (now // 1_000_000), b"%d" % (now % 1_000_000)
        return b"*2\r\n" + _bulk(seconds) + _bulk(micros), None
    if name == "select":
        index = parse_int(argv[1])
        if index is None:
            return NOT_INTEGER, None
        if not 0 <= index < databases:
            return DB_INDEX, None
        return b"+OK\r\n", index
    return None


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)
