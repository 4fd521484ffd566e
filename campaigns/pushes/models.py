"""Audiences, pushes and their recipients: what marketing sends, to whom, and how each
recipient's send ended.

A push's recipients are frozen into ``push_delivery`` when it is approved (set-based
INSERT … SELECT from the audience's filter), so the report says who was meant even if
followers change later. Each delivery is claimed (``claimed``) in the database before
WeChat is called, as transaction alerts are: a worker that dies mid-send leaves claimed
rows behind, which recovery ends as ``failed``/``interrupted`` and never resends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow

# A push's life: approved pushes are scheduled; the scheduler starts them at send_at.
PENDING_APPROVAL = "pending_approval"
SCHEDULED = "scheduled"
SENDING = "sending"
PAUSED = "paused"
DONE = "done"
CANCELLED = "cancelled"
PUSH_STATES = (PENDING_APPROVAL, SCHEDULED, SENDING, PAUSED, DONE, CANCELLED)

MASS = "mass"
CUSTOM = "custom"
SUBSCRIBE = "subscribe"
CHANNELS = (MASS, CUSTOM, SUBSCRIBE)

# A recipient's life. ``claimed`` is internal (the report shows it as pending): the send
# is in flight, and after a crash it ends failed/interrupted, never resent.
RECIPIENT_PENDING = "pending"
RECIPIENT_CLAIMED = "claimed"
RECIPIENT_SENT = "sent"
RECIPIENT_SKIPPED = "skipped"
RECIPIENT_FAILED = "failed"
RECIPIENT_STATES = (RECIPIENT_PENDING, RECIPIENT_CLAIMED, RECIPIENT_SENT, RECIPIENT_SKIPPED,
                    RECIPIENT_FAILED)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Audience(db.Model):
    """A named filter over official-account followers (CONTRACT "Audiences and pushes")."""

    __tablename__ = "audience"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)  # as written, validated
    created_by: Mapped[str] = mapped_column(String(32))  # staff username
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Push(db.Model):
    """One message to an audience through one channel, approved by a second person."""

    __tablename__ = "push"
    __table_args__ = (
        CheckConstraint(_in("state", PUSH_STATES), name="state_known"),
        CheckConstraint(_in("channel", CHANNELS), name="channel_known"),
        CheckConstraint("rate_per_s >= 1", name="rate_positive"),
        CheckConstraint("approved_by IS NULL OR approved_by <> created_by", name="four_eyes"),
        Index("ix_push_state_send_at", "state", "send_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    audience_id: Mapped[int] = mapped_column(BigId, ForeignKey("audience.id"))
    channel: Mapped[str] = mapped_column(String(16))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: once approved
    rate_per_s: Mapped[int] = mapped_column(Integer)
    quiet_from: Mapped[str | None] = mapped_column(String(5))  # "HH:MM", Asia/Shanghai
    quiet_to: Mapped[str | None] = mapped_column(String(5))
    state: Mapped[str] = mapped_column(String(16), default=PENDING_APPROVAL)
    # Why a paused push is paused: "staff" (resumed only by staff) or a WeChat quota reason
    # (resumed by itself at ``paused_until``).
    pause_reason: Mapped[str | None] = mapped_column(String(32))
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total: Mapped[int] = mapped_column(Integer, default=0)  # recipients frozen at approval
    created_by: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(32))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PushDelivery(db.Model):
    """One recipient of one push: frozen at approval, claimed before WeChat is called."""

    __tablename__ = "push_delivery"
    __table_args__ = (
        UniqueConstraint("push_id", "openid"),
        CheckConstraint(_in("state", RECIPIENT_STATES), name="state_known"),
        # A batch's way in (the next pending recipients of a push) and the progress counts.
        Index("ix_push_delivery_push_id_state_id", "push_id", "state", "id"),
        Index("ix_push_delivery_mass_job_id", "mass_job_id"),
        # The sweep's stale claims across all pushes: only rows in flight, so it stays tiny.
        Index("ix_push_delivery_claimed_at", "claimed_at",
              sqlite_where=text("state = 'claimed'"), postgresql_where=text("state = 'claimed'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    push_id: Mapped[int] = mapped_column(BigId, ForeignKey("push.id"))
    openid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=RECIPIENT_PENDING)
    reason: Mapped[str | None] = mapped_column(String(32))  # monthly_cap, outside_48h, …
    errcode: Mapped[int | None] = mapped_column(Integer)  # WeChat's, when it refused
    mass_job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("push_mass_job.id"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PushMassJob(db.Model):
    """One mass/send call (≤ 10,000 openids) and what MASSSENDJOBFINISH later said of it.

    ``client_msg_id`` is made before the call and sent as WeChat's ``clientmsgid``: a retried
    call is refused with 45065 and the first call's msg_id, so it cannot send twice.
    """

    __tablename__ = "push_mass_job"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    push_id: Mapped[int] = mapped_column(BigId, ForeignKey("push.id"), index=True)
    client_msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    msg_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # WeChat's; 64-bit
    recipients: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # From MASSSENDJOBFINISH: "send success", "send fail", "err(n)"; and its counts.
    status: Mapped[str | None] = mapped_column(String(64))
    total_count: Mapped[int | None] = mapped_column(Integer)
    filter_count: Mapped[int | None] = mapped_column(Integer)
    sent_count: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int | None] = mapped_column(Integer)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MassAllowance(db.Model):
    """Mass messages a follower was sent in one Asia/Shanghai calendar month, across all
    pushes: WeChat delivers at most 4, so the fifth is skipped (``monthly_cap``) rather
    than spent. Taken with one conditional upsert per batch, so two pushes racing for the
    same follower cannot both take the fourth."""

    __tablename__ = "mass_allowance"
    __table_args__ = (CheckConstraint("used >= 0", name="used_not_negative"),)

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-12"
    used: Mapped[int] = mapped_column(Integer, default=0)


class SubscriptionGrant(db.Model):
    """A follower's answer to an official-account subscription notice template, from
    ``subscribe_msg_popup_event`` and ``subscribe_msg_change_event``."""

    __tablename__ = "subscription_grant"
    __table_args__ = (
        CheckConstraint("status IN ('accept', 'reject')", name="status_known"),
        Index("ix_subscription_grant_template_id_status", "template_id", "status"),
    )

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
