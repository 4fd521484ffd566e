"""Benefit campaigns: their options, the voucher codes in stock, and the redemptions.

A code is in stock while ``claimed_at`` is NULL; a redemption points at the one code
it was given (``redemption.code_id`` is unique), so a code can belong to one
redemption at most whatever the claiming code does. Codes are ciphertext (the PII
vault, context ``voucher_code.code``) and found only by their blind index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import BigId, UTCDateTime, db, utcnow

DRAFT = "draft"
PUBLISHED = "published"


class Campaign(db.Model):
    """A benefit programme: open between ``starts_at`` and ``ends_at`` once published."""

    __tablename__ = "campaign"
    __table_args__ = (CheckConstraint("state IN ('draft', 'published')", name="state_known"),
                      CheckConstraint("starts_at < ends_at", name="starts_before_end"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The parts given, as written: {"tiers": [...], "min_spend_fen": n}; {} for everyone bound.
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=DRAFT)  # draft | published
    created_by: Mapped[str] = mapped_column(String(64))  # staff usernames
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    options: Mapped[list[CampaignOption]] = relationship(
        back_populates="campaign", order_by="CampaignOption.position",
        cascade="all, delete-orphan")


class CampaignOption(db.Model):
    """One benefit of a campaign, priced in points (0: free for the eligible)."""

    __tablename__ = "campaign_option"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),
                      CheckConstraint("points >= 0", name="points_not_negative"),
                      CheckConstraint("limit_per_holder IS NULL OR limit_per_holder >= 1",
                                      name="limit_positive"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    key: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(128))
    points: Mapped[int]
    limit_per_holder: Mapped[int | None]  # None: no limit
    position: Mapped[int]  # the order the campaign JSON lists it in

    campaign: Mapped[Campaign] = relationship(back_populates="options")


class VoucherCode(db.Model):
    """One partner code of an option's stock, encrypted; in stock while ``claimed_at`` is NULL."""

    __tablename__ = "voucher_code"
    __table_args__ = (
        UniqueConstraint("option_id", "code_index"),
        # The claim's way in (the first code in stock of an option) and the stock count: only
        # rows still in stock, so both stay small however many codes were given out.
        Index("ix_voucher_code_in_stock", "option_id", "id",
              sqlite_where=text("claimed_at IS NULL"),
              postgresql_where=text("claimed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    option_id: Mapped[int] = mapped_column(ForeignKey("campaign_option.id"))
    code: Mapped[str] = mapped_column(Text)  # vault token, context "voucher_code.code"
    code_index: Mapped[str] = mapped_column(String(64))  # blind index: duplicates per option
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Redemption(db.Model):
    """A code given to a holder. (holder_id, request_id) is unique: a retry redeems nothing more.

    ``points_balance`` is the balance the first answer showed, so that a retry gets the
    same answer; the balance itself is always the ledger's sum.
    """

    __tablename__ = "redemption"
    __table_args__ = (
        UniqueConstraint("holder_id", "request_id"),
        Index("ix_redemption_holder_id_option_id", "holder_id", "option_id"),
        Index("ix_redemption_campaign_id_redeemed_at", "campaign_id", "redeemed_at"),
        Index("ix_redemption_option_id", "option_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("card_holder.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    option_id: Mapped[int] = mapped_column(ForeignKey("campaign_option.id"))
    code_id: Mapped[int] = mapped_column(ForeignKey("voucher_code.id"), unique=True)
    points_spent: Mapped[int]
    points_balance: Mapped[int]
    request_id: Mapped[str] = mapped_column(String(64))
    redeemed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
