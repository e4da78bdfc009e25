"""Fixtures that run `redis-clone` and a real `redis-server` as processes for the server tests.

What lives here:

- `ServerProcess`: one server started on a free port on 127.0.0.1, its stdout and stderr captured to
  a log file, readiness polled with PING under a deadline, and stopped by PID (SIGTERM, then SIGKILL
  of its whole process group after a deadline) however the test ended.
- `RawConnection`: a plain socket that sends bytes and reads back the exact bytes of one reply,
  for tests that compare replies byte for byte or send malformed input.
- fixtures: `clone` (module-scoped, parametrized over 1 and 4 shards), `endpoint` (the same, plus
  the real `redis-server` as the oracle), `redis_server`, and `clone_factory` for tests that need a
  fresh server of their own (lifecycle, signals).

DEBUG is refused by default, as in Redis 7.0 (`enable-debug-command no`). A test module that needs
it says so: `CLONE_ARGS = DEBUG_ENABLED` at module level gives its `clone` and `endpoint` servers
`--enable-debug-command yes`, and servers it starts itself get `*DEBUG_ENABLED` in their args.

`REDIS_CLONE_CMD` overrides the command that starts the server under test (shell-quoted, the
`--port/--bind/--shards/--acceptors/--loglevel` flags are appended), e.g. to run the suite
against another build. `REDIS_CLONE_ACCEPTORS` sets the acceptor count of every server the
tests start (default 1; tests that need another count say so). `REDIS_SERVER_BIN` overrides
the oracle binary. When a test fails, the tail of the log of every server still running is
attached to its report.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import hiredis
import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
CLONE_SCRIPT = REPO_ROOT / "redis-clone"
HOST = "127.0.0.1"
START_DEADLINE_S = 30.0
ACCEPTORS = os.environ.get("REDIS_CLONE_ACCEPTORS", "1")
STOP_DEADLINE_S = 5.0
LOG_TAIL_CHARS = 20_000

Arg = bytes | str | int
#: The flags of a server that allows DEBUG (see the module docstring).
DEBUG_ENABLED = ("--enable-debug-command", "yes")


def clone_command() -> list[str]:
    """Return the command prefix that starts the server under test."""
    override = os.environ.get("REDIS_CLONE_CMD")
    if override:
        return shlex.split(override)
    return [sys.executable, str(CLONE_SCRIPT)]


def redis_server_binary() -> str | None:
    """Return the path of the real redis-server used as the oracle, or None when absent."""
    return os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port != 6379:
            return port


def encode_command(*args: Arg) -> bytes:
    """Encode one command as a RESP multi-bulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, int):
            data = str(arg).encode()
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


_LINE_TYPES = frozenset(b"+-:_,#(")
_BLOB_TYPES = frozenset(b"$!=")
_AGGREGATE_TYPES = frozenset(b"*~>")


def reply_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """Return the offset just past the RESP2/RESP3 reply starting at `pos`, or None if incomplete.

    Raises ValueError on bytes that are not a reply (unknown type byte, bad length).
    """
    if pos >= len(buf):
        return None
    line_end = buf.find(b"\r\n", pos)
    if line_end < 0:
        return None
    kind = buf[pos]
    header = bytes(buf[pos + 1 : line_end])
    after = line_end + 2
    if kind in _LINE_TYPES:
        return after
    if kind in _BLOB_TYPES:
        length = int(header)
        if length < 0:
            return after
        end = after + length + 2
        return end if end <= len(buf) else None
    if kind in _AGGREGATE_TYPES or kind in b"%|":
        count = int(header)
        if count < 0:
            return after
        if kind in b"%|":
            count *= 2
        for _ in range(count):
            nxt = reply_end(buf, after)
            if nxt is None:
                return None
            after = nxt
        if kind == ord("|"):
            # An attribute precedes the reply it describes.
            return reply_end(buf, after)
        return after
    raise ValueError(f"not a RESP reply at offset {pos}: {bytes(buf[pos : pos + 40])!r}")


