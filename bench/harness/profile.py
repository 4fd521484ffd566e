"""Where server time goes: py-spy samples of running processes, summed by function.

``py-spy`` is not a dependency of the project: ``pip install py-spy``. It samples
the processes from outside (ptrace), so the app runs unchanged; sampling costs
some CPU, so a profiled run's throughput is a little lower than an unprofiled one.
By default (``mode="wall"``) samples include idle frames (``--idle``): the
shares are of wall time, waits on PostgreSQL, Redis and HTTP included. With
``mode="gil"`` only the thread holding the GIL is sampled (``--gil``): the
shares are of the Python CPU time of a GIL-bound process, which is what limits
a process whose threads all run Python.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RATE = 100  # samples per second
MODES = {"wall": "--idle", "gil": "--gil"}  # what is sampled → py-spy's option
_LINE = re.compile(r":\d+\)$")  # "func (file.py:123)" -> "func (file.py)"


class ProfilerMissing(RuntimeError):
    """py-spy is not installed."""


@contextlib.contextmanager
def recording(pids: list[int], seconds: float, out_dir: Path,
              mode: str = "wall") -> Iterator[list[Path]]:
    """Sample ``pids`` for ``seconds`` while the block runs; yields the collapsed-stack files.

    ``mode``: "wall" samples every thread, waiting or not; "gil" only the GIL's holder.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    # On PATH, or beside this interpreter: pip installs it in the venv's bin/.
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise ProfilerMissing("py-spy not found: pip install py-spy")
    files = [out_dir / f"py-spy-{pid}.txt" for pid in pids]
    processes = [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
             "--rate", str(RATE), MODES[mode], "--nonblocking", "--format", "raw",
             "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(pids, files, strict=True)
    ]
    try:
        yield files
    finally:
        for process in processes:
            process.wait(seconds + 60)


@dataclass(frozen=True)
class Profile:
    """Samples per function (inclusive: a function counts when anywhere on the stack)."""

    total: int
    inclusive: Counter[str]

    def share(self, frame: str) -> float:
        return self.inclusive[frame] / self.total if self.total else 0.0

    def top(self, pattern: str, count: int = 25) -> list[tuple[float, str]]:
        """The ``count`` heaviest functions whose ``name (file)`` matches ``pattern``."""
        wanted = re.compile(pattern)
        return [(n / self.total, frame) for frame, n in self.inclusive.most_common()
                if wanted.search(frame)][:count]


def load(files: list[Path], within: str | None = None) -> Profile:
    """Read py-spy's raw (collapsed) stacks: ``frame;frame;... count`` per line.

    With ``within`` (a ``name (file)`` frame), only the stacks passing through that
    frame count: e.g. the threads doing one kind of work, not the idle loops beside them.
    """
    total, inclusive = 0, Counter[str]()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = {_LINE.sub(")", frame) for frame in stack.split(";")}
            if within is not None and within not in frames:
                continue
            samples = int(count)
            total += samples
            for frame in frames:
                inclusive[frame] += samples
    return Profile(total, inclusive)
