"""INFO: each shard's numbers, collected where they live, and the report built in the acceptor.

INFO is a fan-out command. Every shard runs :func:`shard_numbers`, which returns a plain dict
(its keys and deadlines per database, operations, expired keys, resident memory, CPU time and
calls per command) because only plain data crosses the pipe; the acceptor then adds what it
alone knows (clients, connections, configuration) and renders Redis 7.0's text with
:func:`render`. Sections, field names and layout are Redis's, so redis-py's ``info()``,
``redis-cli --stat`` and monitoring tools read it unchanged; a ``shards`` section (ours) shows
each shard's share.

Figures with no counterpart here are reported honestly rather than invented: memory is the
resident set of all our processes (Python has no allocator total to report), command times are
measured where they run (a shard's execution of each command, an acceptor's of its own:
:mod:`shardserver.latency`), and counters we do not keep are 0 (docs/commands.md lists them).

The acceptor-side counters live in :data:`STATS` (the memory peak, the previous sample for
``instantaneous_ops_per_sec``) and in :data:`shardserver.commands.spec.LOCAL_CALLS` (calls of
the commands the acceptor answers itself; shards count the rest); error statistics are
counted where each error reply is made, in every shard and acceptor
(:mod:`shardserver.errorstats`), and summed here.
"""

from __future__ import annotations

import os
import platform
import random
import secrets
import sys
import time
from collections import Counter
from typing import Any

from shardserver import REDIS_COMPAT_VERSION, __version__
from shardserver.commands.spec import LOCAL_CALLS, Route
from shardserver.config import ConfigError, parse_memory
from shardserver.errorstats import ACCEPTOR as ACCEPTOR_ERRORS
from shardserver.keyspace import now_ms
from shardserver.latency import ACCEPTOR as ACCEPTOR_TIMES
from shardserver.latency import merge, percentile, percentile_name
from shardserver.slots import slot_ranges

#: Sections in the order Redis 7.0 writes them, whatever order they were asked for in.
ORDER = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "shards",
]
#: ``INFO`` and ``INFO default``: Redis's default sections, and ours.
DEFAULT = frozenset(ORDER) - {"commandstats", "latencystats"}
#: ``INFO all`` and ``INFO everything`` (no module sections exist here, so they are the same).
EVERYTHING = frozenset(ORDER)

_TITLES = {name: name.capitalize() for name in ORDER} | {"cpu": "CPU"}

#: Keys sampled per database for ``avg_ttl``; Redis's figure is an estimate from samples too.
TTL_SAMPLE = 32

_RUN_ID = secrets.token_hex(20)
_REPLICATION_ID = secrets.token_hex(20)
_rng = random.Random()


# -- in each shard ------------------------------------------------------------------------


def process_rss() -> int:
    """This process's resident memory in bytes (``/proc/self/statm``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def shard_numbers(shard: Any) -> dict[str, Any]:
    """A shard's part of INFO: everything the report needs from it, as plain data."""
    now = now_ms()
    databases = []
    for index, db in enumerate(shard.dbs):
        if not db.data:
            continue
        ttl_sum = samples = 0
        deadlines = db.expires.deadline
        for key in db.expires.sample(TTL_SAMPLE, _rng) if db.expires else ():
            ttl = deadlines[key] - now
            if ttl > 0:
                ttl_sum += ttl
                samples += 1
        databases.append((index, len(db.data), len(db.expires), ttl_sum, samples))
    times = os.times()
    return {
        "pid": os.getpid(),
        "rss": process_rss(),
        "databases": databases,
        "ops": shard.commands_processed,
        "expired": sum(db.expired_keys for db in shard.dbs),
        "calls": dict(shard.calls),
        "tracking": shard.tracking.numbers(),
        "cpu": (times.user, times.system),
        "persistence": shard.persistence.numbers(),
        "errors": shard.errors.numbers(),
        "memory": shard.memory.numbers(),
        "times": shard.times.numbers(),
    }


def reset_shard(shard: Any) -> None:
    """CONFIG RESETSTAT in a shard: forget its counters (not its data)."""
    shard.calls.clear()
    shard.errors.clear()
    shard.times.clear()
    shard.commands_processed = 0
    shard.expired_by_sweep = 0
    shard.memory.evicted_keys = 0
    for db in shard.dbs:
        db.expired_keys = 0


