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
client's reply entry with the merge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shardserver.commands.spec import Route, key_positions
from shardserver.coordination import coordinate
from shardserver.receivers import Gather


def send_parts(
    server: Any, client: Any, parts: list[tuple[int, list]], merge: Callable[[list], bytes]
) -> list:
    """Queue one-command runs (``(shard, argv)``) in one step; merge fills a new entry."""
    entry = client.new_entry()
    server.sequencer.step(client.ctx, parts, Gather(client, entry, merge, len(parts)))
    return entry


def single_key(server: Any, client: Any, spec: Any, argv: list) -> None:
    """KEY route off the fast path."""
    argv[0] = spec.wire_name
    client.enqueue(server.shard_of_key(argv[spec.first_key]), argv)


def fan_out(server: Any, client: Any, spec: Any, argv: list) -> None:
    """ALL route: a part on every shard, in one step; the merge gets them in shard order."""
    if spec.check is not None:
        problem = spec.check(client, argv)
        if problem is not None:
            client.reply(problem)
            return
    part = [b"@" + spec.wire_name, *argv[1:]]
    merge = spec.merge
    send_parts(
        server,
        client,
        [(shard, part) for shard in range(server.shard_count)],
        lambda parts: merge(client, argv, parts),
    )


def multi_key(server: Any, client: Any, spec: Any, argv: list) -> None:
    """KEYS route: natively on one shard when it owns every key, else parts per shard."""
    if spec.check is not None:
        problem = spec.check(client, argv)
        if problem is not None:
            client.reply(problem)
            return
    by_shard: dict[int, list[int]] = {}
    shard_of_key = server.shard_of_key
    for position in key_positions(spec, argv):
        by_shard.setdefault(shard_of_key(argv[position]), []).append(position)
    if len(by_shard) == 1:
        argv[0] = spec.wire_name
        client.enqueue(next(iter(by_shard)), argv)
        return
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
    merge = spec.merge
    send_parts(server, client, parts, lambda values: merge(client, argv, values, layout))


def cursor(server: Any, client: Any, spec: Any, argv: list) -> None:
    """CURSOR route (SCAN): one part, to the shard the cursor names."""
    planned = spec.plan(client, argv)
    if planned.__class__ is bytes:
        client.reply(planned)
        return
    shard, part = planned
    merge = spec.merge
    send_parts(server, client, [(shard, part)], lambda values: merge(client, shard, values[0]))


#: How each route beyond LOCAL is served.
ROUTES = {
    Route.KEY: single_key,
    Route.ALL: fan_out,
    Route.KEYS: multi_key,
    Route.COORD: coordinate,
    Route.CURSOR: cursor,
}
