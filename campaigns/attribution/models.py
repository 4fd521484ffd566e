"""Attribution: the channels followers come from, their WeChat codes, every scan, and the
batches of posters built for a branch. (The mini-program's first-time users and their
channel are ``members.holders.models.MiniappArrival``: the members' login records them.)

A follower's channel is the scene code it first followed through
(``members.holders.Follower.first_scene``), whether or not the channel was created here
first; a ``Channel`` row names it, ties it to a branch or a customer manager, and keeps the
codes WeChat issued for it. Channels are deactivated, never deleted: history refers to them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaigns.console.models import Staff
from core.db import BigId, UTCDateTime, db, utcnow

BRANCH = "branch"
MANAGER = "manager"
CAMPAIGN = "campaign"
CHANNEL_KINDS = (BRANCH, MANAGER, CAMPAIGN)

# The codes WeChat issues for a channel.
OA_PERMANENT = "oa_permanent"  # QR_LIMIT_STR_SCENE: counts against the account's 100,000
OA_TEMPORARY = "oa_temporary"  # QR_STR_SCENE, up to 30 days
MINIAPP = "miniapp"  # getwxacodeunlimit, scene = the channel code
CODE_KINDS = (OA_PERMANENT, OA_TEMPORARY, MINIAPP)


class Channel(db.Model):
    """A branch, a customer manager or a campaign that hands out codes."""

    __tablename__ = "channel"
    __table_args__ = (
        CheckConstraint("kind IN ('branch', 'manager', 'campaign')", name="kind_known"),
        CheckConstraint("(kind = 'manager') = (staff_id IS NOT NULL)", name="manager_staff"),
        Index("ix_channel_branch_code", "branch", "code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # the QR scene string
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(32))
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff: Mapped[Staff | None] = relationship(lazy="joined")


class ChannelCode(db.Model):
    """A code WeChat issued for a channel, asked for once and reused.

    Official-account codes keep WeChat's ``ticket`` and ``url`` (what the QR code encodes;
    the image is rendered here from it); a mini-program code keeps WeChat's PNG.
    At most one permanent and one mini-program code per channel.
    """

    __tablename__ = "channel_code"
    __table_args__ = (
        CheckConstraint("kind IN ('oa_permanent', 'oa_temporary', 'miniapp')", name="kind_known"),
        Index("uq_channel_code_lasting", "channel_id", "kind", unique=True,
              sqlite_where=text("kind <> 'oa_temporary'"),
              postgresql_where=text("kind <> 'oa_temporary'")),
        Index("ix_channel_code_kind", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel.id"))
    kind: Mapped[str] = mapped_column(String(16))
    ticket: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    image: Mapped[bytes | None] = mapped_column(LargeBinary)  # the mini-program code's PNG
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # temporary codes only
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QrScan(db.Model):
    """Every scan of a parametric QR code: a follow through it, or a scan by a follower."""

    __tablename__ = "qr_scan"
    __table_args__ = (Index("ix_qr_scan_scene_scanned_at", "scene", "scanned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    scene: Mapped[str] = mapped_column(String(64))
    followed: Mapped[bool]  # True when the scan made the user follow
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PosterBatch(db.Model):
    """A branch's posters as one ZIP, built by a background job; ``done`` of ``total``
    drives the console's progress bar."""

    __tablename__ = "poster_batch"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'building', 'ready', 'failed')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    branch: Mapped[str] = mapped_column(String(32))
    campaign: Mapped[str | None] = mapped_column(String(64))  # campaign slug, or the default
    state: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    # The render jobs counted in ``done`` (",0,3,"): a job run twice is counted once.
    chunks_done: Mapped[str] = mapped_column(Text, default=",")
    path: Mapped[str | None] = mapped_column(Text)  # the finished ZIP in the poster store
    size: Mapped[int | None] = mapped_column(Integer)  # bytes
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
