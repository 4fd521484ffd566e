"""wrk: the Lua preamble every bench script builds on, a run, and its ``--latency`` report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Shared by every script. setup() numbers the threads and keeps them for done(). A thread's
# share of a file is every n-th line from its own index, so no two threads send the same
# one-use request (a MsgId, a login code); next_of() cycles through a list, counting in
# ``wraps`` how often a thread ran out of fresh requests and started replaying;
# thread_total(name) sums a global over the threads; write_samples() writes every thread's
# ``samples`` (lines) to the ``samples_file`` its init() set. A script's done() calls
# write_totals(summary): the machine-readable line parse() reads.
PREAMBLE = r"""
local threads, next_index = {}, 0

function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function my_lines(file, thread_count, make)
  local mine, line_number = {}, 0
  for line in io.lines(file) do
    if line_number % thread_count == thread_index then
      mine[#mine + 1] = make(line)
    end
    line_number = line_number + 1
  end
  return mine
end

position, wraps = 0, 0

function next_of(list)
  position = position + 1
  if position > #list then
    position, wraps = 1, wraps + 1
  end
  return list[position]
end

function thread_total(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get(name)
  end
  return total
end

function write_samples()
  local out = assert(io.open(threads[1]:get("samples_file"), "w"))
  for _, thread in ipairs(threads) do
    for _, sample in ipairs(thread:get("samples")) do
      out:write(sample, "\n")
    end
  end
  out:close()
end

function write_totals(summary)
  io.write(string.format("BENCH requests=%d bytes=%d wraps=%d\n",
    summary.requests, summary.bytes, thread_total("wraps")))
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_read: int
    non_2xx: int  # wrk counts status > 399
    socket_errors: int
    wraps: int  # times a thread replayed its request list (replayed MsgIds)
    output: str

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def error_rate(self) -> float:
        return self.errors / max(self.requests, 1)


def write_script(path: Path, lua: str) -> Path:
    """Write the preamble and a script's own ``lua`` (init, request, response, done) to ``path``."""
    path.write_text(PREAMBLE + lua)
    return path


def run(
    url: str,
    script: Path,
    duration: float,
    connections: int,
    threads: int,
    script_args: list[str],
    timeout: str = "5s",
) -> str:
    """Run wrk with ``--latency`` and a Lua ``script`` given ``script_args``; its stdout."""
    argv = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        timeout,
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def _search(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if not match:
        raise ValueError(f"wrk output lacks {pattern!r}:\n{text}")
    return match


def parse(text: str) -> WrkResult:
    """Read Requests/sec, the 50% and 99% latencies and the error counts from wrk's report."""
    latency = r"^\s+{}%\s+([\d.]+)(us|ms|s|m|h)\s*$"
    p50, p99 = (_search(latency.format(p), text) for p in ("50", "99"))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    totals = _search(r"^BENCH requests=(\d+) bytes=(\d+) wraps=(\d+)$", text)
    return WrkResult(
        rps=float(_search(r"^Requests/sec:\s+([\d.]+)", text)[1]),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        requests=int(totals[1]),
        bytes_read=int(totals[2]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(map(int, socket.groups())) if socket else 0,
        wraps=int(totals[3]),
        output=text,
    )
