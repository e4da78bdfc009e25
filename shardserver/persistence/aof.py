"""Each shard's append-only log: file names, records, the fsync policy, rewrite and replay.

Files live in ``dir``, named ``<appendfilename>.<shards>.<index>.<generation>.<kind>``:
``base`` is a full image of the shard's keys (written by a rewrite), ``incr`` the writes
after it. The layout file ``<appendfilename>.layout`` names the shard count whose files are
current; it is replaced atomically only once every shard of a new count has written its
files, so a crash in the middle of a change of shard count leaves the old files in charge.

A shard's files load as: the newest generation that has a base, then every ``incr`` of that
generation or later, in order. A rewrite opens ``incr`` of generation g+1 at once (new writes
go there) and forks a child that writes ``base`` g+1 (temporary name, fsync, rename); only
then are generation g's files deleted. A crash at any point leaves a complete set.

Records are RESP commands: the writes as :mod:`shardserver.persistence.journal` logs them,
``SELECT`` when the database changes, and a base's image of each key (``SET key value [PXAT
ms]``, or ``DEL key``, the commands that rebuild a container, and its ``PEXPIREAT``). Shard 0's
files also hold FUNCTION LOAD's libraries: ``FUNCTION LOAD REPLACE``, ``FUNCTION DELETE`` and
``FUNCTION FLUSH`` as they happened, and a base starts with every library.
Deadlines are absolute, so replay never revives an expired key. A rewrite's overlap (a write
both in the new base and in the new incr) cannot happen: the new incr starts exactly where the
child's image was forked. ``redis-server`` reads these commands too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import hiredis

from shardserver import values
from shardserver.framing import write_all
from shardserver.persistence.rdb import fsync_dir

log = logging.getLogger("shardserver.aof")

_NAME = re.compile(r"^(?P<shards>\d+)\.(?P<index>\d+)\.(?P<gen>\d+)\.(?P<kind>base|incr)$")


class AofError(ValueError):
    """An append-only file that cannot be loaded; names the file and the byte offset."""


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(map(bulk, args))


def select_record(db: int) -> bytes:
    return command(b"SELECT", b"%d" % db)


def key_records(key: bytes, value: object | None, deadline: int | None) -> Iterator[bytes]:
    """The records that make ``key`` hold ``value`` until ``deadline`` (None: absent)."""
    for each in values.state_commands(key, value, deadline):
        yield command(*each)


# -- files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AofFile:
    path: str
    shards: int
    index: int
    gen: int
    kind: str


def list_files(directory: str, name: str) -> list[AofFile]:
    """Every append-only file of ``name`` in ``directory``, in load order per shard."""
    found = []
    prefix = name + "."
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(directory):
            if not entry.startswith(prefix):
                continue
            match = _NAME.match(entry[len(prefix) :])
            if match:
                found.append(
                    AofFile(
                        os.path.join(directory, entry),
                        int(match["shards"]),
                        int(match["index"]),
                        int(match["gen"]),
                        match["kind"],
                    )
                )
    found.sort(key=lambda f: (f.shards, f.index, f.gen, f.kind != "base"))
    return found


def files_to_load(files: list[AofFile], shards: int, index: int) -> list[AofFile]:
    """A shard's files in replay order: the newest base, then the incrs from its generation."""
    mine = [f for f in files if f.shards == shards and f.index == index]
    bases = [f.gen for f in mine if f.kind == "base"]
    first = max(bases) if bases else 0
    return [f for f in mine if f.gen >= first and (f.kind == "incr" or f.gen == first)]


def file_path(directory: str, name: str, shards: int, index: int, gen: int, kind: str) -> str:
    return os.path.join(directory, f"{name}.{shards}.{index}.{gen}.{kind}")


def layout_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"{name}.layout")


