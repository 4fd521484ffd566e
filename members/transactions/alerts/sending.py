"""Sending transaction alerts: the body of the send job (``tasks.send_batch``) and the state
machine of each delivery. Unlike a service, it owns its transactions: each sending thread
commits its claims before WeChat is called and its records as soon as WeChat answered.

::

    queued ──claim──▶ sending ──WeChat accepted──▶ sent ──TEMPLATESENDJOBFINISH──▶ delivered
      ▲                  │                                                     ├─▶ refused
      │                  ├─ unavailable (-1/5xx/timeout after the client's     └─▶ failed
      │                  │  own retries), attempts left: back, tried later
      ├──────────────────┤─ 45009: back, channel paused until the quota resets
      │                  └─ any other errcode (43004, 43101, …) ──▶ failed, errcode kept
      └── sweep (alerts.recovery): sending too long ─▶ queued as a resend

Exactly once as far as WeChat allows: each sending thread claims its chunk of a
job's deliveries (queued → sending, one conditional UPDATE, committed) before
WeChat is called, so two workers never both send one. What WeChat accepted is
recorded for the whole chunk in one statement as soon as the chunk's last call
has answered (about ALERT_BATCH_SIZE / ALERT_SEND_THREADS calls); any other
answer at once. Every call carries the delivery's stable ``client_msg_id``, so
a repeat within WeChat's ~10 minutes (a timeout retried, a resend after a
crash) is dropped by WeChat itself. The one window left, a worker dying
between WeChat's answers and their record (at most a chunk of rows), is closed
by the sweep resending those rows, well within WeChat's ten minutes; a resend
says it is one only when WeChat could show it twice (``content.marked``,
README "The resend window").
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    String,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from core.db import UTCDateTime, db, utcnow
from core.jobs import enqueue
from members.holders import followers
from members.transactions.alerts import content, tasks
from members.transactions.alerts.content import Alert
from members.transactions.alerts.metrics import (
    ALERT_LATENCY,
    ALERT_QUEUE_LAG,
    ALERT_RESENDS,
    ALERT_SENDS,
)
from members.transactions.alerts.models import Delivery, TemplateJobResult
from members.transactions.models import Transaction
from wechat import clients, messages
from wechat.client import WeChatAPIClient
from wechat.errors import (
    NotFollowing,
    QuotaExhausted,
    WeChatAPIError,
    WeChatUnavailable,
    outcome_label,
)
from wechat.quota import QuotaGuard

log = logging.getLogger(__name__)

# TEMPLATESENDJOBFINISH's Status → the delivery's state; any other status is a failure.
FINISHED_STATES = {"success": "delivered", "failed:user block": "refused"}


class Channel(NamedTuple):
    """Where a delivery of this channel goes: the WeChat app, its quota guard, the API."""

    client: Callable[[], WeChatAPIClient]
    quota: Callable[[], QuotaGuard]
    api: str
    build: Callable[[Alert, bool, Any], dict[str, Any]]


CHANNELS: dict[str, Channel] = {
    "template": Channel(clients.official_account, clients.official_account_quota,
                        messages.TEMPLATE, content.template_message),
    "subscribe": Channel(clients.mini_program, clients.mini_program_quota,
                         messages.MINIAPP_SUBSCRIBE, content.subscribe_message),
}


def paused_channels() -> set[str]:
    """Channels whose WeChat API is paused by its quota (wechat.quota) right now."""
    return {name for name, channel in CHANNELS.items()
            if channel.quota().paused_until(channel.api)}


def resume(name: str) -> bool:
    """Lift a quota pause of channel ``name`` early; True when there was one."""
    channel = CHANNELS[name]
    return channel.quota().resume(channel.api)


class Claim(NamedTuple):
    """A delivery this thread claimed (a row of ``_CLAIM``'s RETURNING)."""

    delivery_id: int
    resend: bool
    attempts: int  # this claim included
    first_claimed_at: datetime


@dataclass(frozen=True, slots=True)
class Sent:
    """WeChat accepted ``alert``'s message as ``msgid`` at ``at``; not yet recorded."""

    alert: Alert
    msgid: str
    at: datetime
    resend: bool
    marked: bool  # the message carried ALERT_RESEND_MARKER


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
            enqueue(tasks.send_batch, delivery_ids[start:start + size], due, at=at,
                    queue=tasks.QUEUE)
    except RedisError:
        log.warning("send jobs not enqueued; the recovery sweep will enqueue them",
                    exc_info=True, extra={"deliveries": len(delivery_ids)})


def send_deliveries(delivery_ids: list[int], due: float | None = None) -> None:
    """Send the still-queued deliveries among ``delivery_ids``, several at a time.

    The deliveries are split into one chunk per sending thread; a thread claims
    its chunk in one statement, sends it, and records what WeChat accepted in
    one statement, so the database sees two commits per chunk, not per alert.
    """
    if due is not None:
        ALERT_QUEUE_LAG.observe(max(0.0, time.time() - due))
    # A paused channel's rows stay queued; the sweep re-drives them once the pause lifts.
    paused = paused_channels()
    with db.engine.connect() as connection:
        alerts = _sendable(connection, _load(connection, delivery_ids), paused)
    threads = min(current_app.config["ALERT_SEND_THREADS"], len(alerts))
    if not threads:
        return
    size = -(-len(alerts) // threads)
    chunks = [{alert.delivery_id: alert for alert in alerts[start:start + size]}
              for start in range(0, len(alerts), size)]
    app = current_app._get_current_object()
    with _tokens_held({alert.channel for alert in alerts}), \
            ThreadPoolExecutor(len(chunks), thread_name_prefix="alert") as pool:
        futures = [pool.submit(_send_chunk, app, chunk, paused) for chunk in chunks]
    errors = sum(future.result() for future in futures)  # re-raises a BaseException
    if errors:
        # The rows stay where they were (queued or sending) for the sweep; RQ keeps the failure.
        raise RuntimeError(f"{errors} of {len(alerts)} deliveries hit an error")


def _load(connection: Connection, delivery_ids: list[int]) -> list[Alert]:
    rows = connection.execute(_LOAD, {"ids": delivery_ids}).all()
    connection.commit()  # hold no transaction open while the threads work
    return [Alert(*row) for row in rows]


def _sendable(connection: Connection, alerts: list[Alert], paused: set[str]) -> list[Alert]:
    """The alerts to send now: not on a paused channel, and on a configured one (the
    subscribe channel without its template fails here, without calling WeChat)."""
    unconfigured = not current_app.config["MINIAPP_TXN_TEMPLATE_ID"]
    sendable = []
    for alert in alerts:
        if alert.channel == "subscribe" and unconfigured:
            _fail(connection, alert, None, "MINIAPP_TXN_TEMPLATE_ID is not set", "unconfigured")
        elif alert.channel not in paused:
            sendable.append(alert)
    return sendable


def _tokens_held(channels_used: set[str]) -> ExitStack:
    """The job's threads reuse their clients' access tokens instead of reading Redis per call."""
    stack = ExitStack()
    for channel in sorted(channels_used):
        stack.enter_context(CHANNELS[channel].client().tokens.held())
    return stack


def _send_chunk(app: Flask, chunk: dict[int, Alert], paused: set[str]) -> int:
    """A sending thread: claim ``chunk``, send each claimed delivery, record the sends;
    the number that hit an unexpected error. One connection throughout, no pool checkout
    per statement."""
    errors = 0
    with app.app_context(), db.engine.connect() as connection:
        claims = sorted(Claim(*row) for row in
                        connection.execute(_CLAIM, {"ids": list(chunk), "now": utcnow()}))
        connection.commit()  # the claims are visible before WeChat is called
        sent: list[Sent] = []
        for claim in claims:
            alert = chunk[claim.delivery_id]
            try:
                answer = _deliver(connection, alert, claim, paused)
            except Exception:
                connection.rollback()
                errors += 1
                log.exception("alert delivery failed unexpectedly",
                              extra={"delivery_id": claim.delivery_id})
                continue
            if answer is not None:
                sent.append(answer)
        record_sent(connection, sent)
    return errors


def _deliver(connection: Connection, alert: Alert, claim: Claim,
             paused: set[str]) -> Sent | None:
    """Send one claimed delivery; what WeChat accepted, or None when it did not (an outcome
    other than sent is recorded here: those are rare)."""
    if alert.channel in paused:  # another thread met the quota since the claim
        _give_back(connection, alert, QuotaExhausted.DAILY, "channel paused: daily quota used up")
        return None
    channel = CHANNELS[alert.channel]
    config = current_app.config
    # Decided now, as WeChat is called, not at the claim: a chunk's sends run one after
    # another, each up to the client's retries.
    marked = content.marked(alert.channel, claim.resend, claim.first_claimed_at,
                                  utcnow(), config)
    try:
        msgid = messages.send(channel.client(), channel.api,
                              channel.build(alert, marked, config))
    except WeChatUnavailable as exc:
        _retry_later(connection, alert, claim.attempts, exc)
    except WeChatAPIError as exc:
        _refused(connection, alert, exc, paused)
    else:
        return Sent(alert, str(msgid), utcnow(), claim.resend, marked)
    return None


def _transition(connection: Connection, delivery_id: int, states: tuple[str, ...],
                **values: Any) -> None:
    """Move the delivery on, only from ``states``, and commit."""
    connection.execute(
        update(_TABLE).where(_TABLE.c.id == delivery_id, _TABLE.c.state.in_(states))
        .values(updated_at=utcnow(), **values))
    connection.commit()


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


def record_sent(connection: Connection, sent: list[Sent]) -> None:
    """WeChat accepted these messages: sent, with their msgids, in one commit (``_RECORDS``)."""
    if not sent:
        return
    for channel, statement in _RECORDS.items():
        rows = [{"delivery_id": one.alert.delivery_id, "msg_id": one.msgid, "now": one.at,
                 "marked": one.marked}
                for one in sent if one.alert.channel == channel]
        if rows:
            connection.execute(statement, rows)  # executemany: one round trip (pipelined)
    connection.commit()
    for name, count in Counter(one.alert.channel for one in sent).items():
        ALERT_SENDS.labels(channel=name, errcode="0").inc(count)
        channel = CHANNELS[name]
        # Alerts come first: counted against the day's quota, never held back by it.
        channel.quota().count(channel.api, count)
    for marked, count in Counter(one.marked for one in sent if one.resend).items():
        ALERT_RESENDS.labels(marked=str(marked).lower()).inc(count)
    for one in sent:
        ALERT_LATENCY.labels(channel=one.alert.channel).observe(
            max(0.0, (one.at - one.alert.occurred_at).total_seconds()))


def _retry_later(connection: Connection, alert: Alert, attempts: int,
                 error: WeChatUnavailable) -> None:
    """WeChat stayed unavailable through the client's retries: back to queued, later."""
    ALERT_SENDS.labels(channel=alert.channel, errcode=outcome_label(error)).inc()
    config = current_app.config
    if attempts >= config["ALERT_MAX_ATTEMPTS"]:
        _fail(connection, alert, error.errcode, str(error), None)
        return
    _transition(connection, alert.delivery_id, ("sending",), state="queued",
                errcode=error.errcode, error=str(error)[:255])
    # Exponential with jitter, so deliveries failed together do not come back together.
    ceiling = config["ALERT_RETRY_BASE_DELAY"] * 2 ** (attempts - 1)
    at = datetime.now(UTC) + timedelta(seconds=random.uniform(ceiling / 2, ceiling))
    log.info("alert send put back: WeChat unavailable",
             extra={"delivery_id": alert.delivery_id, "attempts": attempts,
                    "errcode": outcome_label(error), "retry_at": at.isoformat()})
    enqueue_deliveries([alert.delivery_id], at=at)


def _refused(connection: Connection, alert: Alert, error: WeChatAPIError,
             paused: set[str]) -> None:
    """WeChat answered an errcode its client does not retry."""
    if isinstance(error, QuotaExhausted):
        ALERT_SENDS.labels(channel=alert.channel, errcode=outcome_label(error)).inc()
        channel = CHANNELS[alert.channel]
        channel.quota().pause(channel.api, error.errcode)
        paused.add(alert.channel)  # this batch's other threads stop too
        _give_back(connection, alert, error.errcode, str(error))
        return
    if isinstance(error, NotFollowing):
        followers.mark_not_following(alert.openid)
        db.session.commit()  # this thread's own unit of work, like every transition here
    _fail(connection, alert, error.errcode, str(error), outcome_label(error))


def _give_back(connection: Connection, alert: Alert, errcode: int | None, reason: str) -> None:
    """Back to queued with its attempt given back: the quota, not the delivery, stopped it."""
    _transition(connection, alert.delivery_id, ("sending",), state="queued", errcode=errcode,
                error=reason[:255], attempts=_TABLE.c.attempts - 1)


def _fail(connection: Connection, alert: Alert, errcode: int | None, reason: str,
          outcome: str | None) -> None:
    """Failed for good, errcode and reason kept; ``outcome`` labels the send metric."""
    if outcome:
        ALERT_SENDS.labels(channel=alert.channel, errcode=outcome).inc()
    _transition(connection, alert.delivery_id, ("queued", "sending"), state="failed",
                errcode=errcode, error=reason[:255], finished_at=utcnow())
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

_IDS = bindparam("ids", expanding=True)
_TRANSACTION = Transaction.__table__
# "queued", written so that no index serves it: see _CLAIM.
_QUEUED = func.coalesce(_TABLE.c.state, "") == "queued"

_LOAD = (select(_TABLE.c.id, _TABLE.c.channel, _TABLE.c.openid, _TRANSACTION.c.txn_id,
                _TRANSACTION.c.card_last4, _TRANSACTION.c.amount_fen, _TRANSACTION.c.currency,
                _TRANSACTION.c.direction, _TRANSACTION.c.merchant, _TRANSACTION.c.occurred_at,
                _TRANSACTION.c.balance_fen)
         .join(_TRANSACTION, _TRANSACTION.c.id == _TABLE.c.transaction_id)
         .where(_TABLE.c.id.in_(_IDS), _QUEUED)
         .order_by(_TABLE.c.id))

# queued → sending for those of ``ids`` still queued, keeping the first claim's time; a
# ``Claim`` of each claimed.
# The subquery locks the rows by primary key, skipping rows another worker is claiming right
# now rather than waiting (SKIP LOCKED; SQLite runs one writer at a time and renders no FOR
# UPDATE); the state condition, checked on the locked row, keeps a row from being claimed
# twice. That condition is written so that no index can serve it (COALESCE): statistics
# taken while 'queued' was rare make ix_delivery_state_updated_at look like the way in, and
# during a backlog its 'queued' range is the whole backlog, scanned per claim or, in a nested
# loop, per row (seen at 25,000 queued: claims of minutes, and the backlog only grew).
_CLAIMABLE = _TABLE.alias("claimable")
_CLAIM = (update(_TABLE)
          .where(_TABLE.c.id.in_(select(_CLAIMABLE.c.id).where(_CLAIMABLE.c.id.in_(_IDS))
                                 .with_for_update(skip_locked=True)),
                 _QUEUED)
          .values(state="sending", attempts=_TABLE.c.attempts + 1, updated_at=_NOW,
                  first_claimed_at=func.coalesce(_TABLE.c.first_claimed_at, _NOW))
          .returning(_TABLE.c.id, _TABLE.c.resend, _TABLE.c.attempts,
                     _TABLE.c.first_claimed_at))

# sent, from ``sending``, or ``queued`` when the sweep already gave up on this worker (the
# resend is then cancelled).
_SENT = {"state": "sent", "msgid": _MSG_ID, "sent_at": _NOW, "errcode": None, "error": None,
         "marked": bindparam("marked", type_=Boolean()), "updated_at": _NOW}
# (An OR, not IN: an IN list is expanded per execution, which executemany cannot take.)
_RECORD = (update(_TABLE).where(_ID, or_(_TABLE.c.state == "sending", _TABLE.c.state == "queued"))
           .values(**_SENT))
# WeChat may post TEMPLATESENDJOBFINISH before the record lands; its handler then found no row
# with this msgid and kept only the TemplateJobResult, which is applied here in one go.
_RECORD_TEMPLATE = _RECORD.values(**finished_values(
    select(TemplateJobResult.status).where(TemplateJobResult.msg_id == _MSG_ID)
    .scalar_subquery(), _NOW, pending="sent"))

_RECORDS = {"template": _RECORD_TEMPLATE, "subscribe": _RECORD}

_FINISH = (update(_TABLE)
           .where(_TABLE.c.msgid == _MSG_ID, _TABLE.c.channel == "template",
                  _TABLE.c.state == "sent")
           .values(updated_at=_NOW, **finished_values(bindparam("status", type_=String()), _NOW)))
