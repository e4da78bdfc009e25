"""The redis-benchmark workloads, and one measured run of a workload against one server.

A measured run records what redis-benchmark reports (ops/s, p50, p99 per test, from its --csv
output) and what the harness sees in /proc over the same interval: the CPU time of the server's
process tree, and the CPU time the rest of the machine used (to flag runs on a busy machine,
naming the busiest other processes).
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from dataclasses import dataclass

import proctree
from servers import Server, ServerError

REDIS_BENCHMARK = "redis-benchmark"


@dataclass(frozen=True)
class Workload:
    """One redis-benchmark configuration; `name` is how --workloads selects it."""

    name: str
    clients: int
    pipeline: int
    data_size: int = 16
    tests: tuple[str, ...] = ("set", "get")
    keyspace: int = 100_000

    def flags(self) -> list[str]:
        """redis-benchmark arguments, all but the request count."""
        return [
            *("-t", ",".join(self.tests)),
            *("-r", str(self.keyspace)),
            *("-d", str(self.data_size)),
            *("-c", str(self.clients)),
            *("-P", str(self.pipeline)),
        ]

    def args(self, requests: int) -> list[str]:
        """redis-benchmark arguments for `requests` requests per test."""
        return [*self.flags(), "-n", str(requests)]


WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        Workload("c50-P1", clients=50, pipeline=1),
        Workload("c50-P16", clients=50, pipeline=16),
        Workload("c1-P1", clients=1, pipeline=1),
        Workload("d1024-c50-P16", clients=50, pipeline=16, data_size=1024),
    )
}


@dataclass(frozen=True)
class TestResult:
    """What redis-benchmark reports for one test (SET or GET) of a run."""

    test: str
    ops_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Sample:
    """One measured run of a workload against one server."""

    server: str
    requests: int
    results: dict[str, TestResult]
    server_cpu_s: float
    wall_s: float
    other_cpu_fraction: float
    busiest_others: tuple[str, ...]

    @property
    def operations(self) -> int:
        """Operations in the run, all tests together."""
        return self.requests * len(self.results)

    @property
    def cpu_s_per_million_ops(self) -> float:
        """Server CPU seconds (all its processes) per million operations."""
        return self.server_cpu_s / self.operations * 1e6


def parse_csv(text: str) -> dict[str, TestResult]:
    """Parse redis-benchmark 7 --csv output into results keyed by test name (SET, GET)."""
    results = {}
    for row in csv.DictReader(io.StringIO(text)):
        results[row["test"]] = TestResult(
            test=row["test"],
            ops_per_s=float(row["rps"]),
            p50_ms=float(row["p50_latency_ms"]),
            p99_ms=float(row["p99_latency_ms"]),
        )
    return results


def run_benchmark(port: int, args: list[str], timeout: float) -> dict[str, TestResult]:
    """Run redis-benchmark against 127.0.0.1:`port` and return its parsed CSV results."""
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "--csv", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        raise ServerError(f"{' '.join(argv)} ran past {timeout:.0f} s") from expired
    results = parse_csv(done.stdout)
    if done.returncode != 0 or not results:
        raise ServerError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return results


def measure(target: Server, workload: Workload, requests: int, timeout: float) -> Sample:
    """Run `workload` against `target`, with its CPU and that of processes outside the harness."""
    before = proctree.Snapshot.take()
    started = time.monotonic()
    results = run_benchmark(target.port, workload.args(requests), timeout)
    wall_s = time.monotonic() - started
    after = proctree.Snapshot.take()
    target.check_running()
    other_s, busiest = proctree.other_processes(before, after, os.getpid())
    return Sample(
        server=target.label,
        requests=requests,
        results=results,
        server_cpu_s=proctree.cpu_seconds_between(
            before.tree_ticks(target.pid), after.tree_ticks(target.pid)
        ),
        wall_s=wall_s,
        other_cpu_fraction=other_s / (wall_s * (os.cpu_count() or 1)),
        busiest_others=tuple(f"{name} {seconds:.2f} s" for name, seconds in busiest),
    )
