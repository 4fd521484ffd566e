"""Transactions with queued deliveries, as the feed leaves them, and helpers to watch them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import requests
from factories import import_holders
from sqlalchemy import select, update

from core.db import db
from members.holders.models import CardHolder
from members.transactions.alerts.models import Delivery
from members.transactions.models import Transaction

OA_OPENID = "oAlertHolder0000000000000001"
MP_OPENID = "oAlertMiniapp000000000000001"
OCCURRED = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
_txn_numbers = count(1)


def queue_alerts(app, n: int = 1, channel: str = "template", openid: str = OA_OPENID,
                 **txn_fields) -> list[int]:
    """``n`` transactions of one holder, each with a queued delivery; the delivery ids."""
    with app.app_context():
        holder = db.session.scalar(select(CardHolder).order_by(CardHolder.id))
        if holder is None:
            import_holders(app, 1)
            holder = db.session.scalar(select(CardHolder).order_by(CardHolder.id))
        ids = []
        for _ in range(n):
            txn = Transaction(
                txn_id=f"T{next(_txn_numbers):014d}", card_index=holder.card_index,
                card_last4=holder.card_last4, holder_id=holder.id, **{
                    "amount_fen": 12345, "currency": "CNY", "direction": "debit",
                    "merchant": "Example Coffee", "channel": "POS", "occurred_at": OCCURRED,
                    "balance_fen": 987654, **txn_fields})
            db.session.add(txn)
            db.session.flush()
            delivery = Delivery(transaction_id=txn.id, holder_id=holder.id, openid=openid,
                                channel=channel, state="queued")
            db.session.add(delivery)
            db.session.flush()
            ids.append(delivery.id)
        db.session.commit()
        return ids


def deliveries(app, ids: list[int] | None = None) -> list[Delivery]:
    """The rows, fresh from the database, in id order."""
    with app.app_context():
        query = select(Delivery).order_by(Delivery.id)
        if ids is not None:
            query = query.where(Delivery.id.in_(ids))
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def txn_id_of(app, delivery_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Transaction.txn_id).join(
            Delivery, Delivery.transaction_id == Transaction.id).where(Delivery.id == delivery_id))


def age(app, ids: list[int], seconds: float = 3600) -> None:
    """Make the rows look untouched for ``seconds``, as a sweep would find them much later."""
    with app.app_context():
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(
            updated_at=datetime.now(UTC) - timedelta(seconds=seconds)))
        db.session.commit()


def sim_stats(sim) -> dict:
    return requests.get(f"{sim.url}/sim/stats", timeout=5).json()


def messages_sent(sim) -> int:
    """Template messages WeChat really sent (a replayed client_msg_id is not one)."""
    return sim_stats(sim).get("sent", {}).get("template", 0)


def sim_events(sim) -> list[dict]:
    return requests.get(f"{sim.url}/sim/callbacks", timeout=5).json()["callbacks"]
