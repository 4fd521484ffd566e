"""The security audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow


class SecurityEvent(db.Model):
    """Append-only audit trail. Identifiers are keyed hashes, never plaintext."""

    __tablename__ = "security_event"
    __table_args__ = (Index("ix_security_event_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    openid_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    card_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 index=True)
