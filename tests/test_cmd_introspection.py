"""Introspection: SLOWLOG, LATENCY, INFO commandstats/latencystats, CLIENT REPLY, ROLE, LOLWUT,
MEMORY, against redis-server where the replies can be compared, at 1 and 4 shards.

Durations and times differ from run to run, so the differential tests compare what does not:
the entries' arguments, names, order and count, the reply shapes, the texts. The pure parts
(the histogram's layout, the argument trimming, the sparkline) have unit tests at the end.
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import DEBUG_ENABLED, RawConnection, ServerPool, ServerProcess, encode_command

from shardserver import events, latency, slowlog
from shardserver.shard import Shard

#: DEBUG SLEEP makes the slow commands and latency spikes here.
CLONE_ARGS = DEBUG_ENABLED

# -- helpers ----------------------------------------------------------------------------------


def _own_address(conn: RawConnection) -> bytes:
    host, port = conn.sock.getsockname()[:2]
    return f"{host}:{port}".encode()


def _entries(conn: RawConnection, count: int = -1) -> list:
    return conn.call("SLOWLOG", "GET", count)


def _shape(entries: list, addr: bytes) -> list[tuple]:
    """What two servers' entries must share: arguments, client name, whose address."""
    return [(entry[3], entry[5], entry[4] == addr) for entry in entries]


def _fresh_slowlog(conn: RawConnection, slower_than: int = 0, max_len: int = 128) -> None:
    assert conn.command("CONFIG", "SET", "slowlog-max-len", max_len) == b"+OK\r\n"
    assert conn.command("CONFIG", "SET", "slowlog-log-slower-than", slower_than) == b"+OK\r\n"
    assert conn.command("SLOWLOG", "RESET") == b"+OK\r\n"


def _restore(conn: RawConnection) -> None:
    for name, value in [
        ("slowlog-log-slower-than", "10000"),
        ("slowlog-max-len", "128"),
        ("latency-monitor-threshold", "0"),
        ("latency-tracking", "yes"),
        ("latency-tracking-info-percentiles", "50 99 99.9"),
    ]:
        conn.command("CONFIG", "SET", name, value)


@pytest.fixture
def oracle_conn(redis_server: ServerProcess):
    with redis_server.raw() as conn:
        yield conn
        _restore(conn)


@pytest.fixture
def clone_conn(clone: ServerProcess):
    with clone.raw() as conn:
        yield conn
        _restore(conn)


# -- SLOWLOG ----------------------------------------------------------------------------------

#: Commands whose entries both servers must log alike (lower-case names: a shard knows a
#: command by its canonical name, see docs/commands.md).
_SEQUENCE = [
    ("client", "setname", "alice"),
    ("set", "{t}k", "v" * 200),
    ("rpush", "{t}list", *[str(i) for i in range(40)]),
    ("get", "{t}k"),
    ("echo", "x" * 129),
    ("nosuchcommand", "a"),
    ("client", "setname", "bob"),
    ("hset", "{t}h", "f", "v"),
]


def _run_sequence(conn: RawConnection) -> None:
    for command in _SEQUENCE:
        conn.command(*command)
    conn.command("del", "{t}k", "{t}list", "{t}h")


def test_slowlog_entries_match_redis(oracle_conn: RawConnection, clone_conn: RawConnection) -> None:
    """With a threshold of 0 every command is logged: the same entries, newest first, with
    arguments trimmed as Redis trims them, the client's name at the time and its address."""
    shapes = []
    for conn in (oracle_conn, clone_conn):
        _fresh_slowlog(conn)
        _run_sequence(conn)
        entries = _entries(conn)
        ids = [entry[0] for entry in entries]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
        assert all(abs(entry[1] - time.time()) < 60 for entry in entries)
        assert all(entry[2] >= 0 for entry in entries)
        shapes.append(_shape(entries, _own_address(conn)))
    assert shapes[0] == shapes[1]
    entries = dict((entry[3][0], entry) for entry in _entries(clone_conn))
    assert entries[b"set"][3][2] == b"v" * 128 + b"... (72 more bytes)"
    assert len(entries[b"rpush"][3]) == 32
    assert entries[b"rpush"][3][-1] == b"... (11 more arguments)"
    assert entries[b"hset"][5] == b"bob" and entries[b"get"][5] == b"alice"


