"""A shard's persistence: which writes it logs and how, its append-only log, its forked children.

While persistence is configured (``appendonly yes`` or save rules), the shard runs its batches
with a handler table in which every write is wrapped: right after the write ran, its *effect*
is logged (Redis calls this propagation), in the order the writes ran. A server without
persistence runs the plain table and pays nothing per command.

What is logged for a write, by its command row's ``propagate`` (see
:mod:`shardserver.commands.spec`):

- by default, the command as executed (LPUSH, HSET, ZADD, MSET, RENAME, DEL ...): commands
  whose outcome depends only on the state they run on and their arguments replay to the same
  effect, and a one-element push logs one element, whatever the size of the list;
- ``KEY_STATE``: the final state of each key the command names (SET with EX, RESTORE, SORT ...
  STORE): ``SET key value [PXAT ms]`` for a string, ``DEL key`` then the commands that rebuild
  a container and its ``PEXPIREAT``, or ``DEL key``;
- a function of the row: its own commands (SPOP as SREM of what it popped, EXPIRE as the
  PEXPIREAT of the deadline it set, HINCRBYFLOAT as HSET of the result).

A write whose reply is an error changed nothing and logs nothing. Deadlines are absolute, so
nothing relative reaches the log; a key that expires (looked up past its deadline, or swept)
logs ``DEL key`` at that point, so a push onto a key that had expired replays onto an empty
key, as it ran. Replay (:mod:`shardserver.persistence.loader`) runs the same handlers with the
clock stopped, so no key expires during replay.

Snapshots and rewrites fork: the child owns a copy-on-write image of the keyspace at that point
of the shard's command stream and writes it while the parent keeps serving; the parent reaps
the child from its loop (:meth:`ShardPersistence.tick`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from shardserver.commands.spec import Propagate, key_positions
from shardserver.commands.table import COMMANDS
from shardserver.errors import is_error
from shardserver.persistence import aof, rdb

log = logging.getLogger("shardserver.journal")

#: A rule: None (log as executed), Propagate.KEY_STATE (the state of these keys), or a function
#: of (shard, db, argv, reply) that returns the commands to log.
Rule = Any


def _client_rules() -> dict[bytes, tuple[Rule, Callable[[list], list[bytes]]]]:
    """Every write command by wire name: its rule, and where its keys are."""
    rules = {}
    for spec in COMMANDS.values():
        for each in [spec, *spec.subcommands.values()]:
            if "write" in each.flags and each.run is not None:
                keys = functools.partial(_keys_at, each)
                rules[each.name.encode()] = (each.propagate, keys)
    return rules


def _keys_at(spec: Any, argv: list) -> list[bytes]:
    return [argv[position] for position in key_positions(spec, argv)]


def _part_rules() -> dict[bytes, tuple[Rule, Callable[[list], list[bytes]]]]:
    """Internal parts that write (the fan-out and coordination halves of multi-shard writes):
    how each is logged. Every other internal part only reads: families' plans write through
    ``@put``/``@del`` or plain commands (see :mod:`shardserver.commands.spec`)."""

    def as_command(name: bytes) -> Callable[..., list[list[bytes]]]:
        return lambda shard, db, argv, reply: [[name, *argv[1:]]]

    rules: dict[bytes, tuple[Rule, Callable[[list], list[bytes]]]] = {
        b"@mset": (as_command(b"MSET"), lambda argv: argv[1::2]),
        b"@del": (as_command(b"DEL"), lambda argv: argv[1:]),
        b"@unlink": (as_command(b"DEL"), lambda argv: argv[1:]),
        b"@put": (Propagate.KEY_STATE, lambda argv: [argv[1]]),
        b"@set-add": (as_command(b"SADD"), lambda argv: [argv[1]]),
        b"@set-rem": (as_command(b"SREM"), lambda argv: [argv[1]]),
        b"@flushdb": (as_command(b"FLUSHDB"), lambda argv: []),
        b"@flushall": (as_command(b"FLUSHALL"), lambda argv: []),
        b"@swapdb": (as_command(b"SWAPDB"), lambda argv: []),
    }
    return rules


CLIENT_RULES = _client_rules()
PART_RULES = _part_rules()


def wrapped_writes(
    base: dict[bytes, Any],
    client_write: Callable[[bytes, Callable, Callable], Callable],
    part_write: Callable[[bytes, Callable, Callable], Callable],
    made: dict[int, dict[bytes, Any]],
) -> dict[bytes, Any]:
    """``base`` with each write command's handler replaced by ``client_write(name, handler,
    keys)`` and each writing part's by ``part_write(name, handler, keys)``, where
    ``keys(argv)`` names the keys it writes: how WATCH, the waiters and tracking hear of
    every write, by the positions this log uses. Each caller keeps the tables it was given
    in ``made`` (by the base's id), so a table is built once."""
    table = made.get(id(base))
    if table is not None:
        return table
    table = made[id(base)] = dict(base)
    for name, (_rule, keys) in CLIENT_RULES.items():
        if name in table:
            table[name] = client_write(name, table[name], keys)
    for name, (_rule, keys) in PART_RULES.items():
        if name in table:
            table[name] = part_write(name, table[name], keys)
    return table


def state_records(db: Any, key: bytes, now: int) -> Iterator[bytes]:
    """The records that make ``key`` what it is now in ``db`` (absent, when expired)."""
    value = db.data.get(key)
    deadline = db.expires.deadline.get(key) if db.expires else None
    if deadline is not None and deadline <= now:
        value = None
    yield from aof.key_records(key, value, deadline)


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
        self._logged_handlers: dict[bytes, Any] | None = None

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
        self._follow()

    def _follow(self) -> None:
        """Give the shard the handler table and expiry hook that this state needs."""
        shard = self.shard
        shard.base_handlers = self.logged_handlers() if self.active else shard.plain_handlers
        shard.expire_hook = self._expired if self.log is not None else None
        shard.refresh_handlers()

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
        else:
            self.log.remove_before(1 << 62)  # leftovers of an uncommitted change of layout
            base = aof.file_path(
                self.log.directory, self.log.name, self._shards, self.shard.index, 1, "base"
            )
            aof.write_base(base, self.shard.dbs, self.shard.now, self._libraries())
            self.log.open(1)
        self._follow()

    # -- the logged path (only while active) ---------------------------------------------

    def logged_handlers(self) -> dict[bytes, Any]:
        """The shard's handler table with every write wrapped to log its effect."""
        if self._logged_handlers is None:
            table = dict(self.shard.plain_handlers)
            for name, (rule, keys) in CLIENT_RULES.items():
                if name in table:
                    table[name] = self._client_write(table[name], rule, keys)
            for name, (rule, keys) in PART_RULES.items():
                if name in table:
                    table[name] = self._part_write(table[name], rule, keys)
            self._logged_handlers = table
        return self._logged_handlers

    def _client_write(self, handler: Callable, rule: Rule, keys: Callable) -> Callable:
        def logged(shard: Any, db: Any, argv: list, enc: Any) -> Any:
            reply = handler(shard, db, argv, enc)
            self.record(db, argv, reply, rule, keys)
            return reply

        return logged

    def _part_write(self, handler: Callable, rule: Rule, keys: Callable) -> Callable:
        def logged(shard: Any, db: Any, argv: list) -> Any:
            reply = handler(shard, db, argv)
            self.record(db, argv, reply, rule, keys)
            return reply

        return logged

    def record(self, db: Any, argv: list, reply: Any, rule: Rule, keys: Callable) -> None:
        """Log one write's effect (see the module docstring)."""
        if is_error(reply):
            return
        self.dirty += 1
        log_ = self.log
        if log_ is None:
            return
        shard = self.shard
        log_.select(shard.dbs.index(db))
        if rule is None:
            log_.buffer.append(aof.command(*argv))
        elif rule is Propagate.KEY_STATE:
            for key in keys(argv):
                log_.buffer.extend(state_records(db, key, shard.now))
        else:
            for command in rule(shard, db, argv, reply):
                if command[0].upper() == b"SELECT":
                    log_.select(int(command[1]))
                else:
                    log_.buffer.append(aof.command(*command))

    def library_changed(self, record: bytes) -> None:
        """A FUNCTION LOAD, DELETE or FLUSH, as the acceptor that made it sent it: a change
        since the last snapshot (as in Redis), and a record of shard 0's log. Only shard 0
        keeps the libraries' history (every shard gets every change in the same step, so
        one history is enough): its log, base and snapshot fragment carry them, and the
        acceptors take them from shard 0 when the server starts."""
        if not self.active or self.shard.index != 0:
            return
        self.dirty += 1
        if self.log is not None:
            self.log.buffer.append(record)

    def _libraries(self) -> list[bytes]:
        """The libraries this shard's snapshot fragment and log base start with."""
        return list(self.shard.scripts.library_code.values()) if self.shard.index == 0 else []

    def write_fragment(self, write: Any, libraries: list[bytes] | None = None) -> tuple[int, int]:
        """This shard's part of a dump, as it is now, through ``write``: its size and CRC.
        ``libraries``: those taken earlier (a forked child writes what the fork saw)."""
        shard = self.shard
        databases = [(index, db.data, db.expires.deadline) for index, db in enumerate(shard.dbs)]
        size, crc, _keys = rdb.write_fragment(
            write,
            databases,
            shard.now,
            list_fill=shard.settings.get("list-max-listpack-size", -2),
            libraries=self._libraries() if libraries is None else libraries,
        )
        return size, crc

    def _expired(self, db: Any, key: bytes) -> None:
        """A key went past its deadline (looked up or swept): the log drops it there."""
        log_ = self.log
        if log_ is not None:
            log_.select(self.shard.dbs.index(db))
            log_.buffer.append(aof.command(b"DEL", key))

    def flush(self) -> None:
        if self.log is not None:
            self.log.flush()
            if self.log.fsync_ns:
                self.shard.latency_sample("aof-fsync-always", self.log.fsync_ns)
                self.log.fsync_ns = 0
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
        libraries = self._libraries()
        pid = _fork(lambda: aof.write_base(base, self.shard.dbs, self.shard.now, libraries))
        self.rewrite_child = (pid, gen)

    def start_snapshot(self, path: str) -> int:
        """BGSAVE's part: fork a child that writes this shard's fragment to ``path`` (its
        size and CRC in the 16 bytes after the data); the child's pid."""
        if self.save_child is not None:
            return -1
        libraries = self._libraries()

        def write() -> None:
            with open(path, "wb") as out:
                size, crc = self.write_fragment(out.write, libraries)
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
        """From the worker's sweep timer: write what the sweep logged, reap a finished
        rewrite and drop the old files."""
        if self.log is not None and self.log.buffer:
            self.log.flush()
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
