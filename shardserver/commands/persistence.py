"""Persistence commands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF (Redis's ``rdb.c``/``aof.c``).

SAVE and BGSAVE run in the acceptor, which sequences the snapshot across every shard
(:mod:`shardserver.persistence.snapshots`); SAVE answers once the dump is on disk, but unlike
Redis it does not stop the server meanwhile (the shards' children write, the shards serve).
BGREWRITEAOF reaches every shard; each rewrites its own log in a child.

The internal parts at the end are what the acceptor's snapshot coordinator sends.
"""

from __future__ import annotations

import asyncio
import os

from shardserver.commands.spec import Command, Later, Route, local
from shardserver.errors import SYNTAX, error

_IN_PROGRESS = error("ERR Background save already in progress")
_SAVE_FAILED = error("ERR Background saving error")


def save(session, argv: list[bytes]) -> bytes | Later:
    """Snapshot now; the reply waits for the dump (other clients keep being served)."""
    task = session.server.snapshots.start()
    if task is None:
        return _IN_PROGRESS
    reply = session.server.loop.create_future()

    def done(finished: asyncio.Task) -> None:
        ok = not finished.cancelled() and finished.result()
        reply.set_result(b"+OK\r\n" if ok else _SAVE_FAILED)

    task.add_done_callback(done)
    return Later(reply)


def bgsave(session, argv: list[bytes]) -> bytes:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        return SYNTAX
    if session.server.snapshots.start() is None:
        if len(argv) == 2:
            return b"+Background saving scheduled\r\n"
        return _IN_PROGRESS
    return b"+Background saving started\r\n"


def lastsave(session, argv: list[bytes]) -> bytes:
    return session.enc.integer(session.server.snapshots.last_save)


def bgrewriteaof_part(shard, db, argv: list[bytes]) -> int:
    """1: started here; 0: already rewriting; -1: the log is off."""
    persistence = shard.persistence
    if persistence.log is None:
        return -1
    return 1 if persistence.request_rewrite() else 0


def bgrewriteaof_merge(session, argv: list[bytes], parts: list[int]) -> bytes:
    if all(part == -1 for part in parts):
        return error("ERR Append only file is disabled (appendonly no)")
    if not any(part == 1 for part in parts):
        return error("ERR Background append only file rewriting already in progress")
    return b"+Background append only file rewriting started\r\n"


def snapshot_part(shard, db, argv: list[bytes]) -> int:
    """Fork this shard's snapshot child here, at this point of the command order."""
    return shard.persistence.start_snapshot(os.fsdecode(argv[1]))


def snapshot_status_part(shard, db, argv: list[bytes]) -> int | None:
    return shard.persistence.snapshot_status()


def persistence_info_part(shard, db, argv: list[bytes]) -> dict:
    return shard.persistence.numbers()


ROWS = [
    local("save", save, notes="the server keeps serving while the dump is written"),
    local("bgsave", bgsave),
    local("lastsave", lastsave),
    Command(
        "bgrewriteaof",
        Route.ALL,
        part=bgrewriteaof_part,
        merge=bgrewriteaof_merge,
        notes="each shard rewrites its own log; refused while appendonly is no",
    ),
]

#: Parts the acceptor's snapshot coordinator sends, by wire name.
INTERNAL_PARTS = {
    b"@snapshot": snapshot_part,
    b"@snapshot_status": snapshot_status_part,
    b"@persistence_info": persistence_info_part,
}