def test_slowlog_len_max_len_count_and_reset_match_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    """slowlog-max-len caps the log at the next push (a lowered one shows then, as in
    Redis); GET's count, -1, and its errors; RESET empties it; a negative threshold logs
    nothing."""
    seen = []
    for conn in (oracle_conn, clone_conn):
        _fresh_slowlog(conn)
        for i in range(6):
            conn.command("SET", f"n{i}", i)
        before = conn.call("SLOWLOG", "LEN")
        conn.command("CONFIG", "SET", "slowlog-max-len", 3)
        capped = conn.call("SLOWLOG", "LEN")
        two = [entry[3] for entry in _entries(conn, 2)]
        default = len(_entries(conn, 10))
        errors = [conn.command("SLOWLOG", "GET", bad) for bad in ("-2", "x")]
        reset = conn.command("SLOWLOG", "RESET")
        after_reset = conn.call("SLOWLOG", "LEN")
        conn.command("CONFIG", "SET", "slowlog-log-slower-than", -1)
        conn.command("SET", "n0", "again")
        disabled = conn.call("SLOWLOG", "LEN")
        conn.command("DEL", *[f"n{i}" for i in range(6)])
        seen.append((before, capped, two, default, errors, reset, after_reset, disabled))
    assert seen[0] == seen[1]
    assert seen[1][4][0] == b"-ERR count should be greater than or equal to -1\r\n"


def test_slowlog_threshold_skips_fast_commands(clone_conn: RawConnection) -> None:
    """Past a threshold of 25 ms only what took that long is logged (a GET on a quiet
    machine is not); a DEBUG SLEEP past it is, once however many shards ran its part,
    with its real duration."""
    _fresh_slowlog(clone_conn, slower_than=25000)
    clone_conn.command("SET", "a", "1")
    clone_conn.command("GET", "a")
    clone_conn.command("DEBUG", "SLEEP", "0.05")
    entries = _entries(clone_conn)
    assert all(entry[2] >= 25000 for entry in entries)
    sleeps = [entry for entry in entries if entry[3] == [b"debug", b"SLEEP", b"0.05"]]
    assert len(sleeps) == 1 and 50_000 <= sleeps[0][2] < 5_000_000
    clone_conn.command("DEL", "a")


def test_slowlog_fanout_is_one_entry(clone_conn: RawConnection) -> None:
    """KEYS runs on every shard: one entry, as Redis has one."""
    _fresh_slowlog(clone_conn)
    clone_conn.command("KEYS", "*")
    assert [entry[3] for entry in _entries(clone_conn)][:2] == [
        [b"keys", b"*"],
        [b"SLOWLOG", b"RESET"],
    ]


def test_slowlog_help_and_errors_match_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    for command in [
        ("SLOWLOG", "HELP"),
        ("SLOWLOG", "NOSUCH"),
        ("SLOWLOG", "GET", "1", "2"),
        ("SLOWLOG", "LEN", "x"),
        ("SLOWLOG",),
        ("CONFIG", "SET", "slowlog-log-slower-than", "-2"),
        ("CONFIG", "SET", "slowlog-max-len", "x"),
    ]:
        assert clone_conn.command(*command) == oracle_conn.command(*command), command
    assert _config(clone_conn, "slowlog-*") == _config(oracle_conn, "slowlog-*")


def _config(conn: RawConnection, pattern: str) -> list[bytes]:
    """CONFIG GET's pairs in name order (Redis lists them in its dict's order)."""
    reply = conn.call("CONFIG", "GET", pattern)
    return sorted(zip(reply[::2], reply[1::2], strict=True))


