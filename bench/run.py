#!/usr/bin/env python3
"""Benchmark redis-clone against a real redis-server with identical redis-benchmark workloads.

For each shard count, both servers are started fresh on free ports, filled with the keyspace, and
each workload runs against them in turn, A B A B, for several rounds, so drift on a noisy machine
falls on both alike. The request count is calibrated once per workload so that a run takes about
--target-seconds on the slower server, and is then the same for both; a suite (redis-benchmark's
default tests) is a workload of several runs, each calibrated on its own, and each round goes
through them in order. The memory workload fills fresh servers with strings and compares the RSS
of their process trees; the memory-per-type measurement does the same with one key of
1,000,000 members of each data type, a fresh pair of servers per type.

Results print as Markdown tables; raw samples go to bench/results/; with --write-docs the tables
and charts go to docs/benchmarks.md, docs/benchmarks.png and (for a suite) benchmarks-suite.png.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import certs
import fills
import proctree
import report
from servers import REPO_ROOT, Server, ServerError, dbsize, warn
from workloads import DEFAULT_WORKLOADS, WORKLOADS, Sample, Workload, measure, run_benchmark

REDIS_CMD = "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no"
OURS_CMD = "./redis-clone --port {port} --bind 127.0.0.1 --shards {shards} --loglevel warning"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DOCS_DIR = REPO_ROOT / "docs"
DEFAULT_TARGET_RATIO = 0.8
#: The targets of the performance issue (issue 10), drawn on the chart (ratio ours/redis-server).
ISSUE_TARGETS = {"c50-P1": 0.75, "c50-P16": 0.65, "c1-P1": 0.4}
#: docs/benchmarks.md keeps, across --write-docs runs, what follows this line (the analysis).
KEEP_MARKER = "<!-- Written by hand below this line; bench/run.py --write-docs keeps it. -->"
PROBE_MIN_SECONDS = 0.25
IDLE_CHECK_SECONDS = 1.0
MEMORY_FILL = Workload("memory", clients=50, pipeline=16, groups=("set",), keyspace=1_000_000)
MEMORY_FILL_REQUESTS = 3_000_000
TYPE_MEMORY_MEMBERS = 1_000_000


@dataclasses.dataclass
class Settings:
    """Everything a run needs, resolved from the command line."""

    shard_counts: list[int]
    workloads: list[Workload]
    memory: bool
    type_memory: bool
    type_memory_shards: int
    rounds: int
    target_seconds: float
    requests: int | None
    prefill_factor: int
    memory_scale: int
    ours_cmd: str
    redis_cmd: str
    run_timeout: float
    busy_threshold: float
    targets: dict[str, float]
    write_docs: bool
    docs_dir: Path
    log_dir: Path


@dataclasses.dataclass
class Outcome:
    """What the run produced, for printing and the docs."""

    rows: list[report.Row] = dataclasses.field(default_factory=list)
    memory: list[report.MemoryRow] = dataclasses.field(default_factory=list)
    type_memory: list[report.TypeMemoryRow] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    samples: list[dict[str, object]] = dataclasses.field(default_factory=list)

    def warn(self, message: str) -> None:
        """Print a warning now and keep it for the report."""
        warn(message)
        self.warnings.append(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", default="1,2,4", help="shard counts for ours (default 1,2,4)")
    parser.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated subset of {', '.join(WORKLOADS)}, or 'all', or 'none' "
        f"(default: {','.join(DEFAULT_WORKLOADS)})",
    )
    parser.add_argument("--memory", action="store_true", help="also run the memory workload")
    parser.add_argument(
        "--type-memory",
        action="store_true",
        help="also measure RSS per data type (one key of 1,000,000 members of each type)",
    )
    parser.add_argument(
        "--type-memory-shards",
        type=int,
        default=1,
        help="shard count of ours for --type-memory (default 1)",
    )
    parser.add_argument("--rounds", type=int, help="A B rounds per workload (default 3)")
    parser.add_argument(
        "--target-seconds",
        type=float,
        help="calibrate -n so one run lasts about this long on the slower server (default 2.5)",
    )
    parser.add_argument("--requests", type=int, help="fixed -n for every workload (no calibration)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round, short runs, small fills"
    )
    parser.add_argument(
        "--ours-cmd",
        default=OURS_CMD,
        help="command line of our server, with {port} and {shards} fields "
        f"(default: {OURS_CMD!r}, run from the repository root)",
    )
    parser.add_argument("--redis-cmd", default=REDIS_CMD, help="command line of redis-server")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds per run at most")
    parser.add_argument(
        "--busy-threshold",
        type=float,
        default=0.10,
        help="warn when other processes used more than this fraction of all CPUs during a run",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="WORKLOAD=RATIO",
        help=f"target ratio drawn on the chart (default: the issue's, else {DEFAULT_TARGET_RATIO})",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="write benchmarks.md and benchmarks.png"
    )
    parser.add_argument(
        "--docs-dir", type=Path, default=DOCS_DIR, help="where --write-docs writes (default docs/)"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Validate the command line and fill in defaults (--quick changes some of them)."""
    names = {"none": [], "all": list(WORKLOADS)}.get(
        args.workloads, [n for n in args.workloads.split(",") if n]
    )
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    targets = dict.fromkeys(DEFAULT_WORKLOADS, DEFAULT_TARGET_RATIO)
    targets.update(ISSUE_TARGETS)
    for item in args.target:
        name, _, ratio = item.partition("=")
        targets[name] = float(ratio)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Settings(
        shard_counts=[int(count) for count in args.shards.split(",")],
        workloads=[WORKLOADS[name] for name in names],
        memory=args.memory,
        type_memory=args.type_memory,
        type_memory_shards=args.type_memory_shards,
        rounds=args.rounds or (1 if args.quick else 3),
        target_seconds=args.target_seconds or (0.3 if args.quick else 2.5),
        requests=args.requests,
        prefill_factor=1 if args.quick else 4,
        memory_scale=10 if args.quick else 1,
        ours_cmd=args.ours_cmd,
        redis_cmd=args.redis_cmd,
        run_timeout=args.run_timeout,
        busy_threshold=args.busy_threshold,
        targets=targets,
        write_docs=args.write_docs,
        docs_dir=args.docs_dir,
        log_dir=RESULTS_DIR / f"logs-{stamp}",
    )


