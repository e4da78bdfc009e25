"""Server processes under test: started on a free port, polled until ready, stopped by PID.

Each server runs in its own session (process group), so Ctrl-C in the terminal reaches only the
harness, which then stops every server it started: SIGTERM to the main PID, and after a grace
period SIGKILL to the process group and to any descendant still alive.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import certs
import proctree

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_PROMISE_S = 2.0
STOP_GRACE_S = 5.0


class ServerError(RuntimeError):
    """A server failed to start, to answer, or exited while in use."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(port: int, *args: str) -> bytes:
    """Send one command on a fresh connection and return its raw one-line reply."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(arg)}\r\n{arg}\r\n" for arg in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ServerError(f"port {port} closed the connection on {args[0]}")
            reply += chunk
    return reply


def dbsize(port: int) -> int:
    """Number of keys the server holds (DBSIZE)."""
    reply = command(port, "DBSIZE")
    if not reply.startswith(b":"):
        raise ServerError(f"DBSIZE answered {reply!r}")
    return int(reply[1:])


@dataclass
class Server:
    """One server under test; `template` is a command line with {port} and {shards} fields."""

    label: str
    template: str
    shards: int
    log_dir: Path
    port: int = 0
    #: Certificates for a TLS port beside the plain one (None: no TLS port), and that port.
    tls: Path | None = None
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """PID of the main process."""
        if self.process is None:
            raise ServerError(f"{self.label} is not running")
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """File that receives the server's stdout and stderr."""
        return self.log_dir / f"{self.label}-shards{self.shards}.log"

    def argv(self) -> list[str]:
        """The command line with this server's port and shard count filled in."""
        argv = shlex.split(self.template.format(port=self.port, shards=self.shards))
        return argv + (certs.server_flags(self.tls, self.tls_port) if self.tls else [])

    def start(self, timeout: float = 30.0) -> Server:
        """Start on a free port and return once it answers PING and DBSIZE."""
        self.port = free_port()
        self.tls_port = free_port() if self.tls else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Poll PING (acceptor up) and DBSIZE (every shard answers) until both succeed."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                if command(self.port, "PING") == b"+PONG\r\n":
                    dbsize(self.port)
                    return
            except (OSError, ServerError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.label} did not answer within {timeout} s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def check_running(self) -> None:
        """Raise with the log tail if the main process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(
                f"{self.label} exited with status {self.process.returncode}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the whole tree: SIGTERM, then SIGKILL whatever outlives the grace period.

        SIGINT and SIGTERM are held back meanwhile, so a second Ctrl-C cannot orphan processes.
        """
        if self.process is None:
            return
        process, self.process = self.process, None
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._stop_tree(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _stop_tree(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the main process, wait for the tree, SIGKILL what is left; warn when slow."""
        keys = [stat.key for stat in proctree.tree(process.pid)]
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        if not _wait_gone(process, keys, STOP_GRACE_S):
            warn(f"{self.label} (pid {process.pid}) outlived SIGTERM by {STOP_GRACE_S} s; killing")
            _kill_all(process, keys)
        elapsed = time.monotonic() - started
        if elapsed > STOP_PROMISE_S:
            warn(f"{self.label} took {elapsed:.1f} s to stop after SIGTERM")
        process.wait()


def _wait_gone(
    process: subprocess.Popen[bytes], keys: list[tuple[int, int]], timeout: float
) -> bool:
    """Wait until the main process and every recorded descendant are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        main_done = process.poll() is not None
        if main_done and not any(proctree.is_alive(key) for key in keys[1:]):
            return True
        time.sleep(0.02)
    return False


def _kill_all(process: subprocess.Popen[bytes], keys: list[tuple[int, int]]) -> None:
    """SIGKILL the process group and every recorded process that still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for key in keys:
        if proctree.is_alive(key):
            with contextlib.suppress(ProcessLookupError):
                os.kill(key[0], signal.SIGKILL)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)
