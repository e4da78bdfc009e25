"""The real Redis tools against our server: redis-cli (one-shot and piped) and redis-benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import ServerProcess


def tool(name: str) -> str:
    """Path of a Redis tool; skip when absent, unless CI is set (then fail)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI requires it")
        pytest.skip(f"{name} is not installed")
    return path


def run_tool(argv: list[str], stdin: str | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run a tool to completion; return its status and stdout+stderr together."""
    result = subprocess.run(
        argv,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def cli(server: ServerProcess, *args: str, stdin: str | None = None) -> tuple[int, str]:
    """Run redis-cli against `server`."""
    return run_tool([tool("redis-cli"), "-h", "127.0.0.1", "-p", str(server.port), *args], stdin)


def test_redis_cli_one_shot(clone: ServerProcess) -> None:
    """`redis-cli SET a b` prints OK; `redis-cli GET a` prints b; errors print (error)."""
    assert cli(clone, "SET", "cli:a", "b") == (0, "OK\n")
    assert cli(clone, "GET", "cli:a") == (0, "b\n")
    assert cli(clone, "GET", "cli:missing") == (0, "\n")
    assert cli(clone, "PING") == (0, "PONG\n")
    assert cli(clone, "DBSIZE")[1].strip().isdigit()
    status, out = cli(clone, "SET", "cli:a", "b", "EX", "0")
    assert out.strip() == "ERR invalid expire time in 'set' command"


def test_redis_cli_binary_value_and_resp3(clone: ServerProcess) -> None:
    """redis-cli -3 (HELLO 3) works, and a value with a newline round-trips."""
    assert cli(clone, "-3", "SET", "cli:nl", "line1\nline2") == (0, "OK\n")
    assert cli(clone, "-3", "GET", "cli:nl") == (0, "line1\nline2\n")
    assert cli(clone, "--no-raw", "GET", "cli:nl") == (0, '"line1\\nline2"\n')


def test_redis_cli_piped_interactive(clone: ServerProcess) -> None:
    """Commands piped to redis-cli's stdin (what `echo ping | redis-cli` does) are answered."""
    assert cli(clone, stdin="ping\n") == (0, "PONG\n")
    status, out = cli(clone, stdin="set cli:p 1\nget cli:p\necho 'a b'\ndbsize\n")
    assert status == 0
    lines = out.splitlines()
    assert lines[:3] == ["OK", "1", "a b"]
    assert lines[3].isdigit()


def test_redis_cli_pipe_mode(clone: ServerProcess) -> None:
    """redis-cli --pipe (mass insertion) reports every reply and no errors."""
    commands = "".join(f"SET pipe:{i} {i}\r\n" for i in range(1000))
    status, out = cli(clone, "--pipe", stdin=commands)
    assert status == 0, out
    assert "errors: 0, replies: 1000" in out
    assert cli(clone, "GET", "pipe:999") == (0, "999\n")


@pytest.mark.parametrize("pipeline", ["1", "16"])
def test_redis_benchmark(clone: ServerProcess, pipeline: str) -> None:
    """redis-benchmark -q -n 2000 -t set,get finishes cleanly, at -P 1 and -P 16."""
    argv = [tool("redis-benchmark"), "-h", "127.0.0.1", "-p", str(clone.port)]
    argv += ["-q", "-n", "2000", "-t", "set,get", "-P", pipeline]
    status, out = run_tool(argv, timeout=120)
    assert status == 0, out
    for bad in ("ERR", "WARNING", "error"):
        assert bad not in out, out
    reported = [
        line for line in out.replace("\r", "\n").splitlines() if "requests per second" in line
    ]
    assert {line.split(":")[0] for line in reported} == {"SET", "GET"}, out


def test_redis_benchmark_random_keys(clone: ServerProcess) -> None:
    """redis-benchmark with random keys over 50 clients leaves keys on the server."""
    argv = [tool("redis-benchmark"), "-h", "127.0.0.1", "-p", str(clone.port)]
    argv += ["-q", "-n", "2000", "-t", "set", "-r", "1000", "-c", "50", "-d", "16"]
    status, out = run_tool(argv, timeout=120)
    assert status == 0, out
    assert "ERR" not in out and "error" not in out, out
    pipe = clone.client().pipeline(transaction=False)
    for i in range(1000):
        pipe.get(b"key:%012d" % i)
    found = [value for value in pipe.execute() if value is not None]
    assert len(found) > 500, "2000 random SETs over 1000 keys should leave most of them set"
    assert len(set(found)) == 1 and len(found[0]) == 16, "one 16-byte payload for every key"