@contextlib.contextmanager
def running(label: str, template: str, shards: int, settings: Settings) -> Iterator[Server]:
    """A started server, stopped (whole process tree) when the block ends, however it ends."""
    tls = None
    if any(workload.tls for workload in settings.workloads):
        tls = certs.make_certs(settings.log_dir / "certs")
    server = Server(label, template, shards, settings.log_dir, tls=tls)
    try:
        yield server.start()
    finally:
        server.stop()


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def round_requests(requests: float, workload: Workload) -> int:
    """Round to two significant digits, at least ten pipelines' worth per client."""
    floor = workload.clients * workload.pipeline * 10
    digits = max(len(str(int(requests))) - 2, 0)
    return max(floor, int(round(requests, -digits)))


def calibrate(servers: list[Server], workload: Workload, group: str, settings: Settings) -> int:
    """-n for a run of `group` of about target_seconds on the slower server; probes warm up."""
    if settings.requests:
        return settings.requests
    requests = 500 * workload.pipeline
    while True:
        seconds = max(
            sum(requests / r.ops_per_s for r in results.values())
            for results in (
                run_benchmark(s, workload.args(group, requests), settings.run_timeout, workload.tls)
                for s in servers
            )
        )
        if seconds >= PROBE_MIN_SECONDS:
            return round_requests(requests * settings.target_seconds / seconds, workload)
        requests *= 4


def prefill(servers: list[Server], settings: Settings) -> None:
    """Write the workloads' keyspace, so GETs find values from the first round on."""
    keyspace = max((w.keyspace for w in settings.workloads), default=0)
    fill = Workload("prefill", clients=50, pipeline=16, groups=("set",), keyspace=keyspace)
    for server in servers:
        run_benchmark(
            server, fill.args("set", keyspace * settings.prefill_factor), settings.run_timeout
        )


def note_busy_runs(samples: list[Sample], where: str, settings: Settings, outcome: Outcome) -> None:
    """One warning for the runs of a workload during which other processes were busy."""
    busy = [s for s in samples if s.other_cpu_fraction > settings.busy_threshold]
    if busy:
        worst = max(busy, key=lambda s: s.other_cpu_fraction)
        outcome.warn(
            f"{where}: in {len(busy)} of {len(samples)} runs other processes used more than "
            f"{settings.busy_threshold:.0%} of the CPUs, up to {worst.other_cpu_fraction:.0%} "
            f"(busiest then: {', '.join(worst.busiest_others) or 'gone by the end'})"
        )


def describe(sample: Sample) -> str:
    """A progress line for one measured run."""
    tests = " ".join(f"{t} {r.ops_per_s:,.0f}/s" for t, r in sample.results.items())
    return (
        f"{sample.server:5} {tests}  cpu {sample.server_cpu_s:.2f} s in {sample.wall_s:.2f} s"
        f"  other {sample.other_cpu_fraction:.0%}"
    )


