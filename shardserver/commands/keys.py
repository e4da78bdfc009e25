"""Keyspace commands, run inside shards (Redis's ``db.c`` and ``expire.c``).

Parts of fan-out commands (``*_part``) take ``(shard, argv)`` and return a plain value that
the acceptor merges across shards.
"""

from __future__ import annotations


def dbsize_part(shard, argv, db_index: int) -> int:
    """Keys in the client's database on this shard (expired-but-present keys count, as in Redis)."""
    return len(shard.dbs[db_index])


def flushall_part(shard, argv, db_index: int) -> int:
    """Empty every database of this shard; how many keys were removed."""
    return sum(db.clear() for db in shard.dbs)
