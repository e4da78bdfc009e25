"""Summaries of measured runs, and their rendering: a Markdown table, docs/benchmarks.md, a chart.

Each row pairs the rounds of one test (SET, GET ...) of one workload at one shard count. Ops/s,
latencies and CPU are medians over the rounds; the ratio is the median of the per-round ratios
ours/redis, each round's two runs having been taken back to back (A B A B), with their range.
Suites (redis-benchmark's default tests) get a table and chart of their own, with each test's
ratio also relative to the SET/GET ratio of the same run. Memory rows compare RSS.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from servers import REPO_ROOT
from workloads import Sample, Workload

MIB = 1024 * 1024


@dataclass(frozen=True)
class Side:
    """Medians over the rounds for one server."""

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_s_per_mops: float


@dataclass(frozen=True)
class Row:
    """One test of one workload at one shard count: both servers side by side."""

    shards: int
    workload: Workload
    test: str
    requests: int
    redis: Side
    ours: Side
    ratio: float
    ratio_low: float
    ratio_high: float
    busy: bool


@dataclass(frozen=True)
class TypeMemoryRow:
    """RSS of both servers' process trees, empty and after filling one key of one data type."""

    type_name: str
    shards: int
    members: int
    redis_empty: int
    redis_filled: int
    ours_empty: int
    ours_filled: int

    @property
    def redis_per_member(self) -> float:
        """Growth of redis-server's RSS per member stored."""
        return (self.redis_filled - self.redis_empty) / max(self.members, 1)

    @property
    def ours_per_member(self) -> float:
        """Growth of our tree's RSS per member stored."""
        return (self.ours_filled - self.ours_empty) / max(self.members, 1)


@dataclass(frozen=True)
class MemoryRow:
    """RSS of one server's process tree, empty and after the fill."""

    server: str
    shards: int | None
    keys: int
    rss_empty: int
    rss_filled: int

    @property
    def bytes_per_key(self) -> float:
        """Growth of RSS per key stored."""
        return (self.rss_filled - self.rss_empty) / max(self.keys, 1)


def _side(samples: list[Sample], test: str) -> Side:
    """Median figures for one server over its rounds."""

    def median(value: Callable[[Sample], float]) -> float:
        return statistics.median(value(sample) for sample in samples)

    return Side(
        ops_per_s=median(lambda s: s.results[test].ops_per_s),
        p50_ms=median(lambda s: s.results[test].p50_ms),
        p99_ms=median(lambda s: s.results[test].p99_ms),
        cpu_s_per_mops=median(lambda s: s.cpu_s_per_million_ops(test)),
    )


def summarize(
    shards: int,
    workload: Workload,
    rounds: list[tuple[Sample, Sample]],
    busy_threshold: float,
) -> list[Row]:
    """Turn (redis, ours) sample pairs of one run of a workload into one row per test."""
    redis = [pair[0] for pair in rounds]
    ours = [pair[1] for pair in rounds]
    busy = any(sample.other_cpu_fraction > busy_threshold for sample in redis + ours)
    rows = []
    for test in redis[0].results:
        ratios = [o.results[test].ops_per_s / r.results[test].ops_per_s for r, o in rounds]
        rows.append(
            Row(
                shards=shards,
                workload=workload,
                test=test,
                requests=redis[0].requests,
                redis=_side(redis, test),
                ours=_side(ours, test),
                ratio=statistics.median(ratios),
                ratio_low=min(ratios),
                ratio_high=max(ratios),
                busy=busy,
            )
        )
    return rows


def _pair(redis: float, ours: float, digits: int) -> str:
    return f"{redis:.{digits}f} / {ours:.{digits}f}"


