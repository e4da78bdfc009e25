"""The command table: every command we serve, where it runs, and which function runs it.

The rows are declared by the family modules (``ROWS`` at the end of ``connection``,
``strings``, ``keys``, ``multikey`` and ``server``; see :mod:`shardserver.commands.spec` for
the routes) and joined here into one table, which drives dispatch in the acceptor, arity
errors, routing, the merge of fan-out replies, ``COMMAND`` replies and ``docs/commands.md``.
Arity, flags and key positions are Redis's own (``meta.json``, captured from redis-server 7.0
by ``scripts/gen_command_meta.py``), so they cannot drift from what Redis answers.

To find a command's code: ``COMMANDS["name"].run`` (or ``.part``), or docs/commands.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shardserver.commands import (
    bitmaps,
    connection,
    dump,
    hashes,
    keys,
    lists,
    multikey,
    persistence,
    server,
    sets,
    sort,
    strings,
    zsets,
)
from shardserver.commands.spec import Command, Route


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command (or ``container|subcommand``): its row plus Redis's metadata."""

    name: str
    route: Route
    run: Callable[..., Any] | None
    part: Callable[..., Any] | None = None
    merge: Callable[..., bytes] | None = None
    check: Callable[..., Any] | None = None
    plan: Callable[..., Any] | None = None
    propagate: Any = None
    keys: Callable[[list[bytes]], list[int]] | None = None
    undeclared_keys: Callable[[list[bytes]], bool] | None = None
    notes: str = ""
    module: str = ""
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


FAMILIES = [
    connection,
    strings,
    bitmaps,
    keys,
    multikey,
    dump,
    sort,
    hashes,
    lists,
    sets,
    zsets,
    server,
    persistence,
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


def _spec(row: Command, module: str, meta: dict) -> CommandSpec:
    return CommandSpec(
        name=row.name,
        route=row.route,
        run=row.run,
        part=row.part,
        merge=row.merge,
        check=row.check,
        plan=row.plan,
        propagate=row.propagate,
        keys=row.keys,
        undeclared_keys=row.undeclared_keys,
        notes=row.notes,
        module=module,
        arity=meta["arity"],
        first_key=meta["first_key"],
        last_key=meta["last_key"],
        step=meta["step"],
        flags=tuple(meta["flags"]),
    )


def _build() -> dict[str, CommandSpec]:
    top: dict[str, CommandSpec] = {}
    containers: dict[str, dict[str, CommandSpec]] = {}
    for family in FAMILIES:
        module = family.__name__
        for row in family.ROWS:
            parent, _, sub = row.name.partition("|")
            meta = META[parent]
            if sub:
                sub_meta = meta["subcommands"].get(row.name) or NEWER_THAN_7_0[row.name]
                containers.setdefault(parent, {})[sub] = _spec(row, module, _sub_meta(sub_meta))
            else:
                top[row.name] = _spec(row, module, meta)
    for parent, subs in containers.items():
        meta = META[parent]
        alone = top.get(parent)  # a container that also runs without a subcommand (COMMAND)
        top[parent] = CommandSpec(
            name=parent,
            route=Route.LOCAL,
            run=alone.run if alone is not None else None,
            notes=alone.notes if alone is not None else "",
            module=alone.module if alone is not None else "",
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


def key_positions(spec: CommandSpec, argv: list[bytes]) -> list[int]:
    """Where a command line's keys are: the row's ``keys(argv)``, else Redis's first key,
    last key (negative: from the end) and step."""
    if spec.keys is not None:
        return spec.keys(argv)
    if spec.first_key <= 0:
        return []
    last = spec.last_key if spec.last_key >= 0 else len(argv) + spec.last_key
    return list(range(spec.first_key, min(last, len(argv) - 1) + 1, spec.step or 1))


#: Internal parts (``@name``) that families run for plans and coordinators, by wire name.
INTERNAL_PARTS: dict[bytes, Callable[..., Any]] = {
    name: part
    for family in FAMILIES
    for name, part in getattr(family, "INTERNAL_PARTS", {}).items()
}


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
