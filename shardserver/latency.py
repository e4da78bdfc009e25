"""Command timing and the latency monitor: what INFO commandstats/latencystats, LATENCY and
SLOWLOG's durations are made of.

**Per-command times** (:class:`CommandTimes`). Each process (a shard for the commands it
runs, an acceptor for those it answers) keeps, per command, the nanoseconds its calls took
and, while ``latency-tracking`` is on, a histogram of them. Redis 7.0 keeps an HDR histogram
per command (1 ns to 1 s, 2 significant digits); ours has the same layout, so percentiles
and LATENCY HISTOGRAM's buckets come out as Redis's would for the same durations: values
below 256 ns have a slot each, and above, each power of two is split into 128 slots
(``index``). A call costs a table lookup (32 ns quanta below 131 µs) and two list
increments, with no allocation: cheap enough for the GET/SET path.

**The latency monitor** (:class:`LatencyMonitor`, in each acceptor). Redis keeps, per event
(``command``, ``fast-command``, ``expire-cycle`` ...), the last 160 seconds that had a
sample over ``latency-monitor-threshold`` (the worst sample of each second) and the all-time
worst; LATENCY LATEST, HISTORY, GRAPH, DOCTOR and RESET read it. Shards report their samples
to the acceptor that sent the command (or, for the expiry sweep, to acceptor 0); LATENCY
merges every acceptor's series second by second.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from typing import Any

#: Redis's histograms hold 1 ns to 1 s (LATENCY_HISTOGRAM_MIN_VALUE/MAX_VALUE); longer calls
#: count as 1 s, as Redis clamps them.
LIMIT_NS = 1_000_000_000
#: Slots of a histogram: every index a value up to LIMIT_NS can have, plus the total at the end.
_SLOTS = ((LIMIT_NS.bit_length() - 8) << 7) + 256
TOTAL = _SLOTS
#: LATENCY_TS_LEN: the seconds of samples kept per event.
SERIES_LEN = 160


def index(ns: int) -> int:
    """The histogram slot of a duration (hdr_histogram's counts index at 2 significant
    digits: 256 sub-buckets, half of them per power of two above the first)."""
    shift = ns.bit_length() - 8
    return (shift << 7) + (ns >> shift) if shift > 0 else ns


def lowest(slot: int) -> int:
    """The smallest duration that falls in ``slot``."""
    if slot < 256:
        return slot
    shift = (slot >> 7) - 1
    return (slot - (shift << 7)) << shift


def highest(slot: int) -> int:
    """The largest duration that falls in ``slot`` (hdr's highest equivalent value)."""
    if slot < 256:
        return slot
    shift = (slot >> 7) - 1
    return lowest(slot) + (1 << shift) - 1


#: Calls under 131 µs (nearly all) find their slot in a table, by 32 ns quanta: half the
#: cost of computing it, at a resolution still far finer than Redis's own 1 µs.
_QUANTUM_BITS = 5
_QUANTA = 4096
_SLOT_OF = [index(quantum << _QUANTUM_BITS) for quantum in range(_QUANTA)]


def new_histogram() -> list[int]:
    return [0] * (_SLOTS + 1)


#: A duration no call reaches: where a switched-off threshold stands.
NEVER = 1 << 62


class CommandTimes:
    """One process's time per command name (a histogram each, its last slot the total ns),
    and the durations from which a call is noted for SLOWLOG or the latency monitor."""

    __slots__ = ("by_name", "histograms", "slower_ns", "monitor_ns", "watch_ns")

    def __init__(self) -> None:
        self.by_name: dict[Any, list[int]] = {}
        #: Whether calls fill the histograms (``latency-tracking``); the totals always count.
        self.histograms = True
        self.slower_ns = self.monitor_ns = self.watch_ns = NEVER

    def configure(self, settings: Any) -> None:
        """Read ``slowlog-log-slower-than`` (µs, negative: off), ``latency-monitor-threshold``
        (ms, 0: off) and ``latency-tracking`` from a server's settings."""
        slower = int(settings["slowlog-log-slower-than"])
        monitor = int(settings["latency-monitor-threshold"])
        self.slower_ns = slower * 1000 if slower >= 0 else NEVER
        self.monitor_ns = monitor * 1_000_000 if monitor > 0 else NEVER
        self.watch_ns = min(self.slower_ns, self.monitor_ns)
        self.histograms = settings["latency-tracking"] == "yes"

    def record(self, name: Any, ns: int) -> None:
        """One call of ``name`` took ``ns`` nanoseconds."""
        counts = self.by_name.get(name)
        if counts is None:
            counts = self.by_name[name] = new_histogram()
        counts[TOTAL] += ns
        if self.histograms:
            quantum = ns >> _QUANTUM_BITS
            counts[_SLOT_OF[quantum] if quantum < _QUANTA else index(min(ns, LIMIT_NS))] += 1

    def record_run(self, commands: list[list], took: list[int]) -> None:
        """A run's calls, ``took[i]`` the nanoseconds of ``commands[i]`` (by wire name)."""
        by_name = self.by_name
        if not self.histograms:
            for argv, ns in zip(commands, took, strict=True):
                counts = by_name.get(argv[0])
                if counts is None:
                    counts = by_name[argv[0]] = new_histogram()
                counts[TOTAL] += ns
            return
        slot_of = _SLOT_OF
        for argv, ns in zip(commands, took, strict=True):
            counts = by_name.get(argv[0])
            if counts is None:
                counts = by_name[argv[0]] = new_histogram()
            counts[TOTAL] += ns
            quantum = ns >> _QUANTUM_BITS
            counts[slot_of[quantum] if quantum < _QUANTA else index(min(ns, LIMIT_NS))] += 1

    def clear(self) -> None:
        self.by_name.clear()

    def numbers(self) -> dict[str, tuple[int, dict[int, int]]]:
        """Per name as text: (total ns, {slot: count}), plain data for INFO's pipes."""
        out: dict[str, tuple[int, dict[int, int]]] = {}
        for name, counts in self.by_name.items():
            text = name if name.__class__ is str else name.decode("utf-8", "replace")
            out[text] = (counts[TOTAL], {i: n for i, n in enumerate(counts[:TOTAL]) if n})
        return out


#: The commands this acceptor answers itself (each acceptor process has its own).
ACCEPTOR = CommandTimes()


def merge(into: dict[int, int], counts: dict[int, int]) -> None:
    """Add a sparse histogram's counts to another."""
    for slot, count in counts.items():
        into[slot] = into.get(slot, 0) + count


def percentile(counts: dict[int, int], wanted: float) -> int:
    """hdr_value_at_percentile: the highest duration equivalent to the one at ``wanted``%."""
    total = sum(counts.values())
    target = max(1, int(wanted / 100 * total + 0.5))
    seen = 0
    for slot in sorted(counts):
        seen += counts[slot]
        if seen >= target:
            return highest(slot)
    return 0


def percentile_name(wanted: float) -> str:
    """A percentile as Redis writes it in ``p<name>=``: ``%f`` with its zeros trimmed."""
    text = f"{wanted:f}".rstrip("0")
    return text.rstrip(".")


def cumulative_usec(counts: dict[int, int]) -> list[tuple[int, int]]:
    """LATENCY HISTOGRAM's buckets: hdr's logarithmic iteration from 1024 ns, doubling, each
    as (its highest equivalent value in µs, calls up to it), where the count grew."""
    total = sum(counts.values())
    slots = sorted(counts)
    out: list[tuple[int, int]] = []
    level, seen, position, previous = 1024, 0, 0, 0
    while seen < total:
        floor = index(level)
        while position < len(slots) and slots[position] < floor:
            seen += counts[slots[position]]
            position += 1
        if seen > previous:
            out.append((highest(floor) // 1000, seen))
        previous = seen
        level *= 2
    return out


# -- the latency monitor ---------------------------------------------------------------------


class LatencyMonitor:
    """Per event: ``{second: worst ms}`` for the last :data:`SERIES_LEN` seconds with a
    sample, and the all-time worst (Redis's ``latencyTimeSeries``)."""

    def __init__(self) -> None:
        self.events: dict[str, tuple[dict[int, int], list[int]]] = {}

    def add(self, event: str, when: int, ms: int) -> None:
        """``latencyAddSample``: the worst sample of each second is kept."""
        series = self.events.get(event)
        if series is None:
            series = self.events[event] = ({}, [0])
        samples, worst = series
        worst[0] = max(worst[0], ms)
        samples[when] = max(samples.get(when, 0), ms)
        if len(samples) > SERIES_LEN:
            del samples[min(samples)]

    def reset(self, names: list[str] | None) -> list[str]:
        """Forget the named events (case-insensitive), or all; the events forgotten."""
        wanted = None if names is None else {name.lower() for name in names}
        gone = [event for event in self.events if wanted is None or event.lower() in wanted]
        for event in gone:
            del self.events[event]
        return gone

    def numbers(self) -> dict[str, tuple[dict[int, int], int]]:
        """Every event as plain data (what another acceptor sends for LATENCY)."""
        return {event: (dict(samples), worst[0]) for event, (samples, worst) in self.events.items()}


def merged(parts: Iterable[dict[str, tuple[dict[int, int], int]]]) -> dict[str, Any]:
    """Every acceptor's events as one monitor's: per second the worst, the worst of all."""
    out: dict[str, tuple[dict[int, int], int]] = {}
    for part in parts:
        for event, (samples, worst) in part.items():
            have, best = out.get(event, ({}, 0))
            for when, ms in samples.items():
                have[int(when)] = max(have.get(int(when), 0), ms)
            out[event] = (have, max(best, worst))
    for event, (samples, worst) in out.items():
        keep = sorted(samples)[-SERIES_LEN:]
        out[event] = ({when: samples[when] for when in keep}, worst)
    return out


def graph(event: str, samples: dict[int, int], worst: int, now: int) -> str:
    """LATENCY GRAPH's text: a title, a rule and Redis's four-row sparkline with the ages
    of the samples as labels (latencyCommandGenSparkeline)."""
    times = sorted(samples)
    values = [samples[when] for when in times]
    labels = [_age(now - when) for when in times]
    high, low = (max(values), min(values)) if values else (0, 0)
    text = f"{event} - high {high} ms, low {low} ms (all time high {worst} ms)\n"
    text += "-" * 80 + "\n"
    for start in range(0, len(values), 80):
        if start:
            text += "\n"
        text += _sparkline(values, labels, start, min(80, len(values) - start))
    return text


def _age(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _sparkline(values: list[int], labels: list[str], offset: int, length: int) -> str:
    """sparklineRenderRange with four rows and SPARKLINE_FILL: the filled charset
    ``_o#`` and ``|`` below the top, then the labels downwards after one blank row."""
    rows, charset = 4, "_o#"
    low, high = min(values), max(values)
    relmax = (high - low) or 1
    steps = len(charset) * rows
    out = []
    row = 0
    while True:
        more = False
        chars = [" "] * length
        for j in range(length):
            relval = values[j + offset] - low
            step = int(int(relval * steps) / relmax)
            step = min(max(step, 0), steps - 1)
            if row < rows:
                more = True
                charidx = step - (rows - row - 1) * len(charset)
                if 0 <= charidx < len(charset):
                    chars[j] = charset[charidx]
                elif charidx >= len(charset):
                    chars[j] = "|"
            else:
                if row - rows < 1:  # the margin above the labels (every sample has one)
                    more = True
                    break
                label = labels[j + offset]
                position = row - rows - 1
                if len(label) > position:
                    more = True
                    chars[j] = label[position]
        if not more:
            break
        row += 1
        out.append("".join(chars) + "\n")
    return "".join(out)


# -- LATENCY DOCTOR ----------------------------------------------------------------------------

_DISABLED = (
    "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. "
    'You may use "CONFIG SET latency-monitor-threshold <milliseconds>." in order to enable it. '
    "If we weren't in a deep space mission I'd suggest to take a look at "
    "https://redis.io/topics/latency-monitor.\n"
)
_QUIET = (
    "Dave, no latency spike was observed during the lifetime of this Redis instance, not in "
    "the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, "
    "and think things over.\n"
)
_NO_FIX = (
    "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please "
    "use the Redis community to get some help, providing this report in your help request.\n"
)
#: The advices in the order Redis prints them (createLatencyReport), by the events that
#: call for them.
_ADVICES = [
    (
        "slowlog_enabled",
        "- There are latency issues with potentially slow commands you are using. Try to "
        "enable the Slow Log Redis feature using the command 'CONFIG SET "
        "slowlog-log-slower-than {threshold_us}'. If the Slow log is disabled Redis is not "
        "able to log slow commands execution for you.\n",
    ),
    (
        "slowlog_tuning",
        "- Your current Slow Log configuration only logs events that are slower than your "
        "configured latency monitor threshold. Please use 'CONFIG SET "
        "slowlog-log-slower-than {threshold_us}'.\n",
    ),
    (
        "slowlog_inspect",
        "- Check your Slow Log to understand what are the commands you are running which are "
        "too slow to execute. Please check https://redis.io/commands/slowlog for more "
        "information.\n",
    ),
    (
        "scheduler",
        "- The system is slow to execute Redis code paths not containing system calls. This "
        "usually means the system does not provide Redis CPU time to run for long periods. "
        "You should try to:\n"
        "  1) Lower the system load.\n"
        "  2) Use a computer / VM just for Redis if you are running other software in the "
        "same system.\n"
        '  3) Check if you have a "noisy neighbour" problem.\n'
        "  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency "
        "in your system.\n"
        "  5) Check if the problem is allocator-related by recompiling Redis with "
        "MALLOC=libc, if you are using Jemalloc. However this may create fragmentation "
        "problems.\n",
    ),
    (
        "relax_fsync",
        "- Your fsync policy is set to 'always'. It is very hard to get good performances "
        "with such a setup, if possible try to relax the fsync policy to 'onesec'.\n",
    ),
    (
        "hz",
        "- In order to make the Redis keys expiring process more incremental, try to set "
        "the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n",
    ),
    (
        "large_objects",
        "- Deleting, expiring or evicting (because of maxmemory policy) large objects is a "
        "blocking operation. If you have very large objects that are often deleted, expired, "
        "or evicted, try to fragment those objects into multiple smaller objects.\n",
    ),
    (
        "thp",
        "- I detected a non zero amount of anonymous huge pages used by your process. This "
        "creates very serious latency events in different conditions, especially when Redis "
        "is persisting on disk. To disable THP support use the command 'echo never > "
        "/sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into "
        "/etc/rc.local so that the command will be executed again after a reboot. Note that "
        "even if you have already disabled THP, you still need to restart the Redis process "
        "to get rid of the huge pages already created.\n",
    ),
]


def anon_huge_pages() -> int:
    """Bytes of anonymous huge pages this process has (what Redis's THP advice looks at)."""
    try:
        with open(f"/proc/{os.getpid()}/smaps_rollup") as smaps:
            for line in smaps:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def doctor(events: dict[str, Any], settings: dict[str, str], now: int | None = None) -> str:
    """LATENCY DOCTOR's report (createLatencyReport) over the merged events."""
    threshold = int(settings.get("latency-monitor-threshold", "0"))
    if not events and threshold == 0:
        return _DISABLED
    now = int(time.time()) if now is None else now
    slower_than = int(settings.get("slowlog-log-slower-than", "10000"))
    wanted: set[str] = set()
    advices = 0
    report = ""
    for number, (event, (samples, worst)) in enumerate(events.items(), 1):
        if number == 1:
            report += (
                "Dave, I have observed latency spikes in this Redis instance. You don't mind "
                "talking about it, do you Dave?\n\n"
            )
        values = list(samples.values())
        count = len(values)
        average = sum(values) // count if count else 0
        deviation = sum(abs(average - value) for value in values) // count if count else 0
        period = max(1, now - min(samples)) if count else 0
        report += (
            f"{number}. {event}: {count} latency spikes (average {average}ms, mean deviation "
            f"{deviation}ms, period {period / count if count else math.nan:.2f} sec). Worst "
            f"all time event {worst}ms."
        )
        lowered = event.lower()
        if lowered == "command":
            if slower_than < 0:
                wanted.add("slowlog_enabled")
                advices += 1
            elif slower_than // 1000 > threshold:
                wanted.add("slowlog_tuning")
                advices += 1
            wanted |= {"slowlog_inspect", "large_objects"}
            advices += 2
        elif lowered == "fast-command":
            wanted.add("scheduler")
            advices += 1
        elif lowered == "aof-fsync-always":
            wanted.add("relax_fsync")
            advices += 1
        elif lowered == "expire-cycle":
            wanted |= {"hz", "large_objects"}
            advices += 2
        report += "\n"
    if anon_huge_pages() > 0:
        wanted.add("thp")
        advices += 1
    if not events and not advices:
        return report + _QUIET
    if not advices:
        return report + _NO_FIX
    report += "\nI have a few advices for you:\n\n"
    for name, text in _ADVICES:
        if name not in wanted:
            continue
        if name == "relax_fsync" and settings.get("appendfsync") != "always":
            continue
        if name == "hz" and int(settings.get("hz", "10")) >= 100:
            continue
        report += text.format(threshold_us=threshold * 1000)
    return report
