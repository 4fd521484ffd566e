"""Customer-service messages: only within 48 h of the follower's last message; WeChat's
45015 and 45047 kept as skips; an unfollowed recipient skipped; 43004 marks the follower."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

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
from tests.fixtures.sim import sim_fault


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
