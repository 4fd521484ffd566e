"""``flask --app app worker``: an RQ worker (and scheduler) that runs jobs in app contexts."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, SimpleWorker

from core.jobs import start_ticker
from core.logs import job_context


class AppWorker(SimpleWorker):
    """Runs each job in its own app context, inside the worker process.

    SimpleWorker skips RQ's fork per job: jobs here are short I/O calls, where a
    fork would cost more than the work. A job that crashes the process is left
    in RQ's started registry and re-queued by RQ's abandoned-job handling.
    """

    app: Flask

    def execute_job(self, job, queue):  # noqa: ANN001, ANN201 - RQ's signature
        with self.app.app_context(), job_context(job.id):
            return super().execute_job(job, queue)


@click.command("worker")
@click.option("--queues", "-q", multiple=True, help="Queues to listen on (default: all).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker_command(queues: tuple[str, ...], burst: bool) -> None:
    """Run a background worker with RQ's scheduler and the periodic jobs (needs REDIS_URL)."""
    app = current_app._get_current_object()
    if app.extensions["redis_embedded"]:
        raise click.UsageError("the worker needs REDIS_URL; embedded mode runs jobs in-process")
    redis = app.extensions["redis"]
    names = list(queues) or app.config["RQ_QUEUES"]
    worker = AppWorker([Queue(name, connection=redis) for name in names], connection=redis)
    worker.app = app
    start_ticker(app)  # periodic jobs (core.jobs.every): whichever worker ticks first enqueues
    worker.work(burst=burst, with_scheduler=True, logging_level=app.config["LOG_LEVEL"])
