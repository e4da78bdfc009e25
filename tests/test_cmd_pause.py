"""CLIENT PAUSE and UNPAUSE: which commands wait, for how long, and that none is lost.

Replies are compared with redis-server's where they are immediate (errors, +OK); what waits
is checked by timing out a short read while paused and finding the reply after UNPAUSE or
the pause's end, in order, with the client's later commands behind it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import RawConnection, ServerProcess, encode_command

ERRORS = [
    ["CLIENT", "PAUSE", "x"],
    ["CLIENT", "PAUSE", "-1"],
    ["CLIENT", "PAUSE", "100", "FOO"],
    ["CLIENT", "PAUSE", "100", "write", "x"],
    ["CLIENT", "PAUSE"],
]


def test_errors_match_redis(clone: ServerProcess, redis_server: ServerProcess) -> None:
    for command in ERRORS:
        with RawConnection(redis_server.port) as theirs, RawConnection(clone.port) as ours:
            assert ours.command(*command) == theirs.command(*command), command


def _waits(conn: RawConnection) -> bool:
    with pytest.raises(TimeoutError):
        conn.read_reply(timeout=0.25)
    return True


def test_write_pause_holds_writes_and_what_follows(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as admin, RawConnection(clone.port) as conn:
        admin.command("SET", "k", "old")
        assert admin.command("CLIENT", "PAUSE", "10000", "WRITE") == b"+OK\r\n"
        assert conn.command("GET", "k") == b"$3\r\nold\r\n"  # reads go on
        conn.send(encode_command("SET", "k", "new") + encode_command("GET", "k"))
        assert _waits(conn)
        conn.send(encode_command("MULTI") + encode_command("INCR", "n"))
        assert admin.command("GET", "k") == b"$3\r\nold\r\n"
        assert admin.command("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert conn.read_reply() == b"+OK\r\n"
        assert conn.read_reply() == b"$3\r\nnew\r\n"
        assert conn.read_reply() == b"+OK\r\n"
        assert conn.read_reply() == b"+QUEUED\r\n"
        assert admin.command("CLIENT", "PAUSE", "10000", "WRITE") == b"+OK\r\n"
        conn.send(encode_command("EXEC"))  # a transaction that writes waits too
        assert _waits(conn)
        admin.command("CLIENT", "UNPAUSE")
        assert conn.read_reply() == b"*1\r\n:1\r\n"


def test_all_pause_holds_everything_until_it_ends(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as admin, RawConnection(clone.port) as conn:
        started = time.monotonic()
        assert admin.command("CLIENT", "PAUSE", "600") == b"+OK\r\n"
        conn.send(encode_command("PING"))
        assert conn.read_reply(timeout=5.0) == b"+PONG\r\n"
        assert time.monotonic() - started >= 0.5
        assert admin.command("PING") == b"+PONG\r\n"


def test_a_later_pause_keeps_the_later_end_and_the_stricter_mode(clone: ServerProcess) -> None:
    with RawConnection(clone.port) as admin, RawConnection(clone.port) as conn:
        admin.command("CLIENT", "PAUSE", "10000", "WRITE")
        admin.command("CLIENT", "PAUSE", "10", "WRITE")
        time.sleep(0.05)  # the second pause's own end has passed: the first still holds
        conn.send(encode_command("SET", "k", "v"))
        assert _waits(conn)
        admin.command("CLIENT", "UNPAUSE")
        assert conn.read_reply() == b"+OK\r\n"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_held_client_costs_no_cpu_while_it_waits(clone: ServerProcess) -> None:
    """A held-back client waits for the pause's end, it does not poll for it (it once
    rescheduled itself every loop turn, burning a core for the whole pause)."""
    with RawConnection(clone.port) as admin, RawConnection(clone.port) as conn:
        admin.command("CLIENT", "PAUSE", "10000", "WRITE")
        before = _cpu_seconds(clone.pid)
        # a reply from a shard first: when it is written, what waits in the inbox is looked at
        conn.send(encode_command("GET", "k") + encode_command("SET", "k", "v"))
        assert conn.read_reply() in (b"$-1\r\n", b"$1\r\nv\r\n", b"$3\r\nnew\r\n")
        assert _waits(conn)
        with pytest.raises(TimeoutError):
            conn.read_reply(timeout=0.75)
        used = _cpu_seconds(clone.pid) - before
        admin.command("CLIENT", "UNPAUSE")
        assert conn.read_reply() == b"+OK\r\n"
        assert used < 0.5, used
