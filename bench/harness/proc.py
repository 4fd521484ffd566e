"""Process and CPU facts read from /proc."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
        """The ticks used so far by the system, by each of ``pids`` and by our children."""
        return cls(_system_busy_ticks(), _ticks_by_pid(pids), _waited_children_ticks())


def cpu_by_group(
    before: CpuSample, after: CpuSample, groups: dict[str, list[int]], seconds: float
) -> dict[str, float]:
    """Average CPUs kept busy between two samples by each named group of pids.

    Adds ``children`` (our waited-for children, e.g. wrk) and ``other`` (the rest of
    the system, this process included). Pids that appeared meanwhile count in full;
    a pid listed in two groups counts in the first.
    """
    scale = TICKS_PER_SECOND * seconds
    per_pid = {pid: ticks - before.pids.get(pid, 0) for pid, ticks in after.pids.items()}
    used: dict[str, float] = {}
    seen: set[int] = set()
    for name, pids in groups.items():
        mine = [pid for pid in pids if pid in per_pid and pid not in seen]
        seen.update(mine)
        used[name] = sum(per_pid[pid] for pid in mine) / scale
    used["children"] = (after.waited - before.waited) / scale
    busy = (after.system - before.system) / scale
    used["other"] = max(busy - sum(used.values()), 0.0)
    return used


@dataclass
class CpuUse:
    """Average CPUs kept busy over ``seconds``, by group (see :func:`cpu_by_group`)."""

    seconds: float = 0.0
    busy: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def measuring(groups: Callable[[], dict[str, list[int]]]) -> Iterator[CpuUse]:
    """The CPUs each group of ``groups()`` kept busy while the block ran, filled in at its end.

    ``groups`` is asked at the start and again at the end, so that processes which
    appeared meanwhile (a PostgreSQL backend for a new connection) are counted.
    """
    before = CpuSample.take([pid for pids in groups().values() for pid in pids])
    started = time.monotonic()
    use = CpuUse()
    yield use
    use.seconds = time.monotonic() - started
    now = groups()
    after = CpuSample.take([pid for pids in now.values() for pid in pids])
    use.busy = cpu_by_group(before, after, now, use.seconds)


def busy_cpus(seconds: float = 1.0) -> float:
    """CPUs the whole system kept busy over the next ``seconds``."""
    before = _system_busy_ticks()
    time.sleep(seconds)
    return (_system_busy_ticks() - before) / (TICKS_PER_SECOND * seconds)


def wait_quiet(max_cpus: float, timeout: float) -> float:
    """Wait up to ``timeout`` s for a second in which the system used < ``max_cpus`` CPUs.

    Returns the last second's load (above ``max_cpus`` if the machine never went quiet).
    """
    deadline = time.monotonic() + timeout
    load = busy_cpus()
    while load >= max_cpus and time.monotonic() < deadline:
        load = busy_cpus()
    return load
