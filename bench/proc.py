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


def pids_named(names: tuple[str, ...]) -> list[int]:
    """Pids whose command name (/proc/<pid>/comm) is one of ``names``."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() in names:
                found.append(int(comm.parent.name))
    return sorted(found)


def _system_busy_ticks() -> int:
    """user + nice + system ticks over all CPUs (interrupt time left out)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return sum(int(value) for value in fields[1:4])


def _waited_children_ticks() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * TICKS_PER_SECOND


def _ticks_by_pid(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            ticks[pid] = cpu_ticks(pid)
    return ticks


@dataclass(frozen=True)
class CpuSample:
    """CPU ticks used so far: by the whole system, per pid, and by our waited-for children."""

    system: int
    pids: dict[int, int]
    waited: float

    @classmethod
    def take(cls, pids: list[int]) -> CpuSample:
        return cls(_system_busy_ticks(), _ticks_by_pid(pids), _waited_children_ticks())


@dataclass(frozen=True)
class CpuUse:
    """Average CPUs kept busy during a run, by whom."""

    server: float  # the gunicorn master and workers
    services: float  # the other sampled pids (Redis, PostgreSQL)
    children: float  # our waited-for children (wrk)
    other: float  # everything else, this process included (it sleeps meanwhile)


def cpu_use(before: CpuSample, after: CpuSample, server: list[int], seconds: float) -> CpuUse:
    """Split the CPU used between two samples; pids that appeared meanwhile count in full."""
    per_pid = {pid: ticks - before.pids.get(pid, 0) for pid, ticks in after.pids.items()}
    server_ticks = sum(ticks for pid, ticks in per_pid.items() if pid in server)
    service_ticks = sum(per_pid.values()) - server_ticks
    child_ticks = after.waited - before.waited
    other = (after.system - before.system) - server_ticks - service_ticks - child_ticks
    scale = TICKS_PER_SECOND * seconds
    return CpuUse(
        server_ticks / scale, service_ticks / scale, child_ticks / scale, max(other, 0) / scale
    )
