"""Sending transaction alerts: the send job and the state machine of each delivery.

::

    queued ──claim──▶ sending ──WeChat accepted──▶ sent ──TEMPLATESENDJOBFINISH──▶ delivered
      ▲                  │                                                     ├─▶ refused
      │                  ├─ unavailable (-1/5xx/timeout after the client's     └─▶ failed
      │                  │  own retries), attempts left: back, tried later
      ├──────────────────┤─ 45009: back, channel paused until the quota resets
      │                  └─ any other errcode (43004, 43101, …) ──▶ failed, errcode kept
      └── sweep (members.alert_recovery): sending too long ─▶ queued as a resend

Exactly once as far as WeChat allows: a delivery is claimed (queued → sending,
a conditional UPDATE, committed) before WeChat is called, so two workers never
both send it; WeChat's answer is recorded right after. Every call carries the
delivery's stable ``client_msg_id``, so a repeat within WeChat's ~10 minutes
(a timeout retried, a resend after a crash) is dropped by WeChat itself. The
one window left, a worker dying between WeChat's answer and the record, is
closed by the sweep resending the row marked as a resend (README, "Transaction
alerts").
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, String, bindparam, case, select, update

from core.db import UTCDateTime, db, utcnow
from core.jobs import enqueue
from core.metrics import ALERT_LATENCY, ALERT_QUEUE_LAG, ALERT_SENDS
from members import alert_content, channels, followers
from members.alert_content import Alert
from members.models import Delivery, TemplateJobResult, Transaction
from wechat import clients
from wechat.client import WeChatAPIClient
from wechat.errors import WeChatAPIError, WeChatUnavailable, outcome_label

log = logging.getLogger(__name__)

NOT_FOLLOWING = 43004
QUOTA_REACHED = 45009
# TEMPLATESENDJOBFINISH's Status → the delivery's state; any other status is a failure.
FINISHED_STATES = {"success": "delivered", "failed:user block": "refused"}

Builder = Callable[[Alert, bool, Any], dict[str, Any]]
# channel → (its WeChat client, endpoint under /cgi-bin/, request body builder)
CHANNEL_APIS: dict[str, tuple[Callable[[], WeChatAPIClient], str, Builder]] = {
    "template": (clients.official_account, "message/template/send",
                 alert_content.template_message),
    "subscribe": (clients.mini_program, "message/subscribe/send",
                  alert_content.subscribe_message),
}


def enqueue_deliveries(delivery_ids: list[int], at: datetime | None = None) -> None:
    """Queue send jobs for these ``queued`` deliveries, in batches; after their commit.

    When Redis cannot take the jobs the rows stay ``queued`` in the database and
    the recovery sweep enqueues them later, so the caller (the feed, after its
    commit) never fails for it.
    """
    size = current_app.config["ALERT_BATCH_SIZE"]
    due = (at or datetime.now(UTC)).timestamp()
    try:
        for start in range(0, len(delivery_ids), size):
            enqueue(send_batch, delivery_ids[start:start + size], due, at=at)
    except RedisError:
        log.warning("send jobs not enqueued; the recovery sweep will enqueue them",
                    exc_info=True, extra={"deliveries": len(delivery_ids)})


def send_batch(delivery_ids: list[int], due: float | None = None) -> None:
    """Job: send the still-queued deliveries among ``delivery_ids``, several at a time."""
    if due is not None:
        ALERT_QUEUE_LAG.observe(max(0.0, time.time() - due))
    alerts = _load(delivery_ids)
    db.session.commit()  # hold no transaction open while the threads work
    # A paused channel's rows stay queued; the sweep re-drives them once the pause lifts.
    paused = channels.paused_channels()
    pending: SimpleQueue[Alert] = SimpleQueue()
    for alert in alerts:
        if alert.channel not in paused:
            pending.put(alert)
    threads = min(current_app.config["ALERT_SEND_THREADS"], pending.qsize())
    if not threads:
        return
    app = current_app._get_current_object()
    with ThreadPoolExecutor(threads, thread_name_prefix="alert") as pool:
        futures = [pool.submit(_drain, app, pending, paused) for _ in range(threads)]
    errors = sum(future.result() for future in futures)  # re-raises a BaseException
    if errors:
        # The rows stay where they were (queued or sending) for the sweep; RQ keeps the failure.
        raise RuntimeError(f"{errors} of {len(alerts)} deliveries hit an error")


def _load(delivery_ids: list[int]) -> list[Alert]:
    rows = db.session.execute(
        select(Delivery.id, Delivery.channel, Delivery.openid, Transaction.txn_id,
               Transaction.card_last4, Transaction.amount_fen, Transaction.currency,
               Transaction.direction, Transaction.merchant, Transaction.occurred_at,
               Transaction.balance_fen)
        .join(Transaction, Transaction.id == Delivery.transaction_id)
        .where(Delivery.id.in_(delivery_ids), Delivery.state == "queued")
        .order_by(Delivery.id)
    ).all()
    return [Alert(*row) for row in rows]


def _drain(app: Flask, pending: SimpleQueue[Alert], paused: set[str]) -> int:
    """A sending thread: deliveries until none is left, in one app context (one session,
    one pooled connection); the number that hit an unexpected error."""
    errors = 0
    with app.app_context():
        try:
            while True:
                try:
                    alert = pending.get_nowait()
                except Empty:
                    return errors
                try:
                    _deliver(alert, paused)
                except Exception:
                    db.session.rollback()
                    errors += 1
                    log.exception("alert delivery failed unexpectedly",
                                  extra={"delivery_id": alert.delivery_id})
        finally:
            db.session.remove()


def _deliver(alert: Alert, paused: set[str]) -> None:
    """Claim, send and record one delivery (a no-op when someone else claimed it)."""
    if alert.channel in paused:
        return  # another thread met the quota meanwhile; this one stays queued
    if alert.channel == "subscribe" and not current_app.config["MINIAPP_TXN_TEMPLATE_ID"]:
        _fail(alert, None, "MINIAPP_TXN_TEMPLATE_ID is not set", "unconfigured")
        return
    claimed = db.session.execute(_CLAIM, {"delivery_id": alert.delivery_id,
                                          "now": utcnow()}).first()
    db.session.commit()  # the claim is visible before WeChat is called
    if claimed is None:
        return  # another worker has it, or it has moved on
    resend, attempts = claimed
    client, endpoint, build = CHANNEL_APIS[alert.channel]
    body = build(alert, resend, current_app.config)
    try:
        answer = client().post(endpoint, data=body)
    except WeChatUnavailable as exc:
        _retry_later(alert, attempts, exc)
    except WeChatAPIError as exc:
        _refused(alert, exc, paused)
    else:
        record_sent(alert, str(answer["msgid"]))


def _transition(delivery_id: int, states: tuple[str, ...], **values: Any) -> None:
    """Move the delivery on, only from ``states``, and commit."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state.in_(states))
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def finished_values(status: ColumnElement, now: ColumnElement | datetime,
                    pending: str | None = None) -> dict[str, Any]:
    """Column values for WeChat's final word ``status`` (a SQL expression).

    With ``pending``, a NULL status (no word yet) leaves the row in that state.
    """
    unknown = status.is_(None)
    states = [(status == word, state) for word, state in FINISHED_STATES.items()]
    if pending:
        states.insert(0, (unknown, pending))
    return {
        "state": case(*states, else_="failed"),
        "error": case((unknown, None), (status == "success", None), else_=status),
        "finished_at": case((unknown, None), else_=now),
    }


