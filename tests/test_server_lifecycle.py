"""The server as a set of processes: start-up, shard processes, signals, bad command lines.

Processes are inspected through /proc: a shard process counts as gone once it no longer exists
or is a zombie waiting for a parent to reap it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    HOST,
    ServerPool,
    ServerProcess,
    clone_command,
    free_port,
    pid_alive,
    proc_children,
    proc_descendants,
    wait_until,
)

SHARD_LINE = re.compile(r"shard (\d+) pid (\d+)")
ACCEPTOR_LINE = re.compile(r"acceptor (\d+) pid (\d+)")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def logged_shard_pids(server: ServerProcess) -> dict[int, int]:
    """The `shard <i> pid <pid>` lines of the server's log, as {index: pid}."""
    return {int(i): int(pid) for i, pid in SHARD_LINE.findall(server.log_text())}


def all_gone(pids: list[int]) -> bool:
    """True when none of `pids` is a live process."""
    return not any(pid_alive(pid) for pid in pids)


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_shard_processes_are_children(clone_factory: ServerPool, shards: int) -> None:
    """--shards N starts exactly N shard processes, children of the main one, as logged
    (its other children are the other acceptors, when there are several)."""
    server = clone_factory.start_clone(shards=shards)
    assert wait_until(lambda: "Ready to accept connections" in server.log_text(), 5.0)
    logged = logged_shard_pids(server)
    assert sorted(logged) == list(range(shards)), server.log_text()
    count = server.client().info("shards")["acceptors"]
    assert wait_until(lambda: len(ACCEPTOR_LINE.findall(server.log_text())) == count, 5.0)
    acceptors = {int(i): int(pid) for i, pid in ACCEPTOR_LINE.findall(server.log_text())}
    assert acceptors[0] == server.pid
    others = [pid for index, pid in acceptors.items() if index != 0]
    children = proc_children(server.pid)
    assert sorted(children) == sorted([*logged.values(), *others])
    assert all(pid_alive(pid) for pid in children)


def start_with_family(pool: ServerPool, shards: int) -> tuple[ServerProcess, list[int]]:
    """Start a server; return it and its process family (main PID and every descendant)."""
    server = pool.start_clone(shards=shards)
    shard_pids = set(logged_shard_pids(server).values())
    assert len(shard_pids) == shards, server.log_text()
    family = [server.pid, *proc_descendants(server.pid)]
    assert shard_pids <= set(family), "logged shard PIDs are not descendants of the main PID"
    return server, family


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_process(clone_factory: ServerPool, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT to the main PID ends the main and every shard process within 2 s."""
    server, family = start_with_family(clone_factory, shards=4)
    with server.raw() as conn:
        assert conn.command("SET", "k", "v") == b"+OK\r\n"
    os.kill(server.pid, sig)
    gone = wait_until(lambda: all_gone(family), timeout=2.0)
    assert gone, f"still alive 2 s after {sig.name}: {[p for p in family if pid_alive(p)]}"
    assert server.proc is not None
    assert server.proc.wait(1) in (0, -sig), "exit status after a stop signal"


def test_sigkill_of_acceptor_ends_shards(clone_factory: ServerPool) -> None:
    """When the acceptor is SIGKILLed, the shard processes notice and exit on their own."""
    server, family = start_with_family(clone_factory, shards=4)
    os.kill(server.pid, signal.SIGKILL)
    gone = wait_until(lambda: all_gone(family), timeout=5.0)
    left = [p for p in family if pid_alive(p)]
    assert gone, f"processes alive 5 s after SIGKILL of the acceptor: {left}"


def test_port_is_released_after_sigterm(clone_factory: ServerPool) -> None:
    """After SIGTERM the port can be bound again at once by a new server."""
    first = clone_factory.start_clone(shards=2)
    port = first.port
    first.stop()
    argv = [*clone_command(), "--port", str(port), "--bind", HOST, "--shards", "1"]
    second = ServerProcess("redis-clone-restart", argv, port, clone_factory.log_dir / "restart.log")
    clone_factory.servers.append(second)
    second.start()
    with second.raw() as conn:
        assert conn.command("PING") == b"+PONG\r\n"


def test_clients_connected_during_sigterm(clone_factory: ServerPool) -> None:
    """Open client connections do not keep the server from stopping."""
    server, family = start_with_family(clone_factory, shards=2)
    conns = [server.raw() for _ in range(5)]
    try:
        for conn in conns:
            assert conn.command("PING") == b"+PONG\r\n"
        conns[0].send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\npartial")
        os.kill(server.pid, signal.SIGTERM)
        assert wait_until(lambda: all_gone(family), timeout=2.0)
        assert conns[1].read_until_closed(2.0) == b""
    finally:
        for conn in conns:
            conn.close()


def process_group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run redis-clone with `args` until it exits by itself; check it left no process behind."""
    proc = subprocess.Popen(
        [*clone_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    leftovers = wait_until(lambda: not process_group_members(proc.pid), timeout=5.0)
    assert leftovers, f"processes left after exit: {process_group_members(proc.pid)}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--port", "abc"],
        ["--shards", "0"],
        ["--shards", "-2"],
        ["--shards", "two"],
        ["--nosuchflag", "x"],
        ["--port"],
        ["--loglevel", "chatty"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    """Bad flags or values print a one-line error and exit with status 2, starting nothing."""
    port_args = [] if "--port" in args else ["--port", str(free_port())]
    result = run_cli([*port_args, "--bind", HOST, *args])
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {result.stderr!r}"
    assert lines[0].strip()


def test_malformed_config_file_exits_2(tmp_path: Path) -> None:
    """--config pointing at malformed TOML is refused with status 2 and a one-line error."""
    config = tmp_path / "bad.toml"
    config.write_text("port = [unclosed\n")
    result = run_cli(["--port", str(free_port()), "--bind", HOST, "--config", str(config)])
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """--config naming a file that does not exist is refused with status 2."""
    result = run_cli(["--port", str(free_port()), "--config", str(tmp_path / "nope.toml")])
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_port_in_use_fails_cleanly(clone_factory: ServerPool) -> None:
    """Starting on a port that is taken exits non-zero and leaves no shard process behind."""
    taken = clone_factory.start_clone(shards=1)
    result = run_cli(["--port", str(taken.port), "--bind", HOST, "--shards", "2"])
    assert result.returncode != 0
    assert result.stderr.strip()
    with taken.raw() as conn:
        assert conn.command("PING") == b"+PONG\r\n"
