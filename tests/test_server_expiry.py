"""Expiry seen from a client: lazy expiry on access, and the active sweep for untouched keys.

Timing assertions are made relative to measured send and reply times, never to a fixed sleep:
the server computes a relative deadline somewhere between sending SET and reading its reply, so
a key must still exist when a GET is answered before the earliest possible deadline, and must
be gone when a GET is sent after the latest one.
"""

from __future__ import annotations

import time

import pytest
from conftest import ServerProcess, encode_command, wait_until

OK = b"+OK\r\n"
NIL = b"$-1\r\n"
CLOCK_SLACK_S = 0.005
ATTEMPTS = 5


def sleep_until(moment: float) -> None:
    """Sleep until the monotonic clock reaches `moment` (a scheduled probe, not a wait-for)."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_px_key_present_then_gone(endpoint: ServerProcess) -> None:
    """A key set with PX 100 is readable at ~50 ms and gone at ~150 ms."""
    with endpoint.raw() as conn:
        for attempt in range(ATTEMPTS):
            key = f"px100:{attempt}"
            sent = time.monotonic()
            assert conn.command("SET", key, "v", "PX", "100") == OK
            acked = time.monotonic()
            sleep_until(sent + 0.050)
            early_reply = conn.command("GET", key)
            early_done = time.monotonic()
            sleep_until(acked + 0.150)
            late_sent = time.monotonic()
            late_reply = conn.command("GET", key)
            assert late_sent > acked + 0.100 + CLOCK_SLACK_S
            assert late_reply == NIL, f"key still there {late_sent - acked:.3f} s after SET"
            if early_done < sent + 0.100 - CLOCK_SLACK_S:
                assert early_reply == b"$1\r\nv\r\n", (
                    f"key gone {early_done - sent:.3f} s after SET, before its 100 ms"
                )
                return
        pytest.fail(f"machine too slow: no GET answered within 100 ms in {ATTEMPTS} tries")


def test_ex_key_survives_short_wait(endpoint: ServerProcess) -> None:
    """A key with EX 100 is still there after other keys with PX 1 expired."""
    with endpoint.raw() as conn:
        assert conn.command("SET", "ex100", "v", "EX", "100") == OK
        assert conn.command("SET", "px1", "v", "PX", "1") == OK
        assert wait_until(lambda: conn.command("GET", "px1") == NIL, timeout=2.0)
        assert conn.command("GET", "ex100") == b"$1\r\nv\r\n"


def test_past_absolute_deadlines(endpoint: ServerProcess) -> None:
    """SET with EXAT/PXAT in the past answers OK and the key reads as missing."""
    with endpoint.raw() as conn:
        assert conn.command("SET", "past:s", "v", "EXAT", "1") == OK
        assert conn.command("SET", "past:ms", "v", "PXAT", "1000") == OK
        assert conn.command("GET", "past:s") == NIL
        assert conn.command("GET", "past:ms") == NIL
        assert conn.command("SET", "past:get", "old") == OK
        assert conn.command("SET", "past:get", "new", "GET", "PXAT", "1") == b"$3\r\nold\r\n"
        assert conn.command("GET", "past:get") == NIL


def test_future_absolute_deadlines(endpoint: ServerProcess) -> None:
    """EXAT/PXAT a little in the future: present before the deadline, gone after it."""
    with endpoint.raw() as conn:
        deadline_ms = int(time.time() * 1000) + 300
        assert conn.command("SET", "at:ms", "v", "PXAT", str(deadline_ms)) == OK
        assert conn.command("SET", "at:s", "v", "EXAT", str(deadline_ms // 1000 + 1)) == OK
        if time.time() * 1000 < deadline_ms - 50:
            assert conn.command("GET", "at:ms") == b"$1\r\nv\r\n"
        assert wait_until(lambda: time.time() * 1000 > deadline_ms + 5, timeout=2.0)
        assert conn.command("GET", "at:ms") == NIL
        assert wait_until(lambda: conn.command("GET", "at:s") == NIL, timeout=3.0)


def test_keepttl_and_overwrite(endpoint: ServerProcess) -> None:
    """KEEPTTL keeps the deadline; a plain SET removes it; SET EX replaces it."""
    with endpoint.raw() as conn:
        assert conn.command("SET", "kt:keep", "v1", "PX", "200") == OK
        assert conn.command("SET", "kt:keep", "v2", "KEEPTTL") == OK
        assert conn.command("SET", "kt:clear", "v1", "PX", "200") == OK
        assert conn.command("SET", "kt:clear", "v2") == OK
        assert conn.command("SET", "kt:longer", "v1", "PX", "200") == OK
        assert conn.command("SET", "kt:longer", "v2", "EX", "100") == OK
        assert conn.command("SET", "kt:getkeep", "v1", "PX", "200") == OK
        assert conn.command("SET", "kt:getkeep", "v2", "GET", "KEEPTTL") == b"$2\r\nv1\r\n"
        assert wait_until(lambda: conn.command("GET", "kt:keep") == NIL, timeout=3.0)
        assert wait_until(lambda: conn.command("GET", "kt:getkeep") == NIL, timeout=3.0)
        assert conn.command("GET", "kt:clear") == b"$2\r\nv2\r\n"
        assert conn.command("GET", "kt:longer") == b"$2\r\nv2\r\n"


def test_expired_key_is_missing_for_nx_xx_get(endpoint: ServerProcess) -> None:
    """Once its deadline has passed, a key counts as absent for NX, XX and GET."""
    with endpoint.raw() as conn:
        for key in ("gone:nx", "gone:xx", "gone:get"):
            assert conn.command("SET", key, "old", "PX", "30") == OK
        sleep_until(time.monotonic() + 0.030 + CLOCK_SLACK_S)
        assert conn.command("SET", "gone:nx", "new", "NX") == OK
        assert conn.command("GET", "gone:nx") == b"$3\r\nnew\r\n"
        assert conn.command("SET", "gone:xx", "new", "XX") == NIL
        assert conn.command("GET", "gone:xx") == NIL
        assert conn.command("SET", "gone:get", "new", "GET") == NIL
        assert conn.command("GET", "gone:get") == b"$3\r\nnew\r\n"


def test_active_sweep_removes_untouched_keys(endpoint: ServerProcess) -> None:
    """50,000 keys with PX 50 that nobody reads are swept: DBSIZE reaches the live count in 2 s."""
    persistent = 1000
    with endpoint.raw(timeout=60) as conn:
        assert conn.command("FLUSHALL") == OK
        batch = b"".join(
            encode_command("SET", b"sweep:%d" % i, b"v", "PX", "50") for i in range(50_000)
        )
        batch += b"".join(encode_command("SET", b"keep:%d" % i, b"v") for i in range(persistent))
        conn.send(batch)
        for _ in range(50_000 + persistent):
            assert conn.read_reply() == OK
        done = time.monotonic()
        sizes: list[int] = []

        def swept() -> bool:
            sizes.append(int(conn.command("DBSIZE")[1:-2]))
            return sizes[-1] == persistent

        assert wait_until(swept, timeout=2.0, interval=0.05), (
            f"DBSIZE after {time.monotonic() - done:.2f} s: {sizes[-5:]}"
        )
        conn.send(b"".join(encode_command("GET", b"keep:%d" % i) for i in range(persistent)))
        assert all(conn.read_reply() == b"$1\r\nv\r\n" for _ in range(persistent))