def throughput_table(rows: list[Row]) -> str:
    """Markdown table of the throughput rows (a trailing * marks a run on a busy machine)."""
    lines = [
        "| shards | workload | test | -n | redis ops/s | ours ops/s | ours/redis (range) "
        "| p50 ms redis / ours | p99 ms redis / ours | CPU s/Mops redis / ours |",
        "|---:|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for row in rows:
        mark = " *" if row.busy else ""
        lines.append(
            f"| {row.shards} | {row.workload.name} | {row.test}{mark} | {row.requests} "
            f"| {row.redis.ops_per_s:,.0f} | {row.ours.ops_per_s:,.0f} "
            f"| **{row.ratio:.2f}** ({row.ratio_low:.2f}–{row.ratio_high:.2f}) "
            f"| {_pair(row.redis.p50_ms, row.ours.p50_ms, 3)} "
            f"| {_pair(row.redis.p99_ms, row.ours.p99_ms, 3)} "
            f"| {_pair(row.redis.cpu_s_per_mops, row.ours.cpu_s_per_mops, 2)} |"
        )
    return "\n".join(lines)


def reference_ratio(rows: list[Row], shards: int, workload: Workload) -> float:
    """The mean of the SET and GET ratios of one workload at one shard count."""
    return statistics.mean(
        row.ratio
        for row in rows
        if row.shards == shards and row.workload == workload and row.test in ("SET", "GET")
    )


def suite_table(rows: list[Row]) -> str:
    """Markdown table of a suite's rows, each ratio also relative to the suite's SET/GET ratio."""
    lines = [
        "| shards | test | -n | redis ops/s | ours ops/s | ours/redis (range) | ÷ SET/GET "
        "| p50 ms redis / ours | p99 ms redis / ours | CPU s/Mops redis / ours |",
        "|---:|---|---:|---:|---:|---|---:|---|---|---|",
    ]
    for row in rows:
        mark = " *" if row.busy else ""
        relative = row.ratio / reference_ratio(rows, row.shards, row.workload)
        lines.append(
            f"| {row.shards} | {row.test}{mark} | {row.requests} "
            f"| {row.redis.ops_per_s:,.0f} | {row.ours.ops_per_s:,.0f} "
            f"| **{row.ratio:.2f}** ({row.ratio_low:.2f}–{row.ratio_high:.2f}) "
            f"| {relative:.2f} "
            f"| {_pair(row.redis.p50_ms, row.ours.p50_ms, 3)} "
            f"| {_pair(row.redis.p99_ms, row.ours.p99_ms, 3)} "
            f"| {_pair(row.redis.cpu_s_per_mops, row.ours.cpu_s_per_mops, 2)} |"
        )
    return "\n".join(lines)


def type_memory_table(rows: list[TypeMemoryRow]) -> str:
    """Markdown table of RSS per data type, ours against redis-server."""
    lines = [
        "| type | shards | members | RSS empty MiB redis / ours | RSS filled MiB redis / ours "
        "| bytes/member redis / ours | RSS ours/redis | growth ours/redis |",
        "|---|---:|---:|---|---|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.type_name} | {row.shards} | {row.members:,} "
            f"| {_pair(row.redis_empty / MIB, row.ours_empty / MIB, 1)} "
            f"| {_pair(row.redis_filled / MIB, row.ours_filled / MIB, 1)} "
            f"| {_pair(row.redis_per_member, row.ours_per_member, 0)} "
            f"| **{row.ours_filled / row.redis_filled:.2f}** "
            f"| {row.ours_per_member / row.redis_per_member:.2f} |"
        )
    return "\n".join(lines)


def memory_table(rows: list[MemoryRow]) -> str:
    """Markdown table of RSS after the fill, with each of ours against redis-server."""
    redis = next(row for row in rows if row.server == "redis")
    lines = [
        "| server | shards | keys | RSS empty MiB | RSS filled MiB | bytes/key | RSS ours/redis |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = "" if row is redis else f"**{row.rss_filled / redis.rss_filled:.2f}**"
        lines.append(
            f"| {row.server} | {row.shards or ''} | {row.keys:,} | {row.rss_empty / MIB:.1f} "
            f"| {row.rss_filled / MIB:.1f} | {row.bytes_per_key:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def _output(argv: list[str]) -> str | None:
    """Stripped stdout of a command run in the repository, or None when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> str:
    """Short commit of the checkout, marked when the work tree differs (git used read-only)."""
    commit = _output(["git", "rev-parse", "--short", "HEAD"])
    if not commit:
        return "none (no commit yet)"
    changes = _output(["git", "--no-optional-locks", "status", "--porcelain"])
    return f"{commit} (with uncommitted changes)" if changes else commit


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_lines(cores: int) -> list[str]:
    """Bullet lines naming the date, machine and software the numbers came from."""
    redis_version = _output(["redis-server", "--version"]) or "unknown"
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu_model()}, {cores} cores; kernel {platform.release()}",
        f"- redis-server: {redis_version}",
        f"- Python: {platform.python_version()}",
        f"- Commit: {git_commit()}",
    ]


def draw_chart(rows: list[Row], targets: dict[str, float], path: Path) -> None:
    """Grouped bars of ours/redis per workload and test, one bar per shard count, with targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((row.workload.name, row.test) for row in rows))
    shard_counts = sorted({row.shards for row in rows})
    width = 0.8 / len(shard_counts)
    fig, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(groups)), 4.5))
    for index, shards in enumerate(shard_counts):
        by_group = {(r.workload.name, r.test): r for r in rows if r.shards == shards}
        xs = [g + index * width for g, key in enumerate(groups) if key in by_group]
        ratios = [by_group[key].ratio for key in groups if key in by_group]
        low = [by_group[key].ratio - by_group[key].ratio_low for key in groups if key in by_group]
        high = [by_group[key].ratio_high - by_group[key].ratio for key in groups if key in by_group]
        axes.bar(xs, ratios, width, yerr=[low, high], capsize=2, label=f"{shards} shard(s)")
    for g, (name, _test) in enumerate(groups):
        if name in targets:
            left = g - width / 2
            axes.hlines(targets[name], left, left + 0.8, colors="red", linestyles="dashed")
    axes.plot([], [], "r--", label="target")
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
    axes.set_xticklabels([f"{name}\n{test}" for name, test in groups])
    axes.set_ylabel("ops/s ours / redis-server")
    axes.set_title("redis-clone throughput relative to redis-server (median of rounds)")
    axes.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_suite_chart(rows: list[Row], path: Path) -> None:
    """Bars of ours/redis per test (a panel per suite, a bar per shard count), SET/GET dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(dict.fromkeys(row.workload for row in rows))
    tests = list(dict.fromkeys(row.test for row in rows))
    shard_counts = sorted({row.shards for row in rows})
    height = 0.8 / len(shard_counts)
    fig, panels = plt.subplots(
        1, len(suites), figsize=(5.5 * len(suites), 0.3 * len(tests) + 1.5), squeeze=False
    )
    for suite, axes in zip(suites, panels[0], strict=True):
        for index, shards in enumerate(shard_counts):
            by_test = {r.test: r for r in rows if r.workload == suite and r.shards == shards}
            ys = [t + index * height for t, test in enumerate(tests) if test in by_test]
            bars = axes.barh(
                ys,
                [by_test[test].ratio for test in tests if test in by_test],
                height,
                label=f"{shards} shard(s)",
            )
            reference = reference_ratio(rows, shards, suite)
            axes.axvline(reference, color=bars.patches[0].get_facecolor(), linestyle="dashed")
        axes.plot([], [], "k--", label="SET/GET ratio")
        axes.axvline(1.0, color="grey", linewidth=0.8)
        axes.set_yticks([t + 0.4 - height / 2 for t in range(len(tests))])
        axes.set_yticklabels([test.split(" (")[0] for test in tests], fontsize="small")
        axes.invert_yaxis()
        axes.set_xlabel("ops/s ours / redis-server")
        axes.set_title(f"{suite.name}: -c {suite.clients} -P {suite.pipeline}")
        axes.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _memory_sections(memory: list[MemoryRow], type_memory: list[TypeMemoryRow]) -> list[str]:
    """The memory sections of the docs page (empty when neither was measured)."""
    parts = []
    if memory:
        parts += ["", "## Memory", "", memory_table(memory)]
    if type_memory:
        members = type_memory[0].members
        parts += [
            "",
            "## Memory per data type",
            "",
            f"One key holding {members:,} members of one type, in a fresh server of each kind "
            f"(ours with {type_memory[0].shards} shard(s)), filled by one command per member "
            "(`ZADD`, `HSET`, `SADD`, `RPUSH`) pipelined 1,000 at a time; members "
            "`member:000123`, hash values the member's number, scores distinct non-integers. "
            "Growth is RSS filled minus empty.",
            "",
            type_memory_table(type_memory),
        ]
    return parts


def docs_page(
    header: list[str],
    rows: list[Row],
    memory: list[MemoryRow],
    warnings: list[str],
    charts: dict[str, str],
    targets: dict[str, float],
    type_memory: list[TypeMemoryRow],
) -> str:
    """The whole docs/benchmarks.md page; `charts` names the chart files by "workloads", "suite"."""
    plain = [row for row in rows if not row.workload.suite]
    suite = [row for row in rows if row.workload.suite]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py --write-docs`; see `bench/README.md` for what is measured and "
        "how to read it. Ratios are ours/redis-server (higher is better for throughput, lower "
        "for memory); `*` marks a row where other work used the machine during a run.",
        "",
        *header,
    ]
    if plain:
        workloads = dict.fromkeys(row.workload for row in plain)
        legend = "; ".join(f"`{w.name}`: {w.legend()}" for w in workloads)
        parts += [
            "",
            "## Throughput, latency, CPU",
            "",
            f"Workloads (redis-benchmark flags besides `-n`): {legend}.",
            "",
            throughput_table(plain),
        ]
    if "workloads" in charts:
        drawn = ", ".join(f"`{name}` {ratio}" for name, ratio in targets.items())
        parts += [
            "",
            f"![ours/redis per workload and shard count]({charts['workloads']})",
            "",
            f"Bars: median ratio, error bars: range over rounds; dashed red: targets ({drawn}).",
        ]
    for workload in dict.fromkeys(row.workload for row in suite):
        parts += [
            "",
            f"## redis-benchmark's default tests: `{workload.name}`",
            "",
            f"Flags besides `-n`: {workload.legend()}. The `-n` of each run is calibrated on "
            "its own (the same for both servers); CPU is per test, from the end of the "
            "previous test to the end of this one. ÷ SET/GET is the test's ratio over the mean "
            "of the SET and GET ratios of the same run: the issue asks that no test fall much "
            "below 1. The LPUSH that redis-benchmark runs before each LRANGE test is shown "
            "once, from the `lrange_100` run.",
            "",
            suite_table([row for row in suite if row.workload == workload]),
        ]
    if "suite" in charts:
        parts += [
            "",
            f"![ours/redis per test of the default suite]({charts['suite']})",
            "",
            "Bars: median ratio per test; dashed: the SET/GET ratio of the same run.",
        ]
    parts += _memory_sections(memory, type_memory)
    if warnings:
        parts += ["", "## Warnings during the run", "", *(f"- {w}" for w in warnings)]
    return "\n".join(parts) + "\n"
