"""Followers' answers to subscription notices, from the callback into SubscriptionGrant."""

from __future__ import annotations

import itertools
import time

from sqlalchemy import select

from campaigns.pushes.models import SubscriptionGrant
from core.db import db
from tests.fixtures.sim import ACCOUNT
from tests.fixtures.wechat import push_message
from wechat.sim.pushes import PushFactory

OPENID = "oGrantee000000000000000001"
# One second apart: two answers of one second are one push to the callback's dedupe.
_SECONDS = itertools.count(int(time.time()) - 100)
PUSHES = PushFactory(ACCOUNT["WECHAT_ORIGINAL_ID"], clock=lambda: next(_SECONDS))


def _grants(app) -> dict[str, str]:
    with app.app_context():
        return {row.template_id: row.status for row in db.session.scalars(
            select(SubscriptionGrant).where(SubscriptionGrant.openid == OPENID))}


def test_a_popup_with_several_templates_and_a_later_change(app, pusher):
    answer = pusher.post(PUSHES.subscribe_msg_popup(
        OPENID, {"tmplBenefit": "accept", "tmplNews": "reject"}).encode())
    assert answer.status_code == 200 and answer.get_data() == b"success"
    assert _grants(app) == {"tmplBenefit": "accept", "tmplNews": "reject"}
    pusher.post(PUSHES.subscribe_msg_change(OPENID, {"tmplBenefit": "reject"}).encode())
    assert _grants(app) == {"tmplBenefit": "reject", "tmplNews": "reject"}
    pusher.post(PUSHES.subscribe_msg_popup(OPENID, {"tmplBenefit": "accept"}, scene=1).encode())
    assert _grants(app) == {"tmplBenefit": "accept", "tmplNews": "reject"}


def test_a_late_push_does_not_undo_a_newer_answer(app, pusher):
    older = PUSHES.subscribe_msg_popup(OPENID, {"tmplBenefit": "accept"}).encode()
    pusher.post(PUSHES.subscribe_msg_change(OPENID, {"tmplBenefit": "reject"}).encode())
    pusher.post(older)
    assert _grants(app) == {"tmplBenefit": "reject"}


def test_a_single_entry_is_read_as_one(app, pusher):
    pusher.post(push_message("event", OPENID, Event="subscribe_msg_popup_event",
                             SubscribeMsgPopupEvent={"List": {
                                 "TemplateId": "tmplOne", "SubscribeStatusString": "accept",
                                 "PopupScene": 2}}))
    assert _grants(app) == {"tmplOne": "accept"}


def test_malformed_entries_are_left_out(app, pusher):
    pusher.post(push_message("event", OPENID, Event="subscribe_msg_change_event",
                             SubscribeMsgChangeEvent={"List": {
                                 "TemplateId": "tmpl bad", "SubscribeStatusString": "accept"}}))
    pusher.post(push_message("event", OPENID, Event="subscribe_msg_popup_event",
                             SubscribeMsgPopupEvent={"List": {
                                 "TemplateId": "tmplX", "SubscribeStatusString": "maybe"}}))
    pusher.post(push_message("event", OPENID, Event="subscribe_msg_popup_event",
                             SubscribeMsgPopupEvent="nothing listed"))
    assert _grants(app) == {}
