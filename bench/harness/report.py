"""How the benchmarks report: progress lines, PASS/FAIL, ratios to a peer, CPU costs.

Figures go to stdout, progress to stderr, so that a run's report can be kept
apart from how it got there. A PASS/FAIL line judges a target; it never changes
the exit status, which says only whether the measurement itself was valid
(:class:`InvalidRun`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from bench.harness import proc

CPUS = os.cpu_count() or 1
# The machine is shared: load from other processes above this many CPUs during a run is
# flagged as disturbing its numbers, and a run first waits for the machine to drop below it.
QUIET_CPUS = 0.1


class InvalidRun(RuntimeError):
    """The measurement cannot be trusted; the message says why."""


def log(message: str) -> None:
    """A progress line (stderr)."""
    print(message, file=sys.stderr, flush=True)


def verdict(ok: bool, text: str) -> None:
    """``PASS  text`` or ``FAIL  text``."""
    print(f"{'PASS' if ok else 'FAIL'}  {text}")


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``1.23x``; ``n/a`` when ``b`` is 0."""
    return f"{a / b:.2f}x" if b else "n/a"


def await_quiet(timeout: float, who: str = "") -> None:
    """Wait up to ``timeout`` s for the machine to go quiet; say so when it does not."""
    load = proc.wait_quiet(QUIET_CPUS, timeout)
    if load >= QUIET_CPUS:
        log(f"{who}the machine is not quiet ({load:.2f} CPUs busy); measuring anyway")


def disturbed(busy: Mapping[str, float]) -> str | None:
    """A warning when processes outside the run (``busy["other"]``) loaded the machine."""
    other = busy.get("other", 0.0)
    if other <= QUIET_CPUS:
        return None
    return f"other processes kept {other:.2f} CPUs busy during the run: the numbers are disturbed"


def busy_line(busy: Mapping[str, float], names: Mapping[str, str]) -> str:
    """``app 0.97, simulator 0.15, ... (of 2)``: CPUs busy by party, named by ``names``."""
    return ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in busy.items()) + f" (of {CPUS})"


def cpu_cost(use: proc.CpuUse, units: int, parties: Mapping[str, str]) -> dict[str, float]:
    """CPU milliseconds per unit of work (a login, an alert) of each party in ``parties``.

    Less sensitive to background load than the rates: what the work costs,
    whoever else shares the CPUs.
    """
    return {label: use.busy.get(key, 0.0) * use.seconds * 1000 / units
            for key, label in parties.items()}


def cost_line(cost: Mapping[str, float], unit: str) -> str:
    """The costs, their total and the rate this machine's CPUs could sustain at that cost."""
    total = sum(cost.values())
    ceiling = CPUS * 1000 / total if total else float("inf")
    return (", ".join(f"{k} {v:.2f} ms" for k, v in cost.items())
            + f"; total {total:.2f} ms -> at most {ceiling:,.0f} {unit}/s if all {CPUS} CPUs "
            "did nothing else")


def print_shares(rows: Iterable[tuple[float, str]]) -> None:
    """Profile lines: ``  12.3%  label``."""
    for share, label in rows:
        print(f"  {share:6.1%}  {label}")