# -- in the acceptor ----------------------------------------------------------------------


class AcceptorStats:
    """Counters the acceptor keeps for INFO that no other object owns."""

    def __init__(self) -> None:
        self.peak_memory = 0
        self._sample = (time.monotonic(), 0)
        self._rate = 0

    def ops_per_sec(self, total: int) -> int:
        """Commands per second since the previous INFO (at least 0.1 s ago); 0 at first."""
        now = time.monotonic()
        then, before = self._sample
        if now - then >= 0.1:
            self._rate = max(0, round((total - before) / (now - then)))
            self._sample = (now, total)
        return self._rate

    def reset(self, total: int) -> None:
        LOCAL_CALLS.clear()
        ACCEPTOR_ERRORS.clear()
        self.peak_memory = 0
        self._sample = (time.monotonic(), total)
        self._rate = 0


STATS = AcceptorStats()


def wanted(args: list[bytes]) -> set[str]:
    """The sections ``INFO args...`` asks for; unknown names are kept and produce nothing."""
    if not args:
        return set(DEFAULT)
    chosen: set[str] = set()
    for raw in args:
        name = raw.decode("utf-8", "replace").lower()
        if name == "default":
            chosen |= DEFAULT
        elif name in ("all", "everything"):
            chosen |= EVERYTHING
        else:
            chosen.add(name)
    return chosen


def human(size: float) -> str:
    """Bytes as Redis's ``bytesToHuman`` writes them (``1.21M``)."""
    if size < 1024:
        return f"{int(size)}B"
    for unit in "KMGTP":
        size /= 1024
        if size < 1024 or unit == "P":
            return f"{size:.2f}{unit}"
    raise AssertionError("unreachable")


def _system_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


#: Routes whose calls the acceptor counts, not the parts its shards run: its own commands,
#: every script it sends, and a KEYS command split over shards (MGET over four shards is one
#: call, as in Redis, not four).
_COUNTED_BY_ACCEPTOR = frozenset({None, Route.LOCAL, Route.SCRIPT, Route.KEYS})


