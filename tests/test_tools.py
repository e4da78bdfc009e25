"""The real Redis tools against our server: redis-cli and redis-benchmark.

redis-cli one-shot, piped (interactive-style, compared line for line with the same session
against a real redis-server), --pipe, --scan (also while keys come and go), --bigkeys,
--memkeys and --stat; redis-benchmark at several pipeline depths.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import time

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


# -- redis-cli's keyspace tools: --scan, --bigkeys, --memkeys, --stat ------------------------------

TOOLS_DB = 7
SCAN_KEYS = 1000


def fill_db(server: ServerProcess, db: int = TOOLS_DB) -> set[str]:
    """Empty database `db`, then set SCAN_KEYS keys (all shards) and one 100-byte value."""
    client = server.client(db=db)
    client.flushdb()
    keys = {f"scan:{i}" for i in range(SCAN_KEYS)}
    client.mset({key: key.rsplit(":", 1)[1] for key in keys})
    client.set("scan:big", "x" * 100)
    client.close()
    return keys | {"scan:big"}


def test_redis_cli_scan_lists_every_key(clone: ServerProcess) -> None:
    """`redis-cli --scan` prints each key of the database (and only those) over every shard."""
    keys = fill_db(clone)
    status, out = cli(clone, "-n", str(TOOLS_DB), "--scan")
    assert status == 0, out
    assert sorted(set(out.splitlines())) == sorted(keys)


@pytest.mark.parametrize("pattern", ["scan:1*", "scan:?", "*big", "nomatch*", "scan:[0-2]0"])
def test_redis_cli_scan_pattern(clone: ServerProcess, pattern: str) -> None:
    """`redis-cli --scan --pattern P` prints exactly the keys that match P."""
    keys = fill_db(clone)
    status, out = cli(clone, "-n", str(TOOLS_DB), "--scan", "--pattern", pattern)
    assert status == 0, out
    assert sorted(set(out.splitlines())) == sorted(
        k for k in keys if fnmatch.fnmatchcase(k, pattern)
    )


def test_redis_cli_scan_during_deletions(clone: ServerProcess) -> None:
    """Keys present for the whole scan are all listed, though others come and go meanwhile.

    `-i 0.02` makes redis-cli pause between SCAN calls, so that the deletions and insertions
    below land while the scan is under way (checked: redis-cli is still running after them).
    Nothing is listed that never existed.
    """
    keys = fill_db(clone)
    stable = {key for key in keys if not key.endswith(("1", "3", "5"))}
    doomed = sorted(keys - stable)
    added = [f"scan:new:{i}" for i in range(300)]
    argv = [tool("redis-cli"), "-p", str(clone.port), "-n", str(TOOLS_DB), "--scan", "-i", "0.02"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = clone.client(db=TOOLS_DB)
        for start in range(0, max(len(doomed), len(added)), 20):
            client.delete(*doomed[start : start + 20] or ["scan:none"])
            if added[start : start + 20]:
                client.mset(dict.fromkeys(added[start : start + 20], "n"))
            time.sleep(0.01)  # pace the changes over the scan (not a wait for a condition)
        client.close()
        assert proc.poll() is None, "the scan ended before the changes: it raced nothing"
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    listed = set(out.splitlines())
    assert stable <= listed, f"missed keys present throughout: {sorted(stable - listed)[:10]}"
    assert listed <= keys | set(added), f"listed keys that never existed: {listed - keys}"


def test_redis_cli_bigkeys_matches_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    """`redis-cli --bigkeys` completes and its summary is the one it prints for Redis."""
    summaries = []
    for server in (clone, redis_server):
        fill_db(server)
        status, out = cli(server, "-n", str(TOOLS_DB), "--bigkeys")
        assert status == 0, out
        assert "error" not in out.lower() and "warning" not in out.lower(), out
        summaries.append(out[out.index("-------- summary -------") :])
    ours, theirs = summaries
    assert "Sampled 1001 keys in the keyspace!" in ours, ours
    assert "Biggest string found '\"scan:big\"' has 100 bytes" in ours, ours
    assert ours == theirs


def memkeys(server: ServerProcess) -> str:
    """Run `redis-cli --memkeys` on the filled tools database; return its output."""
    fill_db(server)
    status, out = cli(server, "-n", str(TOOLS_DB), "--memkeys")
    assert status == 0, out
    return out


def test_redis_cli_memkeys_completes(clone: ServerProcess) -> None:
    """`redis-cli --memkeys` runs to completion and samples every key."""
    out = memkeys(clone)
    assert "Sampled 1001 keys in the keyspace!" in out, out[-2000:]
    assert "1001 strings with" in out, out[-2000:]


def test_redis_cli_memkeys_measures_memory(clone: ServerProcess) -> None:
    """`redis-cli --memkeys` reports each key's memory, without a warning, as with Redis."""
    out = memkeys(clone)
    assert "Warning" not in out, out[:500]
    assert "1001 strings with 0 bytes" not in out, out[-2000:]
    assert "Biggest string found '\"scan:big\"'" in out, out[-2000:]


