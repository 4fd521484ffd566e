"""``flask --app app worker``: RQ workers (and scheduler) that run jobs in app contexts and
ride out Redis outages.

RQ 3.0 quits on the first Redis error outside its dequeue wait: the heartbeat after a
job, the bookkeeping around a job, the suspension check, the maintenance tasks and its
own "death" record all raise, and its work loop ends with "found an unhandled exception,
quitting". So a Redis restart used to take every worker down. Here a lost Redis ends the
RQ worker the way a stop request does; ``run`` then logs the outage once, waits for Redis
with backoff, and starts a fresh RQ worker (a new name, registration, pubsub channel and
scheduler: RQ keeps that state per instance and a restarted Redis has lost it). The
ticker of periodic jobs (``core.schedule.start_ticker``) belongs to the process, not to the
RQ worker, and keeps ticking throughout.

A job that was running when Redis went away keeps its database effects; what it could
not finish is left to the periodic jobs that read the work to do from the database (the
alert sweep, ``members.transactions.alerts.recovery``), which the ticker enqueues again
as soon as Redis answers.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import click
import redis
from flask import Flask, current_app
from flask.cli import with_appcontext
from prometheus_client import Counter
from redis.client import Pipeline, PubSub, PubSubWorkerThread
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.job import Job

from core import kv
from core.logs import job_context
from core.schedule import start_ticker

log = logging.getLogger(__name__)

# What a Redis that is down, restarting (BusyLoadingError is a ConnectionError) or out of
# reach raises; any other Redis error is a bug or a misconfiguration and still stops RQ.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

REDIS_OUTAGES = Counter(
    "worker_redis_outages_total",
    "Redis outages a worker stopped taking jobs for (minus reconnects: workers waiting now)",
)
REDIS_RECONNECTS = Counter(
    "worker_redis_reconnects_total", "Workers that resumed by themselves after a Redis outage",
)

PUBSUB_RETRY_SECONDS = 1.0
# A scheduler process stuck on a Redis that stopped answering (no reset: a network
# partition) would hold up the next worker for the socket timeout, minutes; it is killed.
SCHEDULER_STOP_TIMEOUT = 10.0


class AppWorker(SimpleWorker):
    """Runs each job in its own app context, inside the worker process.

    SimpleWorker skips RQ's fork per job: jobs here are short I/O calls, where a
    fork would cost more than the work. A job that crashes the process is left
    in RQ's started registry and re-queued by RQ's abandoned-job handling.

    Every Redis call of RQ's work loop goes through one of the methods wrapped
    below; a lost Redis raises RQ's StopRequested there, so the loop ends quietly
    and ``lost_redis`` says why.
    """

    app: Flask
    _redis_lost: BaseException | None = None

    @property
    def lost_redis(self) -> BaseException | None:
        """The Redis error that ended ``work()``; None if it ended otherwise, or if a stop
        had been asked for meanwhile (then the worker must not come back)."""
        return None if self._stop_requested else self._redis_lost

    @contextlib.contextmanager
    def _stop_if_redis_lost(self) -> Iterator[None]:
        try:
            yield
        except REDIS_DOWN as exc:
            self._redis_lost = exc
            raise StopRequested from exc

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self._stop_if_redis_lost(), self.app.app_context(), job_context(job.id):
            super().execute_job(job, queue)

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        with self._stop_if_redis_lost():
            super().heartbeat(timeout, pipeline)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        # RQ retries a failed dequeue itself, but its state update before and its
        # heartbeat after the wait raise; the heartbeat inside its retry loop, wrapped
        # above, ends the wait on the first retry.
        with self._stop_if_redis_lost():
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def check_for_suspension(self, burst: bool) -> None:
        with self._stop_if_redis_lost():
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self) -> None:
        with self._stop_if_redis_lost():
            super().run_maintenance_tasks()

    def teardown(self) -> None:
        try:
            super().teardown()
        except REDIS_DOWN:
            # RQ's death record cannot be written (the worker's key expires by itself);
            # RQ stops there, before ending its pubsub thread, so that is done here.
            self.retire()

    def retire(self) -> None:
        """Stop this worker's scheduler process and pubsub thread without Redis."""
        if self.scheduler is not None:
            self.stop_scheduler()
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop()  # its loop ends at its next pass and closes the pubsub
            # A pass is at most one of the handler's pauses (the connection is dead); the
            # thread is a daemon, so a slower one holds nothing up.
            self.pubsub_thread.join(PUBSUB_RETRY_SECONDS * 2)

    def stop_scheduler(self) -> None:
        """RQ's, with a bounded wait (RQ joins the scheduler process for as long as it takes)."""
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        process.terminate()
        process.join(SCHEDULER_STOP_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join()

    def _pubsub_exception_handler(self, exc: Exception, pubsub: PubSub,
                                  pubsub_thread: PubSubWorkerThread) -> None:
        # RQ's (private, rq==3.0.0) logs an ERROR every 2 s while Redis is away and lets a
        # TimeoutError kill the thread; the outage is logged once, by run().
        if isinstance(exc, REDIS_DOWN):
            time.sleep(PUBSUB_RETRY_SECONDS)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)


