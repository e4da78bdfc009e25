"""Process trees read from /proc: who descends from a server, their CPU time, RSS and system load.

A server is its main PID and every descendant (our acceptor forks shard workers). Processes are
identified by (pid, start time) so a PID reused by an unrelated process is never confused with one
of ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat that the benchmark uses (times in clock ticks)."""

    pid: int
    name: str
    ppid: int
    state: str
    own_ticks: int
    reaped_children_ticks: int
    start_time: int

    @property
    def key(self) -> tuple[int, int]:
        """Identity of the process across snapshots: PID plus start time."""
        return (self.pid, self.start_time)

    @property
    def alive(self) -> bool:
        """False for a zombie waiting to be reaped."""
        return self.state not in ("Z", "X")


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/PID/stat, or return None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name sits in parentheses and may hold spaces; fields restart after it.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(
        pid=pid,
        name=text[text.index("(") + 1 : text.rindex(")")],
        ppid=int(fields[1]),
        state=fields[0],
        own_ticks=utime + stime,
        reaped_children_ticks=cutime + cstime,
        start_time=int(fields[19]),
    )


def all_stats() -> list[ProcStat]:
    """Return the stat of every process visible in /proc."""
    stats = (read_stat(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [stat for stat in stats if stat is not None]


def tree(root: int, stats: list[ProcStat] | None = None) -> list[ProcStat]:
    """Return `root` and all of its descendants (empty if `root` is gone).

    `stats` is a list from `all_stats`, read afresh when not given.
    """
    stats = all_stats() if stats is None else stats
    children: dict[int, list[ProcStat]] = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
    found = [stat for stat in stats if stat.pid == root]
    frontier = list(found)
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent.pid, [])]
        found.extend(frontier)
    return found


def cpu_ticks(stats: list[ProcStat]) -> dict[tuple[int, int], int]:
    """CPU ticks (user+system, own plus reaped children's) per process."""
    return {stat.key: stat.own_ticks + stat.reaped_children_ticks for stat in stats}


@dataclass(frozen=True)
class Snapshot:
    """Every process's CPU ticks and the machine's busy ticks, at one moment."""

    stats: list[ProcStat]
    busy_ticks: int

    @classmethod
    def take(cls) -> Snapshot:
        """Read /proc now."""
        return cls(stats=all_stats(), busy_ticks=busy_ticks())

    def tree_ticks(self, root: int) -> dict[tuple[int, int], int]:
        """CPU ticks per process of the tree under `root`."""
        return cpu_ticks(tree(root, self.stats))


def cpu_seconds_between(
    before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]
) -> float:
    """CPU seconds a tree used between two `cpu_ticks` snapshots, summed per-process delta.

    A process that appeared in between counts from zero. One that vanished had its total added
    to its parent's reaped-children ticks, so its earlier ticks are subtracted to count only the
    interval.
    """
    ticks = sum(value - before.get(key, 0) for key, value in after.items())
    ticks -= sum(value for key, value in before.items() if key not in after)
    return ticks / CLOCK_TICKS


def other_processes(
    before: Snapshot, after: Snapshot, own_root: int
) -> tuple[float, list[tuple[str, float]]]:
    """CPU seconds the machine spent outside the tree under `own_root` between two snapshots.

    Returns the total (from /proc/stat, so it includes processes that came and went) and the
    busiest other processes still alive at `after`, as (name, CPU seconds), busiest first.
    """
    own_after = after.tree_ticks(own_root)
    own = cpu_seconds_between(before.tree_ticks(own_root), own_after)
    total = (after.busy_ticks - before.busy_ticks) / CLOCK_TICKS - own
    # Own ticks only: a parent that reaps a long-lived child would otherwise look busy.
    own_before = {stat.key: stat.own_ticks for stat in before.stats}
    deltas = [
        (stat.name, (stat.own_ticks - own_before.get(stat.key, 0)) / CLOCK_TICKS)
        for stat in after.stats
        if stat.key not in own_after
    ]
    busiest = sorted((d for d in deltas if d[1] > 0), key=lambda d: d[1], reverse=True)
    return max(total, 0.0), busiest[:3]


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over the process tree, in bytes."""
    total_kib = 0
    for stat in tree(root):
        try:
            status = Path(f"/proc/{stat.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib * 1024


def busy_ticks() -> int:
    """Busy CPU ticks of the whole machine since boot, all cores (everything but idle/iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def is_alive(key: tuple[int, int]) -> bool:
    """True while the process with this (pid, start time) exists and is not a zombie."""
    stat = read_stat(key[0])
    return stat is not None and stat.start_time == key[1] and stat.alive