def read_layout(directory: str, name: str) -> int | None:
    """The shard count whose files are current, or None when there is no log yet."""
    try:
        with open(layout_path(directory, name)) as handle:
            return int(handle.read().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        raise AofError(f"{layout_path(directory, name)}: not a shard count") from None


def commit_layout(directory: str, name: str, shards: int) -> None:
    """Make ``shards`` the current layout (atomic), then delete other layouts' files."""
    path = layout_path(directory, name)
    temp = path + ".temp"
    with open(temp, "w") as handle:
        handle.write(f"{shards}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(directory)
    for stale in list_files(directory, name):
        if stale.shards != shards:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale.path)


# -- replay -------------------------------------------------------------------------------


def _encoded_size(argv: list) -> int:
    size = len(b"*%d\r\n" % len(argv))
    for arg in argv:
        size += len(b"$%d\r\n" % len(arg)) + len(arg) + 2
    return size


def replay(
    path: str,
    apply: Callable[[list[bytes]], None],
    allow_truncated: bool,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int | None]:
    """Feed every command of ``path`` to ``apply``; returns (commands, truncated_at).

    ``progress(bytes read, commands applied)`` is called after each block read, when given.

    A file that ends inside a command (a crash mid-write) is read up to the last complete
    one and ``truncated_at`` is that offset, when ``allow_truncated``; anything else that is
    not a sequence of RESP arrays of bulk strings is an :class:`AofError` with its offset.
    """
    reader = hiredis.Reader()
    offset = 0
    commands = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            reader.feed(block)
            while True:
                try:
                    argv = reader.gets()
                except hiredis.ProtocolError as problem:
                    raise AofError(f"{path}: bad RESP at offset {offset}: {problem}") from None
                if argv is False:
                    break
                if (
                    not isinstance(argv, list)
                    or not argv
                    or not all(isinstance(a, bytes) for a in argv)
                ):
                    raise AofError(f"{path}: not a command at offset {offset}")
                try:
                    apply(argv)
                except (AofError, ValueError) as problem:
                    raise AofError(f"{path}: {problem} at offset {offset}") from None
                offset += _encoded_size(argv)
                commands += 1
            if progress is not None:
                progress(handle.tell(), commands)
        size = handle.tell()
    if offset == size:
        return commands, None
    if not allow_truncated:
        raise AofError(f"{path}: truncated at offset {offset} of {size} (aof-load-truncated is no)")
    return commands, offset


# -- the live log -------------------------------------------------------------------------


class AppendLog:
    """The file a shard appends to, its buffer and its fsync policy.

    Records gather in a list while a wake-up's batches run; :meth:`flush` writes them in one
    system call before the replies leave (and fsyncs first with ``always``: one fsync per
    wake-up, a group commit). With ``everysec`` a thread fsyncs once a second, as Redis's
    background fsync does; with ``no`` the kernel decides.
    """

    def __init__(self, directory: str, name: str, shards: int, index: int, policy: str) -> None:
        self.directory = directory
        self.name = name
        self.shards = shards
        self.index = index
        self.policy = policy
        self.buffer: list[bytes] = []
        self.db = -1
        self.fd = -1
        self.gen = 0
        self.size = 0
        self.unsynced = False
        self.last_write_ok = True
        #: How long the last fsync of the ``always`` policy took (the latency monitor's).
        self.fsync_ns = 0
        self._lock = threading.Lock()
        self._syncer: threading.Thread | None = None

    def open(self, gen: int) -> None:
        """Append to ``incr`` of ``gen`` (created if absent); the next record re-selects."""
        path = file_path(self.directory, self.name, self.shards, self.index, gen, "incr")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.fsync(fd)
        fsync_dir(self.directory)
        old, self.fd, self.gen, self.db = self.fd, fd, gen, -1
        self.size = os.fstat(fd).st_size
        if old >= 0:
            with self._lock:
                os.close(old)
        if self.policy == "everysec" and self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_every_second, daemon=True)
            self._syncer.start()

    def select(self, db: int) -> None:
        if db != self.db:
            self.db = db
            self.buffer.append(select_record(db))

    def flush(self) -> None:
        """Write what the batches of this wake-up logged; fsync now if the policy is always."""
        if not self.buffer:
            return
        data = b"".join(self.buffer)
        self.buffer.clear()
        try:
            write_all(self.fd, [data])
            self.last_write_ok = True
        except OSError:
            self.last_write_ok = False
            log.exception("shard %d: writing the append-only file failed", self.index)
            raise
        self.size += len(data)
        if self.policy == "always":
            start = time.perf_counter_ns()
            os.fsync(self.fd)
            self.fsync_ns = time.perf_counter_ns() - start  # Redis's aof-fsync-always
        else:
            self.unsynced = True

    def sync(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.fsync(self.fd)
        self.unsynced = False

    def _sync_every_second(self) -> None:
        while self.fd >= 0:
            time.sleep(1.0)
            if self.unsynced and self.policy == "everysec":
                self.unsynced = False
                with contextlib.suppress(OSError):
                    self.sync()

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            self.sync()
            with self._lock:
                os.close(self.fd)
                self.fd = -1

    def remove_before(self, gen: int) -> None:
        """Delete this shard's files older than generation ``gen`` (after a rewrite)."""
        for each in list_files(self.directory, self.name):
            if (each.shards, each.index) == (self.shards, self.index) and each.gen < gen:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(each.path)


def library_record(code: bytes) -> bytes:
    """The record that loads a FUNCTION LOAD library (REPLACE: replay never meets an
    "already exists", whatever came before it)."""
    return command(b"FUNCTION", b"LOAD", b"REPLACE", code)


def write_base(path: str, dbs: list, now: int, libraries: Iterable[bytes] = ()) -> int:
    """A full image of ``dbs`` as records, after the ``libraries`` (as Redis's rewrite
    starts with them), atomically at ``path``; how many keys."""
    temp = path + ".temp"
    keys = 0
    with open(temp, "wb") as out:
        out.write(b"".join(map(library_record, libraries)))
        for index, db in enumerate(dbs):
            if not db.data:
                continue
            out.write(select_record(index))
            deadlines = db.expires.deadline
            chunk: list[bytes] = []
            for key, value in db.data.items():
                when = deadlines.get(key)
                if when is not None and when <= now:
                    continue
                chunk.extend(key_records(key, value, when))
                keys += 1
                if len(chunk) >= 4096:
                    out.write(b"".join(chunk))
                    chunk.clear()
            out.write(b"".join(chunk))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    fsync_dir(os.path.dirname(path))
    return keys
