"""Background jobs: RQ queues on Redis in real mode, a thread pool in embedded mode.

Callers use ``enqueue`` and never learn which mode runs: a job is a plain
importable function taking plain arguments, run inside an app context. In
real mode more ``flask --app app worker`` processes, on any machine that
reaches the same Redis, share the queues; RQ's scheduler runs jobs given a time,
and ``every`` runs a job periodically.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.db import db
from core.logs import job_context

log = logging.getLogger(__name__)

Job = Callable[..., Any]


def _backoff(retries: int) -> list[int]:
    return [min(2**attempt, 60) for attempt in range(retries)]


class RQRunner:
    """Jobs go to Redis; workers anywhere pick them up."""

    def __init__(self, redis: Any, queue_names: list[str]) -> None:
        self.queues = {name: Queue(name, connection=redis) for name in queue_names}
        self.default = queue_names[0]

    def enqueue(self, func: Job, args: tuple, kwargs: dict, *, queue: str | None,
                at: datetime | None, job_id: str | None, retries: int) -> str:
        options: dict[str, Any] = {"args": args, "kwargs": kwargs, "job_id": job_id}
        if retries:
            options["retry"] = Retry(max=retries, interval=_backoff(retries))
        target = self.queues[queue or self.default]
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

    def enqueue(self, func: Job, args: tuple, kwargs: dict, *, queue: str | None,
                at: datetime | None, job_id: str | None, retries: int) -> str:
        job_id = job_id or f"embedded-{id(func):x}-{datetime.now(UTC).timestamp()}"
        if self.eager:
            self._run(func, args, kwargs, job_id, retries)
        elif at and at > datetime.now(UTC):
            delay = (at - datetime.now(UTC)).total_seconds()
            timer = threading.Timer(delay, self.pool.submit,
                                    (self._run, func, args, kwargs, job_id, retries))
            timer.daemon = True
            timer.start()
        else:
            self.pool.submit(self._run, func, args, kwargs, job_id, retries)
        return job_id

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
    listen_for_commits()


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


# -- periodic jobs ------------------------------------------------------------------------------

_PERIODIC = "jobs.periodic"
_TICKER = "jobs.ticker"
TICK_SECONDS = 1.0


def every(app: Flask, seconds: float, func: Job) -> None:
    """Enqueue ``func()`` about every ``seconds``, once per period across all processes.

    Real mode: every ``flask --app app worker`` ticks (``start_ticker``), and the
    first to take the period's Redis key enqueues the job, so it runs as long as
    any worker does, and a Redis that lost its keys only brings the next run
    forward. Embedded mode: this process ticks on a timer thread, except with
    JOBS_EAGER (tests), where nothing runs unasked.
    """
    app.extensions.setdefault(_PERIODIC, []).append((func, seconds))
    if app.extensions["redis_embedded"] and not app.config["JOBS_EAGER"]:
        start_ticker(app)


def start_ticker(app: Flask) -> None:
    """Start this process's ticker thread (once); it enqueues the periodic jobs when due."""
    if app.extensions.get(_TICKER):
        return
    thread = threading.Thread(target=_tick_forever, args=(app,), name="jobs-ticker", daemon=True)
    app.extensions[_TICKER] = thread
    thread.start()


def _tick_forever(app: Flask) -> None:
    while True:
        time.sleep(TICK_SECONDS)
        try:
            with app.app_context():
                tick()
        except Exception:  # Redis away, say: the next tick tries again
            log.exception("periodic jobs: tick failed")


def tick() -> list[str]:
    """Enqueue the periodic jobs whose period has come round; their names."""
    redis = current_app.extensions["redis"]
    enqueued = []
    for func, seconds in current_app.extensions.get(_PERIODIC, []):
        name = f"{func.__module__}.{func.__qualname__}"
        # The key lives one period: whoever sets it runs the job for that period.
        if redis.set(f"jobs:periodic:{name}", "1", nx=True, px=int(seconds * 1000)):
            enqueue(func)
            enqueued.append(name)
    return enqueued
