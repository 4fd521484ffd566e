"""Playing core banking in tests: signed feed posts and transaction items."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from core.db import db
from members.transactions.alerts.models import Delivery
from members.transactions.models import PointEntry, Transaction


def item(n: int, card: str, **fields: Any) -> dict[str, Any]:
    """A valid transaction like the contract's example; ``fields`` override or add."""
    return {"txn_id": f"T2026112100{n:05d}", "card_no": card, "amount_fen": 12345,
            "currency": "CNY", "direction": "debit", "merchant": "Example Coffee",
            "channel": "POS", "occurred_at": "2026-11-21T12:00:00+08:00",
            "balance_fen": 987654, **fields}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Computed here, not with the app's code, so the two are checked against each other."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def post_feed(client: FlaskClient, app: Flask, payload: Any = None, *, raw: bytes | None = None,
              timestamp: int | None = None, secret: str | None = None,
              headers: dict[str, str] | None = None) -> TestResponse:
    """POST /api/transactions signed as core banking does; ``headers`` override the signed ones."""
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = {"X-Timestamp": stamp,
              "X-Signature": signature(secret or app.config["TXN_FEED_SECRET"], stamp, body)}
    return client.post("/api/transactions", data=body, content_type="application/json",
                       headers={**signed, **(headers or {})})


def counts(app: Flask) -> dict[str, int]:
    """Rows of what the feed writes."""
    with app.app_context():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in (Transaction, PointEntry, Delivery)}


NOTHING = {"card_transaction": 0, "point_entry": 0, "delivery": 0}
