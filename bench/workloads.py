"""The redis-benchmark workloads, and one measured run of a workload against one server.

A measured run records what redis-benchmark reports (ops/s, p50, p99 per test, from its --csv
output) and what the harness sees in /proc over the same interval: the CPU time of the server's
process tree, test by test (redis-benchmark's output is line-buffered, so each test's CSV row
arrives as the test ends), and the CPU time the rest of the machine used (to flag runs on a busy
machine, naming the busiest other processes). A reply that is an error fails the run.
"""

from __future__ import annotations

import csv
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import certs
import proctree
from servers import Server, ServerError

REDIS_BENCHMARK = "redis-benchmark"


#: redis-benchmark's default test list (what it runs without -t), in its order, as runs: one
#: run per group, each with its own -n. Tests that share data stay in one run so that they get
#: the same -n, as in redis-benchmark's own suite: the pops pop what the pushes pushed, SPOP
#: what SADD added, ZPOPMIN what ZADD added. Each LRANGE run starts with redis-benchmark's
#: "LPUSH (needed to benchmark LRANGE)".
DEFAULT_SUITE = (
    "ping_inline",
    "ping_mbulk",
    "set,get",
    "incr",
    "lpush,rpush,lpop,rpop",
    "sadd,hset,spop",
    "zadd,zpopmin",
    "lrange_100",
    "lrange_300",
    "lrange_500",
    "lrange_600",
    "mset",
)


@dataclass(frozen=True)
class Workload:
    """One redis-benchmark configuration; `name` is how --workloads selects it.

    `groups` are the -t lists of its runs, in order; each run gets its own -n (calibrated on its
    own, the same for both servers). A suite is a workload of several runs.
    """

    name: str
    clients: int
    pipeline: int
    data_size: int = 16
    groups: tuple[str, ...] = ("set,get",)
    keyspace: int = 100_000
    #: Over the servers' TLS ports (redis-benchmark --tls) instead of their plain ones.
    tls: bool = False

    @property
    def suite(self) -> bool:
        """True for a workload of several runs (reported in a section of its own)."""
        return len(self.groups) > 1

    def flags(self) -> list[str]:
        """redis-benchmark arguments common to every run, all but -t and -n."""
        return [
            *("-r", str(self.keyspace)),
            *("-d", str(self.data_size)),
            *("-c", str(self.clients)),
            *("-P", str(self.pipeline)),
        ]

    def args(self, group: str, requests: int) -> list[str]:
        """redis-benchmark arguments for the run of `group`, `requests` requests per test."""
        return ["-t", group, *self.flags(), "-n", str(requests)]

    def legend(self) -> str:
        """The workload's redis-benchmark flags, in Markdown, for the docs."""
        if not self.suite:
            tls = ["--tls", "--cacert", "ca.crt"] if self.tls else []
            return f"`{' '.join([*tls, '-t', self.groups[0], *self.flags()])}`"
        runs = ", ".join(f"`{group}`" for group in self.groups)
        return f"`{' '.join(self.flags())}`, one run (`-t`) each of {runs}"


WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        Workload("c50-P1", clients=50, pipeline=1),
        Workload("c50-P16", clients=50, pipeline=16),
        Workload("c1-P1", clients=1, pipeline=1),
        Workload("d1024-c50-P16", clients=50, pipeline=16, data_size=1024),
        Workload("default-suite", clients=50, pipeline=1, groups=DEFAULT_SUITE),
        Workload("default-suite-P16", clients=50, pipeline=16, groups=DEFAULT_SUITE),
        Workload("tls-c50-P1", clients=50, pipeline=1, tls=True),
        Workload("tls-c50-P16", clients=50, pipeline=16, tls=True),
        Workload("tls-c1-P1", clients=1, pipeline=1, tls=True),
    )
}
#: What --workloads selects by default: the SET/GET workloads over plain TCP (the suites take
#: minutes each; the TLS workloads are for when TLS is the question).
DEFAULT_WORKLOADS = tuple(
    name for name, workload in WORKLOADS.items() if not workload.suite and not workload.tls
)


@dataclass(frozen=True)
class TestResult:
    """What redis-benchmark reports for one test (SET, GET ...) of a run, and the server's CPU.

    `server_cpu_s` is the CPU time of the server's process tree from the end of the previous
    test of the run (its start, for the first) to the end of this one.
    """

    test: str
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float


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

    def cpu_s_per_million_ops(self, test: str) -> float:
        """Server CPU seconds (all its processes) per million operations of one test."""
        return self.results[test].server_cpu_s / self.requests * 1e6


def parse_row(row: dict[str, str], server_cpu_s: float = 0.0) -> TestResult:
    """One row of redis-benchmark 7 --csv output, with the server's CPU (0 when not measured)."""
    return TestResult(
        test=row["test"],
        ops_per_s=float(row["rps"]),
        p50_ms=float(row["p50_latency_ms"]),
        p99_ms=float(row["p99_latency_ms"]),
        server_cpu_s=server_cpu_s,
    )


def benchmark_rows(
    server: Server, args: list[str], timeout: float, tls: bool = False
) -> Iterator[dict[str, str]]:
    """Run redis-benchmark --csv against `server` (its TLS port with `tls`), yielding each
    test's CSV row as the test ends.

    stdbuf makes its output line-buffered, so a row arrives when its test is done. Raises
    ServerError, naming the server, the tests done and what redis-benchmark printed, when it
    reports an error (redis-benchmark 7 prints "Error from server: ..." and exits at the first
    error reply), exits non-zero, prints no row, or runs past `timeout`.
    """
    port, secure = (server.tls_port, certs.client_flags(server.tls)) if tls else (server.port, [])
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), *secure, "--csv", *args]
    started = time.monotonic()
    process = subprocess.Popen(
        ["stdbuf", "-oL", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    done = []
    try:
        for row in csv.DictReader(process.stdout):
            if not row.get("rps"):
                raise ServerError(f"{' '.join(argv)} against {server.label} printed {row}")
            done.append(row["test"])
            yield row
        stderr = process.stderr.read()
        process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        process.communicate()
    errors = [line for line in stderr.splitlines() if line.startswith("Error")]
    if process.returncode != 0 or errors or not done:
        late = time.monotonic() - started >= timeout
        raise ServerError(
            f"{' '.join(argv)} against {server.label} "
            f"{f'ran past {timeout:.0f} s' if late else 'failed'} ({process.returncode}) "
            f"after tests {done}:\n{stderr}"
        )


def run_benchmark(
    server: Server, args: list[str], timeout: float, tls: bool = False
) -> dict[str, TestResult]:
    """Run redis-benchmark against `server` and return its parsed CSV results."""
    return {row["test"]: parse_row(row) for row in benchmark_rows(server, args, timeout, tls)}


def measure(
    target: Server, workload: Workload, group: str, requests: int, timeout: float
) -> Sample:
    """Run one group of `workload` against `target`, with the CPU of the server and of others."""
    before = proctree.Snapshot.take()
    started = time.monotonic()
    ticks = before.tree_ticks(target.pid)
    results = {}
    for row in benchmark_rows(target, workload.args(group, requests), timeout, workload.tls):
        now = proctree.cpu_ticks(proctree.tree(target.pid))
        results[row["test"]] = parse_row(row, proctree.cpu_seconds_between(ticks, now))
        ticks = now
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
