"""Baseline of bench/alerts.py: the transaction feed sending its alerts inside the request.

What a straightforward implementation does. It is the project's own app
(``create_app``: the same settings, database, Redis token cache, WeChat client,
signature check, validation and points ledger), with the handler of
``POST /api/transactions`` replaced by one that

1. verifies the signature and validates the batch (the project's ``members.feed``),
2. stores the new transactions (``ON CONFLICT (txn_id) DO NOTHING``) and their
   points, and commits,
3. then calls WeChat's ``message/template/send`` once per new transaction of a
   holder bound to an official-account openid, one call after the other, through
   the project's client (token from Redis, retries on -1/5xx/timeouts), with the
   project's message body (``members.alert_content.template_message``),
4. and answers 202 when the last call has answered.

No outbox, no queue, no workers: a send that fails is logged and lost, and a
batch's answer waits for all of its sends. Each message carries client_msg_id
``txn-alert-<transaction row id>`` (the project's carries its delivery row id),
which lets the bench map what WeChat received back to the transaction.

Serve with ``gunicorn 'bench.peers.naive_alerts:create()'`` in the project's environment.
"""

from __future__ import annotations

import logging
from operator import attrgetter
from typing import Any

from flask import Flask, Response, current_app, jsonify
from flask import request as flask_request
from sqlalchemy import select

from app import create_app
from core.db import bulk_insert, db
from core.jsonapi import read_body
from members.holders.models import CardHolder
from members.transactions import feed, points
from members.transactions.alerts import content
from members.transactions.alerts.content import Alert
from members.transactions.models import Transaction
from wechat import clients
from wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)
ENDPOINT = "txn_feed.post_transactions"  # the project's view of POST /api/transactions


def create() -> Flask:
    """The project's app with the feed's handler replaced by :func:`post_transactions`."""
    app = create_app()
    if ENDPOINT not in app.view_functions:
        raise RuntimeError(f"the project has no endpoint {ENDPOINT!r} to replace")
    app.view_functions[ENDPOINT] = post_transactions
    return app


def post_transactions() -> tuple[Response, int]:
    config = current_app.config
    raw = read_body(config["TXN_FEED_MAX_BYTES"])
    feed.verify_signature(config["TXN_FEED_SECRET"], flask_request.headers.get("X-Timestamp"),
                          flask_request.headers.get("X-Signature"), raw,
                          window=config["TXN_FEED_WINDOW"])
    items = feed.parse_batch(raw, max_items=config["TXN_FEED_MAX_ITEMS"],
                             max_amount_fen=config["TXN_MAX_AMOUNT_FEN"])
    new = _store(items)
    known = [row for row in new if row["holder_id"] is not None]
    targets = feed.alert_targets({row["holder_id"] for row in known})
    db.session.commit()
    sent, failed = _send_all(known, targets)
    return jsonify(accepted=len(new), duplicate=len(items) - len(new),
                   unknown_card=len(new) - len(known), sent=sent, failed=failed), 202


def _store(items: list[feed.FeedItem]) -> list[dict[str, Any]]:
    """Insert the transactions not seen before and their points; those rows, with ``id``."""
    if not items:
        return []
    holders = dict(db.session.execute(
        select(CardHolder.card_index, CardHolder.id)
        .where(CardHolder.card_index.in_({item.card_index for item in items}))).tuples().all())
    rows = [{
        "txn_id": item.txn_id, "card_index": item.card_index, "card_last4": item.card_last4,
        "holder_id": holders.get(item.card_index), "amount_fen": item.amount_fen,
        "currency": item.currency, "direction": item.direction, "merchant": item.merchant,
        "channel": item.channel, "occurred_at": item.occurred_at,
        "balance_fen": item.balance_fen,
    } for item in sorted(items, key=attrgetter("txn_id"))]
    inserted = dict((txn_id, row_id) for row_id, txn_id in bulk_insert(
        Transaction.__table__, rows, skip_conflicts_on=["txn_id"], returning=["id", "txn_id"]))
    new = [{**row, "id": inserted[row["txn_id"]]} for row in rows if row["txn_id"] in inserted]
    points.record(points.rules_of(current_app), [row for row in new if row["holder_id"]])
    return new


def _send_all(rows: list[dict[str, Any]],
              targets: dict[int, list[tuple[str, str]]]) -> tuple[int, int]:
    """Send each row's template messages in turn; (sent, failed)."""
    sent = failed = 0
    for row in rows:
        for channel, openid in targets.get(row["holder_id"], []):
            if channel != feed.TEMPLATE:
                continue  # the mini-program channel is not part of this baseline
            if _send(row, openid):
                sent += 1
            else:
                failed += 1
    return sent, failed


def _send(row: dict[str, Any], openid: str) -> bool:
    alert = Alert(row["id"], feed.TEMPLATE, openid, row["txn_id"], row["card_last4"],
                  row["amount_fen"], row["currency"], row["direction"], row["merchant"],
                  row["occurred_at"], row["balance_fen"])
    body = content.template_message(alert, False, current_app.config)
    try:
        clients.official_account().post("message/template/send", data=body)
    except WeChatAPIError as exc:  # refused, or unavailable after the client's retries
        log.warning("alert lost", extra={"transaction_id": row["id"], "error": str(exc)})
        return False
    return True
