"""wrk runs of finite work, such as a stock that sells out: each thread stops itself when its
work runs out, and the run ends as soon as every thread has (not at ``-d``).

wrk's ``wrk.thread:stop()`` ends a thread's loop, but wrk itself still sleeps out its
whole ``-d`` before reporting; SIGINT cuts that sleep short and wrk then reports and
runs ``done()`` as usual. So a script calls ``finish_thread()`` (STOP_LUA), which notes
the thread in a file before stopping it, and :func:`run` interrupts wrk once the file
names every thread. ``-d`` remains the bound in case the work never runs out.

One connection per thread (``-c`` = ``-t``), so that a thread's ``response()`` always
answers its own last ``request()`` and can time it with ``now_us()`` (CLOCK_LUA).
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# The monotonic clock in microseconds (CLOCK_MONOTONIC, the clock of Python's
# time.monotonic), through LuaJIT's FFI: os.clock is CPU time, os.time whole seconds.
CLOCK_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } finite_timespec;
int clock_gettime(int clock_id, finite_timespec *tp);
]]
local finite_clock = ffi.new("finite_timespec")

function now_us()
  ffi.C.clock_gettime(1, finite_clock)  -- 1: CLOCK_MONOTONIC
  return tonumber(finite_clock.tv_sec) * 1000000 + tonumber(finite_clock.tv_nsec) / 1000
end
"""

# finish_thread(file): this thread's work ran out. A line per thread, appended (O_APPEND
# writes this short do not interleave), then the thread's loop stops.
STOP_LUA = r"""
function finish_thread(stopped_file)
  local out = assert(io.open(stopped_file, "a"))
  out:write(thread_index, "\n")
  out:close()
  wrk.thread:stop()
end
"""

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Finished:
    output: str  # wrk's stdout
    all_stopped: bool  # every thread ran out of work before ``max_seconds``
    seconds: float  # from wrk's start until it was interrupted or ended


def run(url: str, script: Path, connections: int, max_seconds: float, script_args: list[str],
        stopped_file: Path, timeout: str = "5s") -> Finished:
    """Run wrk (``--latency``, one connection per thread) until every thread has called
    ``finish_thread(stopped_file)`` or ``max_seconds`` have passed."""
    stopped_file.write_text("")
    argv = ["wrk", "--latency", f"-t{connections}", f"-c{connections}", f"-d{max_seconds:g}s",
            "--timeout", timeout, "-s", str(script), url, "--", *script_args]
    started = time.monotonic()
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while wrk.poll() is None:
            if _stopped(stopped_file) >= connections:
                wrk.send_signal(signal.SIGINT)
                break
            time.sleep(POLL_SECONDS)
        seconds = time.monotonic() - started
        output, errors = wrk.communicate(timeout=120)
    except BaseException:
        wrk.kill()
        wrk.wait()
        raise
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{output}\n{errors}")
    return Finished(output, _stopped(stopped_file) >= connections, seconds)


def _stopped(stopped_file: Path) -> int:
    return len(stopped_file.read_text().splitlines())