def run_workload(
    servers: list[Server], workload: Workload, shards: int, settings: Settings, outcome: Outcome
) -> list[report.Row]:
    """Calibrate each run, then settings.rounds times go through the runs, A B; summarize.

    A test that several runs share (the LPUSH before each LRANGE) is reported from the first.
    """
    requests = {group: calibrate(servers, workload, group, settings) for group in workload.groups}
    pairs: dict[str, list[tuple[Sample, Sample]]] = {group: [] for group in workload.groups}
    for round_number in range(1, settings.rounds + 1):
        for group, n in requests.items():
            redis, ours = (
                measure(target, workload, group, n, settings.run_timeout) for target in servers
            )
            pairs[group].append((redis, ours))
            for sample in (redis, ours):
                progress(
                    f"  {workload.name} -t {group} -n {n} round {round_number}: {describe(sample)}"
                )
                outcome.samples.append(
                    {"shards": shards, "workload": workload.name, "tests": group}
                    | dataclasses.asdict(sample)
                )
    samples = [sample for runs in pairs.values() for pair in runs for sample in pair]
    note_busy_runs(samples, f"shards {shards} {workload.name}", settings, outcome)
    rows: list[report.Row] = []
    for runs in pairs.values():
        summary = report.summarize(shards, workload, runs, settings.busy_threshold)
        rows += [row for row in summary if row.test not in {done.test for done in rows}]
    return rows


def run_throughput(settings: Settings, outcome: Outcome) -> None:
    """Every workload at every shard count, on fresh servers per shard count."""
    for shards in settings.shard_counts:
        progress(f"shards {shards}: starting servers")
        with (
            running("redis", settings.redis_cmd, shards, settings) as redis,
            running("ours", settings.ours_cmd, shards, settings) as ours,
        ):
            prefill([redis, ours], settings)
            for workload in settings.workloads:
                outcome.rows += run_workload([redis, ours], workload, shards, settings, outcome)