def record_sent(alert: Alert, msgid: str) -> None:
    """WeChat accepted the message: sent, with its msgid (see ``_RECORD``)."""
    now = utcnow()
    statement = _RECORD_TEMPLATE if alert.channel == "template" else _RECORD
    db.session.execute(statement, {"delivery_id": alert.delivery_id, "msg_id": msgid,
                                   "now": now})
    db.session.commit()
    ALERT_SENDS.labels(channel=alert.channel, errcode="0").inc()
    ALERT_LATENCY.labels(channel=alert.channel).observe(
        max(0.0, (now - alert.occurred_at).total_seconds()))


def _retry_later(alert: Alert, attempts: int, error: WeChatUnavailable) -> None:
    """WeChat stayed unavailable through the client's retries: back to queued, later."""
    ALERT_SENDS.labels(channel=alert.channel, errcode=outcome_label(error)).inc()
    config = current_app.config
    if attempts >= config["ALERT_MAX_ATTEMPTS"]:
        _fail(alert, error.errcode, str(error), None)
        return
    _transition(alert.delivery_id, ("sending",), state="queued", errcode=error.errcode,
                error=str(error)[:255])
    # Exponential with jitter, so deliveries failed together do not come back together.
    ceiling = config["ALERT_RETRY_BASE_DELAY"] * 2 ** (attempts - 1)
    at = datetime.now(UTC) + timedelta(seconds=random.uniform(ceiling / 2, ceiling))
    log.info("alert send put back: WeChat unavailable",
             extra={"delivery_id": alert.delivery_id, "attempts": attempts,
                    "errcode": outcome_label(error), "retry_at": at.isoformat()})
    enqueue_deliveries([alert.delivery_id], at=at)


