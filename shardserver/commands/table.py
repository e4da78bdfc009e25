"""The command table: every command we serve, where it runs, and which function runs it.

One row per command drives dispatch in the acceptor, arity errors, routing, the merge of
fan-out replies, ``COMMAND`` replies and ``docs/commands.md``. Arity, flags and key positions
are Redis's own (``meta.json``, captured from redis-server 7.0 by
``scripts/gen_command_meta.py``), so they cannot drift from what Redis answers.

Routes
    ``LOCAL``  the acceptor answers (connection state, server introspection);
    ``KEY``    one shard, chosen by the slot of the first key;
    ``ALL``    every shard runs the shard handler; the acceptor merges the parts.

To find a command's code: look up its row below; ``run`` names the function.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardserver.commands import connection, keys, server, strings


class Route(enum.Enum):
    LOCAL = "acceptor"
    KEY = "one shard"
    ALL = "all shards"


@dataclass(frozen=True)
class CommandSpec:
    """One command (or ``container|subcommand``) and how it is served."""

    name: str
    route: Route
    #: LOCAL: fn(session, argv) -> bytes. KEY: fn(shard, db, argv, enc) -> bytes.
    #: ALL: fn(shard, argv) -> plain value, once per shard.
    run: Callable[..., Any] | None
    #: ALL only: fn(session, argv, parts) -> bytes, from the shards' values in shard order.
    merge: Callable[..., bytes] | None = None
    #: ALL only: fn(session, argv) -> error reply or None, checked before anything is sent.
    check: Callable[..., bytes | None] | None = None
    #: Differences from Redis, for docs/commands.md.
    notes: str = ""
    arity: int = 0
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    flags: tuple[str, ...] = ()
    subcommands: dict[str, CommandSpec] = field(default_factory=dict)

    #: ``argv[0]`` as sent to a shard: the canonical name, so shards dispatch without folding.
    wire_name: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire_name", self.name.encode())


L, K, A = Route.LOCAL, Route.KEY, Route.ALL

#: (name, route, run, merge, check, notes)
_ROWS: list[tuple] = [
    # connection
    ("ping", L, connection.ping, None, None, ""),
    ("echo", L, connection.echo, None, None, ""),
    ("quit", L, connection.quit, None, None, ""),
    ("hello", L, connection.hello, None, None, "AUTH and SETNAME options are accepted"),
    ("select", L, connection.select, None, None, ""),
    ("client|setname", L, connection.client_setname, None, None, ""),
    ("client|getname", L, connection.client_getname, None, None, ""),
    ("client|setinfo", L, connection.client_setinfo, None, None, ""),
    ("client|id", L, connection.client_id, None, None, ""),
    # strings
    ("get", K, strings.get, None, None, ""),
    ("set", K, strings.set_, None, None, ""),
    # keyspace
    ("dbsize", A, keys.dbsize_part, server.merge_sum, None, ""),
    ("flushall", A, keys.flushall_part, server.merge_ok, server.check_flush, ""),
    # server
    ("command", L, server.command, None, None, "lists only the commands served here"),
    ("command|count", L, server.command_count, None, None, ""),
    ("command|info", L, server.command_info, None, None, ""),
    ("command|docs", L, server.command_docs, None, None, ""),
    ("command|list", L, server.command_list, None, None, "FILTERBY is not supported"),
    ("config|get", L, server.config_get, None, None, ""),
    ("config|set", L, server.config_set, None, None, "only settings that apply at run time"),
    ("cluster|keyslot", L, server.cluster_keyslot, None, None, ""),
]

_META_PATH = Path(__file__).with_name("meta.json")

#: Subcommands that Redis 7.0 lacks but clients send (redis-py 5+ sends CLIENT SETINFO).
#: Same layout as meta.json's subcommand entries: arity, flags, first/last key, step.
NEWER_THAN_7_0: dict[str, list] = {
    "client|setinfo": [-4, ["noscript", "loading", "stale"], 0, 0, 0],
}


def _load_meta() -> dict[str, dict]:
    return json.loads(_META_PATH.read_text())


META: dict[str, dict] = _load_meta()


def _spec(name: str, route: Route, run, merge, check, notes: str, meta: dict) -> CommandSpec:
    return CommandSpec(
        name=name,
        route=route,
        run=run,
        merge=merge,
        check=check,
        notes=notes,
        arity=meta["arity"],
        first_key=meta["first_key"],
        last_key=meta["last_key"],
        step=meta["step"],
        flags=tuple(meta["flags"]),
    )


def _build() -> dict[str, CommandSpec]:
    top: dict[str, CommandSpec] = {}
    containers: dict[str, dict[str, CommandSpec]] = {}
    for name, route, run, merge, check, notes in _ROWS:
        parent, _, sub = name.partition("|")
        meta = META[parent]
        if sub:
            sub_meta = meta["subcommands"].get(name) or NEWER_THAN_7_0[name]
            containers.setdefault(parent, {})[sub] = _spec(
                name, route, run, merge, check, notes, _sub_meta(sub_meta)
            )
        else:
            top[name] = _spec(name, route, run, merge, check, notes, meta)
    for parent, subs in containers.items():
        meta = META[parent]
        top[parent] = CommandSpec(
            name=parent,
            route=Route.LOCAL,
            run=None,
            arity=meta["arity"],
            flags=tuple(meta["flags"]),
            subcommands=subs,
        )
    return top


def _sub_meta(info: list) -> dict:
    """Arity, flags and key positions from a raw ``COMMAND INFO`` subcommand entry."""
    return {
        "arity": info[0],
        "flags": info[1],
        "first_key": info[2],
        "last_key": info[3],
        "step": info[4],
    }


#: Every command by lower-case name.
COMMANDS: dict[str, CommandSpec] = _build()


def raw_info(name: str, protocol: int) -> bytes:
    """Redis's exact ``COMMAND INFO`` entry for a top-level command."""
    return base64.b64decode(META[name][f"info{protocol}"])


def raw_docs(name: str, protocol: int) -> bytes:
    """Redis's exact ``COMMAND DOCS`` entry (name and doc map) for a top-level command."""
    return base64.b64decode(META[name][f"docs{protocol}"])


def raw_sub_info(name: str, protocol: int) -> bytes:
    """``COMMAND INFO container|sub``; a minimal entry for subcommands newer than Redis 7.0."""
    meta = META["|subcommands"].get(name)
    if meta is None:
        spec = COMMANDS[name.partition("|")[0]].subcommands[name.partition("|")[2]]
        return _minimal_info(spec, protocol)
    return base64.b64decode(meta[f"info{protocol}"])


def raw_sub_docs(name: str, protocol: int) -> bytes:
    meta = META["|subcommands"].get(name)
    if meta is None:
        return b"$%d\r\n%b\r\n" % (len(name), name.encode()) + (
            b"%0\r\n" if protocol == 3 else b"*0\r\n"
        )
    return base64.b64decode(meta[f"docs{protocol}"])


def _minimal_info(spec: CommandSpec, protocol: int) -> bytes:
    flags = b"".join(b"+%b\r\n" % f.encode() for f in spec.flags)
    set_header = b"~" if protocol == 3 else b"*"
    return (
        b"*10\r\n$%d\r\n%b\r\n:%d\r\n" % (len(spec.name), spec.name.encode(), spec.arity)
        + set_header
        + b"%d\r\n" % len(spec.flags)
        + flags
        + b":%d\r\n:%d\r\n:%d\r\n" % (spec.first_key, spec.last_key, spec.step)
        + set_header
        + b"0\r\n*0\r\n*0\r\n*0\r\n"
    )
