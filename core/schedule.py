"""The periodic jobs: one list with fixed ids, gathered from each package's ``tasks.py``.

Packages declare theirs as ``PeriodicJob``s and register them at start; the list is
what ``flask --app app jobs`` prints. Who runs them:

- real mode: every ``flask --app app worker`` ticks (``start_ticker``), and the first
  to take a job's period key in Redis enqueues it, so it runs once per period as long
  as any worker does; a Redis that lost its keys only brings the next run forward;
- embedded mode: the one process that serves requests ticks, from its first request
  on. Commands (``members import``, ``wechat-sim``...) never tick: a simulator or an
  import has no business sending alerts. With JOBS_EAGER (tests) nothing runs unasked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.jobs import Job, enqueue

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
_JOBS = "schedule.jobs"
_TICKER = "schedule.ticker"


@dataclass(frozen=True)
class PeriodicJob:
    """``func()`` enqueued every ``interval_setting`` seconds on ``queue``."""

    id: str  # fixed: its Redis period key and its name in logs and ``flask jobs``
    func: Job
    interval_setting: str  # the setting holding the period in seconds
    queue: str | None = None


def register(app: Flask, jobs: Iterable[PeriodicJob]) -> None:
    """Add a package's periodic jobs to the app's one list (ids are unique)."""
    known = app.extensions.setdefault(_JOBS, {})
    for job in jobs:
        if job.id in known:
            raise ValueError(f"periodic job id {job.id!r} is registered twice")
        known[job.id] = job


def periodic_jobs(app: Flask | None = None) -> list[PeriodicJob]:
    return list((app or current_app).extensions.get(_JOBS, {}).values())


def tick() -> list[str]:
    """Enqueue the periodic jobs whose period has come round; their ids."""
    redis = current_app.extensions["redis"]
    enqueued = []
    for job in periodic_jobs():
        seconds = current_app.config[job.interval_setting]
        # The key lives one period: whoever sets it runs the job for that period.
        if redis.set(f"jobs:periodic:{job.id}", "1", nx=True, px=int(seconds * 1000)):
            enqueue(job.func, queue=job.queue)
            enqueued.append(job.id)
    return enqueued


def start_ticker(app: Flask) -> None:
    """Start this process's ticker thread (once); it enqueues the periodic jobs when due."""
    if app.extensions.get(_TICKER):
        return
    thread = threading.Thread(target=_tick_forever, args=(app,), name="jobs-ticker", daemon=True)
    app.extensions[_TICKER] = thread
    thread.start()


def _tick_forever(app: Flask) -> None:
    redis_down = False
    while True:
        time.sleep(TICK_SECONDS)
        try:
            with app.app_context():
                tick()
        except (RedisConnectionError, RedisTimeoutError):
            # An outage: said once, not every second; the worker logs and counts it too.
            if not redis_down:
                log.warning("periodic jobs: Redis is unavailable; ticking on until it is back")
            redis_down = True
            continue
        except Exception:  # a bug in a tick: say it each time, the next tick tries again
            log.exception("periodic jobs: tick failed")
            continue
        if redis_down:
            log.info("periodic jobs: Redis is back")
            redis_down = False


class _TickWhenServing:
    """WSGI middleware starting the embedded ticker with the first request served."""

    def __init__(self, app: Flask, downstream: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.downstream = downstream

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        start_ticker(self.app)
        return self.downstream(environ, start_response)


@click.command("jobs")
@with_appcontext
def jobs_command() -> None:
    """List the periodic jobs: id, period and function."""
    for job in periodic_jobs():
        seconds = current_app.config[job.interval_setting]
        click.echo(f"{job.id}\tevery {seconds:g} s ({job.interval_setting})\t"
                   f"{job.func.__module__}.{job.func.__qualname__}")


def init_app(app: Flask) -> None:
    """Called last by the factory, so that the ticker starts with the first request of any
    kind, the WeChat callback's included."""
    app.cli.add_command(jobs_command)
    if app.extensions["redis_embedded"] and not app.config["JOBS_EAGER"]:
        app.wsgi_app = _TickWhenServing(app, app.wsgi_app)
