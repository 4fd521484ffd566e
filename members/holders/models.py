"""Card holders from the registry, the WeChat users bound to them, their sessions and
binding challenges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import BigId, UTCDateTime, db, utcnow


class Follower(db.Model):
    """One official-account openid: whether it follows, and where it came from."""

    __tablename__ = "follower"
    # A channel's followers over a period (campaigns.attribution.funnel).
    __table_args__ = (Index("ix_follower_first_scene_first_scene_at",
                            "first_scene", "first_scene_at"),
                      # Audiences' active_within_hours: a range of recent interactions.
                      Index("ix_follower_last_interaction_at", "last_interaction_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed: Mapped[bool] = mapped_column(default=False)
    # The QR scene of the follow that first brought this user (channel attribution), and
    # when: a channel's funnel over a period counts the followers it brought in that period.
    first_scene: Mapped[str | None] = mapped_column(String(64))
    first_scene_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The follower's last message or event of any kind, and last message it typed or sent
    # (only a message opens WeChat's 48-hour customer-service window).
    last_interaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 onupdate=utcnow)


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
        # Every binding an openid ever had, closed ones too: a channel's funnel counts who
        # bound, whether or not they are still bound (campaigns.attribution.funnel).
        Index("ix_binding_app_openid", "app", "openid"),
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


class MiniappArrival(db.Model):
    """A first-time mini-program user who came through a channel's mini-program code: the
    ``channel`` of ``POST /api/miniapp/login`` (the code's scene). Written once, at the
    first login only: the first channel keeps the user. ``unionid`` (code2session's) lets
    the funnel find the person's binding from either app."""

    __tablename__ = "miniapp_arrival"
    __table_args__ = (Index("ix_miniapp_arrival_channel_arrived_at", "channel", "arrived_at"),)

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    unionid: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
