"""QR scans from the callback: every scan of a parametric code, and the first scene a
follower came through (the channel that keeps them).

A follower's channel is the scene, whether or not a ``Channel`` of that code exists yet:
codes printed before the console knew them still count. WeChat's retries of an event
(same FromUserName, CreateTime, Event and EventKey) are answered from the callback's reply
cache (``wechat.dedupe``) without reaching these handlers, so a scan is counted once.
"""

from __future__ import annotations

from campaigns.attribution.models import QrScan
from core.db import db
from members.holders import followers
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound


def on_follow_through_code(inbound: Inbound) -> None:
    """A follow through a parametric QR code: counted as a scan that made a follower.

    Runs after ``members.holders.followers.on_follow`` (registered first), which has the
    follower in the session already.
    """
    scene = inbound.message.scene_id
    if not scene:  # 'qrscene_' and nothing after it: no channel to count for
        return
    followers.note_first_scene(inbound.openid, scene, inbound.created_at)
    db.session.add(QrScan(openid=inbound.openid, scene=scene, followed=True,
                          scanned_at=inbound.created_at))


def on_scan(inbound: Inbound) -> None:
    """A follower scanned a parametric QR code."""
    scene = inbound.message.scene_id
    if not scene:  # a SCAN without EventKey: nothing to count, and no reason to fail
        return
    db.session.add(QrScan(openid=inbound.openid, scene=scene, followed=False,
                          scanned_at=inbound.created_at))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:subscribe_scan")(on_follow_through_code)
    dispatcher.on("event:scan")(on_scan)
