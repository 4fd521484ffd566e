"""What the transaction page (``/m/transactions/<txn_id>``, the alert's link) shows.

A transaction is shown only to a caller whose bound card it belongs to
(``binding.holder_of``). For everyone else it does not exist: an unknown
txn_id, another holder's transaction, and a caller without a card all come
back as None from one and the same lookup, so the page cannot be used to learn
which transactions exist. Values are formatted by ``members.alert_content``,
so the page says exactly what the alert said.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from core.db import db
from members.holders.binding import Actor, holder_of
from members.protection.masking import mask_card
from members.transactions import points
from members.transactions.alerts.content import DIRECTIONS, local_time, yuan
from members.transactions.alerts.models import Delivery
from members.transactions.feed import TXN_ID
from members.transactions.models import Transaction

# The feed's txn_id rule (members/feed.py): anything else names no transaction, and is
# never sent to the database (PostgreSQL refuses a NUL in a string with an error).


@dataclass(frozen=True)
class TransactionView:
    """One transaction as the page shows it: display strings, nothing else of the card."""

    txn_id: str
    card: str  # "**** 1234"
    amount: str  # "123.45元", or "12.00 USD"
    direction: str  # 支出 | 入账
    debit: bool
    merchant: str
    time: str  # Asia/Shanghai
    balance: str | None  # as core banking sent it with the transaction
    # The alert this caller got carried the resend marker (an unmarked resend inside WeChat's
    # client_msg_id window showed as the only alert); None: no alert went to them.
    resend: bool | None
    points: int  # the holder's current balance


def well_formed(txn_id: str) -> bool:
    return TXN_ID.fullmatch(txn_id) is not None


def for_actor(actor: Actor, txn_id: str) -> TransactionView | None:
    """The transaction ``txn_id`` if it belongs to the card bound to ``actor``, else None."""
    if not well_formed(txn_id):
        return None
    holder = holder_of(actor)
    if holder is None:
        return None
    txn = db.session.scalar(select(Transaction).where(
        Transaction.txn_id == txn_id, Transaction.holder_id == holder.id))
    if txn is None:
        return None
    return TransactionView(
        txn_id=txn.txn_id,
        card=mask_card(txn.card_last4),
        amount=yuan(txn.amount_fen, txn.currency),
        direction=DIRECTIONS.get(txn.direction, txn.direction),
        debit=txn.direction == "debit",
        merchant=txn.merchant,
        time=local_time(txn.occurred_at),
        balance=yuan(txn.balance_fen, txn.currency) if txn.balance_fen is not None else None,
        resend=_resent_to(txn, actor.openid),
        points=points.balance(holder.id),
    )


def _resent_to(txn: Transaction, openid: str) -> bool | None:
    """Whether the alert this openid got for ``txn`` was marked as a resend (None: it got none).
    """
    flags = db.session.scalars(select(Delivery.marked).where(
        Delivery.transaction_id == txn.id, Delivery.openid == openid)).all()
    return any(flags) if flags else None
