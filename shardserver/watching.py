"""WATCH on one shard: a version for every key some client watches, moved by every write.

A client's WATCH registers its keys on their shards (``@watch``, which answers each key's
version); its EXEC reads them again (``@watched``) with the shards held, and runs the
transaction only if none moved. A version moves when a write that succeeded names the key
(the same key positions the append-only log uses: :mod:`shardserver.persistence.journal`),
when the key expires (looked up past its deadline, or swept), and when FLUSHDB, FLUSHALL
or SWAPDB empties or replaces a database in which the key existed.

While nothing is watched the shard runs its usual handler table and pays nothing; the first
watch switches it to a table whose writes also move versions, the last unwatch back.

A write whose reply says it changed nothing (``:0`` from SADD, SREM, DEL, EXPIRE, SETNX
... : nothing added, removed, set or moved) leaves the version, as Redis does. Unlike Redis,
other writes that leave a key as it was (a pop of a missing key, ZADD of a score it
already has) move it too: such an EXEC fails where Redis's would run, which an optimistic
client takes as a retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shardserver.errors import is_error
from shardserver.persistence.journal import wrapped_writes

#: Internal parts that empty or replace whole databases, and the databases they touch.
_DATABASE_WRITES: dict[bytes, Callable[[Any, Any, list], list[int]]] = {
    b"@flushdb": lambda shard, db, argv: [shard.dbs.index(db)],
    b"@flushall": lambda shard, db, argv: list(range(len(shard.dbs))),
    b"@swapdb": lambda shard, db, argv: [int(argv[1]), int(argv[2])],
}


#: Writes whose ``:0`` says they changed nothing (nothing added, removed, set or moved), so
#: a watched key keeps its version, as Redis signals no change for them.
_NOTHING_IF_ZERO = frozenset(
    name.encode()
    for name in (
        "sadd", "srem", "hdel", "del", "unlink", "zrem", "lrem", "hsetnx", "setnx",
        "expire", "pexpire", "expireat", "pexpireat", "persist", "smove", "renamenx",
        "msetnx", "lpushx", "rpushx",
    )
)  # fmt: skip
_ZERO = b":0\r\n"


class Watches:
    """The watched keys of one shard: ``(db index, key)`` to ``[watchers, version]``."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.entries: dict[tuple[int, bytes], list[int]] = {}
        #: Versions come from a clock that starts at the process's start time, so a shard
        #: restarted (its data and its watches lost) never answers a version given before.
        self.clock = time.time_ns()
        self._tables: dict[int, dict[bytes, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.entries)

    # -- the parts -----------------------------------------------------------------------

    def watch(self, db: Any, keys: list[bytes]) -> list[int]:
        """Register one watcher of each key; their versions. A key already past its
        deadline expires first, so its removal does not count as a change."""
        was_idle = not self.entries
        index = self.shard.dbs.index(db)
        versions = []
        for key in keys:
            db.lookup(key, self.shard.now)
            entry = self.entries.get((index, key))
            if entry is None:
                entry = self.entries[(index, key)] = [0, self.clock]
            entry[0] += 1
            versions.append(entry[1])
        if was_idle:
            self.shard.refresh_handlers()
        return versions

    def unwatch(self, db_index: int, keys: list[bytes]) -> None:
        """One watcher of each key fewer (a client's UNWATCH, EXEC, DISCARD or departure)."""
        for key in keys:
            entry = self.entries.get((db_index, key))
            if entry is not None:
                entry[0] -= 1
                if entry[0] <= 0:
                    del self.entries[(db_index, key)]
        if not self.entries:
            self.shard.refresh_handlers()

    def versions(self, db: Any, keys: list[bytes]) -> list[int | None]:
        """The keys' versions now (None for one nobody watches here any more), after lazy
        expiry: a key past its deadline has changed even if nothing removed it yet."""
        index = self.shard.dbs.index(db)
        found = []
        for key in keys:
            db.lookup(key, self.shard.now)
            entry = self.entries.get((index, key))
            found.append(None if entry is None else entry[1])
        return found

    # -- what moves versions -------------------------------------------------------------

    def touch(self, db_index: int, key: bytes) -> None:
        entry = self.entries.get((db_index, key))
        if entry is not None:
            self.clock += 1
            entry[1] = self.clock

    def expired(self, db: Any, key: bytes) -> None:
        """A key removed for its deadline (the shard's expiry hook while watching)."""
        self.touch(self.shard.dbs.index(db), key)

    def handlers(self, base: dict[bytes, Any]) -> dict[bytes, Any]:
        """``base`` with every write wrapped to move the versions of the keys it names."""
        return wrapped_writes(base, self._client, self._part, self._tables)

    def _client(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        return self._client_write(handler, keys, name in _NOTHING_IF_ZERO)

    def _part(self, name: bytes, handler: Callable, keys: Callable) -> Callable:
        if name in _DATABASE_WRITES:
            return self._database_write(handler, _DATABASE_WRITES[name])
        return self._part_write(handler, keys)

    def _touch_keys(self, db: Any, keys: list[bytes]) -> None:
        if self.entries:
            index = self.shard.dbs.index(db)
            for key in keys:
                self.touch(index, key)

    def _client_write(self, handler: Callable, keys: Callable, zero_is_nothing: bool) -> Callable:
        def watched(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            if not is_error(reply) and not (zero_is_nothing and reply == _ZERO):
                self._touch_keys(db, keys(argv))
            return reply

        return watched

    def _part_write(self, handler: Callable, keys: Callable) -> Callable:
        def watched(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            if not is_error(reply):
                self._touch_keys(db, keys(argv))
            return reply

        return watched

    def _database_write(self, handler: Callable, databases: Callable) -> Callable:
        """FLUSHDB, FLUSHALL, SWAPDB: the watched keys that existed in a database touched."""

        def watched(shard: Any, db: Any, argv: list) -> Any:
            try:
                indexes = databases(shard, db, argv)
                existing = [
                    (index, key)
                    for index, key in self.entries
                    if index in indexes and key in shard.dbs[index].data
                ]
            except (ValueError, IndexError):
                existing = []
            reply = handler(shard, db, argv)
            if not is_error(reply):
                for index, key in existing:
                    self.touch(index, key)
            return reply

        return watched


def watch_part(shard: Any, db: Any, argv: list[bytes]) -> list[int]:
    """Internal: WATCH these keys (argv[1:]) in the client's database; their versions."""
    return shard.watches.watch(db, argv[1:])


def unwatch_part(shard: Any, db: Any, argv: list[bytes]) -> int:
    """Internal: stop watching these keys (argv[1:]) in the client's database."""
    shard.watches.unwatch(shard.dbs.index(db), argv[1:])
    return 1


def watched_part(shard: Any, db: Any, argv: list[bytes]) -> list[int | None]:
    """Internal: EXEC's check: the versions of these watched keys (argv[1:]) now; the
    client's watch on them ends here."""
    versions = shard.watches.versions(db, argv[1:])
    shard.watches.unwatch(shard.dbs.index(db), argv[1:])
    return versions


INTERNAL_PARTS = {
    b"@watch": watch_part,
    b"@unwatch": unwatch_part,
    b"@watched": watched_part,
}
