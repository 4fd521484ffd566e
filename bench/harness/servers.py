"""Server processes of a run: gunicorn, other servers, job workers; and the run's workspace.

Every process runs in its own process group, so that stopping it stops its
children too (gunicorn's workers, RQ's scheduler) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.harness import proc

ROOT = Path(__file__).resolve().parents[2]  # the repository: every server runs from here
WORKERS = 2
WORKER_CLASS = ("--worker-class", "sync")
HOST = "127.0.0.1"
JOB_WORKER = ("-m", "flask", "--app", "app", "worker")  # the project's RQ worker command


class ServerError(RuntimeError):
    """The server did not come up or go down as expected; the message says why."""


@dataclass
class Server:
    """A running gunicorn master started by :func:`gunicorn`."""

    process: subprocess.Popen
    port: int
    log: Path
    expected_workers: int = WORKERS
    name: str = "gunicorn"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's combined stdout and stderr."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def workers(self) -> list[int]:
        """Pids of the master's children (its workers)."""
        return proc.children(self.process.pid)


def free_port() -> int:
    """A TCP port on HOST nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def gunicorn(
    app: str,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    boot_timeout: float = 60.0,
    workers: int = WORKERS,
    worker_args: tuple[str, ...] = WORKER_CLASS,
) -> Iterator[Server]:
    """Run ``gunicorn -w 2 -k sync app`` on a free port until the block exits, then stop it.

    ``workers`` and ``worker_args`` (e.g. :func:`worker_model`) change the worker
    model: for every target of a comparison alike, or for a server that is not
    measured, such as the WeChat simulator, which keeps its state in one process.
    """
    port = free_port()
    # No control socket: it defaults to one shared path per user.
    options = ("--workers", str(workers), *worker_args, "--no-control-socket")
    argv = [sys.executable, "-m", "gunicorn", *options, "-b", f"{HOST}:{port}", app]
    with serve(argv, port, env, cwd, log, boot_timeout, workers, "gunicorn") as server:
        yield server


def worker_model(threads: int) -> tuple[str, ...]:
    """gunicorn's options for gthread workers of ``threads`` threads; sync workers for 0."""
    if not threads:
        return WORKER_CLASS
    return ("--worker-class", "gthread", "--threads", str(threads))


def worker_kind(threads: int) -> str:
    """:func:`worker_model` in words, for a report."""
    return f"gthread ({threads} threads)" if threads else "sync"


@contextlib.contextmanager
def serve(
    argv: list[str],
    port: int,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    boot_timeout: float = 60.0,
    workers: int = 0,
    name: str = "server",
) -> Iterator[Server]:
    """Run ``argv``, a server listening on ``port`` with ``workers`` child processes, until
    the block exits; then stop its process group and wait for the port to close."""
    with log.open("wb") as out:
        process = subprocess.Popen(  # own session, so stop() can signal just this group
            argv,
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log, workers, name)
    try:
        _wait_listening(server, boot_timeout)
        yield server
    finally:
        stop(server)


def _wait_listening(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"{server.name} exited with status {server.process.returncode}:\n"
                f"{server.log_tail()}"
            )
        if port_open(server.port) and len(server.workers()) == server.expected_workers:
            return
        time.sleep(0.1)
    raise ServerError(f"{server.name} not listening after {timeout:.0f}s:\n{server.log_tail()}")


@contextlib.contextmanager
def background(
    argv: list[str], env: Mapping[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` (no port: e.g. a job worker) in its own process group until the block exits."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        terminate(process)


@contextlib.contextmanager
def job_workers(count: int, env: Mapping[str, str], logs: Path,
                name: str) -> Iterator[list[subprocess.Popen]]:
    """``count`` ``flask --app app worker`` processes until the block exits.

    Their logs are ``logs / f"worker-{name}-{n}.log"``.
    """
    argv = [sys.executable, *JOB_WORKER]
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(background(argv, env, ROOT, logs / f"worker-{name}-{n}.log"))
               for n in range(count)]


def terminate(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``process``, SIGKILL it if it lingers."""
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        process.wait(5)


def stop(server: Server, timeout: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers, wait for the port."""
    terminate(server.process, timeout)
    deadline = time.monotonic() + 10
    while port_open(server.port):
        if time.monotonic() > deadline:
            raise ServerError(f"port {server.port} still open after stopping {server.name}")
        time.sleep(0.1)


def wait_idle(pids: list[int], timeout: float = 30.0, interval: float = 0.25) -> None:
    """Wait until none of ``pids`` used CPU for one interval (workers done booting)."""
    deadline = time.monotonic() + timeout
    before = [proc.cpu_ticks(pid) for pid in pids]
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = [proc.cpu_ticks(pid) for pid in pids]
        if now == before:
            return
        before = now
    raise ServerError(f"workers {pids} still busy after {timeout:.0f}s")


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    """A temporary directory for one run's logs, request files and metrics, removed after."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        yield Path(tmp)
