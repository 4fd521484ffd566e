"""Followers of the official account: follow, unfollow, QR scans, and their unionid."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update

from core.db import db, insert_skipping_conflicts, utcnow
from core.jobs import enqueue_after_commit
from members import binding
from members.models import Follower, QrScan
from wechat import clients
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound

log = logging.getLogger(__name__)


def _event_time(inbound: Inbound) -> datetime:
    return datetime.fromtimestamp(int(inbound.data["CreateTime"]), UTC)


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
    follower.subscribed_at = _event_time(inbound)
    if inbound.kind == "event:subscribe_scan":
        scene = inbound.message.scene_id
        follower.first_scene = follower.first_scene or scene
        db.session.add(QrScan(openid=inbound.openid, scene=scene, followed=True,
                              scanned_at=follower.subscribed_at))
    # unionid is not in the event: ask WeChat once the follow is stored.
    enqueue_after_commit(fetch_unionid, inbound.openid)


def on_unfollow(inbound: Inbound) -> None:
    follower = _follower(inbound.openid)
    follower.subscribed = False
    follower.unsubscribed_at = _event_time(inbound)


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


def on_scan(inbound: Inbound) -> None:
    """A follower scanned a parametric QR code."""
    db.session.add(QrScan(openid=inbound.openid, scene=inbound.message.scene_id,
                          followed=False, scanned_at=_event_time(inbound)))


def fetch_unionid(openid: str) -> None:
    """Job: store the follower's unionid from WeChat's user/info."""
    info = clients.official_account().user.get(openid)
    follower = db.session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None or not info.get("subscribe"):
        return
    follower.unionid = info.get("unionid") or follower.unionid
    if follower.unionid:
        # Bound in the mini-program first? Then this follower is that holder too.
        binding.link_follower(openid, follower.unionid)
    db.session.commit()


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:subscribe", "event:subscribe_scan",
                  "event:subscribe_scan_product")(on_follow)
    dispatcher.on("event:unsubscribe")(on_unfollow)
    dispatcher.on("event:scan")(on_scan)
