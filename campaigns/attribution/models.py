"""Attribution: the channels followers come from, their WeChat codes, every scan, and the
batches of posters built for a branch. (The mini-program's first-time users and their
channel are ``members.holders.models.MiniappArrival``: the members' login records them.)

A follower's channel is the scene code it first followed through
(``members.holders.Follower.first_scene``), whether or not the channel was created here
first; a ``Channel`` row names it, ties it to a branch or a customer manager, and keeps the
codes WeChat issued for it. Channels are deactivated, never deleted: history refers to them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
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


class AttributionPerson(db.Model):
    """One person a channel brought, with the milestones the funnel counts
    (``campaigns.attribution.facts`` keeps these rows, and ``ChannelDay``, up to date).

    A person is an official-account follower attributed through a code (``oa_openid``),
    a first-time mini-program user attributed through one (``mp_openid``), or both when
    they share a unionid and came through the same channel. ``holder_id`` is the holder of
    the person's first binding; ``first_transaction_at`` its first transaction after that.
    """

    __tablename__ = "attribution_person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)  # Asia/Shanghai day of arrival: the cohort
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    oa_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    mp_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    holder_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_transaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)


class ChannelDay(db.Model):
    """A channel's counters for one Asia/Shanghai day: the scans of its code that day, and
    the funnel so far of the people who arrived through it that day (their cohort)."""

    __tablename__ = "channel_day"
    # The ranking over a short period reads the period's days of every channel.
    __table_args__ = (Index("ix_channel_day_day", "day"),)

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scans: Mapped[int] = mapped_column(Integer, default=0)
    follows: Mapped[int] = mapped_column(Integer, default=0)
    binds: Mapped[int] = mapped_column(Integer, default=0)
    transacting: Mapped[int] = mapped_column(Integer, default=0)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)


class ChannelMonth(db.Model):
    """``ChannelDay``'s rows of one calendar month (Asia/Shanghai) added up, kept with them:
    a long period reads its whole months here and only its partial months' days there."""

    __tablename__ = "channel_month"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day
    scans: Mapped[int] = mapped_column(Integer, default=0)
    follows: Mapped[int] = mapped_column(Integer, default=0)
    binds: Mapped[int] = mapped_column(Integer, default=0)
    transacting: Mapped[int] = mapped_column(Integer, default=0)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)


class AttributionMark(db.Model):
    """How far ``facts.refresh`` has read one source table (by id): every row up to
    ``final_id`` is read and no later commit can add one below it; ``candidate_id`` becomes
    final once every transaction running when it was read (``candidate_xmax``) has ended."""

    __tablename__ = "attribution_mark"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    final_id: Mapped[int] = mapped_column(BigInteger, default=0)
    candidate_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate_xmax: Mapped[int | None] = mapped_column(BigInteger)
