"""The shard worker process: moves batches between its pipes and its :class:`Shard`.

It blocks on the command pipe with a timeout that wakes it for the active-expiry sweep
(``hz`` times a second), executes every batch that has arrived, and writes all their replies
in one system call. End of file on the command pipe means the acceptor is gone (stopped, or
killed): the worker exits, so no process is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import select
import signal
import time
from multiprocessing.connection import Connection

from shardserver.framing import FrameDecoder, frame_header, write_all
from shardserver.logs import setup_logging
from shardserver.persistence.loader import LoadError, load
from shardserver.shard import Shard

log = logging.getLogger("shardserver.worker")

PIPE_SIZE = 1 << 20
#: Bytes asked of one pipe read. CPython allocates the whole size first; above glibc's mmap
#: threshold (128 KiB) every read would cost an mmap, an mremap and a munmap.
READ_CHUNK = 1 << 16


def enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (fewer partial writes); the default is kept if refused."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass


def close_inherited_fds(keep: set[int]) -> None:
    """Close every descriptor but stdio and ``keep``: the listening socket, clients, and the
    other shards' pipes stay with the acceptor, so end of file means what it should."""
    previous = 2
    for fd in [*sorted(keep), os.sysconf("SC_OPEN_MAX")]:
        if fd > previous + 1:
            os.closerange(previous + 1, fd)
        previous = fd


def run_worker(index: int, settings: dict, commands: Connection, replies: Connection) -> None:
    """Entry point of a shard process (forked from the acceptor)."""
    read_fd, write_fd = commands.fileno(), replies.fileno()
    close_inherited_fds({read_fd, write_fd})
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the acceptor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup_logging(settings["loglevel"], settings.get("logfile", ""), role="S")
    name_process(f"redis-clone-s{index}")
    shard = Shard(index, settings)
    try:
        load(shard, settings.get("aof-layout"))
    except (LoadError, OSError) as problem:
        log.warning("shard %d cannot load its data: %s", index, problem)
        report_ready(write_fd, str(problem))
        os._exit(1)
    report_ready(write_fd, None)
    with contextlib.suppress(BrokenPipeError):
        serve(shard, read_fd, write_fd)
    shard.persistence.close()
    log.debug("shard %d exiting", index)


def report_ready(write_fd: int, problem: str | None) -> None:
    """The start-up handshake: one frame, None once the data is loaded, else why not.

    The launcher waits for it before it listens, so no client meets a shard still loading
    and a damaged file stops the server with its reason rather than a dead shard."""
    message = marshal.dumps(problem)
    write_all(write_fd, [frame_header(len(message)), message])


def wait_ready(reply_fd: int) -> str | None:
    """Read a shard's start-up handshake (blocking); None when it is ready."""
    decoder = FrameDecoder()
    while True:
        data = os.read(reply_fd, READ_CHUNK)
        if not data:
            return "the shard exited while loading"
        for payload in decoder.feed(data):
            return marshal.loads(payload)


def name_process(name: str) -> None:
    """Show the shard as ``redis-clone-sN`` in ps and top (Linux only; harmless elsewhere)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def wait_for_exit(process, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a shard process to end; whether it did.

    (``Process.join`` with a timeout waits on a sentinel pipe the shard has closed.)
    """
    deadline = time.monotonic() + timeout
    while process.exitcode is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def serve(shard: Shard, read_fd: int, write_fd: int) -> None:
    """Execute batches until the command pipe closes, sweeping expired keys between them."""
    decoder = FrameDecoder()
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    interval = 1.0 / shard.hz
    next_sweep = time.monotonic() + interval
    loads, dumps = marshal.loads, marshal.dumps
    persistence = shard.persistence
    while True:
        timeout_ms = max(0.0, (next_sweep - time.monotonic()) * 1000.0)
        if poller.poll(timeout_ms):
            data = os.read(read_fd, READ_CHUNK)
            if not data:
                return
            out = []
            for payload in decoder.feed(data):
                batch = loads(payload)
                reply = dumps(shard.execute_batch(batch))
                if persistence.active:
                    persistence.track(batch)
                out.append(frame_header(len(reply)))
                out.append(reply)
            if out:
                if persistence.active:
                    persistence.flush()  # with appendfsync always: on disk before the reply
                write_all(write_fd, out)
        now = time.monotonic()
        if now >= next_sweep:
            shard.expire_cycle()
            persistence.tick()
            interval = 1.0 / shard.hz
            next_sweep = max(next_sweep + interval, now + interval / 2)
