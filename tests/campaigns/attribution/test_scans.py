"""QR scans through the callback: a follow through a parametric code, a follower's scan."""

from __future__ import annotations

from sqlalchemy import select

from campaigns.attribution.models import QrScan
from core.db import db
from members.holders.models import Follower
from tests.fixtures.sim import sim_calls, sim_post
from tests.fixtures.wechat import push_message

OPENID = "oUserScan0000000000000000001"


def test_a_follow_through_a_code_records_the_scan_and_the_first_scene(pusher, app, sim,
                                                                      run_jobs):
    sim_post(sim, "/sim/users", openid=OPENID, unionid="uUnion0001", subscribed=True)
    event = push_message("event", OPENID, Event="subscribe", EventKey="qrscene_branch_0101",
                         Ticket="gQH47joAAAAAAAAAASxodHRwOi8v")
    reply = pusher.reply(pusher.post(event))
    assert reply["Content"] == app.config["WECHAT_HELP_TEXT"]
    run_jobs()
    with app.app_context():
        follower = db.session.scalar(select(Follower))
        assert (follower.openid, follower.subscribed, follower.first_scene) == (
            OPENID, True, "branch_0101")
        assert follower.unionid == "uUnion0001"
        scan = db.session.scalar(select(QrScan))
        assert (scan.scene, scan.followed) == ("branch_0101", True)
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 1


def test_a_followers_scan_is_recorded_as_not_followed(pusher, app):
    pusher.post(push_message("event", OPENID, Event="subscribe"))
    pusher.post(push_message("event", OPENID, Event="SCAN", EventKey="poster_77", Ticket="t"))
    with app.app_context():
        scans = [(scan.scene, scan.followed) for scan in db.session.scalars(select(QrScan))]
    assert scans == [("poster_77", False)]
