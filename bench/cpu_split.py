"""CPU per operation by role: how much each acceptor and each shard spends per command.

The scaling model of docs/benchmarks.md is built from these numbers: with A acceptors and
S shards on enough cores, throughput is bounded by the busiest role, A / (acceptor µs per
op) and S / (shard µs per op). This runs one workload against redis-server and against our
server at each (acceptors, shards) pair, A B A B, and prints per run the ops/s and the CPU
microseconds per operation of redis-server, of our acceptors (all together) and of our
shards (all together), from /proc.

    python3 bench/cpu_split.py --workload c50-P16 --pairs 1x1,2x1 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proctree  # noqa: E402
from servers import Server  # noqa: E402
from workloads import WORKLOADS, benchmark_rows  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OURS = (
    "./redis-clone --port {port} --shards {shards} --acceptors {acceptors}"
    " --save '' --appendonly no"
)
REDIS = "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no"


def role(stat: proctree.ProcStat) -> str:
    """A process of our tree: a shard worker (named redis-clone-sN) or an acceptor."""
    return "shard" if stat.name.startswith("redis-clone-s") else "acceptor"


def run_once(server: Server, args: list[str], timeout: float) -> tuple[float, float, dict]:
    """ops/s (summed over the run's tests), total ops, CPU seconds per role."""
    before = {stat.key: stat for stat in proctree.tree(server.pid)}
    requests = int(args[args.index("-n") + 1])
    ops = 0.0
    busy_s = 0.0  # the tests' own durations, as redis-benchmark reports their rates
    for row in benchmark_rows(server, args, timeout):
        ops += requests
        busy_s += requests / float(row["rps"])
    after = proctree.tree(server.pid)
    seconds: dict[str, float] = {}
    for stat in after:
        earlier = before.get(stat.key)
        used = stat.own_ticks - (earlier.own_ticks if earlier else 0)
        seconds[role(stat)] = seconds.get(role(stat), 0.0) + used / proctree.CLOCK_TICKS
    return ops / busy_s, ops, seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="c50-P16", choices=sorted(WORKLOADS))
    parser.add_argument("--pairs", default="1x1,2x1", help="acceptors x shards, comma-separated")
    parser.add_argument("--requests", type=int, default=400_000, help="-n per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    workload = WORKLOADS[args.workload]
    bench_args = workload.args(workload.groups[0], args.requests)
    log_dir = RESULTS_DIR / f"cpu-split-{time.strftime('%Y%m%d-%H%M%S')}"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"workload {workload.name}: redis-benchmark {' '.join(bench_args)}")
    print("| server | ops/s | µs/op total | acceptors µs/op | shards µs/op |")
    print("| --- | --- | --- | --- | --- |")
    for pair in args.pairs.split(","):
        acceptors, shards = (int(part) for part in pair.split("x"))
        ours = Server(
            f"ours-a{acceptors}", OURS.replace("{acceptors}", str(acceptors)), shards, log_dir
        )
        redis = Server("redis", REDIS, 1, log_dir)
        rows: dict[str, list[tuple[float, float, dict]]] = {"redis": [], "ours": []}
        try:
            ours.start()
            redis.start()
            for server in (redis, ours):  # fill the keyspace, warm up
                list(benchmark_rows(server, workload.args("set", 200_000), args.timeout))
            for _ in range(args.rounds):
                rows["redis"].append(run_once(redis, bench_args, args.timeout))
                rows["ours"].append(run_once(ours, bench_args, args.timeout))
        finally:
            ours.stop()
            redis.stop()
        for name, runs in rows.items():
            rate = statistics.median(run[0] for run in runs)
            per_op = {
                part: statistics.median(run[2].get(part, 0.0) / run[1] * 1e6 for run in runs)
                for part in ("acceptor", "shard")
            }
            total = statistics.median(sum(run[2].values()) / run[1] * 1e6 for run in runs)
            label = "redis-server" if name == "redis" else f"ours {acceptors}a x {shards}s"
            if name == "redis":
                print(f"| {label} | {rate:,.0f} | {total:.2f} | | |")
            else:
                print(
                    f"| {label} | {rate:,.0f} | {total:.2f} | {per_op['acceptor']:.2f} "
                    f"| {per_op['shard']:.2f} |"
                )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