def fill_and_measure(server: Server, settings: Settings) -> report.MemoryRow:
    """RSS of a fresh server's tree before and after the memory fill."""
    empty = proctree.rss_bytes(server.pid)
    fill = dataclasses.replace(MEMORY_FILL, keyspace=MEMORY_FILL.keyspace // settings.memory_scale)
    run_benchmark(
        server,
        fill.args("set", MEMORY_FILL_REQUESTS // settings.memory_scale),
        settings.run_timeout,
    )
    row = report.MemoryRow(
        server=server.label,
        shards=server.shards if server.label == "ours" else None,
        keys=dbsize(server.port),
        rss_empty=empty,
        rss_filled=proctree.rss_bytes(server.pid),
    )
    progress(f"  memory {server.label}: {row.keys:,} keys, {row.rss_filled / report.MIB:.1f} MiB")
    return row


def run_memory(settings: Settings, outcome: Outcome) -> None:
    """The memory workload: redis-server once, ours at every shard count, each fresh."""
    progress("memory: filling fresh servers")
    with running("redis", settings.redis_cmd, 1, settings) as redis:
        outcome.memory.append(fill_and_measure(redis, settings))
    for shards in settings.shard_counts:
        with running("ours", settings.ours_cmd, shards, settings) as ours:
            outcome.memory.append(fill_and_measure(ours, settings))


def fill_type(server: Server, kind: fills.TypeFill, settings: Settings) -> tuple[int, int, int]:
    """RSS of a fresh server's tree before and after filling one key of `kind`; the count."""
    empty = proctree.rss_bytes(server.pid)
    members = fills.fill(server, kind, TYPE_MEMORY_MEMBERS // settings.memory_scale)
    filled = proctree.rss_bytes(server.pid)
    progress(f"  {kind.name} {server.label}: {members:,} members, {filled / report.MIB:.1f} MiB")
    return empty, filled, members


def run_type_memory(settings: Settings, outcome: Outcome) -> None:
    """Memory per data type: for each type, a fresh redis-server and a fresh ours, filled."""
    shards = settings.type_memory_shards
    progress(f"memory per type: ours with {shards} shard(s)")
    for kind in fills.TYPE_FILLS:
        with running("redis", settings.redis_cmd, shards, settings) as redis:
            redis_empty, redis_filled, redis_members = fill_type(redis, kind, settings)
        with running("ours", settings.ours_cmd, shards, settings) as ours:
            ours_empty, ours_filled, ours_members = fill_type(ours, kind, settings)
        if redis_members != ours_members:
            outcome.warn(
                f"{kind.name}: redis holds {redis_members:,} members, ours {ours_members:,}"
            )
        outcome.type_memory.append(
            report.TypeMemoryRow(
                type_name=kind.name,
                shards=shards,
                members=ours_members,
                redis_empty=redis_empty,
                redis_filled=redis_filled,
                ours_empty=ours_empty,
                ours_filled=ours_filled,
            )
        )


def check_machine_idle(settings: Settings, outcome: Outcome) -> None:
    """Warn when other processes keep the machine busy during a second before the run."""
    before = proctree.Snapshot.take()
    time.sleep(IDLE_CHECK_SECONDS)
    other_s, busiest = proctree.other_processes(before, proctree.Snapshot.take(), os.getpid())
    fraction = other_s / (IDLE_CHECK_SECONDS * (os.cpu_count() or 1))
    if fraction > settings.busy_threshold:
        names = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in busiest)
        outcome.warn(f"before the run, other processes used {fraction:.0%} of the CPUs ({names})")


def write_outputs(settings: Settings, outcome: Outcome, header: list[str]) -> None:
    """Raw samples to bench/results/, and with --write-docs the docs page and charts."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"{settings.log_dir.name.removeprefix('logs-')}.json"
    raw.write_text(json.dumps(outcome.samples, indent=1, default=str))
    progress(f"raw samples: {raw.relative_to(REPO_ROOT)}; server logs: {settings.log_dir}")
    if not settings.write_docs:
        return
    settings.docs_dir.mkdir(parents=True, exist_ok=True)
    charts = {}
    plain = [row for row in outcome.rows if not row.workload.suite]
    if plain:
        charts["workloads"] = "benchmarks.png"
        report.draw_chart(plain, settings.targets, settings.docs_dir / charts["workloads"])
    suite = [row for row in outcome.rows if row.workload.suite]
    if suite:
        charts["suite"] = "benchmarks-suite.png"
        report.draw_suite_chart(suite, settings.docs_dir / charts["suite"])
    page = report.docs_page(
        header,
        outcome.rows,
        outcome.memory,
        outcome.warnings,
        charts,
        settings.targets,
        outcome.type_memory,
    )
    path = settings.docs_dir / "benchmarks.md"
    kept = path.read_text().partition(KEEP_MARKER)[2] if path.exists() else ""
    if kept:
        page = page.rstrip("\n") + "\n\n" + KEEP_MARKER + kept
    path.write_text(page)
    progress(f"wrote {', '.join(['benchmarks.md', *charts.values()])} in {settings.docs_dir}")


def print_outcome(outcome: Outcome) -> None:
    """The tables (whatever was completed) and the warnings, on stdout."""
    plain = [row for row in outcome.rows if not row.workload.suite]
    if plain:
        print(report.throughput_table(plain))
    for workload in dict.fromkeys(row.workload for row in outcome.rows if row.workload.suite):
        rows = [row for row in outcome.rows if row.workload == workload]
        print(f"\n{workload.name}:\n{report.suite_table(rows)}")
    if outcome.memory:
        print("\n" + report.memory_table(outcome.memory))
    if outcome.type_memory:
        print("\n" + report.type_memory_table(outcome.type_memory))
    if outcome.warnings:
        print("\nWarnings:\n" + "\n".join(f"- {w}" for w in outcome.warnings))


def _interrupt(signum: int, _frame: object) -> None:
    """Turn SIGINT/SIGTERM/SIGHUP into KeyboardInterrupt, so every server is stopped on the way out.

    SIGINT is set too because a shell starts background jobs with it ignored.
    """
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    """Run the selected benchmarks and report; 1 on a server failure, 130 when interrupted."""
    settings = settings_from(parse_args(argv))
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    outcome = Outcome()
    # Read before the run writes anything (the charts), so the commit is the one that ran.
    header = report.machine_lines(os.cpu_count() or 1)
    header.append(f"- Command: `{shlex.join(['python3', 'bench/run.py', *argv])}`")
    check_machine_idle(settings, outcome)
    started = time.monotonic()
    try:
        if settings.workloads:
            run_throughput(settings, outcome)
        if settings.memory:
            run_memory(settings, outcome)
        if settings.type_memory:
            run_type_memory(settings, outcome)
    except KeyboardInterrupt:
        progress("interrupted; every server started was stopped")
        print_outcome(outcome)
        return 130
    except ServerError as error:
        progress(f"FAILED: {error}")
        print_outcome(outcome)
        return 1
    progress(f"done in {time.monotonic() - started:.0f} s")
    print_outcome(outcome)
    write_outputs(settings, outcome, header)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
