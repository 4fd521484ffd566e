"""Background jobs: RQ queues on Redis in real mode, a thread pool in embedded mode.

Callers use ``enqueue`` and never learn which mode runs: a job is a plain
importable function taking plain arguments (declared in its package's
``tasks.py``), run inside an app context. In real mode more ``flask --app app
worker`` processes, on any machine that reaches the same Redis, share the
queues, taken in RQ_QUEUES' order of priority; RQ's scheduler runs jobs given a
time, and ``core.schedule`` runs the periodic ones.

Embedded mode runs jobs on a thread pool of this process; a CLI command waits for
the jobs it started before it exits (an interpreter shutting down takes no new
work, and a job enqueued by a job would be lost).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

import click
from flask import Flask, current_app
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.db import db
from core.logs import job_context

log = logging.getLogger(__name__)

Job = Callable[..., Any]
DEFAULT_QUEUE = "default"  # jobs enqueued without a queue; the last in priority


def _backoff(retries: int) -> list[int]:
    return [min(2**attempt, 60) for attempt in range(retries)]


class RQRunner:
    """Jobs go to Redis; workers anywhere pick them up."""

    def __init__(self, redis: Any, queue_names: list[str]) -> None:
        if DEFAULT_QUEUE not in queue_names:
            raise ValueError(f"RQ_QUEUES must include {DEFAULT_QUEUE!r}")
        self.queues = {name: Queue(name, connection=redis) for name in queue_names}

    def enqueue(self, func: Job, args: tuple, kwargs: dict, *, queue: str | None,
                at: datetime | None, job_id: str | None, retries: int) -> str:
        options: dict[str, Any] = {"args": args, "kwargs": kwargs, "job_id": job_id}
        if retries:
            options["retry"] = Retry(max=retries, interval=_backoff(retries))
        target = self.queues[queue or DEFAULT_QUEUE]
        job = target.enqueue_at(at, func, **options) if at else target.enqueue(func, **options)
        return job.id

    def depth(self) -> dict[str, int]:
        return {name: queue.count for name, queue in self.queues.items()}


class EmbeddedRunner:
    """Jobs run in this process: inline when eager (tests), else on a small thread pool."""

    def __init__(self, app: Flask, threads: int, eager: bool) -> None:
        self.app = app
        self.eager = eager
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="job")
        self.running: set[Future] = set()
        self.lock = threading.Lock()

    def enqueue(self, func: Job, args: tuple, kwargs: dict, *, queue: str | None,
                at: datetime | None, job_id: str | None, retries: int) -> str:
        job_id = job_id or f"embedded-{id(func):x}-{datetime.now(UTC).timestamp()}"
        if self.eager:
            self._run(func, args, kwargs, job_id, retries)
        elif at and at > datetime.now(UTC):
            delay = (at - datetime.now(UTC)).total_seconds()
            timer = threading.Timer(delay, self._submit, (func, args, kwargs, job_id, retries))
            timer.daemon = True
            timer.start()
        else:
            self._submit(func, args, kwargs, job_id, retries)
        return job_id

    def _submit(self, *job: Any) -> None:
        future = self.pool.submit(self._run, *job)
        with self.lock:
            self.running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self.lock:
            self.running.discard(future)

    def drain(self) -> None:
        """Wait until no job is left running, including jobs those jobs enqueue (jobs given a
        later time are not waited for: the recovery sweeps pick their work up)."""
        while True:
            with self.lock:
                pending = list(self.running)
            if not pending:
                return
            wait(pending)

    def _run(self, func: Job, args: tuple, kwargs: dict, job_id: str, retries: int) -> None:
        # A fresh app context gives the job its own database session, as a worker would.
        for attempt in range(retries + 1):
            with self.app.app_context(), job_context(job_id):
                try:
                    func(*args, **kwargs)
                    return
                except Exception:
                    log.exception("job %s failed (attempt %d)", func.__qualname__, attempt + 1)

    def depth(self) -> dict[str, int]:
        return {"embedded": self.pool._work_queue.qsize()}


def init_app(app: Flask) -> None:
    redis = app.extensions["redis"]
    if app.extensions["redis_embedded"]:
        runner: RQRunner | EmbeddedRunner = EmbeddedRunner(
            app, app.config["JOBS_EMBEDDED_THREADS"], app.config["JOBS_EAGER"]
        )
    else:
        runner = RQRunner(redis, app.config["RQ_QUEUES"])
    app.extensions["jobs"] = runner
    if isinstance(runner, EmbeddedRunner):
        app.teardown_appcontext(_finish_cli_jobs)
    listen_for_commits()


def _finish_cli_jobs(_exc: BaseException | None) -> None:
    # A CLI command's app context ends with the command: wait for its jobs there. Requests
    # and jobs run on other threads, where no click context is current, and never wait.
    if click.get_current_context(silent=True) is not None:
        current_app.extensions["jobs"].drain()


def enqueue(func: Job, *args: Any, queue: str | None = None, at: datetime | None = None,
            job_id: str | None = None, retries: int = 0, **kwargs: Any) -> str:
    """Run ``func(*args, **kwargs)`` in the background; returns the job id."""
    return current_app.extensions["jobs"].enqueue(
        func, args, kwargs, queue=queue, at=at, job_id=job_id, retries=retries
    )


def queue_depth() -> dict[str, int]:
    """Jobs waiting per queue, for metrics."""
    return current_app.extensions["jobs"].depth()




def enqueue_after_commit(func: Job, *args: Any, **kwargs: Any) -> None:
    """Enqueue once the current database transaction commits; dropped on rollback.

    A job that reads what the request writes must not start before the commit.
    """
    call_after_commit(enqueue, func, *args, **kwargs)


def call_after_commit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``func(*args, **kwargs)`` in this process once the transaction commits.

    Dropped on rollback. For helpers that enqueue jobs themselves; ``func`` runs
    inside the session's after-commit event, so it must not use the database
    session (the jobs it enqueues get their own).
    """
    session = db.session()
    if not session.in_transaction():
        session.begin()  # so that a rollback before any query still fires and drops the call
    session.info.setdefault(_AFTER_COMMIT, []).append((func, args, kwargs))


_AFTER_COMMIT = "jobs_after_commit"


def _flush_after_commit(session: Any) -> None:
    for func, args, kwargs in session.info.pop(_AFTER_COMMIT, []):
        func(*args, **kwargs)


def _drop_after_rollback(session: Any, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction rolled back
        session.info.pop(_AFTER_COMMIT, None)


def listen_for_commits() -> None:
    """Hook the after-commit queue into every SQLAlchemy session (once per process)."""
    if not event.contains(Session, "after_commit", _flush_after_commit):
        event.listen(Session, "after_commit", _flush_after_commit)
        event.listen(Session, "after_soft_rollback", _drop_after_rollback)