def parse_reply(raw: bytes) -> object:
    """Decode the bytes of one complete reply with hiredis (RESP2 or RESP3)."""
    reader = hiredis.Reader()
    reader.feed(raw)
    reply = reader.gets()
    assert reader.gets() is False, f"more than one reply in {raw[:100]!r}"
    return reply


class RawConnection:
    """A blocking TCP socket that speaks raw bytes, reading whole replies with a deadline."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        """Connect to 127.0.0.1:`port`; `timeout` is the default deadline for each read."""
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send all of `data`."""
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; return False at end of stream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete reply before the deadline; have {self._preview()}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError:
            raise TimeoutError(
                f"no complete reply before the deadline; have {self._preview()}"
            ) from None
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _preview(self) -> str:
        return repr(bytes(self.buffer[:200]))

    def read_reply(self, timeout: float | None = None) -> bytes:
        """Return the raw bytes of the next complete reply."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            end = reply_end(self.buffer)
            if end is not None:
                reply = bytes(self.buffer[:end])
                del self.buffer[:end]
                return reply
            if not self._fill(deadline):
                raise ConnectionError(
                    f"connection closed before a complete reply; have {self._preview()}"
                )

    def request(self, data: bytes, timeout: float | None = None) -> bytes:
        """Send `data` (one request) and return the raw bytes of its reply."""
        self.send(data)
        return self.read_reply(timeout)

    def command(self, *args: Arg, timeout: float | None = None) -> bytes:
        """Send one command as a multi-bulk request and return its raw reply."""
        return self.request(encode_command(*args), timeout)

    def call(self, *args: Arg, timeout: float | None = None) -> object:
        """Send one command and return its reply decoded by hiredis (errors as ReplyError)."""
        return parse_reply(self.command(*args, timeout=timeout))

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Read until the server closes the connection; raise TimeoutError if it does not."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while self._fill(deadline):
                pass
        except ConnectionResetError:
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def flushed_replies(server: ServerProcess, commands: list[list], protocol: int = 2) -> list[bytes]:
    """FLUSHALL, then ``commands`` pipelined in RESP ``protocol``: their raw replies."""
    with RawConnection(server.port, timeout=30.0) as conn:
        conn.command("HELLO", protocol)
        assert conn.command("FLUSHALL") == b"+OK\r\n"
        conn.send(b"".join(encode_command(*command) for command in commands))
        return [conn.read_reply() for _ in commands]


def assert_like_redis(clone: ServerProcess, oracle: ServerProcess, commands: list[list]) -> None:
    """Every reply of ``commands`` (from an empty server, RESP2 and RESP3) as the oracle's."""
    for protocol in (2, 3):
        expected = flushed_replies(oracle, commands, protocol)
        got = flushed_replies(clone, commands, protocol)
        for command, want, have in zip(commands, expected, got, strict=True):
            assert have == want, command


def proc_children(pid: int) -> list[int]:
    """Return the PIDs whose parent is `pid`, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = proc_stat(int(entry))
        if stat is not None and stat[1] == pid:
            children.append(int(entry))
    return children


def proc_descendants(pid: int) -> list[int]:
    """Return every live descendant of `pid`."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        kids = [kid for parent in frontier for kid in proc_children(parent)]
        found.extend(kids)
        frontier = kids
    return found


