"""The acceptor's side of snapshots: SAVE/BGSAVE as a consistent cut, save rules, shutdown.

A snapshot is one ``@snapshot`` part sent to every shard *in one step* of the sequencer:
each shard executes its pipe in order, so every shard forks its copy-on-write image at the
same point of the global command order, and any multi-shard command is either wholly in
the snapshot or wholly out of it. Each shard's child writes its fragment (and the fragment's
size and CRC-64) to a temporary file while the shard keeps serving; the acceptor polls the
shards until every child is done, then joins header, fragments and trailer into the dump in
a worker thread (file copying releases the GIL; the checksum is combined, never recomputed),
so clients keep being served throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from typing import Any

from shardserver.persistence import rdb

log = logging.getLogger("shardserver.snapshots")

#: How often the acceptor asks the shards whether their snapshot children are done.
POLL_S = 0.02
#: After a failed background save, wait this long before the save rules try again (Redis).
RETRY_DELAY_S = 5


def parse_rules(text: str) -> list[tuple[int, int]]:
    """``"3600 1 300 100"`` -> [(3600, 1), (300, 100)]; raises ValueError if malformed."""
    words = text.split()
    if len(words) % 2:
        raise ValueError("save rules come in pairs: seconds changes")
    numbers = [int(word) for word in words]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


class Snapshots:
    """The dump as this acceptor sees it: the save it runs, the save rules' clock.

    Whether a save is running anywhere, and the last save's time, outcome and duration, are
    server-wide (:class:`shardserver.shared.ServerWords`): any acceptor may run a save."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.words = server.words
        self.last_attempt = 0.0
        #: The save this acceptor runs, if any.
        self.running: asyncio.Task | None = None
        self.changes = 0

    @property
    def config(self) -> Any:
        return self.server.config

    @property
    def last_save(self) -> int:
        return self.words.last_save

    @property
    def last_ok(self) -> bool:
        return self.words.last_ok

    @property
    def last_duration(self) -> int:
        return self.words.last_duration

    @property
    def started_at(self) -> int:
        return self.words.save_started

    @property
    def saving(self) -> bool:
        return self.words.saving

    def start(self) -> asyncio.Task | None:
        """BGSAVE: start a snapshot unless one is running (then None).

        The shards' snapshot parts are queued here, in the caller's step of the order, so
        the cut falls exactly after the commands that came before SAVE/BGSAVE and before
        any that follow it, even in the same pipeline."""
        if not self.words.start_save():
            return None
        prefix = os.path.join(self.config["dir"], f"temp-{os.getpid()}-{time.time_ns()}")
        paths = [f"{prefix}.shard{index}.rdbpart" for index in range(self.server.shard_count)]
        forked = self.server.call_shards([[b"@snapshot", path.encode()] for path in paths])
        self.last_attempt = time.monotonic()
        self.running = self.server.loop.create_task(self._save(paths, forked))
        return self.running

    async def _save(self, paths: list[str], forked: asyncio.Future) -> bool:
        server = self.server
        directory = self.config["dir"]
        count = len(paths)
        ok = False
        try:
            pids = await forked
            if any(not isinstance(pid, int) or pid < 0 for pid in pids):
                raise RuntimeError(f"a shard could not fork: {pids}")
            pending = set(range(count))
            while pending:
                await asyncio.sleep(POLL_S)
                states = await server.call_shards([[b"@snapshot_status"]] * count)
                for index in list(pending):
                    state = states[index]
                    if state is None:
                        continue
                    if state != 0:
                        raise RuntimeError(f"shard {index}'s snapshot failed ({state!r})")
                    pending.discard(index)
            pieces = [_fragment_trailer(path) for path in paths]
            head = rdb.header(rdb.default_aux())
            target = os.path.join(directory, self.config["dbfilename"])
            size = await server.loop.run_in_executor(
                None, rdb.write_dump, target, head, paths, pieces
            )
            ok = True
            log.info(
                "DB saved on disk: %s (%d bytes, %.3f s)",
                target,
                size,
                time.time() - self.started_at,
            )
        except Exception as problem:  # a failed save must leave the server up, like Redis
            log.warning("Background saving error: %s", problem)
        finally:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self.words.end_save(ok)
        return ok

    async def save_before_exit(self) -> bool:
        """Whether the server may exit now: SHUTDOWN SAVE, or save rules set and no
        NOSAVE, snapshot first; a failed snapshot keeps the server up (as Redis does)."""
        wanted = self.server.shutdown_save
        if wanted is None:
            wanted = bool(self.config["save"].strip())
        if not wanted:
            return True
        while self.words.saving:  # another save (here or in another acceptor) ends first
            await asyncio.sleep(POLL_S)
        log.warning("Saving the final RDB snapshot before exiting.")
        task = self.start()
        if task is not None and await task:
            return True
        log.warning("Error trying to save the DB, can't exit.")
        return False

    async def cron(self) -> None:
        """Once a second: learn the shards' change counts and apply the save rules."""
        while True:
            await asyncio.sleep(1.0)
            try:
                rules = parse_rules(self.config["save"])
            except ValueError:
                rules = []
            if not rules and self.config["appendonly"] != "yes":
                continue
            numbers = await self.server.call_shards(
                [[b"@persistence_info"]] * self.server.shard_count
            )
            self.changes = sum(n["dirty"] for n in numbers if isinstance(n, dict))
            if self.words.saving:
                continue
            since = time.time() - self.last_save
            if not self.last_ok and time.monotonic() - self.last_attempt < RETRY_DELAY_S:
                continue
            for seconds, changes in rules:
                if self.changes >= changes and since >= seconds:
                    log.info("%d changes in %d seconds. Saving...", changes, seconds)
                    self.start()
                    break


def _fragment_trailer(path: str) -> tuple[int, int]:
    """A fragment's (size, crc), which its writer put in the 16 bytes after the data."""
    with open(path, "rb") as handle:
        handle.seek(-16, os.SEEK_END)
        return struct.unpack("<QQ", handle.read(16))
