"""Attribution: every scan of a parametric QR code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db


class QrScan(db.Model):
    """Every scan of a parametric QR code: a follow through it, or a scan by a follower."""

    __tablename__ = "qr_scan"
    __table_args__ = (Index("ix_qr_scan_scene_scanned_at", "scene", "scanned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    scene: Mapped[str] = mapped_column(String(64))
    followed: Mapped[bool]  # True when the scan made the user follow
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)
