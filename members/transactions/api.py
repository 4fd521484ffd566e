"""``POST /api/transactions``: core banking's transaction feed. Thin: the rules are in feed.py.

Not a member call: the caller is core banking, proven by the HMAC signature,
so no bearer token and no cookie is involved.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from core.db import db
from core.errors import ApiError
from core.jsonapi import read_body
from members.transactions import feed, points
from members.transactions.metrics import TXN_FEED_ITEMS, TXN_FEED_REJECTED, TXN_FEED_SECONDS

log = logging.getLogger(__name__)
bp = Blueprint("txn_feed", __name__, url_prefix="/api")


@bp.post("/transactions")
def post_transactions() -> tuple[Response, int]:
    config = current_app.config
    with TXN_FEED_SECONDS.time():
        try:
            raw = read_body(config["TXN_FEED_MAX_BYTES"])  # 413 before reading
            feed.verify_signature(config["TXN_FEED_SECRET"], request.headers.get("X-Timestamp"),
                                  request.headers.get("X-Signature"), raw,
                                  window=config["TXN_FEED_WINDOW"])  # 401 before parsing
            items = feed.parse_batch(raw, max_items=config["TXN_FEED_MAX_ITEMS"],
                                     max_amount_fen=config["TXN_MAX_AMOUNT_FEN"])
        except ApiError as exc:
            TXN_FEED_REJECTED.labels(exc.code).inc()
            raise
        result = feed.store(items, points.rules_of(current_app))
        db.session.commit()  # the alerts go to the sender after this, never before
    TXN_FEED_ITEMS.labels("accepted").inc(result.accepted)
    TXN_FEED_ITEMS.labels("duplicate").inc(result.duplicate)
    TXN_FEED_ITEMS.labels("unknown_card").inc(result.unknown_card)
    log.info("transactions stored", extra={
        "accepted": result.accepted, "duplicate": result.duplicate,
        "unknown_card": result.unknown_card, "deliveries": len(result.delivery_ids)})
    return jsonify(accepted=result.accepted, duplicate=result.duplicate,
                   unknown_card=result.unknown_card), 202