def test_slowlog_and_latency_through_either_acceptor(clone_factory: ServerPool) -> None:
    """With two acceptors, each client's entries are in SLOWLOG GET through either, merged
    newest first with server-wide ids; RESET through one clears both; a latency spike seen
    by one acceptor's client is in LATENCY through the other, and reset everywhere."""
    server = clone_factory.start_clone(2, ["--acceptors", "2", *DEBUG_ENABLED])
    first, second = server.client_on(0), server.client_on(1)
    first.config_set("slowlog-log-slower-than", 0)
    first.client_setname("on0")
    second.client_setname("on1")
    first.slowlog_reset()
    first.set("a", 1)
    second.set("b", 2)
    first.get("a")
    for client in (first, second):
        entries = client.execute_command("SLOWLOG", "GET", -1)
        ids = [entry[0] for entry in entries]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
        logged = {(tuple(entry[3]), entry[5]) for entry in entries}
        assert {((b"set", b"a", b"1"), b"on0"), ((b"set", b"b", b"2"), b"on1")} <= logged
        assert ((b"get", b"a"), b"on0") in logged
    second.slowlog_reset()
    assert first.execute_command("SLOWLOG", "LEN") <= 2  # the RESET, and LEN itself
    assert [entry[3] for entry in first.execute_command("SLOWLOG", "GET")][-1] == [
        b"SLOWLOG",
        b"RESET",
    ]
    first.config_set("latency-monitor-threshold", 20)
    second.execute_command("DEBUG", "SLEEP", "0.05")
    assert b"command" in {row[0] for row in first.execute_command("LATENCY", "LATEST")}
    assert first.execute_command("LATENCY", "RESET") >= 1
    assert b"command" not in {row[0] for row in second.execute_command("LATENCY", "LATEST")}
    first.config_set("latency-monitor-threshold", 0)
    first.close()
    second.close()


# -- LATENCY ----------------------------------------------------------------------------------


def test_latency_events_from_debug_sleep(clone_conn: RawConnection) -> None:
    """DEBUG SLEEP past latency-monitor-threshold is a `command` spike: LATEST, HISTORY,
    GRAPH, DOCTOR and RESET see it as Redis's do."""
    clone_conn.command("LATENCY", "RESET")
    assert clone_conn.command("CONFIG", "SET", "latency-monitor-threshold", 20) == b"+OK\r\n"
    clone_conn.command("DEBUG", "SLEEP", "0.05")
    # (on a loaded machine another command may pass 20 ms too: only the sleep is sure)
    latest = {row[0]: row[1:] for row in clone_conn.call("LATENCY", "LATEST")}
    when, last, worst = latest[b"command"]
    assert abs(when - time.time()) < 60 and 50 <= last <= worst < 5000
    history = clone_conn.call("LATENCY", "HISTORY", "command")
    assert history[-1] == [when, last] and len(history) <= 2
    assert clone_conn.call("LATENCY", "HISTORY", "nosuch") == []
    graph = clone_conn.call("LATENCY", "GRAPH", "command")
    assert graph.startswith(f"command - high {last} ms, low ".encode())
    assert graph.split(b"\n")[1] == b"-" * 80
    doctor = clone_conn.call("LATENCY", "DOCTOR")
    assert doctor.startswith(b"Dave, I have observed latency spikes")
    assert re.search(rb"\d\. command: [12] latency spikes", doctor)
    assert clone_conn.call("LATENCY", "RESET", "COMMAND", "nosuch") == 1
    assert b"command" not in {row[0] for row in clone_conn.call("LATENCY", "LATEST")}
    clone_conn.command("CONFIG", "SET", "latency-monitor-threshold", 0)
    assert clone_conn.call("LATENCY", "DOCTOR").startswith(b"I'm sorry, Dave, I can't do that.")


def test_latency_texts_and_errors_match_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    for conn in (oracle_conn, clone_conn):
        conn.command("LATENCY", "RESET")
    for command in [
        ("LATENCY", "HELP"),
        ("LATENCY", "DOCTOR"),
        ("LATENCY", "LATEST"),
        ("LATENCY", "HISTORY", "command"),
        ("LATENCY", "GRAPH", "command"),
        ("LATENCY", "GRAPH"),
        ("LATENCY", "RESET"),
        ("LATENCY", "NOSUCH"),
        ("LATENCY", "HISTOGRAM", "nosuchcommand"),
        ("CONFIG", "SET", "latency-monitor-threshold", "-1"),
        ("CONFIG", "SET", "latency-tracking", "maybe"),
        ("CONFIG", "SET", "latency-tracking-info-percentiles", "50 x"),
        ("CONFIG", "SET", "latency-tracking-info-percentiles", "101"),
    ]:
        assert clone_conn.command(*command) == oracle_conn.command(*command), command
    assert _config(clone_conn, "latency-*") == _config(oracle_conn, "latency-*")


