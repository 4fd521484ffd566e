"""Customer-service messages: only within 48 h of the follower's last message; WeChat's
45015 and 45047 kept as skips; an unfollowed recipient skipped; 43004 marks the follower;
a batch of refusals and sends records each outcome for its own recipient."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from campaigns.pushes import sending
from campaigns.pushes.models import PushDelivery
from core.db import db
from members.holders.models import Follower
from tests.campaigns.pushes.engine import (
    CUSTOM_PATH,
    add_followers,
    make_push,
    openids,
    outcomes,
    push_state,
    received,
    requested,
    start,
)
from tests.fixtures.sim import sim_fault, sim_post


def test_only_followers_who_wrote_within_48_hours_get_it(app, sim, run_jobs):
    recent, old = openids("Recent", 3), openids("Old", 2)
    add_followers(app, sim, recent, messaged_ago=timedelta(hours=47))
    add_followers(app, sim, old, messaged_ago=timedelta(hours=49))
    push_id = make_push(app, "custom", recent + old)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 3, ("skipped", "outside_48h"): 2}
    assert received(sim, "custom", recent + old) == {**{o: 1 for o in recent},
                                                     **{o: 0 for o in old}}
    assert set(requested(sim, CUSTOM_PATH)) == set(recent)  # WeChat never asked for the old
    assert push_state(app, push_id).state == "done"


def test_wechats_45015_and_45047_are_skips_with_their_reason(app, sim, run_jobs):
    ids = openids("Window", 4)
    add_followers(app, sim, ids, messaged_ago=timedelta(hours=1))
    sim_fault(sim, path=CUSTOM_PATH, errcode=45015)
    sim_fault(sim, path=CUSTOM_PATH, errcode=45047)
    app.config["PUSH_SEND_THREADS"], threads = 1, app.config["PUSH_SEND_THREADS"]
    try:
        push_id = make_push(app, "custom", ids)
        start(app, push_id, run_jobs)
    finally:
        app.config["PUSH_SEND_THREADS"] = threads
    assert outcomes(app, push_id) == {("sent", None): 2, ("skipped", "outside_48h"): 1,
                                      ("skipped", "window_used_up"): 1}


def test_an_unfollowed_recipient_is_skipped_and_43004_marks_the_follower(app, sim, run_jobs):
    gone, left_since = openids("Gone", 1), openids("LeftSince", 1)
    add_followers(app, sim, gone, subscribed=False, messaged_ago=timedelta(hours=1))
    add_followers(app, sim, left_since, messaged_ago=timedelta(hours=1))
    # WeChat says it left (custom/send itself answers 45015 for those; other sends 43004).
    sim_fault(sim, path=CUSTOM_PATH, errcode=43004)
    push_id = make_push(app, "custom", gone + left_since)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("skipped", "unsubscribed"): 1,
                                      ("skipped", "not_following"): 1}
    with app.app_context():
        follower = db.session.scalars(
            select(Follower).where(Follower.openid == left_since[0])).one()
        assert follower.subscribed is False


def test_one_batch_of_refusals_and_sends_records_each_outcome_for_its_recipient(
        app, sim, run_jobs, monkeypatch):
    """The whole push in one claim of one thread: the rules' refusals skipped in the
    claim's own statement, WeChat called for the others only, and each answer (sent, or
    one of WeChat's refusals) kept for its own recipient in the next claim's commit."""
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    monkeypatch.setitem(app.config, "PUSH_CLAIM_SIZE", 12)
    (left, first, unsubscribed, old, stranger, used_up, second, unknown_to_wechat,
     third) = openids("Batch", 9)
    add_followers(app, sim, [left, first, used_up, second, third],
                  messaged_ago=timedelta(hours=1))
    add_followers(app, sim, [unsubscribed], subscribed=False, messaged_ago=timedelta(hours=1))
    add_followers(app, sim, [old], messaged_ago=timedelta(hours=49))
    # We saw a message WeChat does not count (45015); WeChat's window is used up (45047).
    add_followers(app, None, [unknown_to_wechat], messaged_ago=timedelta(hours=1))
    sim_post(sim, "/sim/users", openid=unknown_to_wechat)
    sim_post(sim, "/sim/users", openid=used_up, last_interaction=time.time() - 3600,
             cs_streak=sim.state.limits.cs_streak_limit)
    sim_fault(sim, path=CUSTOM_PATH, errcode=43004)  # the first call: it left meanwhile
    claims = []
    real_claim = sending._claim_sendable

    def counted_claim(*args):
        claims.append(args)
        return real_claim(*args)

    monkeypatch.setattr(sending, "_claim_sendable", counted_claim)
    ids = [left, first, unsubscribed, old, stranger, used_up, second, unknown_to_wechat, third]
    push_id = make_push(app, "custom", ids)  # recipients in this order
    start(app, push_id, run_jobs)

    with app.app_context():
        rows = db.session.execute(
            select(PushDelivery.openid, PushDelivery.state, PushDelivery.reason,
                   PushDelivery.errcode, PushDelivery.sent_at.is_not(None))
            .where(PushDelivery.push_id == push_id)).all()
    sent = ("sent", None, None, True)
    assert {openid: tuple(rest) for openid, *rest in rows} == {
        left: ("skipped", "not_following", 43004, False), first: sent,
        unsubscribed: ("skipped", "unsubscribed", None, False),
        old: ("skipped", "outside_48h", None, False),
        stranger: ("skipped", "unsubscribed", None, False),  # no follower row at all
        used_up: ("skipped", "window_used_up", 45047, False), second: sent,
        unknown_to_wechat: ("skipped", "outside_48h", 45015, False), third: sent}
    assert requested(sim, CUSTOM_PATH) == dict.fromkeys(
        [left, first, used_up, second, unknown_to_wechat, third], 1)
    assert received(sim, "custom", [first, second, third]) == dict.fromkeys(
        [first, second, third], 1)
    assert len(claims) == 2  # the push's one batch, then the claim that found none left
    assert push_state(app, push_id).state == "done"
