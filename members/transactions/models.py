"""Card transactions from core banking and the points ledger they feed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow


class Transaction(db.Model):
    """A card transaction posted by core banking; ``txn_id`` makes the feed idempotent."""

    __tablename__ = "card_transaction"
    # A holder's transactions over a time range: the spend sum of campaign eligibility
    # (campaigns.benefits) reads one holder's month, not the table; it serves lookups by
    # holder alone too.
    __table_args__ = (Index("ix_card_transaction_holder_id_occurred_at",
                            "holder_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(64), unique=True)
    card_index: Mapped[str] = mapped_column(String(64), index=True)
    card_last4: Mapped[str] = mapped_column(String(4))
    # None for cards the registry does not know: stored and counted, never alerted.
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("card_holder.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    direction: Mapped[str] = mapped_column(String(8))  # debit | credit
    merchant: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    balance_fen: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PointEntry(db.Model):
    """Append-only points ledger; a holder's balance is the sum of their entries.

    (txn_id, kind) is unique, so a transaction earns or takes back points once;
    (kind, reference) likewise for entries of something else than a transaction (a
    redemption spends its points once).
    """

    __tablename__ = "point_entry"
    __table_args__ = (UniqueConstraint("txn_id", "kind"),
                      Index("uq_point_entry_kind_reference", "kind", "reference", unique=True),
                      Index("ix_point_entry_holder_id_id", "holder_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("card_holder.id"))
    txn_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # earn | reverse | redeem | adjust
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(128))
    # What an entry without a transaction is for, e.g. "redemption:42"; None for the others.
    reference: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
