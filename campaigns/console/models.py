"""Staff accounts, their API tokens, and the append-only audit of what staff did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import BigId, UTCDateTime, db, utcnow


class Staff(db.Model):
    """A person of the bank who uses the console or its API.

    Never deleted (the audit trail refers to it): an account that must stop is
    ``disabled``. ``branch`` is set exactly for managers (a customer manager of one branch).
    """

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'marketer', 'approver', 'admin', 'manager')",
                        name="role"),
        CheckConstraint("(role = 'manager') = (branch IS NOT NULL)", name="manager_branch"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    branch: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, PHC string with its parameters
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffToken(db.Model):
    """A bearer token of the console's JSON API; only its SHA-256 is kept."""

    __tablename__ = "staff_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(BigId, ForeignKey("staff.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff: Mapped[Staff] = relationship(lazy="joined")


class StaffAction(db.Model):
    """Append-only audit of staff: who did what to which thing, with the values before and
    after, from where, when. A PostgreSQL trigger refuses UPDATE and DELETE.

    ``username`` is the actor's name at the time ("cli" for the command line, "anonymous"
    for a login attempt on an unknown account); ``staff_id`` is set for staff. ``ip`` is
    kept in clear: staff addresses are the bank's network, not customers' personal data.
    ``before`` and ``after`` never hold voucher codes, secrets or personal data
    (campaigns.console.audit).
    """

    __tablename__ = "staff_action"
    __table_args__ = (Index("ix_staff_action_staff_id_id", "staff_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id"))
    username: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    before: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    ip: Mapped[str | None] = mapped_column(String(45))
