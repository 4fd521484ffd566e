"""Jobs of marketing pushes: starting a push, its batch chains, the periodic sweep.

A push is sent by a few *chains* of ``send_batch`` jobs (``chains``): each job sends for
a slice of time, then hands over to the next job of its chain at the back of the
``pushes`` queue, so the workers share a push. A slice is long (up to
PUSH_JOB_MAX_SECONDS) while nobody else needs the worker, and gives way after
PUSH_JOB_SECONDS as soon as transaction alerts (the first queue) wait: alerts wait for a
push about a second, and a push's rate does not pay for a hand-over every few seconds.
Every job re-reads the database first: run twice, run late or run after a restart, it
does what is left and nothing more.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import or_, update

from campaigns.pushes import chains, recovery, sending
from campaigns.pushes.models import SCHEDULED, SENDING, Push
from core.db import db, utcnow
from core.jobs import enqueue_after_commit
from core.schedule import PeriodicJob

QUEUE = "pushes"  # after alerts in RQ_QUEUES: a blast never delays a payment alert


def schedule_start(push: Push) -> None:
    """Start ``push`` at its ``send_at`` (at once when that is absent or past), once the
    caller's transaction commits (approve, resume). Should the job be lost (Redis flushed),
    the sweep starts a due scheduled push all the same."""
    now = utcnow()
    at = push.send_at if push.send_at is not None and push.send_at > now else None
    enqueue_after_commit(start_push, push.id, queue=QUEUE, at=at)


def start_push(push_id: int) -> None:
    """A due scheduled push starts sending (``started_at`` kept from a first start), and its
    chains are started. Early (an eager test runner ignores ``at``) or repeated: no effect
    beyond starting missing chains of a push already sending."""
    now = utcnow()
    db.session.execute(
        update(Push)
        .where(Push.id == push_id, Push.state == SCHEDULED,
               or_(Push.send_at.is_(None), Push.send_at <= now))
        .values(state=SENDING, started_at=db.func.coalesce(Push.started_at, now),
                updated_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    push = db.session.get(Push, push_id)
    if push is not None and push.state == SENDING:
        chains.fan_out(push_id, sending.chain_count(push.channel))


def send_batch(push_id: int, chain: int, token: str, due: float | None = None) -> None:
    """One slice of one chain of ``push_id``'s sending; hands over to the next while work
    remains. ``token`` names this link: a stale copy (run twice, superseded) does nothing;
    ``due`` (unix time) is when it was meant to run."""
    sending.run_slice(push_id, chain, token, due)


def resubmit_mass_job(job_id: int) -> None:
    """Call mass/send again for a job whose worker died before WeChat's answer was kept:
    the same ``clientmsgid`` makes WeChat answer 45065 if the first call went through."""
    sending.resubmit_mass_job(job_id)


def sweep() -> dict[str, int]:
    """Resume, start, re-drive and finish pushes whatever Redis lost; counts by kind."""
    counts = recovery.sweep(current_app.config)
    db.session.commit()  # the chains and jobs it starts are enqueued once this commits
    return counts


PERIODIC = (PeriodicJob("pushes.sweep", sweep, "PUSH_SWEEP_INTERVAL", queue=QUEUE),)