def _histogram(conn: RawConnection, *names: str) -> list[tuple[bytes, dict]]:
    reply = conn.call("LATENCY", "HISTOGRAM", *names)
    return [
        (name, dict(zip(value[::2], value[1::2], strict=True)))
        for name, value in zip(reply[::2], reply[1::2], strict=True)
    ]


#: LATENCY HISTOGRAM's bucket labels: hdr's highest equivalent of 1024 ns doubled, in µs.
_LABELS = {latency.highest(latency.index(1024 << k)) // 1000 for k in range(21)}


def test_latency_histogram_shape_matches_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    """LATENCY HISTOGRAM: per command its calls and cumulative counts at hdr's power-of-two
    µs buckets (1, 2, 4, 8, 16, 33, 66 ...); a container brings its subcommands."""
    shapes = []
    for conn in (oracle_conn, clone_conn):
        conn.command("CONFIG", "RESETSTAT")
        for i in range(20):
            conn.command("SET", f"h{i}", i)
        conn.command("CONFIG", "GET", "hz")
        found = _histogram(conn, "set", "SET", "config", "nosuch")
        shapes.append(sorted((name, entry[b"calls"]) for name, entry in found))
        for _name, entry in found:
            buckets = entry[b"histogram_usec"]
            pairs = list(zip(buckets[::2], buckets[1::2], strict=True))
            counts = [count for _usec, count in pairs]
            assert counts == sorted(counts) and counts[-1] == entry[b"calls"]
            assert {usec for usec, _count in pairs} <= _LABELS
        conn.command("DEL", *[f"h{i}" for i in range(20)])
    assert shapes[0] == shapes[1]
    assert shapes[1] == [(b"config|get", 1), (b"config|resetstat", 1), (b"set", 20), (b"set", 20)]


# -- INFO commandstats and latencystats -------------------------------------------------------

_CMDSTAT = re.compile(
    r"calls=(\d+),usec=(\d+),usec_per_call=(\d+\.\d\d),rejected_calls=\d+,failed_calls=\d+"
)


def _cmdstat(conn: RawConnection, name: str) -> tuple[int, int, str]:
    text = conn.call("INFO", "commandstats").decode()
    line = next(line for line in text.split("\r\n") if line.startswith(f"cmdstat_{name}:"))
    calls, usec, per_call = _CMDSTAT.search(line).groups()
    return int(calls), int(usec), per_call


def test_commandstats_usec_is_measured(clone_conn: RawConnection) -> None:
    """usec grows with the calls (a DEBUG SLEEP's by its sleep), usec_per_call is their
    quotient, and CONFIG RESETSTAT starts them again."""
    clone_conn.command("CONFIG", "RESETSTAT")
    for i in range(50):
        clone_conn.command("SET", f"u{i}", i)
    calls, usec, per_call = _cmdstat(clone_conn, "set")
    assert calls == 50 and usec > 0 and per_call == f"{usec / calls:.2f}"
    clone_conn.command("DEBUG", "SLEEP", "0.02")
    assert _cmdstat(clone_conn, "debug")[1] >= 20_000
    clone_conn.command("CONFIG", "RESETSTAT")
    assert "cmdstat_set:" not in clone_conn.call("INFO", "commandstats").decode()
    clone_conn.command("DEL", *[f"u{i}" for i in range(50)])


_LATENCY_LINE = re.compile(
    r"^latency_percentiles_usec_set:p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}$"
)


def test_latencystats_lines(oracle_conn: RawConnection, clone_conn: RawConnection) -> None:
    """INFO latencystats: Redis's line per command, the percentiles asked for, none after
    RESETSTAT, an empty section with latency-tracking off."""
    for conn in (oracle_conn, clone_conn):
        conn.command("CONFIG", "RESETSTAT")
        conn.command("SET", "lat", 1)
        text = conn.call("INFO", "latencystats").decode()
        lines = text.split("\r\n")
        assert lines[0] == "# Latencystats"
        assert any(_LATENCY_LINE.match(line) for line in lines), text
        conn.command("CONFIG", "SET", "latency-tracking-info-percentiles", "50.0 99.99 0")
        line = next(
            line
            for line in conn.call("INFO", "latencystats").decode().split("\r\n")
            if line.startswith("latency_percentiles_usec_set:")
        )
        assert re.match(r"^latency_percentiles_usec_set:p50=[\d.]+,p99\.99=[\d.]+,p0=[\d.]+$", line)
        conn.command("CONFIG", "RESETSTAT")
        assert "usec_set" not in conn.call("INFO", "latencystats").decode()
        conn.command("CONFIG", "SET", "latency-tracking", "no")
        conn.command("SET", "lat", 2)
        assert conn.call("INFO", "latencystats") == b"# Latencystats\r\n"
        conn.command("DEL", "lat")


# -- CLIENT REPLY -----------------------------------------------------------------------------

_QUIET_SEQUENCE = [
    ("SET", "a", "1"),
    ("CLIENT", "REPLY", "SKIP"),
    ("GET", "a"),
    ("GET", "a"),
    ("CLIENT", "REPLY", "OFF"),
    ("SET", "b", "2"),
    ("NOSUCHCOMMAND",),
    ("GET", "b"),
    ("CLIENT", "REPLY", "SKIP"),
    ("MGET", "a", "b", "c"),
    ("CLIENT", "REPLY", "ON"),
    ("GET", "b"),
    ("CLIENT", "REPLY", "SKIP"),
    ("CLIENT", "REPLY", "ON"),
    ("CLIENT", "REPLY", "FOO"),
    ("CLIENT", "REPLY", "SKIP"),
    ("CLIENT", "REPLY", "SKIP"),
    ("PING",),
    ("PING",),
    ("ECHO", "x"),
    ("CLIENT", "REPLY", "OFF"),
    ("CLIENT", "REPLY", "SKIP"),
    ("INCR", "a"),
    ("CLIENT", "REPLY", "ON"),
    ("INCR", "a"),
    ("DEL", "a", "b"),
]


def _quiet_bytes(server: ServerProcess, pipelined: bool) -> bytes:
    """What a raw socket reads for the sequence (pipelined in one write, or one by one),
    up to the final DEL's reply."""
    with server.raw() as conn:
        if pipelined:
            conn.send(b"".join(encode_command(*command) for command in _QUIET_SEQUENCE))
        else:
            for command in _QUIET_SEQUENCE:
                conn.send(encode_command(*command))
        replies = []
        while not replies or replies[-1] != b":2\r\n":
            replies.append(conn.read_reply())
        return b"".join(replies)


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "one-by-one"])
def test_client_reply_drops_replies_as_redis(
    redis_server: ServerProcess, clone: ServerProcess, pipelined: bool
) -> None:
    """OFF drops every reply (errors too) until ON, SKIP the next command's, ON's +OK shows
    even right after SKIP, SKIP under OFF does nothing: byte for byte as redis-server."""
    expected = _quiet_bytes(redis_server, pipelined)
    assert expected.count(b"+OK") == 4
    assert _quiet_bytes(clone, pipelined) == expected


