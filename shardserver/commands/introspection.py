"""Introspection commands: SLOWLOG, LATENCY, MEMORY (but USAGE), ROLE, LOLWUT.

All are answered by the acceptor. SLOWLOG and LATENCY read this acceptor's
:class:`shardserver.introspection.Introspection` and ask the other acceptors for theirs;
LATENCY HISTOGRAM and MEMORY STATS ask every shard too (``@latency|histogram``, ``@info``),
in one step.
Reply shapes and texts are Redis 7.0's (``slowlog.c``, ``latency.c``, ``object.c``,
``lolwut.c``).
"""

from __future__ import annotations

import struct
import time
from typing import Any

from shardserver import REDIS_COMPAT_VERSION, info, latency
from shardserver.commands import lolwut
from shardserver.commands.server import over_every_process
from shardserver.commands.spec import Later, local
from shardserver.errors import error, error_bytes
from shardserver.numbers import parse_int

# -- helps ----------------------------------------------------------------------------------


def _help(enc: Any, command: str, lines: list[str]) -> bytes:
    """addReplyHelp: the title, the lines, then HELP's own two."""
    title = f"{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    every = [title, *lines, "HELP", "    Prints this help."]
    return enc.array([enc.simple(line) for line in every])


_SLOWLOG_HELP = [
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
]
_LATENCY_HELP = [
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for "
    "the specified command names.",
    "    If no commands are specified then all histograms are replied.",
]
_MEMORY_HELP = [
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
]

# -- SLOWLOG --------------------------------------------------------------------------------

_BAD_COUNT = error("ERR count should be greater than or equal to -1")


def slowlog_get(session, argv: list[bytes]) -> bytes | Later:
    count = 10
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < -1:
            return _BAD_COUNT
    if len(argv) > 3:  # addReplySubcommandSyntaxError
        return error_bytes(
            b"ERR unknown subcommand or wrong number of arguments for '%b'. Try SLOWLOG HELP."
            % argv[1][:128]
        )
    service = session.server.introspection
    enc = session.enc

    def finish(answers: list) -> bytes:
        entries = service.slowlog_entries(answers)
        chosen = entries if count == -1 else entries[:count]
        return enc.array([_entry(enc, entry) for entry in chosen])

    # ours as they are now: this command's own entry comes after its reply, as in Redis
    return session.server.everywhere(service.slowlog.numbers(), finish, "slowlog")


def _entry(enc: Any, entry: list[Any]) -> bytes:
    entry_id, when, usec, argv, addr, name = entry
    return enc.array(
        [
            enc.integer(entry_id),
            enc.integer(when),
            enc.integer(usec),
            enc.bulk_array(argv),
            enc.bulk(addr),
            enc.bulk(name),
        ]
    )


def slowlog_len(session, argv: list[bytes]) -> bytes | Later:
    service = session.server.introspection
    return session.server.everywhere(
        service.slowlog.numbers(),
        lambda answers: session.enc.integer(len(service.slowlog_entries(answers))),
        "slowlog",
    )


def slowlog_reset(session, argv: list[bytes]) -> bytes | Later:
    session.server.introspection.slowlog.reset()
    return session.server.told_everywhere(b"+OK\r\n", "slowlog_reset")


def slowlog_help(session, argv: list[bytes]) -> bytes:
    return _help(session.enc, "SLOWLOG", _SLOWLOG_HELP)


# -- LATENCY --------------------------------------------------------------------------------


def _with_events(session, finish) -> bytes | Later:
    """``finish(events)`` over every acceptor's latency samples, merged."""
    service = session.server.introspection
    return session.server.everywhere(
        None, lambda answers: finish(service.latency_events(answers[1:])), "latency"
    )


def latency_latest(session, argv: list[bytes]) -> bytes | Later:
    enc = session.enc

    def finish(events: dict[str, Any]) -> bytes:
        rows = []
        for event, (samples, worst) in events.items():
            last = max(samples)
            rows.append(
                enc.array(
                    [
                        enc.bulk(event.encode()),
                        enc.integer(last),
                        enc.integer(samples[last]),
                        enc.integer(worst),
                    ]
                )
            )
        return enc.array(rows)

    return _with_events(session, finish)


