"""Jobs: in-process in embedded mode, RQ in real mode, after-commit enqueueing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from core import jobs, worker
from core.db import db
from members.holders.models import Follower


def record_follower(openid: str) -> None:
    """A job: write a row, so the test can see it ran in an app context with a database."""
    db.session.add(Follower(openid=openid, subscribed=True))
    db.session.commit()


def _openids(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Follower.openid)))


def test_enqueued_job_runs_in_an_app_context(app, run_jobs):
    with app.app_context():
        job_id = jobs.enqueue(record_follower, "oJob1")
    assert job_id
    run_jobs()
    assert _openids(app) == ["oJob1"]
    if not app.extensions["redis_embedded"]:
        assert set(app.extensions["jobs"].depth().values()) == {0}


def test_after_commit_jobs_wait_for_the_commit_and_die_with_a_rollback(app, run_jobs):
    with app.app_context():
        jobs.enqueue_after_commit(record_follower, "oRolledBack")
        db.session.rollback()
        jobs.enqueue_after_commit(record_follower, "oCommitted")
        assert _openids(app) == []
        db.session.commit()
    run_jobs()
    assert _openids(app) == ["oCommitted"]


def test_jobs_at_a_time_go_to_the_scheduler(app):
    if app.extensions["redis_embedded"]:
        return  # embedded mode runs timed jobs on a timer thread; RQ is what is checked here
    at = datetime.now(UTC) + timedelta(hours=1)
    with app.app_context():
        job_id = jobs.enqueue(record_follower, "oLater", at=at)
    registry = ScheduledJobRegistry("default", connection=app.extensions["redis"])
    assert job_id in registry.get_job_ids()


def test_an_rq_worker_leaves_the_apps_redis_timeout_as_it_was(app, monkeypatch):
    """RQ raises its client's socket timeout (to outwait its blocking pop); the jobs' own
    Redis calls must keep the app's short one, or a silent Redis hangs them for minutes."""
    if app.extensions["redis_embedded"]:
        pytest.skip("the worker needs real Redis")
    kwargs = app.extensions["redis"].connection_pool.connection_kwargs
    monkeypatch.setitem(kwargs, "socket_timeout", 5)  # as kv.connect sets it
    connection = worker.rq_connection(app)
    worker.AppWorker([Queue("default", connection=connection)], connection=connection)
    assert connection.connection_pool.connection_kwargs["socket_timeout"] > 5  # RQ's own
    assert kwargs["socket_timeout"] == 5
    connection.close()