# -- ROLE, LOLWUT, MEMORY ---------------------------------------------------------------------


def test_role_lolwut_memory_texts_match_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    """ROLE, LOLWUT's default and its deterministic drawings (no random rows), MEMORY's
    help, errors, PURGE and the doctor of an empty instance, OBJECT's help and refusals,
    byte for byte."""
    for conn in (oracle_conn, clone_conn):
        conn.command("FLUSHALL")
    for command in [
        ("ROLE",),
        ("LOLWUT",),
        ("LOLWUT", "VERSION", "7"),
        ("LOLWUT", "VERSION", "x"),
        ("LOLWUT", "VERSION", "5", "1", "1", "1"),
        ("LOLWUT", "VERSION", "5", "20", "3", "2"),
        ("LOLWUT", "VERSION", "5", "x"),
        ("LOLWUT", "VERSION", "6", "7", "1"),
        ("LOLWUT", "VERSION", "6", "x"),
        ("MEMORY", "HELP"),
        ("MEMORY", "NOSUCH"),
        ("MEMORY", "PURGE"),
        ("MEMORY", "DOCTOR"),
        ("SET", "obj", "v"),
        ("OBJECT", "HELP"),
        ("OBJECT", "FREQ", "obj"),
        ("OBJECT", "NOSUCH"),
        ("OBJECT", "ENCODING"),
        ("MEMORY", "USAGE"),
        ("MEMORY", "USAGE", "obj", "SAMPLES"),
        ("MEMORY", "USAGE", "nosuchkey"),
        ("DEL", "obj"),
    ]:
        assert clone_conn.command(*command) == oracle_conn.command(*command), command
    assert clone_conn.command("ROLE") == b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"


