"""Error statistics against redis-server side by side: the same commands on both after
CONFIG RESETSTAT, then INFO errorstats, total_error_replies and each command's calls,
rejected_calls and failed_calls compared (usec are not measured here)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import RawConnection, ServerProcess

#: Commands whose own calls the comparison leaves out: the test's bookkeeping.
_BOOKKEEPING = {"config|resetstat", "flushall", "info"}
#: Scenarios whose commands' ``calls`` differ for a known reason, compared by their errors
#: alone: a multi-shard command that the acceptor's check refuses (MSET's odd arguments) or
#: that runs as a coordination is not in ``calls`` (a gap of INFO commandstats here), and a
#: coordination's reads count as their internal commands (EXISTS).
_ERRORS_ONLY = {"multi-shard-commands"}


def _stats(raw: RawConnection) -> dict[str, object]:
    """errorstats, the total, and (calls, rejected, failed) per command."""
    errors = raw.call("INFO", "errorstats").decode()
    codes = dict(
        line.split(":", 1) for line in errors.splitlines() if line.startswith("errorstat_")
    )
    total = next(
        line.split(":")[1]
        for line in raw.call("INFO", "stats").decode().splitlines()
        if line.startswith("total_error_replies:")
    )
    commands = {}
    for line in raw.call("INFO", "commandstats").decode().splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, fields = line[len("cmdstat_") :].split(":", 1)
        if name in _BOOKKEEPING:
            continue
        values = dict(field.split("=") for field in fields.split(","))
        commands[name] = (values["calls"], values["rejected_calls"], values["failed_calls"])
    return {"errorstats": codes, "total": total, "commands": commands}


def _after(server: ServerProcess, scenario: Callable[[RawConnection], None]) -> dict:
    with server.raw() as raw:
        raw.command("FLUSHALL")
        raw.command("SCRIPT", "FLUSH")
        raw.command("CONFIG", "RESETSTAT")
        scenario(raw)
        return _stats(raw)


def _commands(*lines: tuple) -> Callable[[RawConnection], None]:
    def scenario(raw: RawConnection) -> None:
        for line in lines:
            raw.command(*line)

    return scenario


SCENARIOS = {
    "wrongtype-syntax-integer": _commands(
        ("SET", "s", "v"),
        ("LPUSH", "s", "x"),
        ("SET", "k", "v", "NX", "XX"),
        ("INCR", "s"),
        ("HSET", "h", "f", "v"),
        ("GET", "h"),
    ),
    "unknown-command": _commands(("NOSUCHCMD", "a"), ("CONFIG", "NOSUCHSUB")),
    "wrong-arity": _commands(("SET", "k"), ("GET",), ("SET", "k1", "v1"), ("CONFIG", "GET")),
    "multi-queued-error": _commands(("MULTI",), ("SET",), ("SET", "a", "b"), ("EXEC",)),
    "multi-exec-errors": _commands(
        ("MULTI",),
        ("SET", "a", "b"),
        ("LPUSH", "a", "x"),
        ("INCR", "a"),
        ("EXEC",),
        ("EXEC",),
        ("DISCARD",),
    ),
    "multi-unknown": _commands(("MULTI",), ("NOSUCH",), ("EXEC",)),
    "noscript": _commands(("EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0")),
    "eval-numkeys": _commands(("EVAL", "return 1", "5"), ("EVAL", "return 1", "x")),
    "script-call-error": _commands(("EVAL", "return redis.call('select', 99)", "0")),
    "script-pcall-returned": _commands(("EVAL", "return redis.pcall('select', 99)", "0")),
    "script-pcall-caught": _commands(("EVAL", "local t = redis.pcall('select', 99) return 1", "0")),
    "script-wrongtype": _commands(
        ("SET", "Sicily", "1"),
        ("EVAL", "return redis.call('lpush', KEYS[1], 'x')", "1", "Sicily"),
        ("EVAL", "return redis.pcall('lpush', KEYS[1], 'x')", "1", "Sicily"),
    ),
    "script-error-reply": _commands(
        ("EVAL", "return redis.error_reply('MY_ERR_CODE custom msg')", "0"),
        ("EVAL", "return redis.error_reply('')", "0"),
        ("EVAL", "return {err = 'OTHER text'}", "0"),
    ),
    "script-runtime-errors": _commands(
        ("EVAL", "error('boom')", "0"),
        ("EVAL", "return nosuchglobal", "0"),
        ("EVAL", "this is not lua", "0"),
    ),
    "script-read-only-write": _commands(
        ("EVAL_RO", "return redis.call('set', KEYS[1], 'y')", "1", "x"),
        ("EVAL_RO", "local t = redis.pcall('set', KEYS[1], 'y') return 1", "1", "x"),
    ),
    "script-refused-calls": _commands(
        ("EVAL", "return redis.pcall('nosuchcommand')", "0"),
        ("EVAL", "return redis.pcall('get')", "0"),
        ("EVAL", "return redis.pcall('multi')", "0"),
    ),
    # the first run holds every shard, the next ones take the one-shard path
    "script-repeated": _commands(
        *[("EVAL", "return redis.call('incr', KEYS[1])", "1", "{t}s")] * 3,
        *[("EVAL", "return redis.pcall('incr', KEYS[1])", "1", "{t}s")] * 3,
        *[("EVAL", "return redis.error_reply('MINE here')", "1", "{t}s")] * 3,
    ),
    "script-over-several-shards": _commands(
        ("SET", "a", "x"),
        ("EVAL", "redis.call('get', KEYS[2]) return redis.call('incr', KEYS[1])", "2", "a", "b"),
        (
            "EVAL",
            "redis.call('set', KEYS[2], 'y') return redis.pcall('rpush', KEYS[1])",
            "2",
            "a",
            "b",
        ),
    ),
    "multi-shard-commands": _commands(
        ("SADD", "s1", "m"),
        ("SET", "s2", "x"),
        ("SUNIONSTORE", "dest", "s1", "s2", "s3"),
        ("SINTER", "s1", "s2"),
        ("RENAME", "nosuchkey", "other"),
        ("MSET", "a", "1", "b"),
        ("DEL",),
    ),
    "subscribed-mode": _commands(
        ("SUBSCRIBE", "channel"), ("GET", "k"), ("SET", "k", "v"), ("UNSUBSCRIBE", "channel")
    ),
    "local-command-errors": _commands(
        ("SELECT", "99"), ("CONFIG", "GET"), ("CONFIG", "SET", "nosuch", "1"), ("PING", "a", "b")
    ),
}


def _errors_only(stats: dict) -> dict:
    commands = {
        name: counts[1:] for name, counts in stats["commands"].items() if counts[1:] != ("0", "0")
    }
    return {**stats, "commands": commands}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_errorstats_as_redis(name: str, clone: ServerProcess, redis_server: ServerProcess) -> None:
    scenario = SCENARIOS[name]
    ours, theirs = _after(clone, scenario), _after(redis_server, scenario)
    if name in _ERRORS_ONLY:
        ours, theirs = _errors_only(ours), _errors_only(theirs)
    assert ours == theirs


def test_resetstat_clears_every_count(clone: ServerProcess) -> None:
    with clone.raw() as raw:
        raw.command("CONFIG", "RESETSTAT")
        raw.command("SET", "k")
        raw.command("NOSUCH")
        raw.command("EVAL", "return redis.error_reply('X y')", "0")
        assert _stats(raw)["total"] == "3"
        raw.command("CONFIG", "RESETSTAT")
        stats = _stats(raw)
    assert stats["errorstats"] == {}
    assert stats["total"] == "0"
    assert all(counts[1:] == ("0", "0") for counts in stats["commands"].values())


def test_counts_sum_over_every_client(clone: ServerProcess) -> None:
    """Several connections (with REDIS_CLONE_ACCEPTORS=2, on both acceptors): the totals
    are every acceptor's and shard's together."""
    connections = [clone.raw() for _ in range(6)]
    try:
        connections[0].command("CONFIG", "RESETSTAT")
        for raw in connections:
            raw.command("NOSUCH")
            raw.command("SET", "k")
            raw.command("SET", "s", "v")
            raw.command("LPUSH", "s", "x")
        stats = _stats(connections[0])
    finally:
        for raw in connections:
            raw.close()
    assert stats["errorstats"] == {"errorstat_ERR": "count=12", "errorstat_WRONGTYPE": "count=6"}
    assert stats["total"] == "18"
    assert stats["commands"]["set"] == ("6", "6", "0")
    assert stats["commands"]["lpush"] == ("6", "0", "6")
