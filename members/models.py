"""What the bank knows of WeChat users: followers of the official account and their scans."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, db, utcnow


class Follower(db.Model):
    """One official-account openid: whether it follows, and where it came from."""

    __tablename__ = "follower"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed: Mapped[bool] = mapped_column(default=False)
    # The QR scene of the follow that first brought this user (channel attribution).
    first_scene: Mapped[str | None] = mapped_column(String(64))
    subscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class QrScan(db.Model):
    """Every scan of a parametric QR code: a follow through it, or a scan by a follower."""

    __tablename__ = "qr_scan"
    __table_args__ = (Index("ix_qr_scan_scene_scanned_at", "scene", "scanned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    scene: Mapped[str] = mapped_column(String(64))
    followed: Mapped[bool]  # True when the scan made the user follow
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TemplateJobResult(db.Model):
    """WeChat's final word on a template message (TEMPLATESENDJOBFINISH), by its msgid."""

    __tablename__ = "template_job_result"

    msg_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