def test_lolwut_art_has_redis_layout(oracle_conn: RawConnection, clone_conn: RawConnection) -> None:
    """LOLWUT 5 and 6 are random: the same size and captions as Redis's."""
    for version, caption in [
        ("5", b"Georg Nees - schotter, plotter on paper, 1968. Redis ver. 7.0.15\n"),
        ("6", b"Original 8 bit image from Plaguemon by hikikomori. Redis ver. 7.0.15\n"),
    ]:
        ours = clone_conn.call("LOLWUT", "VERSION", version)
        theirs = oracle_conn.call("LOLWUT", "VERSION", version)
        assert ours.endswith(caption) and theirs.endswith(caption)
        assert len(ours.split(b"\n")) == len(theirs.split(b"\n"))
        assert [len(line.decode()) for line in ours.split(b"\n")][:1] == [
            len(line.decode()) for line in theirs.split(b"\n")
        ][:1]


def test_memory_stats_fields_match_redis(
    oracle_conn: RawConnection, clone_conn: RawConnection
) -> None:
    """MEMORY STATS: Redis's field names in its order, a db.N map for each database with
    keys, and honest figures (keys.count, the total allocated)."""
    names = []
    for conn in (oracle_conn, clone_conn):
        conn.command("FLUSHALL")
        conn.command("SET", "m1", "x")
        conn.command("SET", "m2", "y", "EX", "100")
        reply = conn.call("MEMORY", "STATS")
        stats = dict(zip(reply[::2], reply[1::2], strict=True))
        names.append(reply[::2])
        assert stats[b"keys.count"] == 2
        assert stats[b"total.allocated"] > 0
        assert stats[b"db.0"][::2] == [
            b"overhead.hashtable.main",
            b"overhead.hashtable.expires",
            b"overhead.hashtable.slot-to-keys",
        ]
        conn.command("FLUSHALL")
    assert names[0] == names[1]
    assert clone_conn.call("MEMORY", "MALLOC-STATS").startswith(b"Stats not supported")


# -- the pure parts ---------------------------------------------------------------------------


def test_histogram_slots_are_hdr_buckets() -> None:
    """Every duration falls in a slot whose bounds hold it, slots above 255 ns hold 1/128 of
    their power of two, and the percentiles and buckets come out as hdr's."""
    for ns in [0, 1, 255, 256, 257, 1000, 1023, 1024, 2047, 999_999, latency.LIMIT_NS]:
        slot = latency.index(ns)
        assert latency.lowest(slot) <= ns <= latency.highest(slot)
        assert slot < latency.TOTAL
    assert latency.highest(latency.index(1024)) == 1031
    counts = {latency.index(1000): 98, latency.index(40_000): 2}
    assert latency.percentile(counts, 50) == latency.highest(latency.index(1000)) == 1003
    assert latency.percentile(counts, 99) == latency.highest(latency.index(40_000))
    assert latency.cumulative_usec(counts) == [(1, 98), (66, 100)]
    assert {1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113} < _LABELS
    assert latency.percentile_name(99.9) == "99.9" and latency.percentile_name(50.0) == "50"


