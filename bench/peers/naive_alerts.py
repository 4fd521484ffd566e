"""Baseline of bench/alerts.py: the transaction feed sending its alerts inside the request.

What a straightforward implementation does. It is the project's own app and its
own ``POST /api/transactions`` (``create_app``: the same settings, database,
Redis token cache, WeChat client, signature check, validation, storage and
points ledger) with one step of ``members.transactions.feed.store`` replaced:
where the project writes one outbox row per alert (``feed._queue_alerts``), this
baseline has the alerts sent once the batch is committed, still inside the
request (``core.jobs.call_after_commit``): ``message/template/send`` once per new
transaction of a holder bound to an official-account openid (``feed.alert_targets``),
one call after the other, through the project's client (token from Redis,
retries on -1/5xx/timeouts), with the project's message body
(``members.transactions.alerts.content.template_message``). The feed answers
202 when the last call has answered.

No outbox, no queue, no workers: a send that fails is logged and lost, and a
batch's answer waits for all of its sends. Each message carries client_msg_id
``txn-alert-<transaction row id>`` (the project's carries its delivery row id),
which lets the bench map what WeChat received back to the transaction.

Serve with ``gunicorn 'bench.peers.naive_alerts:create()'`` in the project's environment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from app import create_app
from core.jobs import call_after_commit
from members.transactions import feed
from members.transactions.alerts import content
from members.transactions.alerts.content import Alert
from wechat import clients
from wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)
REPLACED = "_queue_alerts"  # the step of feed.store that writes the outbox rows


def create() -> Flask:
    """The project's app, its feed sending inside the request instead of queueing."""
    if not callable(getattr(feed, REPLACED, None)):
        raise RuntimeError(f"members.transactions.feed has no {REPLACED}() to replace")
    setattr(feed, REPLACED, send_after_commit)
    return create_app()


def send_after_commit(known: list[Mapping[str, Any]], new_ids: Mapping[str, int]) -> list[int]:
    """In place of the outbox rows: the alerts, to be sent once the batch is committed.

    Returns no delivery ids, so that nothing is handed to the project's sender.
    """
    targets = feed.alert_targets({row["holder_id"] for row in known})
    alerts = [
        Alert(new_ids[row["txn_id"]], feed.TEMPLATE, openid, row["txn_id"], row["card_last4"],
              row["amount_fen"], row["currency"], row["direction"], row["merchant"],
              row["occurred_at"], row["balance_fen"])
        for row in known for channel, openid in targets.get(row["holder_id"], [])
        if channel == feed.TEMPLATE  # the mini-program channel is not part of this baseline
    ]
    if alerts:
        call_after_commit(send_now, alerts)
    return []


def send_now(alerts: list[Alert]) -> None:
    """Each alert's template message in turn; one that WeChat refuses for good is lost."""
    for alert in alerts:
        body = content.template_message(alert, False, current_app.config)
        try:
            clients.official_account().post("message/template/send", data=body)
        except WeChatAPIError as exc:  # refused, or unavailable after the client's retries
            log.warning("alert lost", extra={"transaction_id": alert.delivery_id,
                                             "error": str(exc)})