class Backoff:
    """Exponential delays with jitter: doubled per call from ``base`` up to ``cap``, each
    drawn from its upper half, so workers that lost the same Redis do not knock in step."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return random.uniform(delay / 2, delay)


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the event yielded instead of RQ's handlers (which need Redis)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("worker: stop requested while waiting for Redis")
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_redis(connection: redis.Redis, cause: BaseException, backoff: Backoff,
                   stop: threading.Event) -> bool:
    """Log and count the outage, then ping Redis with backoff until it answers (True) or a
    stop is asked for (False)."""
    log.warning(
        "worker: Redis unreachable (%s: %s); no jobs are taken until it answers again "
        "(asked with backoff up to %.0f s); a job that was running keeps its database effects",
        type(cause).__name__, cause, backoff.cap)
    REDIS_OUTAGES.inc()
    started = time.monotonic()
    while not stop.wait(backoff.next()):
        try:
            connection.ping()
        except REDIS_DOWN:
            continue
        REDIS_RECONNECTS.inc()
        log.info("worker: Redis answers again after %.1f s; resuming with a fresh RQ worker",
                 time.monotonic() - started)
        return True
    return False


def rq_connection(app: Flask) -> redis.Redis:
    """A Redis client for an RQ worker, apart from the app's.

    RQ raises its client's socket timeout to outwait its blocking pop (Worker.
    _set_connection), in the client's connection pool: on the app's handle every Redis call
    of a job (rate buckets, chain keys, the quota guard) could then hang for minutes on a
    Redis that stopped answering. RQ gets a client and a pool of its own."""
    return kv.connect(app.config["REDIS_URL"])


def run(app: Flask, queue_names: list[str], burst: bool) -> None:
    """Work the queues until stopped, or with ``burst`` until they are empty, starting a
    fresh RQ worker after each Redis outage."""
    connection = rq_connection(app)
    start_ticker(app)  # periodic jobs (core.schedule): whichever worker ticks first enqueues
    while True:
        worker: AppWorker | None = None
        try:
            # The constructor names its Redis client and work() registers, subscribes and
            # takes the scheduler lock before RQ's loop: a lost Redis raises from there.
            worker = AppWorker([Queue(name, connection=connection) for name in queue_names],
                               connection=connection)
            worker.app = app
            worker.work(burst=burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
            lost = worker.lost_redis
        except REDIS_DOWN as exc:
            if worker is not None:
                worker.retire()
            lost = exc
        if lost is None:
            return  # stopped on request, or a burst found the queues empty
        backoff = Backoff(app.config["WORKER_REDIS_RETRY_BASE_DELAY"],
                          app.config["WORKER_REDIS_RETRY_MAX_DELAY"])
        with _stop_signals() as stop:
            if not wait_for_redis(connection, lost, backoff, stop):
                return


@click.command("worker")
@click.option("--queues", "-q", multiple=True, help="Queues to listen on (default: all).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker_command(queues: tuple[str, ...], burst: bool) -> None:
    """Run a background worker with RQ's scheduler and the periodic jobs (needs REDIS_URL)."""
    app = current_app._get_current_object()
    if app.extensions["redis_embedded"]:
        raise click.UsageError("the worker needs REDIS_URL; embedded mode runs jobs in-process")
    run(app, list(queues) or app.config["RQ_QUEUES"], burst)