def latency_history(session, argv: list[bytes]) -> bytes | Later:
    enc = session.enc
    name = argv[2].decode("utf-8", "replace")

    def finish(events: dict[str, Any]) -> bytes:
        samples, _worst = events.get(name, ({}, 0))
        return enc.array(
            [enc.array([enc.integer(when), enc.integer(samples[when])]) for when in sorted(samples)]
        )

    return _with_events(session, finish)


def latency_graph(session, argv: list[bytes]) -> bytes | Later:
    enc = session.enc
    name = argv[2].decode("utf-8", "replace")

    def finish(events: dict[str, Any]) -> bytes:
        if name not in events:
            return error_bytes(b"ERR No samples available for event '%b'" % argv[2])
        samples, worst = events[name]
        return enc.verbatim(latency.graph(name, samples, worst, int(time.time())).encode())

    return _with_events(session, finish)


def latency_doctor(session, argv: list[bytes]) -> bytes | Later:
    settings = session.server.config.get_all()
    return _with_events(
        session, lambda events: session.enc.verbatim(latency.doctor(events, settings).encode())
    )


def latency_reset(session, argv: list[bytes]) -> bytes | Later:
    names = [arg.decode("utf-8", "replace") for arg in argv[2:]] or None
    mine = session.server.introspection.monitor.reset(names)
    # an event every acceptor had samples of is one event of the merged monitor
    return session.server.everywhere(
        mine,
        lambda answers: session.enc.integer(len({event for each in answers for event in each})),
        "latency_reset",
        names,
    )


def latency_histogram(session, argv: list[bytes]) -> bytes | Later:
    server = session.server
    enc = session.enc

    def finish(shard_parts: list, others: list) -> bytes:
        times = info.command_times(server, shard_parts, [latency.ACCEPTOR.numbers(), *others])
        names = _histogram_names(server, argv[2:], times)
        return enc.map([(enc.bulk(name.encode()), _cdf(enc, times[name][1])) for name in names])

    return over_every_process(session, [b"@latency|histogram"], "times", finish)


def _histogram_names(server: Any, asked: list[bytes], times: dict[str, Any]) -> list[str]:
    """Which commands LATENCY HISTOGRAM lists: those asked for (a container brings its
    subcommands; unknown ones are skipped), or all with calls timed."""
    with_data = [name for name in sorted(times) if times[name][1]]
    if not asked:
        return with_data
    names = []
    for raw in asked:
        name = raw.decode("utf-8", "replace").lower()
        parent, _, sub = name.partition("|")
        spec = server.commands.get(parent)
        if spec is None or (sub and sub not in spec.subcommands):
            continue
        if name in times and times[name][1]:
            names.append(name)
        if not sub:
            names.extend(each for each in with_data if each.startswith(parent + "|"))
    return names


def _cdf(enc: Any, counts: dict[int, int]) -> bytes:
    """fillCommandCDF: the calls, and the cumulative counts by power-of-two µs bucket."""
    buckets = latency.cumulative_usec(counts)
    return enc.map(
        [
            (enc.bulk(b"calls"), enc.integer(sum(counts.values()))),
            (
                enc.bulk(b"histogram_usec"),
                enc.map([(enc.integer(usec), enc.integer(seen)) for usec, seen in buckets]),
            ),
        ]
    )


def times_part(shard, db, argv: list[bytes]) -> dict:
    """A shard's command times and calls, for LATENCY HISTOGRAM."""
    return {"times": shard.times.numbers(), "calls": dict(shard.calls)}


def latency_help(session, argv: list[bytes]) -> bytes:
    return _help(session.enc, "LATENCY", _LATENCY_HELP)


# -- MEMORY ---------------------------------------------------------------------------------


def _with_numbers(session, finish) -> Later:
    """``finish(report)`` over an INFO report of every shard and acceptor (one step)."""
    server = session.server
    return over_every_process(
        session,
        [b"@info"],
        "stats",
        lambda parts, others: finish(info.Report(server, parts, others)),
    )


