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
from shardserver.shard import Shard

log = logging.getLogger("shardserver.worker")

PIPE_SIZE = 1 << 20


def enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (fewer partial writes); the default is kept if refused."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass


def run_worker(index: int, settings: dict, commands: Connection, replies: Connection) -> None:
    """Entry point of a shard process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the acceptor's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup_logging(settings["loglevel"], settings.get("logfile", ""), role="S")
    shard = Shard(index, settings)
    read_fd, write_fd = commands.fileno(), replies.fileno()
    with contextlib.suppress(BrokenPipeError):
        serve(shard, read_fd, write_fd)
    log.debug("shard %d exiting", index)


def serve(shard: Shard, read_fd: int, write_fd: int) -> None:
    """Execute batches until the command pipe closes, sweeping expired keys between them."""
    decoder = FrameDecoder()
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    interval = 1.0 / shard.hz
    next_sweep = time.monotonic() + interval
    loads, dumps = marshal.loads, marshal.dumps
    while True:
        timeout_ms = max(0.0, (next_sweep - time.monotonic()) * 1000.0)
        if poller.poll(timeout_ms):
            data = os.read(read_fd, PIPE_SIZE)
            if not data:
                return
            out = []
            for payload in decoder.feed(data):
                reply = dumps(shard.execute_batch(loads(payload)))
                out.append(frame_header(len(reply)))
                out.append(reply)
            if out:
                write_all(write_fd, out)
        now = time.monotonic()
        if now >= next_sweep:
            shard.expire_cycle()
            interval = 1.0 / shard.hz
            next_sweep = max(next_sweep + interval, now + interval / 2)
