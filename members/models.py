"""What the bank keeps about card holders and WeChat users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow


class Follower(db.Model):
    """One official-account openid: whether it follows, and where it came from."""

    __tablename__ = "follower"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed: Mapped[bool] = mapped_column(default=False)
    # The QR scene of the follow that first brought this user (channel attribution).
    first_scene: Mapped[str | None] = mapped_column(String(64))
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 onupdate=utcnow)


class QrScan(db.Model):
    """Every scan of a parametric QR code: a follow through it, or a scan by a follower."""

    __tablename__ = "qr_scan"
    __table_args__ = (Index("ix_qr_scan_scene_scanned_at", "scene", "scanned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    scene: Mapped[str] = mapped_column(String(64))
    followed: Mapped[bool]  # True when the scan made the user follow
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TemplateJobResult(db.Model):
    """WeChat's final word on a template message (TEMPLATESENDJOBFINISH), by its msgid."""

    __tablename__ = "template_job_result"

    msg_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CardHolder(db.Model):
    """A holder of the co-branded card, imported from the bank's registry.

    Personal data is stored only as ciphertext (``members.pii``: authenticated
    encryption carrying its key id) and found by blind index (keyed hash);
    nothing here is ever searched or shown in plaintext.
    """

    __tablename__ = "card_holder"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    card_index: Mapped[str] = mapped_column(String(64), unique=True)
    card_no: Mapped[str] = mapped_column(Text)
    card_last4: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    phone_index: Mapped[str] = mapped_column(String(64), index=True)
    id_no: Mapped[str] = mapped_column(Text)
    id_no_index: Mapped[str] = mapped_column(String(64), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    city: Mapped[str] = mapped_column(String(32))
    branch: Mapped[str] = mapped_column(String(32))
    # Row fingerprint of the imported values, so re-importing the same file changes nothing.
    source_digest: Mapped[str] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 onupdate=utcnow)


class Binding(db.Model):
    """A WeChat openid of one app ('miniapp' or 'oa') bound to a card holder.

    At most one active binding per openid and per holder and app; unbinding
    keeps the row (``unbound_at``) for the audit trail.
    """

    __tablename__ = "binding"
    __table_args__ = (
        Index("uq_binding_active_openid", "app", "openid", unique=True,
              sqlite_where=text("unbound_at IS NULL"),
              postgresql_where=text("unbound_at IS NULL")),
        Index("uq_binding_active_holder", "holder_id", "app", unique=True,
              sqlite_where=text("unbound_at IS NULL"),
              postgresql_where=text("unbound_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("card_holder.id"), index=True)
    app: Mapped[str] = mapped_column(String(8))
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    unbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberSession(db.Model):
    """A mini-program login: an opaque bearer token (stored hashed) and its session key."""

    __tablename__ = "member_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    unionid: Mapped[str | None] = mapped_column(String(64))
    session_key: Mapped[str] = mapped_column(Text)  # encrypted; never leaves the server
    phone: Mapped[str | None] = mapped_column(Text)  # encrypted, from getuserphonenumber
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BindChallenge(db.Model):
    """One SMS code sent for a binding attempt; single use, bounded tries, short life."""

    __tablename__ = "bind_challenge"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the public challenge_id
    app: Mapped[str] = mapped_column(String(8))
    openid: Mapped[str] = mapped_column(String(64), index=True)
    unionid: Mapped[str | None] = mapped_column(String(64))
    # None when card and phone matched no holder: the flow looks the same, the code never works.
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("card_holder.id"))
    card_index: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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


class Transaction(db.Model):
    """A card transaction posted by core banking; ``txn_id`` makes the feed idempotent."""

    __tablename__ = "card_transaction"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(64), unique=True)
    card_index: Mapped[str] = mapped_column(String(64), index=True)
    card_last4: Mapped[str] = mapped_column(String(4))
    # None for cards the registry does not know: stored and counted, never alerted.
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("card_holder.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    direction: Mapped[str] = mapped_column(String(8))  # debit | credit
    merchant: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    balance_fen: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


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


class PointEntry(db.Model):
    """Append-only points ledger; a holder's balance is the sum of their entries.

    (txn_id, kind) is unique, so a transaction earns or takes back points once.
    """

    __tablename__ = "point_entry"
    __table_args__ = (UniqueConstraint("txn_id", "kind"),
                      Index("ix_point_entry_holder_id_id", "holder_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("card_holder.id"))
    txn_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # earn | reverse | adjust
    points: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
