"""Followers of the official account: follow, unfollow, and their unionid.

Where a follower came from (QR scenes, scans) is attribution, kept by
``campaigns.attribution``; this module only records who follows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update

from core.db import db, insert_skipping_conflicts, utcnow
from core.jobs import enqueue_after_commit
from members.holders import binding, tasks
from members.holders.models import Follower
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound


def _follower(openid: str) -> Follower:
    follower = db.session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None:
        follower = Follower(openid=openid)
        db.session.add(follower)
    return follower


def on_follow(inbound: Inbound) -> None:
    """A follow: plain, through a parametric QR code (event:subscribe_scan), or from a
    product scan (event:subscribe_scan_product, whose EventKey is no scene of ours)."""
    follower = _follower(inbound.openid)
    follower.subscribed = True
    follower.subscribed_at = inbound.created_at
    # unionid is not in the event: ask WeChat once the follow is stored.
    enqueue_after_commit(tasks.fetch_unionid, inbound.openid)


def on_unfollow(inbound: Inbound) -> None:
    follower = _follower(inbound.openid)
    follower.subscribed = False
    follower.unsubscribed_at = inbound.created_at


def note_first_scene(openid: str, scene: str, at: datetime) -> None:
    """The QR scene a follower first came through, and when; a later one never replaces it
    (unfollowing and following again through another code keeps the first)."""
    follower = _follower(openid)
    if follower.first_scene is None:
        follower.first_scene, follower.first_scene_at = scene, at


# User messages: only these open WeChat's 48-hour customer-service window (events do not).
MESSAGE_KINDS = frozenset({"text", "image", "voice", "video", "shortvideo", "location", "link"})
# An interaction noted less than this long ago is not written again: a chatty follower
# costs one write a minute, not one a push, and a minute is nothing to a 48-hour window
# or to an audience's "active within N hours".
INTERACTION_GRAIN = timedelta(seconds=60)


def note_interaction(inbound: Inbound) -> None:
    """Every push from a follower: when it last interacted, and, for a message, when it
    last wrote (``Follower.last_interaction_at`` / ``last_message_at``).

    One UPDATE, nothing when the stored time is less than ``INTERACTION_GRAIN`` old, and
    never backwards (a retried or late push is older than what is stored). It runs after
    the kind's own handlers (``Dispatcher.on_every``), so a follow's new row is in the
    session and flushed before it. An openid without a row gets none: rows come from
    follows (which fetch the unionid) and from WeChat saying one does not follow; a row
    made here would carry neither and claim a follow nobody saw.
    """
    at = min(inbound.created_at, utcnow())  # WeChat's time, never one ahead of ours
    stale = at - INTERACTION_GRAIN
    values = {"last_interaction_at": case(
        (or_(Follower.last_interaction_at.is_(None), Follower.last_interaction_at < at), at),
        else_=Follower.last_interaction_at)}
    if inbound.kind in MESSAGE_KINDS:
        # last_message_at <= last_interaction_at always, so a stale message time is the
        # one condition to check when both may change.
        noted = Follower.last_message_at
        values["last_message_at"] = at
    else:
        noted = Follower.last_interaction_at
    db.session.execute(
        update(Follower).where(Follower.openid == inbound.openid,
                               or_(noted.is_(None), noted < stale))
        .values(values).execution_options(synchronize_session=False))


def mark_not_following(openid: str) -> None:
    """WeChat refused a message as not following (43004): so it is, whatever we last heard.

    The caller commits. A follower we never saw gets a row; a concurrent follow
    event that creates it first wins, as it is the newer news.
    """
    marked = db.session.execute(
        update(Follower).where(Follower.openid == openid, Follower.subscribed.is_(True))
        .values(subscribed=False, unsubscribed_at=utcnow())
        .execution_options(synchronize_session=False))
    if marked.rowcount == 0:
        db.session.execute(insert_skipping_conflicts(Follower.__table__, "openid")
                           .values(openid=openid, subscribed=False))


def store_unionid(openid: str, info: dict) -> None:
    """Keep the unionid WeChat's user/info gave for a follower, and link a holder bound
    through the mini-program under the same unionid. The caller commits."""
    follower = db.session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None or not info.get("subscribe"):
        return
    follower.unionid = info.get("unionid") or follower.unionid
    if follower.unionid:
        # Bound in the mini-program first? Then this follower is that holder too.
        binding.link_follower(openid, follower.unionid)


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:subscribe", "event:subscribe_scan",
                  "event:subscribe_scan_product")(on_follow)
    dispatcher.on("event:unsubscribe")(on_unfollow)
    dispatcher.on_every(note_interaction)
