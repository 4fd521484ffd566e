"""Periodic jobs and embedded mode: who ticks, and commands that wait for their jobs."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pytest
from flask.cli import with_appcontext

from app import create_app
from core import jobs, schedule

ACCOUNT = {"APP_ENV": "development", "REDIS_URL": "", "JOBS_EAGER": False,
           "LOG_LEVEL": "WARNING"}


@pytest.fixture
def embedded_app(tmp_path: Path):
    """An embedded app as `flask run` builds it: jobs on a thread pool, not inline."""
    return create_app({**ACCOUNT, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                       "INSTANCE_PATH": str(tmp_path)})


def slow_marker(path: str) -> None:
    """A job that takes a while and leaves a trace, and one more job behind it."""
    time.sleep(0.3)
    jobs.enqueue(Path(path).write_text, "done")


def test_the_periodic_jobs_are_one_list_with_fixed_ids(app):
    assert [job.id for job in schedule.periodic_jobs(app)] == [
        "alerts.sweep", "pushes.sweep", "attribution.refresh"]
    output = app.test_cli_runner().invoke(args=["jobs"]).output
    assert "alerts.sweep\tevery 30 s (ALERT_SWEEP_INTERVAL)" in output
    assert "pushes.sweep\tevery 15 s (PUSH_SWEEP_INTERVAL)" in output
    assert "attribution.refresh\tevery 60 s (FUNNEL_REFRESH_INTERVAL)" in output


def test_an_id_registered_twice_is_refused(app):
    with pytest.raises(ValueError, match="twice"):
        schedule.register(app, schedule.periodic_jobs(app))


def test_commands_never_tick_and_the_first_request_starts_the_ticker(embedded_app):
    assert "schedule.ticker" not in embedded_app.extensions  # built, as every command does
    embedded_app.test_client().get("/healthz")
    assert embedded_app.extensions["schedule.ticker"].is_alive()


def test_a_command_waits_for_its_jobs_before_it_exits(embedded_app, tmp_path):
    marker = tmp_path / "marker"

    @click.command("slow")
    @with_appcontext
    def slow() -> None:
        jobs.enqueue(slow_marker, str(marker))

    embedded_app.cli.add_command(slow)
    result = embedded_app.test_cli_runner().invoke(args=["slow"])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "done"  # the job, and the job it enqueued, both ran
