"""Attribution through the callback and the mini-program login, as the contract has it: the
first channel keeps a follower, every scan counts, a retried push counts once, and a scene
counts whether or not the console made its channel."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from campaigns.attribution import funnel
from campaigns.attribution.models import QrScan
from core.db import db
from members.holders.models import Follower, MiniappArrival
from tests.fixtures.members import Member
from tests.fixtures.sim import sim_post
from tests.fixtures.wechat import push_message

OPENID = "oAttrib00000000000000000001"
UNIONID = "uAttribPerson1"


def subscribe(pusher, scene=None, at=None, openid=OPENID):
    fields = {"Event": "subscribe", "CreateTime": at or int(time.time())}
    if scene:
        fields.update(EventKey=f"qrscene_{scene}", Ticket="gQH47joAAAAAAAAAASxodHRwOi8v")
    response = pusher.post(push_message("event", openid, **fields))
    assert response.status_code == 200
    return response


def push(pusher, event, at, **fields):
    response = pusher.post(push_message("event", OPENID, Event=event, CreateTime=at, **fields))
    assert response.status_code == 200


def follower(app, openid=OPENID):
    with app.app_context():
        return db.session.scalar(select(Follower).where(Follower.openid == openid))


def counts(app, code):
    with app.app_context():
        return funnel.funnel(code)


def test_follow_then_binding_in_the_mini_program_counts_the_bind(app, pusher, sim, run_jobs,
                                                                 client, holders, sms_inbox):
    sim_post(sim, "/sim/users", openid=OPENID, unionid=UNIONID, subscribed=True)
    subscribe(pusher, "br_0101")
    run_jobs()  # user/info: the follower's unionid
    assert (follower(app).first_scene, follower(app).unionid) == ("br_0101", UNIONID)
    Member(client, sim, "oMiniAttrib0000000000000001", unionid=UNIONID).bind(
        holders[0], sms_inbox, run_jobs)
    assert counts(app, "br_0101").binds == 1


def test_binding_first_then_the_follow_counts_the_bind_too(app, pusher, sim, run_jobs, client,
                                                           holders, sms_inbox):
    Member(client, sim, "oMiniAttrib0000000000000001", unionid=UNIONID).bind(
        holders[0], sms_inbox, run_jobs)
    sim_post(sim, "/sim/users", openid=OPENID, unionid=UNIONID, subscribed=True)
    subscribe(pusher, "br_0101")
    run_jobs()
    got = counts(app, "br_0101")
    assert (got.scans, got.follows, got.binds) == (1, 1, 1)


def test_a_subscribe_retried_by_wechat_counts_once(app, pusher, sim):
    at = int(time.time()) - 5
    first = subscribe(pusher, "br_0101", at)
    again = subscribe(pusher, "br_0101", at)  # same FromUserName, CreateTime, Event, key
    assert pusher.reply(again) == pusher.reply(first)  # the one reply, answered again
    got = counts(app, "br_0101")
    assert (got.scans, got.follows) == (1, 1)


def test_unfollowing_and_following_through_another_channel_keeps_the_first(app, pusher, sim):
    now = int(time.time())
    subscribe(pusher, "br_0101", now - 30)
    first_at = follower(app).first_scene_at
    push(pusher, "unsubscribe", now - 20)
    subscribe(pusher, "mgr_0202", now - 10)
    again = follower(app)
    assert (again.subscribed, again.first_scene, again.first_scene_at) == (
        True, "br_0101", first_at)
    assert (counts(app, "br_0101").follows, counts(app, "mgr_0202").follows) == (1, 0)
    # Both follows were scans of their codes.
    assert (counts(app, "br_0101").scans, counts(app, "mgr_0202").scans) == (1, 1)


def test_a_plain_follow_then_a_follow_through_a_code_is_that_codes(app, pusher, sim):
    now = int(time.time())
    subscribe(pusher, None, now - 20)
    push(pusher, "unsubscribe", now - 10)
    subscribe(pusher, "br_0101", now)
    assert follower(app).first_scene == "br_0101"


def test_scans_by_followers_count_in_scans_and_never_move_them(app, pusher, sim):
    now = int(time.time())
    subscribe(pusher, "br_0101", now - 30)
    push(pusher, "SCAN", now - 20, EventKey="br_0101", Ticket="t")
    push(pusher, "SCAN", now - 10, EventKey="mgr_0202", Ticket="t")
    push(pusher, "SCAN", now - 5)  # no EventKey: nothing to count, and no failure
    assert follower(app).first_scene == "br_0101"
    assert (counts(app, "br_0101").scans, counts(app, "mgr_0202").scans) == (2, 1)
    assert counts(app, "mgr_0202").follows == 0


def test_a_code_the_console_never_made_is_still_attributed(app, pusher, sim):
    subscribe(pusher, "printed_before_2026")
    got = counts(app, "printed_before_2026")
    assert (got.scans, got.follows) == (1, 1)
    with app.app_context():
        ranked = {row.code: row for row in funnel.ranking()}
    assert ranked["printed_before_2026"].name is None


def login(client, sim, openid, unionid=None, **body):
    code = sim_post(sim, "/sim/miniapp/code", openid=openid,
                    **({"unionid": unionid} if unionid else {}))["code"]
    return client.post("/api/miniapp/login", json={"code": code, **body})


def arrivals(app):
    with app.app_context():
        return [(row.openid, row.channel, row.unionid)
                for row in db.session.scalars(select(MiniappArrival).order_by(
                    MiniappArrival.openid))]


def test_a_first_time_mini_program_user_is_the_channels(app, client, sim):
    answer = login(client, sim, "oMini1", "uMini1", channel="mgr_0202")
    assert answer.status_code == 200 and answer.json["bound"] is False
    assert arrivals(app) == [("oMini1", "mgr_0202", "uMini1")]
    assert counts(app, "mgr_0202").follows == 1
    # Later logins, through another code or none, change nothing: the first keeps them.
    assert login(client, sim, "oMini1", "uMini1", channel="br_0101").status_code == 200
    assert login(client, sim, "oMini1", "uMini1").status_code == 200
    assert arrivals(app) == [("oMini1", "mgr_0202", "uMini1")]


def test_only_a_first_login_is_attributed(app, client, sim):
    assert login(client, sim, "oMini2").status_code == 200
    assert login(client, sim, "oMini2", channel="br_0101").status_code == 200
    assert arrivals(app) == []  # logged in before: not brought by this code


def test_a_malformed_channel_is_ignored_and_the_login_goes_on(app, client, sim):
    for n, channel in enumerate(("a" * 33, "bad code", "", "渠道", "x;DROP", None)):
        answer = login(client, sim, f"oMiniBad{n}", channel=channel)
        assert answer.status_code == 200, (channel, answer.json)
    assert arrivals(app) == []
    # A channel that is not text at all is a malformed body, as any field's wrong type.
    wrong = login(client, sim, "oMiniBad9", channel=42)
    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_type"


def test_the_same_person_through_both_apps_of_one_channel_is_one_follow(app, pusher, sim,
                                                                         run_jobs, client):
    sim_post(sim, "/sim/users", openid=OPENID, unionid=UNIONID, subscribed=True)
    subscribe(pusher, "br_0101")
    run_jobs()
    assert login(client, sim, "oMiniTwin", UNIONID, channel="br_0101").status_code == 200
    assert counts(app, "br_0101").follows == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(QrScan)) == 1
