"""Getting transaction alerts unstuck: the periodic sweep, re-driving failures, history.

The database, not Redis, says what is still to be sent: a delivery is
``queued`` or ``sending`` until WeChat has answered for it. The sweep (run
periodically: ``tasks.sweep``) turns that into jobs again whatever Redis
lost: a restart that dropped the queue, a job that never got enqueued, a
channel whose quota pause has lifted, a worker killed while sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from core.db import db, utcnow
from core.jobs import call_after_commit
from members.transactions.alerts import sending
from members.transactions.alerts.metrics import ALERT_RECOVERED
from members.transactions.alerts.models import Delivery, TemplateJobResult
from members.transactions.models import Transaction


def _update_returning_ids(where: list[Any], values: dict[str, Any]) -> list[int]:
    return list(db.session.scalars(
        update(Delivery).where(*where).values(**values).returning(Delivery.id)
        .execution_options(synchronize_session=False)))


def sweep() -> dict[str, int]:
    """Re-drive deliveries stuck in ``sending`` or ``queued``; counts by kind. The caller
    commits (``tasks.sweep``); their send jobs are enqueued after that commit.

    Each statement is conditional on the state it found, so concurrent sweeps,
    workers and ``redrive`` never move one row twice.
    """
    config = current_app.config
    now = utcnow()
    cutoff = now - timedelta(seconds=config["ALERT_STUCK_AFTER"])
    stuck = [Delivery.state == "sending", Delivery.updated_at < cutoff]
    # Killed between WeChat's answer and our record, as often as a delivery may be tried:
    # give up rather than resend forever (the row may have been delivered).
    exhausted = _update_returning_ids(
        [*stuck, Delivery.attempts >= config["ALERT_MAX_ATTEMPTS"]],
        {"state": "failed", "error": "worker lost while sending, attempts used up",
         "finished_at": now, "updated_at": now})
    # Whether WeChat got it is unknown: send again under the same client_msg_id, as a resend
    # (marked only if WeChat could show it twice by the time it is sent: sending._deliver).
    resend = _update_returning_ids(stuck, {"state": "queued", "resend": True, "updated_at": now})
    # Queued this long: its job is gone (or its channel was paused); touching updated_at
    # keeps the next sweeps off it while the new job waits in the queue.
    lost = (select(Delivery.id)
            .where(Delivery.state == "queued", Delivery.updated_at < cutoff,
                   Delivery.channel.not_in(sorted(sending.paused_channels())))
            .order_by(Delivery.id).limit(config["ALERT_SWEEP_LIMIT"]))
    requeue = _update_returning_ids(
        [Delivery.id.in_(lost), Delivery.state == "queued"],
        {"updated_at": now})
    finished = _apply_early_results(now, cutoff)
    call_after_commit(sending.enqueue_deliveries, resend + requeue)
    counts = {"exhausted": len(exhausted), "resend": len(resend), "requeue": len(requeue)}
    for kind, count in counts.items():
        ALERT_RECOVERED.labels(kind=kind).inc(count)
    return {**counts, "finished": finished}


def _apply_early_results(now: datetime, since: datetime) -> int:
    """Recent ``sent`` rows whose TEMPLATESENDJOBFINISH raced their record and lost.

    ``record_sent`` applies a result that arrived first; this catches the last
    sliver, where both transactions ran at once and neither saw the other.
    """
    status = (select(TemplateJobResult.status)
              .where(TemplateJobResult.msg_id == Delivery.msgid).scalar_subquery())
    return len(_update_returning_ids(
        [Delivery.state == "sent", Delivery.channel == "template",
         Delivery.updated_at >= since, status.is_not(None)],
        {**sending.finished_values(status, now), "updated_at": now}))


@dataclass(frozen=True)
class Redrive:
    ids: list[int]
    too_recent: int  # accepted by WeChat within its replay window: left alone


def redrive(since: datetime | None = None, errcode: int | None = None,
            dry_run: bool = False) -> Redrive:
    """Send ``failed`` deliveries again (optionally only those failed since / with errcode).

    One WeChat accepted and then reported failed is left alone while WeChat
    would still take a new send of its client_msg_id for a replay and drop it.
    The caller commits; the send jobs are enqueued after that commit.
    """
    config = current_app.config
    now = utcnow()
    where = [Delivery.state == "failed"]
    if since is not None:
        where.append(Delivery.updated_at >= since)
    if errcode is not None:
        where.append(Delivery.errcode == errcode)
    window = now - timedelta(seconds=config["WECHAT_CLIENT_MSG_ID_WINDOW"])
    replayable = or_(Delivery.msgid.is_(None), Delivery.sent_at < window)
    too_recent = db.session.scalar(
        select(func.count()).select_from(Delivery).where(*where, ~replayable))
    if dry_run:
        return Redrive(list(db.session.scalars(select(Delivery.id).where(*where, replayable))),
                       too_recent)
    # first_claimed_at stays: it is still the earliest WeChat can have taken this row's
    # message, which is what decides whether a later resend of it is marked.
    ids = _update_returning_ids(
        [*where, replayable],
        {"state": "queued", "attempts": 0, "errcode": None, "error": None, "msgid": None,
         "marked": False, "sent_at": None, "finished_at": None, "updated_at": now})
    call_after_commit(sending.enqueue_deliveries, ids)
    return Redrive(ids, too_recent)


def history(txn_id: str) -> tuple[Transaction, list[tuple[Delivery, TemplateJobResult | None]]]:
    """The transaction and each of its deliveries with WeChat's final report, oldest first."""
    txn = db.session.scalar(select(Transaction).where(Transaction.txn_id == txn_id))
    if txn is None:
        raise LookupError(txn_id)
    rows = db.session.execute(
        select(Delivery, TemplateJobResult)
        .outerjoin(TemplateJobResult, and_(TemplateJobResult.msg_id == Delivery.msgid,
                                           Delivery.channel == "template"))
        .where(Delivery.transaction_id == txn.id).order_by(Delivery.id)
    ).tuples().all()
    return txn, list(rows)
