"""Subscription notices: only to followers who granted the template; 43101 a skip."""

from __future__ import annotations

from campaigns.pushes.models import SubscriptionGrant
from core.db import db
from tests.campaigns.pushes.engine import (
    SUBSCRIBE_PATH,
    TEMPLATE_ID,
    add_followers,
    make_push,
    openids,
    outcomes,
    received,
    requested,
    start,
)
from tests.fixtures.sim import sim_post


def _grant(app, sim, ids, status="accept", in_wechat=True):
    with app.app_context():
        db.session.add_all(SubscriptionGrant(openid=o, template_id=TEMPLATE_ID, status=status)
                           for o in ids)
        db.session.commit()
    if in_wechat:
        for openid in ids:
            sim_post(sim, "/sim/subscribe-grants", openid=openid, template_id=TEMPLATE_ID,
                     count=1)


def test_only_followers_with_an_accepted_grant_get_it(app, sim, run_jobs):
    granted, refused, silent = openids("Granted", 3), openids("Refused", 1), openids("Silent", 1)
    add_followers(app, sim, granted + refused + silent)
    _grant(app, sim, granted)
    _grant(app, sim, refused, status="reject", in_wechat=False)
    push_id = make_push(app, "subscribe", granted + refused + silent)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 3, ("skipped", "no_grant"): 2}
    assert received(sim, "subscribe", granted) == {o: 1 for o in granted}
    calls = requested(sim, SUBSCRIBE_PATH)
    assert set(calls) == set(granted)


def test_a_grant_wechat_says_is_used_up_43101_is_skipped_no_grant(app, sim, run_jobs):
    ids = openids("Used", 2)
    add_followers(app, sim, ids)
    _grant(app, sim, ids[:1])
    _grant(app, sim, ids[1:], in_wechat=False)  # we heard the accept; WeChat's grant is gone
    push_id = make_push(app, "subscribe", ids)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 1, ("skipped", "no_grant"): 1}
