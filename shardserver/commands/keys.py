"""Keyspace commands, run inside shards (Redis's ``db.c`` and ``expire.c``).

Parts of fan-out commands (``*_part``) take ``(shard, db, argv)`` and return a plain value that
the acceptor merges across shards.
"""

from __future__ import annotations

from shardserver.commands import merges
from shardserver.commands.spec import Command, Route


def dbsize_part(shard, db, argv) -> int:
    """Keys in the client's database on this shard (expired-but-present keys count, as in Redis)."""
    return len(db)


def flushall_part(shard, db, argv) -> int:
    """Empty every database of this shard; how many keys were removed."""
    return sum(db.clear() for db in shard.dbs)


ROWS = [
    Command("dbsize", Route.ALL, part=dbsize_part, merge=merges.total),
    Command("flushall", Route.ALL, part=flushall_part, merge=merges.ok, check=merges.check_flush),
]
