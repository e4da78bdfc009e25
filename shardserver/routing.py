"""Routes: where each kind of command goes, and how the parts of a multi-shard one come back.

The command table gives every command a route (:class:`shardserver.commands.spec.Route`).
Single-key commands, nearly all traffic, are routed inline by the client connection's fast
path; this module serves the others, each as ``route(server, client, spec, argv)``:

- ``KEY`` off the fast path (subcommands such as MEMORY USAGE, before AUTH ...);
- ``KEYS``: natively on one shard when it owns every key, else one part per shard, in one
  sequencer step, merged by the command's ``merge``;
- ``ALL``: a part on every shard, in one step;
- ``CURSOR``: one part, on the shard a SCAN cursor names;
- ``COORD``: see :mod:`shardserver.coordination`.

The parts' values come back to a :class:`shardserver.receivers.Gather`, which fills the
client's reply entry with the merge. Each route but COORD is a *planner* (what the command
becomes: :class:`Parts`) and a send; EXEC takes the planners (:data:`PLANNERS`) to queue a
whole transaction in one step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver.blocked import block
from shardserver.commands.spec import LOCAL_CALLS, Route, key_positions
from shardserver.coordination import checked_shards, coordinate
from shardserver.errorstats import ACCEPTOR as ERRORS
from shardserver.receivers import Gather


class Parts:
    """A command as what its shards run, in one step: a single *native* run of the command
    itself (``merge`` None: that run's reply is the command's), or internal parts whose
    values ``merge`` turns into the reply (:func:`shardserver.receivers.merged`)."""

    __slots__ = ("parts", "merge")

    def __init__(
        self, parts: list[tuple[int, list]], merge: Callable[[list], bytes] | None = None
    ) -> None:
        self.parts = parts
        self.merge = merge


def send_parts(
    server: Any, client: Any, parts: list[tuple[int, list]], merge: Callable[[list], bytes]
) -> list:
    """Queue one-command runs (``(shard, argv)``) in one step; merge fills a new entry."""
    entry = client.new_entry()
    if client.tracking is not None:
        parts = server.tracking.wrap_parts(client, parts)
    if server.monitors.riding is not None:  # its lowest shard writes its line
        parts = server.monitors.carry_step(client.ctx, parts)
    server.sequencer.step(client.ctx, parts, Gather(client, entry, merge, len(parts)))
    return entry


def send(server: Any, client: Any, planned: Parts | bytes) -> None:
    """Send what a planner made of a command: a native run extends the client's open run."""
    if planned.__class__ is bytes:
        client.reply(planned)
    elif planned.merge is None:
        shard, argv = planned.parts[0]
        client.enqueue(shard, argv)
    else:
        send_parts(server, client, planned.parts, planned.merge)


# -- planners: what each route makes of a command --------------------------------------------


def _counted(name: str, reply: bytes) -> bytes:
    """A reply the acceptor made for ``name`` (a check's refusal, a merge): an error counts
    here, where it is made (the shards count their own commands' errors)."""
    if reply[:1] == b"-":
        ERRORS.failed_call(name, reply)
    return reply


def plan_key(server: Any, client: Any, spec: Any, argv: list) -> Parts:
    """KEY: natively on the key's shard."""
    argv[0] = spec.wire_name
    return Parts([(server.shard_of_key(argv[spec.first_key]), argv)])


def plan_all(server: Any, client: Any, spec: Any, argv: list) -> Parts | bytes:
    """ALL: a part on every shard; the merge gets them in shard order."""
    if spec.check is not None:
        problem = spec.check(client, argv)
        if problem is not None:
            return _counted(spec.name, problem)
    part = [b"@" + spec.wire_name, *argv[1:]]
    merge, name = spec.merge, spec.name
    return Parts(
        [(shard, part) for shard in range(server.shard_count)],
        lambda parts: _counted(name, merge(client, argv, parts)),
    )


def plan_keys(server: Any, client: Any, spec: Any, argv: list) -> Parts | bytes:
    """KEYS: natively on one shard when it owns every key, else a part per shard."""
    if spec.check is not None:
        problem = spec.check(client, argv)
        if problem is not None:
            return _counted(spec.name, problem)
    by_shard: dict[int, list[int]] = {}
    shard_of_key = server.shard_of_key
    for position in key_positions(spec, argv):
        by_shard.setdefault(shard_of_key(argv[position]), []).append(position)
    if len(by_shard) == 1:
        argv[0] = spec.wire_name
        return Parts([(next(iter(by_shard)), argv)])
    LOCAL_CALLS[spec.name] += 1  # one call, however many shards run a part of it
    name = b"@" + spec.wire_name
    step = spec.step
    first = spec.first_key
    parts = []
    layout = []
    for shard, positions in by_shard.items():
        part = [name]
        for position in positions:
            part.extend(argv[position : position + step])
        parts.append((shard, part))
        layout.append([(position - first) // step for position in positions])
    merge, name = spec.merge, spec.name
    return Parts(parts, lambda values: _counted(name, merge(client, argv, values, layout)))


def plan_cursor(server: Any, client: Any, spec: Any, argv: list) -> Parts | bytes:
    """CURSOR (SCAN): one part, on the shard the cursor names."""
    planned = spec.plan(client, argv)
    if planned.__class__ is bytes:
        return _counted(spec.name, planned)
    shard, part = planned
    merge, name = spec.merge, spec.name
    return Parts([(shard, part)], lambda values: _counted(name, merge(client, shard, values[0])))


def plan_coord(server: Any, client: Any, spec: Any, argv: list) -> Parts | bytes | None:
    """COORD: natively when every key it may touch is on one shard; None when it needs a
    coordination (shards held across a read and a decision)."""
    checked = checked_shards(server, client, spec, argv)
    if checked.__class__ is bytes:
        return _counted(spec.name, checked)
    argv, shards = checked
    if len(shards) != 1:
        return None
    argv[0] = spec.wire_name
    return Parts([(shards.pop(), argv)])


def _sent(planner: Callable[..., Parts | bytes]) -> Callable[[Any, Any, Any, list], None]:
    def route(server: Any, client: Any, spec: Any, argv: list) -> None:
        send(server, client, planner(server, client, spec, argv))

    route.__doc__ = planner.__doc__
    return route


#: How each route beyond LOCAL is served.
ROUTES = {
    Route.KEY: _sent(plan_key),
    Route.ALL: _sent(plan_all),
    Route.KEYS: _sent(plan_keys),
    Route.COORD: coordinate,
    Route.BLOCK: block,
    Route.CURSOR: _sent(plan_cursor),
    Route.SCRIPT: lambda server, client, spec, argv: server.scripts.route(client, spec, argv),
}
#: What each route makes of a command, for callers that send several commands in one step
#: (EXEC).
PLANNERS = {
    Route.KEY: plan_key,
    Route.ALL: plan_all,
    Route.KEYS: plan_keys,
    Route.COORD: plan_coord,
    Route.BLOCK: plan_coord,
    Route.CURSOR: plan_cursor,
}
