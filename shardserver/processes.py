"""Process plumbing shared by the launcher, the acceptor and the shard workers.

Nothing here knows about commands: pipe sizes, descriptor hygiene in a forked child, the
process name shown in ``ps``, and waiting for a child to exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from typing import Any

PIPE_SIZE = 1 << 20


def enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (fewer partial writes); the default is kept if refused."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def close_inherited_fds(keep: set[int]) -> None:
    """Close every descriptor but stdio and ``keep``: the listening socket, clients, and the
    other shards' pipes stay with the acceptor, so end of file means what it should."""
    previous = 2
    for fd in [*sorted(keep), os.sysconf("SC_OPEN_MAX")]:
        if fd > previous + 1:
            os.closerange(previous + 1, fd)
        previous = fd


def name_process(name: str) -> None:
    """Show the process as ``name`` in ps and top (Linux only; harmless elsewhere)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def wait_for_exit(process: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a child (a ``multiprocessing`` process) to end;
    whether it did. (``Process.join`` with a timeout waits on a sentinel pipe the shard has
    closed, so this polls instead.)"""
    deadline = time.monotonic() + timeout
    while process.exitcode is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def describe_exit(exitcode: int | None) -> str:
    """How a child ended, in words: ``exited with status 1``, ``killed by SIGKILL``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with status {exitcode}"
