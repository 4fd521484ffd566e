"""Transaction alerts: one delivery row per WeChat message to send, and WeChat's reports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow


class TemplateJobResult(db.Model):
    """WeChat's final word on a template message (TEMPLATESENDJOBFINISH), by its msgid."""

    __tablename__ = "template_job_result"

    msg_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(db.Model):
    """One alert of one transaction to one openid, and where it stands.

    queued → sending → sent (WeChat's msgid) → delivered | refused, or failed
    with the errcode kept. A row found stuck in ``sending`` (a worker died
    between WeChat's answer and this row) is sent again with ``resend`` set;
    the message says it is a resend (``marked``) only when WeChat could show it
    as a second one (``alert_content.marked``), so the holder reads it as a
    repeat, not a second charge.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("transaction_id", "openid", "channel"),
        Index("ix_delivery_state_updated_at", "state", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("card_transaction.id"))
    holder_id: Mapped[int] = mapped_column(ForeignKey("card_holder.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # template | subscribe
    state: Mapped[str] = mapped_column(String(16), default="queued")
    resend: Mapped[bool] = mapped_column(default=False)
    # The message WeChat last accepted for this row carried ALERT_RESEND_MARKER.
    marked: Mapped[bool] = mapped_column(default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(default=0)
    msgid: Mapped[str | None] = mapped_column(String(32), index=True)
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a worker first claimed the row for sending, kept through later claims: WeChat's
    # client_msg_id window for it opens no earlier, and a resend goes unmarked only while
    # that window, counted from here, is surely still open.
    first_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
