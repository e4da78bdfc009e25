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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shardserver.commands import (
    acl,
    bitmaps,
    blocking,
    connection,
    debug,
    dump,
    geo,
    hashes,
    hyperloglog,
    introspection,
    keys,
    lists,
    modules,
    multikey,
    persistence,
    pubsub,
    replymode,
    scripting,
    server,
    sets,
    sort,
    streams,
    strings,
    tracking,
    transactions,
    zsets,
)
from shardserver.commands.metadata import META, NEWER_THAN_7_0, sub_meta
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
    geo,
    hyperloglog,
    streams,
    blocking,
    transactions,
    scripting,
    pubsub,
    tracking,
    server,
    debug,
    modules,
    persistence,
    introspection,
    replymode,
    acl,
]


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
                raw = meta["subcommands"].get(row.name) or NEWER_THAN_7_0[row.name]
                containers.setdefault(parent, {})[sub] = _spec(row, module, sub_meta(raw))
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


#: Every command by lower-case name.
COMMANDS: dict[str, CommandSpec] = _build()


#: Internal parts (``@name``) that families run for plans and coordinators, by wire name.
INTERNAL_PARTS: dict[bytes, Callable[..., Any]] = {
    name: part
    for family in FAMILIES
    for name, part in getattr(family, "INTERNAL_PARTS", {}).items()
}