def test_redis_cli_stat(clone: ServerProcess) -> None:
    """`redis-cli --stat` prints rows of figures with the right key count, and no error.

    --stat runs until interrupted and buffers its output when not on a terminal, so it runs
    under `stdbuf -o0` and is stopped once a few rows have arrived (polled, with a deadline).
    """
    stdbuf = shutil.which("stdbuf")
    if stdbuf is None:
        pytest.skip("stdbuf (coreutils) is needed to read --stat's output as it comes")
    fill_db(clone)
    # The keys column sums INFO keyspace: the count it must show comes from DBSIZE, database by
    # database, or the test would only compare our INFO with itself.
    with clone.raw() as conn:
        databases = int(conn.call("CONFIG", "GET", "databases")[1])
        total = 0
        for db in range(databases):
            assert conn.command("SELECT", db) == b"+OK\r\n"
            total += conn.call("DBSIZE")
    assert total > 1000  # at least the tools database
    argv = [stdbuf, "-o0", tool("redis-cli"), "-p", str(clone.port), "--stat", "-i", "0.1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while len(lines) < 6 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    finally:
        proc.kill()
        proc.wait()
    assert len(lines) >= 6, lines
    assert lines[0].startswith("------- data ------"), lines
    rows = [line.split() for line in lines[2:]]
    assert all(row[0].isdigit() for row in rows), lines
    assert int(rows[0][0]) == total, (lines, total)
    assert not any("error" in line.lower() for line in lines), lines


def test_redis_cli_interactive_session_matches_redis(
    clone: ServerProcess, redis_server: ServerProcess
) -> None:
    """A session typed into `redis-cli -p PORT` (stdin, one command a line) prints exactly
    what the same session prints against Redis: values, nils, integers, errors, quoting."""
    session = "\n".join(
        [
            f"select {TOOLS_DB}",
            "flushdb",
            "mset a 1 b 2 c 3 d 4 {a}x 5",
            "mget a b c d missing {a}x",
            'set "quoted key" "a value with spaces"',
            'get "quoted key"',
            "exists a a b missing",
            "incr c",
            "incrbyfloat c 0.5",
            "incr b nope",
            "get missing",
            "set k v ex 0",
            "set k v nx xx",
            "rename a e",
            "renamenx e b",
            "copy e f replace",
            "mget e f",
            "del a b e missing",
            "type c",
            "pttl c",
            "persist c",
            "dbsize",
            "msetnx b 1 c 2",
            "strlen c",
            "getrange c 0 -1",
            "append c 'x y'",
            "get c",
            'echo "tab\\there"',
            "nosuchcommand a b",
            "select 16",
            "dbsize",
            "flushdb",
            "dbsize",
        ]
    )
    outputs = []
    for server in (clone, redis_server):
        argv = [tool("redis-cli"), "-p", str(server.port)]
        status, out = run_tool(argv, stdin=session + "\n")
        assert status == 0, out
        outputs.append(out)
    ours, theirs = outputs
    assert ours.splitlines() == theirs.splitlines()