def proc_stat(pid: int) -> tuple[str, int] | None:
    """Return (state, parent pid) of `pid` from /proc, or None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def pid_alive(pid: int) -> bool:
    """Return True while `pid` exists and is not a zombie waiting to be reaped."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.01
) -> object | None:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def start_redis_in(directory: Path, args: Sequence[str]) -> subprocess.Popen:
    """A redis-server on `args` (its port among them) that keeps its files in `directory`:
    for tests that hand dump files between it and us. The caller stops it."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server is not installed")
    return subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--dir", str(directory), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_redis(port: int) -> redis.Redis:
    """A client of the server on `port`, once it answers PING."""
    client = redis.Redis(port=port)

    def ready() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    assert wait_until(ready, 10)
    return client


class ServerStartError(RuntimeError):
    """The server exited or did not answer PING before the start deadline."""


class ServerProcess:
    """A server process on a free port: started, polled until ready, and stopped by PID."""

    _live: ClassVar[set[ServerProcess]] = set()

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: Path) -> None:
        """Describe a server; `argv` is the full command line, `log_path` receives its output."""
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The PID of the main (acceptor) process."""
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def start(self, wait: bool = True) -> ServerProcess:
        """Start the process in its own process group; with `wait`, poll PING until ready."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        ServerProcess._live.add(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_DEADLINE_S) -> None:
        """Poll with PING until the server answers +PONG; raise ServerStartError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with status {self.proc.returncode} before answering "
                    f"PING; command {shlex.join(self.argv)}; log:\n{self.log_text()}"
                )
            try:
                with RawConnection(self.port, timeout=1.0) as conn:
                    if conn.request(b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        raise ServerStartError(
            f"{self.name} did not answer PING within {timeout} s; command "
            f"{shlex.join(self.argv)}; log:\n{self.log_text()}"
        )

    def alive(self) -> bool:
        """Return True while the main process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> int | None:
        """Stop the server and every process it started; return the main exit status.

        SIGTERM goes to the main PID; whatever of the process group is still there after the
        deadline is SIGKILLed, as are descendants that left the group.
        """
        if self.proc is None:
            return None
        family = proc_descendants(self.pid) if self.alive() else []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(deadline_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in family:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        returncode = self.proc.wait()
        ServerProcess._live.discard(self)
        return returncode

    def log_text(self) -> str:
        """Return everything the server has written to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, **kwargs: object) -> redis.Redis:
        """Return a redis-py client for this server (redis-py defaults unless overridden)."""
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def client_on(self, acceptor: int, attempts: int = 64, **kwargs: object) -> redis.Redis:
        """A one-connection client served by acceptor ``acceptor`` (of ``--acceptors N``).

        The kernel spreads connections over the acceptors' SO_REUSEPORT listeners by a hash
        of their addresses, so this connects until one lands there."""
        for _ in range(attempts):
            client = self.client(single_connection_client=True, **kwargs)
            if client.info("shards")["connection_acceptor"] == acceptor:
                return client
            client.close()
        raise AssertionError(f"no connection landed on acceptor {acceptor} in {attempts} tries")

    def acceptors(self) -> int:
        """How many acceptors the server runs (INFO shards)."""
        with self.client() as client:
            return int(client.info("shards")["acceptors"])

    def raw(self, timeout: float = 10.0) -> RawConnection:
        """Return a new raw-socket connection to this server."""
        return RawConnection(self.port, timeout)


