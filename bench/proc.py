"""Process and CPU facts read from /proc."""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (2**20 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _system_busy_ticks() -> int:
    """user + nice + system ticks over all CPUs (interrupt time left out)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return sum(int(value) for value in fields[1:4])


def _waited_children_ticks() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * TICKS_PER_SECOND


@dataclass
class CpuSample:
    """CPU used so far by the whole system, by given pids, and by our waited-for children."""

    system: int
    pids: int
    waited: float

    @classmethod
    def take(cls, pids: list[int]) -> CpuSample:
        return cls(_system_busy_ticks(), sum(map(cpu_ticks, pids)), _waited_children_ticks())


def other_cores(before: CpuSample, after: CpuSample, seconds: float) -> float:
    """CPUs kept busy by processes other than the sampled pids and our waited children.

    This process's own CPU counts as "other" too; it sleeps while wrk runs.
    """
    ours = (after.pids - before.pids) + (after.waited - before.waited)
    other = (after.system - before.system) - ours
    return max(other, 0) / TICKS_PER_SECOND / seconds