def _float(value: float) -> bytes:
    """A C float's value as addReplyDouble writes it (%.17g of the float widened)."""
    narrowed = struct.unpack("f", struct.pack("f", value))[0]
    return f"{narrowed:.17g}".encode()


def memory_stats(session, argv: list[bytes]) -> Later:
    """MEMORY STATS with Redis's fields. The allocated figures are what the shards account
    for their keys (INFO's used_memory, shardserver/memory.py) plus the script caches; the
    resident one is every process's RSS. What Redis's allocator splits finer (startup,
    clients' buffers, replication, AOF buffers) is not measured apart."""
    enc = session.enc

    def finish(report: info.Report) -> bytes:
        scripts = session.server.scripts.memory()
        lua, functions = scripts["scripts_eval"], scripts["functions_memory"]
        used = sum(part["memory"]["used_memory"] for part in report.parts)
        dataset = sum(part["memory"]["used_memory_dataset"] for part in report.parts)
        total = used + lua + functions
        peak = max(total, info.STATS.peak_memory)
        overhead = total - dataset
        keys = sum(entry[1] for part in report.parts for entry in part["databases"])
        pairs: list[tuple[bytes, bytes]] = []

        def add(name: str, value: bytes) -> None:
            pairs.append((enc.bulk(name.encode()), value))

        for name, value in [
            ("peak.allocated", peak),
            ("total.allocated", total),
            ("startup.allocated", 0),
            ("replication.backlog", 0),
            ("clients.slaves", 0),
            ("clients.normal", 0),
            ("cluster.links", 0),
            ("aof.buffer", 0),
            ("lua.caches", lua),
            ("functions.caches", functions),
        ]:
            add(name, enc.integer(value))
        for index, count, expires in _databases(report):
            add(
                f"db.{index}",
                enc.map(
                    [
                        (enc.bulk(b"overhead.hashtable.main"), enc.integer(count * _ENTRY)),
                        (enc.bulk(b"overhead.hashtable.expires"), enc.integer(expires * _ENTRY)),
                        (enc.bulk(b"overhead.hashtable.slot-to-keys"), enc.integer(0)),
                    ]
                ),
            )
        add("overhead.total", enc.integer(overhead))
        add("keys.count", enc.integer(keys))
        add("keys.bytes-per-key", enc.integer(total // keys if keys else 0))
        add("dataset.bytes", enc.integer(dataset))
        add("dataset.percentage", enc.double(_float(dataset * 100 / max(total, 1))))
        add("peak.percentage", enc.double(_float(total * 100 / max(peak, 1))))
        add("allocator.allocated", enc.integer(total))
        add("allocator.active", enc.integer(total))
        add("allocator.resident", enc.integer(report.rss))
        rss_ratio = report.rss / total if total else 1.0
        for name, ratio, extra in [
            ("allocator-fragmentation", 1.0, 0),
            ("allocator-rss", rss_ratio, report.rss - total),
            ("rss-overhead", 1.0, 0),
        ]:
            add(f"{name}.ratio", enc.double(_float(ratio)))
            add(f"{name}.bytes", enc.integer(extra))
        add("fragmentation", enc.double(_float(rss_ratio)))
        add("fragmentation.bytes", enc.integer(report.rss - total))
        return enc.map(pairs)

    return _with_numbers(session, finish)


#: A key's dict entry and its share of the table: the estimate MEMORY USAGE makes too.
_ENTRY = 32


def _databases(report: info.Report) -> list[tuple[int, int, int]]:
    """(index, keys, keys with a deadline) of every database with keys."""
    totals: dict[int, list[int]] = {}
    for part in report.parts:
        for index, count, expires, _ttl, _samples in part["databases"]:
            entry = totals.setdefault(index, [0, 0])
            entry[0] += count
            entry[1] += expires
    return [(index, *totals[index]) for index in sorted(totals)]


_EMPTY = (
    "Hi Sam, this instance is empty or is using very little memory, my issues detector can't "
    "be used in these conditions. Please, leave for your mission on Earth and fill it with "
    "some data. The new Sam and I will be back to our programming as soon as I finished "
    "rebooting.\n"
)
_FINE = (
    "Hi Sam, I can't find any memory issue in your instance. I can only account for what "
    "occurs on this base.\n"
)


def memory_doctor(session, argv: list[bytes]) -> Later:
    """Redis's two verdicts that mean something here: an instance with no keys is "empty"
    (Redis's test is under 5 MB allocated, which our processes always pass), else no issue
    is found (the allocator's figures it judges are not measured here)."""

    def finish(report: info.Report) -> bytes:
        empty = not any(part["databases"] for part in report.parts)
        return session.enc.verbatim((_EMPTY if empty else _FINE).encode())

    return _with_numbers(session, finish)


def memory_malloc_stats(session, argv: list[bytes]) -> bytes:
    """What Redis answers when built without jemalloc: Python's allocator has no such report."""
    return session.enc.verbatim(b"Stats not supported for the current allocator")


def memory_purge(session, argv: list[bytes]) -> bytes:
    return b"+OK\r\n"


def memory_help(session, argv: list[bytes]) -> bytes:
    return _help(session.enc, "MEMORY", _MEMORY_HELP)


# -- ROLE, LOLWUT ---------------------------------------------------------------------------

#: A master with no replicas: its role, replication offset and (no) replicas.
_MASTER = b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"


def role(session, argv: list[bytes]) -> bytes:
    return _MASTER


def lolwut_(session, argv: list[bytes]) -> bytes:
    """LOLWUT [VERSION v] [...]: Redis 7.0 draws version 5's and 6's art, and for any other
    version (its own by default) says which it is."""
    version = REDIS_COMPAT_VERSION
    args = argv[1:]
    if len(args) >= 2 and args[0].lower() == b"version":
        asked = parse_int(args[1])
        if asked is None:
            return error("ERR value is not an integer or out of range")
        version = f"{asked & 0xFFFFFFFF}.0.0"
        args = args[2:]
    if (version[:2] == "5." and version[2:3] != "9") or version.startswith("4.9"):
        text = lolwut.version5(args, REDIS_COMPAT_VERSION)
    elif (version[:2] == "6." and version[2:3] != "9") or version.startswith("5.9"):
        text = lolwut.version6(args, REDIS_COMPAT_VERSION)
    else:
        text = f"Redis ver. {REDIS_COMPAT_VERSION}\n"
    if text.__class__ is bytes:  # an argument out of range: its error reply
        return text
    return session.enc.verbatim(text.encode())


ROWS = [
    local(
        "slowlog|get",
        slowlog_get,
        notes=(
            "a shard's entries name the command in lower case; a command split over shards "
            "is one entry, with its slowest part's time and arguments"
        ),
    ),
    local("slowlog|len", slowlog_len),
    local("slowlog|reset", slowlog_reset),
    local("slowlog|help", slowlog_help),
    local("latency|latest", latency_latest),
    local("latency|history", latency_history),
    local("latency|graph", latency_graph),
    local(
        "latency|doctor",
        latency_doctor,
        notes="events: command, fast-command, expire-cycle, aof-fsync-always",
    ),
    local("latency|reset", latency_reset),
    local(
        "latency|histogram",
        latency_histogram,
        part=times_part,
        notes="commands are listed in name order (Redis's dict order is arbitrary)",
    ),
    local("latency|help", latency_help),
    local(
        "memory|stats",
        memory_stats,
        notes="allocated figures are the shards' accounting of their keys, resident ones "
        "every process's RSS",
    ),
    local("memory|doctor", memory_doctor, notes="empty when there are no keys, else no issue"),
    local("memory|malloc-stats", memory_malloc_stats, notes="no allocator report (as libc)"),
    local("memory|purge", memory_purge),
    local("memory|help", memory_help),
    local("role", role, notes="always a master without replicas"),
    local("lolwut", lolwut_),
]