class ServerPool:
    """Starts servers on demand, caches them by configuration, and stops them all at the end."""

    def __init__(self, log_dir: Path) -> None:
        """Logs of the started servers go to files under `log_dir`."""
        self.log_dir = log_dir
        self.servers: list[ServerProcess] = []
        self._cached: dict[tuple[object, ...], ServerProcess] = {}

    def start_clone(
        self, shards: int = 1, args: Sequence[str] = (), wait: bool = True
    ) -> ServerProcess:
        """Start a fresh redis-clone with `shards` shard processes and extra CLI `args`."""

        def argv(port: int) -> list[str]:
            flags = ["--port", str(port), "--bind", HOST, "--shards", str(shards)]
            if "--acceptors" not in args:
                flags += ["--acceptors", ACCEPTORS]
            if "--dir" not in args:  # its own: a SAVE or DEBUG RELOAD never reaches another
                data = self.log_dir / f"data-{port}"
                data.mkdir(exist_ok=True)
                flags += ["--dir", str(data)]
            return [*clone_command(), *flags, "--loglevel", "notice", *args]

        return self._start(f"redis-clone-shards{shards}", argv, wait)

    def start_redis(self, args: Sequence[str] = ()) -> ServerProcess:
        """Start a fresh real redis-server (no persistence)."""
        binary = redis_server_binary()
        assert binary is not None

        def argv(port: int) -> list[str]:
            flags = ["--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
            return [binary, *flags, "--dir", str(self.log_dir), *args]

        return self._start("redis-server", argv, True)

    def clone(self, shards: int, args: Sequence[str] = ()) -> ServerProcess:
        """Return the shared redis-clone of this configuration, starting it the first time."""
        key = ("clone", shards, tuple(args))
        if key not in self._cached:
            self._cached[key] = self.start_clone(shards, args)
        return self._cached[key]

    def _start(self, name: str, argv: Callable[[int], list[str]], wait: bool) -> ServerProcess:
        # A free port can be taken between probing and binding: try again on a new one.
        for attempt in range(3):
            port = free_port()
            log_path = self.log_dir / f"{name}-{port}.log"
            server = ServerProcess(name, argv(port), port, log_path)
            self.servers.append(server)
            try:
                return server.start(wait)
            except ServerStartError:
                server.stop()
                if attempt == 2 or "in use" not in server.log_text().lower():
                    raise
        raise AssertionError("unreachable")

    def stop_all(self) -> None:
        """Stop every server this pool started."""
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def server_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the servers' log files."""
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="module")
def module_servers(server_log_dir: Path) -> Iterator[ServerPool]:
    """Servers shared by the tests of one module, stopped when the module is done."""
    pool = ServerPool(server_log_dir)
    yield pool
    pool.stop_all()


@pytest.fixture
def clone_factory(server_log_dir: Path) -> Iterator[ServerPool]:
    """A pool whose `start_clone(shards, args)` starts fresh servers, stopped after the test."""
    pool = ServerPool(server_log_dir)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module", params=[1, 4], ids=["shards1", "shards4"])
def clone(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    """A redis-clone with 1 or 4 shards, shared by the tests of one module (with the module's
    ``CLONE_ARGS``, if it has any)."""
    return module_servers.clone(request.param, module_clone_args(request))


@pytest.fixture(scope="module")
def debug_oracle(module_servers: ServerPool) -> ServerProcess:
    """redis-server with DEBUG allowed (7.0 refuses it by default)."""
    require_redis_server()
    return module_servers.start_redis(["--enable-debug-command", "yes"])


def require_redis_server() -> None:
    """Skip the test when redis-server (the oracle) is missing, but fail under CI, which
    installs it: a differential test that silently skips there proves nothing."""
    if redis_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI requires the oracle")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(server_log_dir: Path) -> Iterator[ServerProcess]:
    """A real redis-server on a free port; skipped when absent, unless CI is set (then fails)."""
    require_redis_server()
    pool = ServerPool(server_log_dir)
    server = pool.start_redis()
    yield server
    pool.stop_all()


@pytest.fixture(
    scope="module", params=["redis-server", 1, 4], ids=["redis-server", "shards1", "shards4"]
)
def endpoint(request: pytest.FixtureRequest, module_servers: ServerPool) -> ServerProcess:
    """The real redis-server (the oracle for expected bytes) and redis-clone at 1 and 4 shards."""
    if request.param == "redis-server":
        return request.getfixturevalue("redis_server")
    return module_servers.clone(request.param, module_clone_args(request))


def module_clone_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The extra flags a test module asks for its shared servers (``CLONE_ARGS``)."""
    return tuple(getattr(request.module, "CLONE_ARGS", ()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of every running server's log to the report of a failed test."""
    report = yield
    if report.failed:
        for server in sorted(ServerProcess._live, key=lambda s: s.port):
            state = "running" if server.alive() else f"exited ({server.proc.returncode})"
            tail = server.log_text()[-LOG_TAIL_CHARS:]
            report.sections.append((f"{server.name} :{server.port} [{state}] log", tail))
    return report
