"""The push sweep: whatever Redis lost or a worker left behind, the database says what is
still to do, and the sweep (``tasks.sweep``, every PUSH_SWEEP_INTERVAL s) turns it into
jobs again.

- a push paused for a quota whose ``paused_until`` has passed sends again, by itself;
- a due scheduled push whose start job was lost (Redis flushed) starts;
- a recipient claimed longer than PUSH_CLAIM_TIMEOUT lost its worker (killed, or stalled:
  no thread starts a call on a claim that old, ``sending.Slice``): a customer-service
  message or subscription notice may have gone out unrecorded, so it ends ``failed`` /
  ``interrupted`` and is never resent (the answer of a stalled call, should it come, is
  kept); a mass recipient whose job was never committed was never called and goes back
  to pending; one whose job was committed is called again under the job's clientmsgid
  (WeChat answers 45065 if the first call went through);
- a sending push with pending recipients gets its missing chains (their Redis keys
  expired with a killed worker or vanished in a flush);
- a sending push with nothing pending or claimed is done.

Every statement is conditional on the state it found, so concurrent sweeps and workers
never move one row twice; running the sweep twice changes nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, select, update

from campaigns.pushes import chains, sending
from campaigns.pushes.metrics import PUSH_FAILED, PUSH_RECOVERED
from campaigns.pushes.models import (
    DONE,
    MASS,
    PAUSED,
    RECIPIENT_CLAIMED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENT,
    SCHEDULED,
    SENDING,
    Push,
    PushDelivery,
    PushMassJob,
)
from core.db import db, utcnow
from core.jobs import call_after_commit, enqueue_after_commit

QUOTA_REASONS = (sending.QUOTA_DAILY, sending.QUOTA_MONTHLY)


def sweep(config: Mapping[str, Any]) -> dict[str, int]:
    """One pass; counts by kind. The caller commits; jobs are enqueued after that commit."""
    from campaigns.pushes import tasks  # tasks imports this module

    now = utcnow()
    counts = {"resumed": 0, "started": 0, "interrupted": 0, "released": 0,
              "resubmitted": 0, "finished": 0, "chains": 0}

    resumed = db.session.execute(
        update(Push).where(Push.state == PAUSED, Push.pause_reason.in_(QUOTA_REASONS),
                           Push.paused_until <= now)
        .values(state=SENDING, pause_reason=None, paused_until=None, updated_at=now)
        .returning(Push.id).execution_options(synchronize_session=False)).all()
    counts["resumed"] = len(resumed)

    for push_id in db.session.scalars(
            select(Push.id).where(Push.state == SCHEDULED)
            .where((Push.send_at.is_(None)) | (Push.send_at <= now))):
        enqueue_after_commit(tasks.start_push, push_id, queue=tasks.QUEUE)
        counts["started"] += 1

    _stale_claims(config, now, counts, tasks)

    unfinished = exists().where(
        PushDelivery.push_id == Push.id,
        PushDelivery.state.in_((RECIPIENT_PENDING, RECIPIENT_CLAIMED)))
    counts["finished"] = len(db.session.execute(
        update(Push).where(Push.state == SENDING, ~unfinished)
        .values(state=DONE, finished_at=now, updated_at=now)
        .returning(Push.id).execution_options(synchronize_session=False)).all())

    pending = exists().where(PushDelivery.push_id == Push.id,
                             PushDelivery.state == RECIPIENT_PENDING)
    for push_id, channel in db.session.execute(
            select(Push.id, Push.channel).where(Push.state == SENDING, pending)):
        call_after_commit(_restart_chains, counts, push_id, channel)

    for kind, count in counts.items():
        if count and kind != "chains":
            PUSH_RECOVERED.labels(kind=kind).inc(count)
    return counts


def _restart_chains(counts: dict[str, int], push_id: int, channel: str) -> None:
    started = chains.fan_out(push_id, sending.chain_count(channel))
    counts["chains"] += started
    if started:
        PUSH_RECOVERED.labels(kind="chains").inc(started)


def _stale_claims(config: Mapping[str, Any], now: Any, counts: dict[str, int],
                  tasks: Any) -> None:
    """End, release or re-ask for recipients claimed longer than PUSH_CLAIM_TIMEOUT."""
    cutoff = now - timedelta(seconds=config["PUSH_CLAIM_TIMEOUT"])
    resubmit_after = now - timedelta(seconds=config["PUSH_MASS_RESUBMIT_WITHIN"])
    stale = and_(PushDelivery.state == RECIPIENT_CLAIMED, PushDelivery.claimed_at < cutoff)
    rows = db.session.execute(
        select(PushDelivery.id, Push.channel, PushDelivery.mass_job_id, PushMassJob.msg_id,
               PushMassJob.submitted_at)
        .join(Push, Push.id == PushDelivery.push_id)
        .outerjoin(PushMassJob, PushMassJob.id == PushDelivery.mass_job_id)
        .where(stale).order_by(PushDelivery.id).limit(config["PUSH_SWEEP_LIMIT"])).all()
    interrupted, released, sent, resubmit = [], [], [], set()
    for delivery_id, channel, job_id, msg_id, submitted_at in rows:
        if channel != MASS:
            interrupted.append(delivery_id)
        elif job_id is None:
            released.append(delivery_id)  # the job was never committed: never called
        elif msg_id is not None:
            sent.append(delivery_id)  # WeChat's answer was kept, the rows' was not
        elif submitted_at is not None and submitted_at >= resubmit_after:
            resubmit.add(job_id)
        else:
            interrupted.append(delivery_id)

    def move(ids: list[int], **values: Any) -> int:
        if not ids:
            return 0
        return db.session.execute(
            update(PushDelivery).where(PushDelivery.id.in_(ids), stale).values(**values)
            .execution_options(synchronize_session=False)).rowcount

    counts["interrupted"] = move(interrupted, state=RECIPIENT_FAILED,
                                 reason=sending.INTERRUPTED)
    if counts["interrupted"]:
        PUSH_FAILED.labels(channel="any", errcode=sending.INTERRUPTED).inc(counts["interrupted"])
    counts["released"] = move(released, state=RECIPIENT_PENDING, claimed_at=None)
    move(sent, state=RECIPIENT_SENT, sent_at=now)
    for job_id in sorted(resubmit):
        # Claimed anew, so the next sweeps leave the job to its resubmission for a while.
        db.session.execute(
            update(PushDelivery).where(PushDelivery.mass_job_id == job_id, stale)
            .values(claimed_at=now).execution_options(synchronize_session=False))
        enqueue_after_commit(tasks.resubmit_mass_job, job_id, queue=tasks.QUEUE)
    counts["resubmitted"] = len(resubmit)