def _refused(alert: Alert, error: WeChatAPIError, paused: set[str]) -> None:
    """WeChat answered an errcode its client does not retry."""
    if error.errcode == QUOTA_REACHED:
        ALERT_SENDS.labels(channel=alert.channel, errcode=outcome_label(error)).inc()
        channels.pause(alert.channel, error.errcode)
        paused.add(alert.channel)  # this batch's other threads stop too
        # Not the delivery's fault: the attempt is given back.
        _transition(alert.delivery_id, ("sending",), state="queued", errcode=error.errcode,
                    error=str(error)[:255], attempts=Delivery.attempts - 1)
        return
    if error.errcode == NOT_FOLLOWING:
        followers.mark_not_following(alert.openid)
    _fail(alert, error.errcode, str(error), outcome_label(error))


def _fail(alert: Alert, errcode: int | None, reason: str, outcome: str | None) -> None:
    """Failed for good, errcode and reason kept; ``outcome`` labels the send metric."""
    if outcome:
        ALERT_SENDS.labels(channel=alert.channel, errcode=outcome).inc()
    _transition(alert.delivery_id, ("queued", "sending"), state="failed", errcode=errcode,
                error=reason[:255], finished_at=utcnow())
    log.warning("alert failed", extra={"delivery_id": alert.delivery_id,
                                       "channel": alert.channel, "errcode": errcode})


def on_template_finished(msg_id: str, status: str) -> None:
    """TEMPLATESENDJOBFINISH for ``msg_id``: one indexed UPDATE, in the callback's transaction."""
    db.session.execute(_FINISH, {"msg_id": msg_id, "status": status, "now": utcnow()})


# -- the statements of the hot path, built once (building and cache-keying an UPDATE
# costs more CPU per alert than running it) ------------------------------------------------

_TABLE = Delivery.__table__
_ID = _TABLE.c.id == bindparam("delivery_id")
_NOW = bindparam("now", type_=UTCDateTime())
_MSG_ID = bindparam("msg_id", type_=String())

# queued → sending; (resend, attempts) of the claimed row, nothing when not queued.
_CLAIM = (update(_TABLE).where(_ID, _TABLE.c.state == "queued")
          .values(state="sending", attempts=_TABLE.c.attempts + 1, updated_at=_NOW)
          .returning(_TABLE.c.resend, _TABLE.c.attempts))

# sent, from ``sending``, or ``queued`` when the sweep already gave up on this worker (the
# resend is then cancelled).
_SENT = {"state": "sent", "msgid": _MSG_ID, "sent_at": _NOW, "errcode": None, "error": None,
         "updated_at": _NOW}
_RECORD = update(_TABLE).where(_ID, _TABLE.c.state.in_(("sending", "queued"))).values(**_SENT)
# WeChat may post TEMPLATESENDJOBFINISH before the record lands; its handler then found no row
# with this msgid and kept only the TemplateJobResult, which is applied here in one go.
_RECORD_TEMPLATE = _RECORD.values(**finished_values(
    select(TemplateJobResult.status).where(TemplateJobResult.msg_id == _MSG_ID)
    .scalar_subquery(), _NOW, pending="sent"))

_FINISH = (update(_TABLE)
           .where(_TABLE.c.msgid == _MSG_ID, _TABLE.c.channel == "template",
                  _TABLE.c.state == "sent")
           .values(updated_at=_NOW, **finished_values(bindparam("status", type_=String()), _NOW)))
