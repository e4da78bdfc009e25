"""What a shard loads when it starts: its data from the append-only log or the snapshot.

Every shard loads for itself, in its own process (so shards load in parallel), and keeps
only the keys of its own hash slots. That is what lets any shard count load files written
with any other: with the same count a shard reads only its own files; with another, it reads
every shard's files and keeps its slots, then writes a fresh image for the new layout.

Each source shard's files replay into a scratch keyspace of their own before the keys move
in: a FLUSHALL or SWAPDB in one old shard's log must only touch that old shard's keys.

FUNCTION LOAD's libraries are shard 0's to load (the dump's FUNCTION2 records, the FUNCTION
records of the logs, which only shard 0 writes); the acceptors take them from shard 0 once
every shard has loaded, and give them to every shard.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from shardserver.commands.table import COMMANDS
from shardserver.keyspace import Database, now_ms
from shardserver.persistence import aof, rdb
from shardserver.resp import Resp2
from shardserver.slots import slot_for_key, slot_ranges

log = logging.getLogger("shardserver.loader")

#: Commands a log may hold, by lower-case name: every write a shard runs, by its handler.
REPLAYABLE = {
    each.name.encode(): each.run
    for spec in COMMANDS.values()
    for each in [spec, *spec.subcommands.values()]
    if "write" in each.flags and each.run is not None and each.route.name != "LOCAL"
}


class LoadError(RuntimeError):
    """The data on disk cannot be loaded; the server must not start (the message says why)."""


class _Progress:
    """A log line about once a second on large files: keys loaded and MB/s."""

    def __init__(self, what: str, unit: str = "keys") -> None:
        self.what = what
        self.unit = unit
        self.start = self.last = time.monotonic()
        self.keys = 0

    def tick(self, done_bytes: int, keys: int | None = None) -> None:
        if keys is not None:
            self.keys = keys
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            rate = done_bytes / (now - self.start) / 1e6
            log.info("loading %s: %d %s, %.1f MB/s", self.what, self.keys, self.unit, rate)


def _mine(shard: Any) -> Callable[[bytes], bool]:
    first, last = slot_ranges(shard.settings.get("shards", 1))[shard.index]
    return lambda key: first <= slot_for_key(key) <= last


def load(shard: Any, layout: int | None) -> None:
    """Fill ``shard`` from disk as the settings say; raises LoadError on damaged files."""
    settings = shard.settings
    directory = settings.get("dir", ".")
    started = time.monotonic()
    if settings.get("appendonly") == "yes":
        same = layout == settings.get("shards", 1)
        if layout is not None:
            _load_aof(shard, directory, settings["appendfilename"], layout)
        shard.persistence.open_after_load(same)
        _drop_expired(shard)
        source = "append-only file"
    else:
        path = os.path.join(directory, settings.get("dbfilename", "dump.rdb"))
        if not os.path.exists(path):
            return
        _load_rdb(shard, path)
        source = path
    keys = shard.key_count()
    if keys:
        log.info(
            "shard %d: %d keys loaded from %s in %.3f s",
            shard.index,
            keys,
            source,
            time.monotonic() - started,
        )


def _load_rdb(shard: Any, path: str) -> None:
    """Load this shard's keys from a dump: values of every type are built with this
    shard's encoding thresholds; other shards' keys and keys already past their deadline
    are stepped over without being built."""
    mine = _mine(shard)
    now = now_ms()
    dbs = shard.dbs
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as problem:
        raise LoadError(f"cannot read {path}: {problem.strerror}") from None

    def keep(key: bytes, deadline: int | None) -> bool:
        return (deadline is None or deadline > now) and mine(key)

    def library(code: bytes) -> None:
        # Not REPLACE: a dump that names a library twice is refused, as Redis refuses it.
        problem = shard.scripts.load_library(code, replace=False)
        if problem is not None:
            raise LoadError(f"{path}: {library_failure(problem)}")

    progress = _Progress(path)
    try:
        for count, (db, key, value, deadline) in enumerate(
            rdb.read_dump(path, data, shard.settings, keep, library if shard.index == 0 else None)
        ):
            if count & 0xFFFF == 0:
                progress.tick(len(data))
            if db >= len(dbs):
                raise LoadError(f"{path}: database {db} is beyond 'databases' ({len(dbs)})")
            dbs[db].store(key, value, deadline)
            progress.keys += 1
    except rdb.RdbError as problem:
        raise LoadError(str(problem)) from None


def library_failure(reply: bytes) -> str:
    """Redis's log line for a library that does not load, from FUNCTION LOAD's error."""
    text = reply[1:].rstrip(b"\r\n").decode("utf-8", "replace")
    return "Failed loading library, " + text.removeprefix("ERR ")


def _load_aof(shard: Any, directory: str, name: str, layout: int) -> None:
    files = aof.list_files(directory, name)
    own = layout == shard.settings.get("shards", 1)
    sources = [shard.index] if own else range(layout)
    keep = None if own else _mine(shard)
    allow_truncated = shard.settings.get("aof-load-truncated", "yes") == "yes"
    for source in sources:
        chain = aof.files_to_load(files, layout, source)
        libraries = shard.scripts if shard.index == 0 else None
        if own:
            replayer = _Replayer(shard, shard.dbs, libraries)
        else:
            scratch = type(shard)(shard.index, {**shard.settings, "appendonly": "no", "save": ""})
            replayer = _Replayer(scratch, scratch.dbs, libraries)
        for position, each in enumerate(chain):
            last = position == len(chain) - 1
            progress = _Progress(each.path, "records")
            try:
                commands, cut = aof.replay(
                    each.path, replayer.apply, allow_truncated and last, progress.tick
                )
            except aof.AofError as problem:
                raise LoadError(str(problem)) from None
            if cut is not None:
                log.warning(
                    "!!! Warning: short read while loading the AOF file %s!!! "
                    "Loaded up to offset %d of %d (a crash mid-write); the rest is dropped",
                    each.path,
                    cut,
                    os.path.getsize(each.path),
                )
                if own:
                    os.truncate(each.path, cut)
        replayer.report(shard.index)
        if not own:
            _move_in(shard.dbs, scratch.dbs, keep)


def _drop_expired(shard: Any) -> None:
    """Delete what expired while the server was down, logging each deletion (a later write
    to the same key is logged as it runs, and must replay onto an absent key)."""
    now = now_ms()
    persistence = shard.persistence
    for db in shard.dbs:
        for key, when in list(db.expires.deadline.items()):
            if when <= now:
                db.delete(key)
                if db.on_expire is not None:
                    db.on_expire(db, key)
    persistence.flush()


def _move_in(dbs: list[Database], scratch: list[Database], keep: Callable[[bytes], bool]) -> None:
    for target, source in zip(dbs, scratch, strict=True):
        deadlines = source.expires.deadline
        for key, value in source.data.items():
            if keep(key):
                target.store(key, value, deadlines.get(key))


class _Replayer:
    """Applies the records :mod:`shardserver.persistence.journal` logs to a shard's databases,
    and FUNCTION's records to ``libraries`` (the loading shard's scripts; None: skipped).

    Writes run through the shards' own handlers, with the clock stopped at 0 so that no key
    expires during replay (deadlines are absolute; what has expired by now is dropped once
    everything is loaded). A record whose replay answers an error is counted and reported:
    it changed nothing when it was logged either, or the files were edited by hand. A library
    that does not load stops the start: FCALL would fail without saying why.
    """

    def __init__(self, shard: Any, dbs: list[Database], libraries: Any = None) -> None:
        self.shard = shard
        self.dbs = dbs
        self.db = dbs[0]
        self.libraries = libraries
        self.refused = 0
        self.first_refused = b""
        shard.now = 0

    def apply(self, argv: list[bytes]) -> None:
        name = argv[0].lower()
        if name == b"select" and len(argv) == 2:
            index = int(argv[1])
            if not 0 <= index < len(self.dbs):
                raise aof.AofError(f"SELECT {index} is beyond 'databases'")
            self.db = self.dbs[index]
        elif name == b"flushall":
            for db in self.dbs:
                db.clear()
        elif name == b"flushdb":
            self.db.clear()
        elif name == b"swapdb" and len(argv) == 3:
            first, second = int(argv[1]), int(argv[2])
            dbs = self.dbs
            current = dbs.index(self.db)
            dbs[first], dbs[second] = dbs[second], dbs[first]
            self.db = dbs[current]
        elif name == b"function":
            self._library(argv)
        else:
            handler = REPLAYABLE.get(name)
            if handler is None and len(argv) > 1:  # a container's write: XGROUP CREATE ...
                handler = REPLAYABLE.get(name + b"|" + argv[1].lower())
            if handler is None:
                raise aof.AofError(f"unexpected command {argv[0][:32]!r}")
            argv[0] = name
            reply = handler(self.shard, self.db, argv, Resp2)
            if reply[:1] == b"-":
                self.refused += 1
                self.first_refused = self.first_refused or reply[:100]

    def _library(self, argv: list[bytes]) -> None:
        """``FUNCTION LOAD [REPLACE] code``, ``FUNCTION DELETE name``, ``FUNCTION FLUSH``."""
        sub = argv[1].lower() if len(argv) > 1 else b""
        libraries = self.libraries
        if sub == b"load" and len(argv) in (3, 4):
            problem = libraries.load_library(argv[-1]) if libraries is not None else None
            if problem is not None:
                raise aof.AofError(library_failure(problem))
        elif sub == b"delete" and len(argv) == 3:
            if libraries is not None:
                libraries.delete_library(argv[2])
        elif sub == b"flush" and len(argv) in (2, 3):
            if libraries is not None:
                libraries.flush_libraries()
        else:
            raise aof.AofError(f"unexpected command {b' '.join(argv[:2])[:32]!r}")

    def report(self, index: int) -> None:
        self.shard.now = now_ms()
        if self.refused:
            log.warning(
                "shard %d: %d logged commands were refused on replay (first: %r)",
                index,
                self.refused,
                self.first_refused,
            )
