"""A shard's persistence: which writes it logs, its append-only log, and its forked children.

The worker runs :meth:`ShardPersistence.track` after each batch only while persistence is
configured (``appendonly yes`` or save rules), so a server without persistence pays nothing
per command. Tracking does not re-execute or translate commands: for every key a write
touched it logs the key's state after the batch (``SET key value [PXAT ms]`` or ``DEL key``),
and whole-database commands (FLUSHDB, FLUSHALL, SWAPDB) as themselves, in order. Replaying
the whole-database commands in order and then the final states of the touched keys gives the
batch's end state exactly, whatever the commands were (INCRBYFLOAT, GETEX, SETRANGE ...), and
relative times are already absolute deadlines in the keyspace.

Snapshots and rewrites fork: the child owns a copy-on-write image of the keyspace at that
point of the shard's command stream and writes it while the parent keeps serving; the parent
reaps the child from its loop (:meth:`tick`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from shardserver.commands.table import COMMANDS
from shardserver.persistence import aof, rdb

log = logging.getLogger("shardserver.journal")


def _keys_from(first: int, step: int) -> Callable[[list], list]:
    def keys(argv: list) -> list:
        return argv[first::step]

    return keys


def _key_extractors() -> dict[bytes, Callable[[list], list]]:
    """For every write by wire name: the keys of its argv (in the client's database)."""
    found: dict[bytes, Callable[[list], list]] = {}
    for spec in COMMANDS.values():
        if "write" not in spec.flags or spec.first_key <= 0:
            continue
        if spec.last_key == -1:
            found[spec.name.encode()] = _keys_from(spec.first_key, spec.step)
        else:
            last, first = spec.last_key, spec.first_key
            found[spec.name.encode()] = lambda argv, a=first, b=last: argv[a : b + 1]
    found[b"@mset"] = _keys_from(1, 2)
    found[b"@del"] = _keys_from(1, 1)
    found[b"@unlink"] = found[b"@del"]
    found[b"@put"] = lambda argv: [argv[1]]
    # MOVE and COPY write to another database too: ShardPersistence.track handles them.
    del found[b"move"], found[b"copy"]
    return found


KEYS_WRITTEN = _key_extractors()
#: Whole-database writes, logged as themselves.
WHOLE_DB = {b"@flushdb", b"@flushall", b"@swapdb"}


class ShardPersistence:
    """One shard's log and snapshot children; plain state plus a few system calls."""

    def __init__(self, shard: Any) -> None:
        self.shard = shard
        self.log: aof.AppendLog | None = None
        #: Writes since the last successful snapshot (INFO rdb_changes_since_last_save).
        self.dirty = 0
        self.dirty_at_fork = 0
        self.active = False
        self.rewrite_requested = False
        self.rewrite_child: tuple[int, int] | None = None
        self.save_child: int | None = None
        self.last_rewrite_ok = True

    # -- configuration -------------------------------------------------------------------

    def configure(self, starting: bool = False) -> None:
        """Follow ``appendonly``, ``appendfsync`` and ``save`` (at start and on CONFIG SET)."""
        settings = self.shard.settings
        wants_log = settings.get("appendonly") == "yes"
        self.active = wants_log or bool(str(settings.get("save", "")).strip())
        if wants_log and self.log is None and not starting:
            self.log = self._new_log()
            self.log.open(self._latest_gen() + 1)
            self.rewrite_requested = True  # the log starts with an image of the keyspace
        elif not wants_log and self.log is not None:
            self.log.close()
            self.log = None
        if self.log is not None:
            self.log.policy = settings.get("appendfsync", "everysec")

    def _new_log(self) -> aof.AppendLog:
        settings = self.shard.settings
        return aof.AppendLog(
            settings.get("dir", "."),
            settings.get("appendfilename", "appendonly.aof"),
            settings.get("shards", 1),
            self.shard.index,
            settings.get("appendfsync", "everysec"),
        )

    def _latest_gen(self) -> int:
        settings = self.shard.settings
        files = aof.list_files(settings["dir"], settings["appendfilename"])
        mine = [f.gen for f in files if (f.shards, f.index) == (self._shards, self.shard.index)]
        return max(mine, default=0)

    @property
    def _shards(self) -> int:
        return self.shard.settings.get("shards", 1)

    def open_after_load(self, same_layout: bool) -> None:
        """Start appending once the data is loaded: to the newest incr when the files were
        this layout's own; otherwise to a fresh generation that begins with an image."""
        if self.shard.settings.get("appendonly") != "yes":
            return
        self.log = self._new_log()
        if same_layout:
            self.log.open(max(self._latest_gen(), 1))
            return
        self.log.remove_before(1 << 62)  # leftovers of an uncommitted change of layout
        base = aof.file_path(
            self.log.directory, self.log.name, self._shards, self.shard.index, 1, "base"
        )
        aof.write_base(base, self.shard.dbs, self.shard.now)
        self.log.open(1)

    # -- the hot path (only while active) ------------------------------------------------

    def track(self, batch: list[list]) -> None:
        """Log the effects of a batch that just ran (see the module docstring)."""
        extract = KEYS_WRITTEN
        dbs = self.shard.dbs
        touched: dict[tuple[int, bytes], Any] = {}
        log_ = self.log
        writes = 0
        for run in batch:
            db = dbs[run[0] >> 1]
            for argv in run[1:] if len(run) > 2 else (run[1],):
                name = argv[0]
                keys_of = extract.get(name)
                if keys_of is None:
                    if name in WHOLE_DB:
                        writes += 1
                        if log_ is not None:
                            self._log_whole_db(run[0] >> 1, argv)
                    elif name == b"move" or name == b"copy":
                        writes += 1
                        target = dbs[int(argv[2])] if name == b"move" else dbs[argv[3]]
                        touched[(id(target), argv[1 if name == b"move" else 2])] = target
                        touched[(id(db), argv[1])] = db
                    continue
                writes += 1
                for key in keys_of(argv):
                    touched[(id(db), key)] = db
        if not writes:
            return
        self.dirty += writes
        if log_ is None:
            return
        index_of = {id(db): index for index, db in enumerate(dbs)}
        now = self.shard.now
        for (db_id, key), db in touched.items():
            index = index_of.get(db_id)
            if index is None:
                continue
            log_.select(index)
            value = db.data.get(key)
            deadline = db.expires.deadline.get(key) if db.expires else None
            if deadline is not None and deadline <= now:
                value = None
            log_.buffer.append(aof.state_record(key, value, deadline))

    def _log_whole_db(self, db: int, argv: list) -> None:
        log_ = self.log
        if argv[0] == b"@flushall":
            log_.buffer.append(aof.command(b"FLUSHALL"))
        elif argv[0] == b"@flushdb":
            log_.select(db)
            log_.buffer.append(aof.command(b"FLUSHDB"))
        else:
            log_.buffer.append(aof.command(b"SWAPDB", argv[1], argv[2]))

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()
        if self.rewrite_requested:
            self.rewrite_requested = False
            self._start_rewrite()

    # -- children ------------------------------------------------------------------------

    def _start_rewrite(self) -> None:
        """BGREWRITEAOF: new writes go to the next generation's incr; a child writes its
        base from the keyspace as it is now."""
        if self.log is None or self.rewrite_child is not None:
            return
        self.log.flush()
        gen = self.log.gen + 1
        self.log.open(gen)
        base = aof.file_path(
            self.log.directory, self.log.name, self._shards, self.shard.index, gen, "base"
        )
        pid = _fork(lambda: aof.write_base(base, self.shard.dbs, self.shard.now))
        self.rewrite_child = (pid, gen)

    def start_snapshot(self, path: str) -> int:
        """BGSAVE's part: fork a child that writes this shard's fragment to ``path`` (its
        size and CRC in the 16 bytes after the data); the child's pid."""
        if self.save_child is not None:
            return -1
        shard = self.shard

        def write() -> None:
            with open(path, "wb") as out:
                databases = [
                    (index, db.data, db.expires.deadline) for index, db in enumerate(shard.dbs)
                ]
                size, crc, _keys = rdb.write_fragment(out.write, databases, shard.now)
                out.write(size.to_bytes(8, "little") + crc.to_bytes(8, "little"))
                out.flush()
                os.fsync(out.fileno())

        self.save_child = _fork(write)
        self.dirty_at_fork = self.dirty
        return self.save_child

    def snapshot_status(self) -> int | None:
        """None while the snapshot child runs; then its exit status (0: written)."""
        if self.save_child is None:
            return 0
        status = _reap(self.save_child)
        if status is None:
            return None
        self.save_child = None
        if status == 0:
            self.dirty -= self.dirty_at_fork
        return status

    def tick(self) -> None:
        """From the worker's sweep timer: reap a finished rewrite and drop the old files."""
        if self.rewrite_child is None:
            return
        pid, gen = self.rewrite_child
        status = _reap(pid)
        if status is None:
            return
        self.rewrite_child = None
        self.last_rewrite_ok = status == 0
        if status == 0 and self.log is not None:
            self.log.remove_before(gen)
            log.info("shard %d: append-only file rewritten (generation %d)", self.shard.index, gen)
        else:
            log.warning(
                "shard %d: append-only rewrite failed (status %s)", self.shard.index, status
            )

    def request_rewrite(self) -> bool:
        if self.log is None or self.rewrite_child is not None:
            return False
        self.rewrite_requested = True
        return True

    def numbers(self) -> dict[str, Any]:
        """This shard's part of INFO persistence."""
        return {
            "dirty": self.dirty,
            "aof_size": self.log.size if self.log is not None else 0,
            "aof_rewriting": self.rewrite_child is not None,
            "aof_rewrite_ok": self.last_rewrite_ok,
            "aof_write_ok": self.log.last_write_ok if self.log is not None else True,
        }

    def close(self) -> None:
        """At exit: whatever is buffered reaches the disk."""
        if self.log is not None:
            self.log.close()


def _fork(work: Callable[[], object]) -> int:
    """Run ``work`` in a forked child that exits 0 on success, 1 on any failure."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        work()
        status = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            log.exception("persistence child failed")
    finally:
        os._exit(status)


def _reap(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 1
    if not done:
        return None
    return os.waitstatus_to_exitcode(status)