class Report:
    """One INFO reply: the shards' parts and the acceptor's state, rendered section by section."""

    def __init__(
        self, server: Any, parts: list[dict[str, Any]], peers: list[dict[str, Any]]
    ) -> None:
        self.server = server
        self.parts = parts
        #: Every acceptor's own figures, this one's first.
        self.acceptors = [acceptor_numbers(server), *peers]
        self.settings = server.config.get_all()
        self.rss = sum(part["rss"] for part in [*self.acceptors, *parts])
        STATS.peak_memory = max(STATS.peak_memory, self.rss)

    def errors(self, kind: str) -> Counter[str]:
        """One kind of error count (``codes``, ``failed``, ``rejected``), summed over every
        acceptor and shard: each counts the error replies it makes."""
        total: Counter[str] = Counter()
        for numbers in [*self.acceptors, *self.parts]:
            total.update(numbers["errors"][kind])
        return total

    def total(self, name: str) -> int:
        """A counter summed over the acceptors."""
        return sum(numbers[name] for numbers in self.acceptors)

    def distinct(self, name: str) -> int:
        """How many different names the acceptors list under ``name`` (a channel subscribed
        in two acceptors is one channel)."""
        return len({each for numbers in self.acceptors for each in numbers[name]})

    def server_section(self) -> list[tuple[str, object]]:
        server = self.server
        uname = platform.uname()
        uptime = int(time.time() - server.started_at)
        return [
            ("redis_version", REDIS_COMPAT_VERSION),
            ("redis_clone_version", __version__),
            ("redis_git_sha1", "00000000"),
            ("redis_git_dirty", 0),
            ("redis_build_id", "0"),
            ("redis_mode", "standalone"),
            ("os", f"{uname.system} {uname.release} {uname.machine}"),
            ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
            ("monotonic_clock", "POSIX clock_gettime"),
            ("multiplexing_api", "epoll" if sys.platform.startswith("linux") else "kqueue"),
            ("python_version", platform.python_version()),
            ("process_id", server.main_pid),
            ("process_supervised", "no"),
            ("run_id", _RUN_ID),
            # the TLS port when there is no plain one, as Redis shows it
            ("tcp_port", int(self.settings["port"]) or int(self.settings.get("tls-port", 0))),
            ("server_time_usec", time.time_ns() // 1000),
            ("uptime_in_seconds", uptime),
            ("uptime_in_days", uptime // 86400),
            ("hz", self.settings.get("hz", "10")),
            ("configured_hz", self.settings.get("hz", "10")),
            ("lru_clock", int(time.time()) & ((1 << 24) - 1)),
            ("executable", os.path.abspath(sys.argv[0])),
            ("config_file", server.config.source or ""),
            ("io_threads_active", 0),
        ]

    def clients_section(self) -> list[tuple[str, object]]:
        return [
            ("connected_clients", self.total("clients")),
            ("cluster_connections", 0),
            ("maxclients", self.settings.get("maxclients", "10000")),
            ("client_recent_max_input_buffer", max(n["buffer_peaks"][0] for n in self.acceptors)),
            ("client_recent_max_output_buffer", max(n["buffer_peaks"][1] for n in self.acceptors)),
            ("blocked_clients", self.total("blocked")),
            ("tracking_clients", self.total("tracking")),
            ("clients_in_timeout_table", 0),
        ]

    def memory_section(self) -> list[tuple[str, object]]:
        rss, peak = self.rss, STATS.peak_memory
        try:
            maxmemory = parse_memory(self.settings.get("maxmemory", "0"))
        except ConfigError:
            maxmemory = 0
        system = _system_memory()
        # used_memory is what the shards account for their keys (shardserver/memory.py),
        # the figure eviction compares with maxmemory; RSS is every process's.
        used = sum(part["memory"]["used_memory"] for part in self.parts)
        dataset = sum(part["memory"]["used_memory_dataset"] for part in self.parts)
        return [
            ("used_memory", used),
            ("used_memory_human", human(used)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", human(rss)),
            ("used_memory_peak", peak),
            ("used_memory_peak_human", human(peak)),
            ("used_memory_peak_perc", f"{100.0 * rss / peak if peak else 100.0:.2f}%"),
            ("used_memory_overhead", used - dataset),
            ("used_memory_startup", 0),
            ("used_memory_dataset", dataset),
            ("used_memory_dataset_perc", f"{100.0 * dataset / used if used else 100.0:.2f}%"),
            ("total_system_memory", system),
            ("total_system_memory_human", human(system)),
            *self.scripting_memory(),
            ("maxmemory", maxmemory),
            ("maxmemory_human", human(maxmemory)),
            ("maxmemory_policy", self.settings.get("maxmemory-policy", "noeviction")),
            ("mem_fragmentation_ratio", f"{rss / used if used else 1.0:.2f}"),
            ("mem_not_counted_for_evict", 0),
            ("mem_clients_slaves", 0),
            ("mem_clients_normal", self.total("client_memory")),  # shardserver/limits.py
            ("mem_allocator", "libc"),
            ("lazyfree_pending_objects", 0),
        ]

    def scripting_memory(self) -> list[tuple[str, object]]:
        numbers = self.server.scripts.memory()
        vm_total = numbers["vm_eval"] + numbers["vm_functions"]
        scripts = numbers["scripts_eval"] + numbers["functions_memory"]
        return [
            ("used_memory_lua", numbers["vm_eval"]),
            ("used_memory_vm_eval", numbers["vm_eval"]),
            ("used_memory_lua_human", human(numbers["vm_eval"])),
            ("used_memory_scripts_eval", numbers["scripts_eval"]),
            ("number_of_cached_scripts", numbers["cached_scripts"]),
            ("number_of_functions", numbers["functions"]),
            ("number_of_libraries", numbers["libraries"]),
            ("used_memory_vm_functions", numbers["vm_functions"]),
            ("used_memory_vm_total", vm_total),
            ("used_memory_vm_total_human", human(vm_total)),
            ("used_memory_functions", numbers["functions_memory"]),
            ("used_memory_scripts", scripts),
            ("used_memory_scripts_human", human(scripts)),
        ]

    def persistence_section(self) -> list[tuple[str, object]]:
        snapshots = self.server.snapshots
        shards = [part["persistence"] for part in self.parts]
        saving = snapshots.saving
        aof_on = self.server.config["appendonly"] == "yes"
        return [
            ("loading", 0),
            ("async_loading", 0),
            ("rdb_changes_since_last_save", sum(s["dirty"] for s in shards)),
            ("rdb_bgsave_in_progress", int(saving)),
            ("rdb_last_save_time", snapshots.last_save),
            ("rdb_last_bgsave_status", "ok" if snapshots.last_ok else "err"),
            ("rdb_last_bgsave_time_sec", snapshots.last_duration),
            (
                "rdb_current_bgsave_time_sec",
                int(time.time() - snapshots.started_at) if saving else -1,
            ),
            ("aof_enabled", int(aof_on)),
            ("aof_rewrite_in_progress", int(any(s["aof_rewriting"] for s in shards))),
            (
                "aof_last_bgrewrite_status",
                "ok" if all(s["aof_rewrite_ok"] for s in shards) else "err",
            ),
            ("aof_last_write_status", "ok" if all(s["aof_write_ok"] for s in shards) else "err"),
            ("aof_current_size", sum(s["aof_size"] for s in shards)),
        ]

    def stats_section(self) -> list[tuple[str, object]]:
        total = self.total("commands")
        return [
            ("total_connections_received", self.total("connections")),
            ("total_commands_processed", total),
            ("instantaneous_ops_per_sec", STATS.ops_per_sec(total)),
            ("total_net_input_bytes", 0),
            ("total_net_output_bytes", 0),
            ("rejected_connections", self.total("rejected_connections")),
            ("expired_keys", sum(part["expired"] for part in self.parts)),
            ("evicted_keys", sum(part["memory"]["evicted_keys"] for part in self.parts)),
            ("evicted_clients", self.total("evicted_clients")),
            ("keyspace_hits", 0),
            ("keyspace_misses", 0),
            ("pubsub_channels", self.distinct("pubsub_channels")),
            ("pubsub_patterns", self.distinct("pubsub_patterns")),
            ("pubsubshard_channels", self.distinct("pubsub_shard_channels")),
            # every shard holds every BCAST prefix: shard 0's are all of them
            ("tracking_total_keys", sum(part["tracking"][0] for part in self.parts)),
            ("tracking_total_items", sum(part["tracking"][1] for part in self.parts)),
            ("tracking_total_prefixes", self.parts[0]["tracking"][2] if self.parts else 0),
            ("total_error_replies", sum(self.errors("codes").values())),
        ]

    def replication_section(self) -> list[tuple[str, object]]:
        # Redis lists the good replicas only while min-replicas-to-write asks for some
        good = [("min_slaves_good_slaves", 0)] if self.server.writes_refused else []
        return [
            ("role", "master"),
            ("connected_slaves", 0),
            *good,
            ("master_failover_state", "no-failover"),
            ("master_replid", _REPLICATION_ID),
            ("master_replid2", "0" * 40),
            ("master_repl_offset", 0),
            ("second_repl_offset", -1),
            ("repl_backlog_active", 0),
            ("repl_backlog_size", 1048576),
            ("repl_backlog_first_byte_offset", 0),
            ("repl_backlog_histlen", 0),
        ]

    def cpu_section(self) -> list[tuple[str, object]]:
        own = os.times()
        everyone = [*self.acceptors, *self.parts]
        user = sum(part["cpu"][0] for part in everyone)
        system = sum(part["cpu"][1] for part in everyone)
        return [
            ("used_cpu_sys", f"{system:.6f}"),
            ("used_cpu_user", f"{user:.6f}"),
            ("used_cpu_sys_children", "0.000000"),
            ("used_cpu_user_children", "0.000000"),
            ("used_cpu_sys_main_thread", f"{own.system:.6f}"),
            ("used_cpu_user_main_thread", f"{own.user:.6f}"),
        ]

    def commandstats_section(self) -> list[tuple[str, object]]:
        calls: Counter[str] = Counter()
        for numbers in self.acceptors:
            calls.update(numbers["local_calls"])
        fanned: dict[str, int] = {}
        for part in self.parts:
            for wire, count in part["calls"].items():
                name = wire.decode("utf-8", "replace")
                if not name.startswith("@"):
                    calls[name] += count
                    continue
                route = self.route(name[1:])
                if route is Route.ALL:
                    # every shard runs each call's part: count it once, not once per shard
                    fanned[name[1:]] = max(fanned.get(name[1:], 0), count)
                elif route not in _COUNTED_BY_ACCEPTOR:
                    calls[name[1:]] += count
        calls.update(fanned)
        rejected, failed = self.errors("rejected"), self.errors("failed")
        times = self.command_times()
        lines = []
        for name in sorted({*calls, *rejected, *failed}):
            if not (calls[name] or rejected[name] or failed[name]):
                continue
            usec = times[name][0] // 1000 if name in times else 0
            per_call = usec / calls[name] if calls[name] else 0
            lines.append(
                (
                    f"cmdstat_{name}",
                    f"calls={calls[name]},usec={usec},usec_per_call={per_call:.2f},"
                    f"rejected_calls={rejected[name]},failed_calls={failed[name]}",
                )
            )
        return lines

    def command_times(self) -> dict[str, tuple[int, dict[int, int]]]:
        return command_times(
            self.server, self.parts, [numbers["times"] for numbers in self.acceptors]
        )

    def latencystats_section(self) -> list[tuple[str, object]]:
        """Redis's ``latency_percentiles_usec_<command>`` lines while latency-tracking is on:
        each percentile of ``latency-tracking-info-percentiles``, in µs with 3 decimals."""
        if self.server.config["latency-tracking"] != "yes":
            return []
        wanted = self.server.config["latency-tracking-info-percentiles"]
        lines = []
        for name, (_total, counts) in sorted(self.command_times().items()):
            if not counts:
                continue
            shown = ",".join(
                f"p{percentile_name(each)}={percentile(counts, each) / 1000:.3f}" for each in wanted
            )
            lines.append((f"latency_percentiles_usec_{name}", shown))
        return lines

    def errorstats_section(self) -> list[tuple[str, object]]:
        """Per error code, in Redis's order (its rax: by code, bytewise)."""
        codes = self.errors("codes")
        return [
            (f"errorstat_{code}", f"count={codes[code]}") for code in sorted(codes) if codes[code]
        ]

    def route(self, name: str) -> Route | None:
        """The route of a served command by name (``@name`` parts count as its calls)."""
        return _route(self.server, name)

    def cluster_section(self) -> list[tuple[str, object]]:
        return [("cluster_enabled", 0)]

    def keyspace_section(self) -> list[tuple[str, object]]:
        totals: dict[int, list[float]] = {}
        for part in self.parts:
            for index, keys, expires, ttl_sum, samples in part["databases"]:
                entry = totals.setdefault(index, [0, 0, 0.0])
                entry[0] += keys
                entry[1] += expires
                if samples:
                    entry[2] += ttl_sum / samples * expires
        lines = []
        for index in sorted(totals):
            keys, expires, weighted = totals[index]
            avg_ttl = int(weighted / expires) if expires else 0
            lines.append((f"db{index}", f"keys={keys},expires={expires},avg_ttl={avg_ttl}"))
        return lines

    def shards_section(self) -> list[tuple[str, object]]:
        lines: list[tuple[str, object]] = [
            ("acceptors", len(self.acceptors)),
            ("connection_acceptor", self.server.index),
        ]
        for numbers in sorted(self.acceptors, key=lambda numbers: numbers["index"]):
            lines.append(
                (
                    f"acceptor{numbers['index']}",
                    f"pid={numbers['pid']},clients={numbers['clients']},"
                    f"connections={numbers['connections']},commands={numbers['commands']},"
                    f"used_memory_rss={numbers['rss']}",
                )
            )
        lines.append(("shards", len(self.parts)))
        for index, (part, (first, last)) in enumerate(
            zip(self.parts, slot_ranges(len(self.parts)), strict=True)
        ):
            keys = sum(entry[1] for entry in part["databases"])
            expires = sum(entry[2] for entry in part["databases"])
            links = self.server.links
            reason = links.last_restart_reason[index].replace(",", ";").replace(" ", "_")
            lines.append(
                (
                    f"shard{index}",
                    f"pid={part['pid']},keys={keys},expires={expires},ops={part['ops']},"
                    f"expired_keys={part['expired']},"
                    f"evicted_keys={part['memory']['evicted_keys']},"
                    f"used_memory={part['memory']['used_memory']},used_memory_rss={part['rss']},"
                    f"slots={first}-{last},restarts={links.restarts[index]},"
                    f"last_restart_reason={reason}",
                )
            )
        return lines

    def render(self, sections: set[str]) -> str:
        """The INFO text: ``# Title`` then ``field:value`` lines, sections split by a blank line."""
        blocks = []
        for name in ORDER:
            if name not in sections:
                continue
            builder = getattr(self, f"{name}_section", None)
            lines = builder() if builder is not None else []
            body = "".join(f"{field}:{value}\r\n" for field, value in lines)
            blocks.append(f"# {_TITLES[name]}\r\n{body}")
        return "\r\n".join(blocks)


def command_times(
    server: Any, parts: list[dict[str, Any]], acceptors: list[dict[str, Any]]
) -> dict[str, tuple[int, dict[int, int]]]:
    """Per command name: (total ns, sparse histogram) over every shard and acceptor. A
    shard's ``@part`` counts as its command's; a command every shard runs (route ALL) takes
    its slowest shard's figures, once, as commandstats counts its calls once."""
    out: dict[str, list[Any]] = {}
    fanned: dict[str, tuple[int, dict[int, int]]] = {}

    def add(name: str, total: int, counts: dict[int, int]) -> None:
        entry = out.setdefault(name, [0, {}])
        entry[0] += total
        merge(entry[1], counts)

    for numbers in acceptors:
        for name, (total, counts) in numbers.items():
            add(name, total, counts)
    for part in parts:
        for name, (total, counts) in part["times"].items():
            if not name.startswith("@"):
                add(name, total, counts)
                continue
            route = _route(server, name[1:])
            if route is Route.ALL:
                if total >= fanned.get(name[1:], (-1, {}))[0]:
                    fanned[name[1:]] = (total, counts)
            elif route is not None and route is not Route.LOCAL and route is not Route.SCRIPT:
                add(name[1:], total, counts)
    for name, (total, counts) in fanned.items():
        add(name, total, counts)
    return {name: (total, counts) for name, (total, counts) in out.items()}


def _route(server: Any, name: str) -> Route | None:
    parent, _, sub = name.partition("|")
    spec = server.commands.get(parent)
    if spec is not None and sub:
        spec = spec.subcommands.get(sub)
    return None if spec is None else spec.route


def acceptor_numbers(server: Any) -> dict[str, Any]:
    """An acceptor's own part of INFO (the others send theirs over the control channel)."""
    times = os.times()
    return {
        "index": server.index,
        "pid": os.getpid(),
        "clients": len(server.clients),
        "blocked": len(server.blocking),
        "tracking": len(server.tracking),
        "connections": server.connections_received,
        "commands": server.commands_received,
        "local_calls": dict(LOCAL_CALLS),
        "errors": ACCEPTOR_ERRORS.numbers(),
        "times": ACCEPTOR_TIMES.numbers(),
        "rss": process_rss(),
        "cpu": (times.user, times.system),
        "pubsub_channels": server.pubsub.active(False, None),
        "pubsub_patterns": server.pubsub.pattern_names(),
        "pubsub_shard_channels": server.pubsub.active(True, None),
        "rejected_connections": server.limits.rejected,
        "evicted_clients": server.limits.evicted,
        "client_memory": server.limits.memory_total,
        "buffer_peaks": server.limits.peaks(),
    }


def render(
    server: Any,
    args: list[bytes],
    parts: list[dict[str, Any]],
    peers: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> str:
    """The text of ``INFO args...`` from the shards' parts (in shard order) and the other
    acceptors' own numbers."""
    return Report(server, parts, list(peers)).render(wanted(args))