def test_command_times_record_and_numbers() -> None:
    times = latency.CommandTimes()
    times.record(b"get", 1500)
    times.record_run([[b"get", b"k"], [b"set", b"k", b"v"]], [500, 2_000_000_000])
    numbers = times.numbers()
    assert numbers["get"][0] == 2000 and sum(numbers["get"][1].values()) == 2
    assert numbers["set"][1] == {latency.index(latency.LIMIT_NS): 1}  # clamped at 1 s
    times.histograms = False
    times.record(b"get", 10)
    assert times.numbers()["get"][0] == 2010 and sum(times.numbers()["get"][1].values()) == 2


def test_trimmed_arguments_as_redis() -> None:
    assert slowlog.trimmed([b"a" * 129]) == [b"a" * 128 + b"... (1 more bytes)"]
    argv = [b"%d" % i for i in range(33)]
    assert slowlog.trimmed(argv) == [*argv[:31], b"... (2 more arguments)"]
    assert slowlog.trimmed(argv[:32]) == argv[:32]
    assert slowlog.shown_argv([b"@object|encoding", b"ENCODING", b"k"]) == [
        b"object",
        b"ENCODING",
        b"k",
    ]


def test_note_names_the_latency_event() -> None:
    never = latency.NEVER
    assert slowlog.note([b"get", b"k"], 5_000_000, True, never, 0)[2:] == (None, "fast-command", 5)
    assert slowlog.note([b"keys", b"*"], 5_000_000, False, 0, never)[2:] == (
        [b"keys", b"*"],
        None,
        5,
    )


def test_sparkline_of_one_sample_as_redis() -> None:
    """What redis-server 7.0 drew for one 30 ms sample 0 s old."""
    text = latency.graph("command", {100: 30}, 30, 100)
    assert text == (
        "command - high 30 ms, low 30 ms (all time high 30 ms)\n"
        + "-" * 80
        + "\n \n \n \n_\n \n0\ns\n"
    )


def test_slowlog_joins_a_fanouts_parts() -> None:
    log = slowlog.SlowLog(iter(range(100)).__next__)

    class Client:
        addr, name = "1.2.3.4:5", b"c"

    gather = object()
    log.add(1, 10, [b"del", b"a"], Client, gather)
    log.add(1, 30, [b"del", b"b"], Client, gather)
    log.add(1, 20, [b"del", b"c"], Client, gather)
    log.add(1, 5, [b"get", b"k"], Client)
    assert [entry[:4] for entry in log.entries] == [
        [1, 1, 5, [b"get", b"k"]],
        [0, 1, 30, [b"del", b"b"]],
    ]
    log.max_len = 1
    log.add(2, 1, [b"ping"], Client)
    assert len(log.entries) == 1


def test_shard_samples_its_own_work_past_the_threshold() -> None:
    """The sweep's and the log's samples go to acceptor 0 (stream 0) as LATENCY events, in
    whole milliseconds, only from latency-monitor-threshold on."""
    shard = Shard(0, {"latency-monitor-threshold": 2})
    shard.latency_sample("aof-fsync-always", 1_999_999)
    assert shard.events == []
    shard.latency_sample("aof-fsync-always", 2_500_000)
    (stream, (kind, event, when, ms)), *_ = shard.events
    assert (stream, kind, event, ms) == (0, events.LATENCY, "aof-fsync-always", 2)
    assert abs(when - time.time()) < 60


def test_slow_reply_larger_than_a_chunk_arrives_whole_and_is_logged(
    clone_conn: RawConnection,
) -> None:
    """A slow run whose reply goes ahead in chunks keeps its notes: the reply arrives whole
    and the command is in SLOWLOG."""
    value = b"x" * (3 << 20)
    _fresh_slowlog(clone_conn)
    assert clone_conn.command("SET", "big", value) == b"+OK\r\n"
    assert clone_conn.command("GET", "big") == b"$%d\r\n%b\r\n" % (len(value), value)
    logged = [entry[3] for entry in _entries(clone_conn)]
    assert [b"get", b"big"] in logged
    assert [b"set", b"big", b"x" * 128 + b"... (%d more bytes)" % (len(value) - 128)] in logged
    clone_conn.command("DEL", "big")
