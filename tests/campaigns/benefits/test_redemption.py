"""Redeeming a benefit through the mini-program API: one code, once per request_id, within
the limit and the points; every refusal exactly as the contract lists it, changing nothing."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.benefits import catalogue
from core.db import db
from members.transactions.models import PointEntry
from tests.fixtures.benefits import (
    SHANGHAI,
    SLUG,
    benefit_state,
    campaign_json,
    make_campaign,
    shanghai,
    spend,
    voucher_codes,
)

pytestmark = pytest.mark.usefixtures("handed")  # the feed's alerts are another module's

REDEEM = f"/api/campaigns/{SLUG}/redeem"
MALL = [  # the points mall: options priced in points
    {"key": "video_month", "title": "腾讯视频VIP月卡", "points": 0, "limit_per_holder": 1},
    {"key": "mall_100", "title": "100积分兑换", "points": 100},
    {"key": "empty", "title": "已抢光", "points": 0},
]


@pytest.fixture
def mall(app):
    """The contract's campaign (gold, platinum; ¥1,000 spend) with a points option."""
    return make_campaign(app, campaign_json(options=MALL), codes={
        "video_month": voucher_codes("video", 3), "mall_100": voucher_codes("mall", 3)})


def redeem(member, option="video_month", request_id="req-0001", slug=SLUG):
    return member.call("post", f"/api/campaigns/{slug}/redeem",
                       {"option": option, "request_id": request_id})


def test_a_redemption_gives_one_code_and_shows_in_the_list_and_history(app, shopper, mall):
    answer = redeem(shopper)
    assert answer.status_code == 200, answer.json
    assert set(answer.json) == {"redemption_id", "option", "code", "points_spent",
                                "points_balance"}
    assert answer.json["option"] == "video_month"
    assert answer.json["code"] in voucher_codes("video", 3)
    assert (answer.json["points_spent"], answer.json["points_balance"]) == (0, 120)
    assert answer.headers["Cache-Control"] == "no-store"
    option = shopper.call("get", "/api/campaigns").json["campaigns"][0]["options"][0]
    assert (option["remaining"], option["redeemed_by_me"]) == (2, 1)
    history = shopper.call("get", "/api/members/redemptions")
    assert history.headers["Cache-Control"] == "no-store"
    [mine] = history.json["redemptions"]
    assert set(mine) == {"redemption_id", "campaign", "option", "code", "redeemed_at"}
    assert (mine["redemption_id"], mine["campaign"], mine["option"], mine["code"]) == (
        answer.json["redemption_id"], SLUG, "video_month", answer.json["code"])
    assert mine["redeemed_at"].endswith("+08:00")


def test_points_are_spent_in_the_ledger_and_me_shows_the_balance(app, shopper, mall):
    answer = redeem(shopper, "mall_100")
    assert (answer.json["points_spent"], answer.json["points_balance"]) == (100, 20)
    assert shopper.call("get", "/api/members/me").json["points"] == 20
    with app.app_context():
        entry = db.session.scalars(select(PointEntry).where(PointEntry.kind == "redeem")).one()
        assert (entry.points, entry.reason, entry.reference, entry.txn_id) == (
            -100, f"redeem:{SLUG}/mall_100", f"redemption:{answer.json['redemption_id']}", None)
    newest = shopper.call("get", "/api/members/points").json["entries"][0]
    assert (newest["kind"], newest["points"], newest["transaction"]) == ("redeem", -100, None)


def test_the_same_request_id_again_gives_the_same_answer_and_redeems_nothing_more(
        app, shopper, mall):
    first = redeem(shopper, "mall_100", "retry-me")
    state = benefit_state(app)
    for _ in range(3):
        again = redeem(shopper, "mall_100", "retry-me")
        assert (again.status_code, again.json) == (200, first.json)
    assert benefit_state(app) == state
    assert shopper.call("get", "/api/members/me").json["points"] == 20


def test_a_retry_answers_the_same_after_the_campaign_closed(app, shopper, mall):
    first = redeem(shopper)
    with app.app_context():
        catalogue.find(SLUG).ends_at = datetime.now(SHANGHAI) - timedelta(seconds=1)
        db.session.commit()
    assert redeem(shopper).json == first.json
    assert redeem(shopper, request_id="new-one").status_code == 404


def test_a_request_id_reused_for_another_option_is_refused(app, shopper, mall):
    redeem(shopper, "video_month", "same-id")
    state = benefit_state(app)
    refused = redeem(shopper, "mall_100", "same-id")
    assert (refused.status_code, refused.json["error"]) == (409, "request_id_reused")
    assert benefit_state(app) == state


def assert_refused(app, member, status, error, *, option="video_month", slug=SLUG,
                   reason=None):
    state = benefit_state(app)
    answer = redeem(member, option, "refused-1", slug)
    assert (answer.status_code, answer.json["error"]) == (status, error), answer.json
    if reason:
        assert answer.json["reason"] == reason
    else:
        assert "reason" not in answer.json
    assert benefit_state(app) == state
    return answer


def test_limit_reached(app, shopper, mall):
    redeem(shopper, "video_month", "first")
    assert_refused(app, shopper, 409, "limit_reached")


def test_insufficient_points(app, shopper, mall):
    redeem(shopper, "mall_100", "first")  # 120 → 20
    assert_refused(app, shopper, 409, "insufficient_points", option="mall_100")


def test_out_of_stock(app, shopper, mall):
    assert_refused(app, shopper, 409, "out_of_stock", option="empty")


def test_a_free_option_is_free_with_a_negative_balance(client, app, people, bind_member, mall):
    """A refund may take back points already spent; a free benefit stays free."""
    member = bind_member(people[0], "oNegative0000000000000000000001")
    spend(client, app, people[0].card_no, 200000, 1)  # +200, and ¥2,000 spend
    assert redeem(member, "mall_100", "a").status_code == 200
    assert redeem(member, "mall_100", "b").status_code == 200  # balance 0
    spend(client, app, people[0].card_no, 50000, 2, direction="credit", channel="REFUND")
    assert member.call("get", "/api/members/me").json["points"] == -50
    free = redeem(member, "video_month", "c")
    assert free.json["points_balance"] == -50, free.json
    assert_refused(app, member, 409, "insufficient_points", option="mall_100")


def test_not_bound(app, member, mall):
    assert_refused(app, member, 403, "not_eligible", reason="not_bound")


def test_not_eligible_by_tier(app, people, bind_member, mall):
    classic = bind_member(people[3], "oClassic0000000000000000000001")
    assert_refused(app, classic, 403, "not_eligible", reason="tier")


def test_not_eligible_by_spend(app, people, bind_member, mall):
    assert_refused(app, bind_member(people[1], "oNoSpend0000000000000000000001"), 403,
                   "not_eligible", reason="min_spend")


def test_unknown_unpublished_and_closed_campaigns_and_unknown_options_are_404(
        app, shopper, mall):
    now = datetime.now(SHANGHAI)
    make_campaign(app, campaign_json("a-draft", eligibility={}), publish=False,
                  codes={"video_month": ["D-1"]})
    make_campaign(app, campaign_json("closed", eligibility={},
                                     starts_at=shanghai(now - timedelta(days=9)),
                                     ends_at=shanghai(now - timedelta(minutes=1))),
                  codes={"video_month": ["C-1"]})
    make_campaign(app, campaign_json("future", eligibility={},
                                     starts_at=shanghai(now + timedelta(minutes=1))),
                  codes={"video_month": ["F-1"]})
    for slug in ("nope", "a-draft", "closed", "future", "NOT A SLUG"):
        assert_refused(app, shopper, 404, "unknown_campaign", slug=slug)
    assert_refused(app, shopper, 404, "unknown_option", option="nope")
    assert_refused(app, shopper, 404, "unknown_option", option="")


def test_an_unbound_caller_gets_404_for_a_missing_campaign_before_not_bound(app, member):
    assert_refused(app, member, 404, "unknown_campaign")


def test_another_holders_token_sees_and_spends_only_its_own(app, people, bind_member,
                                                             shopper, client, mall):
    mine = redeem(shopper, "video_month", "shared-id")
    other = bind_member(people[2], "oOtherHolder00000000000000000001")
    spend(client, app, people[2].card_no, 150000, 9)
    assert other.call("get", "/api/members/redemptions").json == {"redemptions": []}
    theirs = redeem(other, "video_month", "shared-id")  # request ids are per holder
    assert theirs.status_code == 200 and theirs.json["code"] != mine.json["code"]
    assert [r["code"] for r in shopper.call("get", "/api/members/redemptions").json[
        "redemptions"]] == [mine.json["code"]]
    listed = other.call("get", "/api/campaigns").json["campaigns"][0]["options"][0]
    assert listed["redeemed_by_me"] == 1


def test_history_is_newest_first(app, shopper, mall):
    first = redeem(shopper, "video_month", "one").json
    second = redeem(shopper, "mall_100", "two").json
    history = shopper.call("get", "/api/members/redemptions").json["redemptions"]
    assert [r["redemption_id"] for r in history] == [second["redemption_id"],
                                                     first["redemption_id"]]


def test_an_unbound_member_has_no_history(member):
    assert member.call("get", "/api/members/redemptions").json == {"redemptions": []}


@pytest.mark.parametrize(("body", "status", "error"), [
    (b'{"option": "video_month", "request_id": "x"', 400, "invalid_json"),
    (b'{"option": "video_month", "option": "mall_100", "request_id": "x"}', 400,
     "invalid_json"),
    (b'["video_month"]', 400, "invalid_json"),
    (b'{"option": "video_month"}', 400, "missing_field"),
    (b'{"option": "video_month", "request_id": "x", "holder_id": 1}', 400, "unknown_field"),
    (b'{"option": 1, "request_id": "x"}', 400, "invalid_type"),
    (b'{"option": "video_month", "request_id": 12345}', 400, "invalid_type"),
    (json.dumps({"option": "video_month", "request_id": "x" * 65}).encode(), 400,
     "invalid_request_id"),
    (b'{"option": "video_month", "request_id": ""}', 400, "invalid_request_id"),
    (b'{"option": "video_month", "request_id": "has space"}', 400, "invalid_request_id"),
    (json.dumps({"option": "video_month", "request_id": "\u8bf7\u6c42"}).encode(), 400,
     "invalid_request_id"),
    (json.dumps({"option": "x" * 20000, "request_id": "x"}).encode(), 413, "body_too_large"),
])
def test_bad_bodies_are_refused_and_change_nothing(app, client, shopper, mall, body, status,
                                                   error):
    state = benefit_state(app)
    answer = client.post(REDEEM, data=body, content_type="application/json",
                         headers=shopper.headers)
    assert (answer.status_code, answer.json["error"]) == (status, error)
    assert benefit_state(app) == state


def test_a_64_character_request_id_is_fine(shopper, mall):
    assert redeem(shopper, request_id="r" * 64).status_code == 200


def test_redeeming_needs_a_member_token(app, client, mall):
    answer = client.post(REDEEM, json={"option": "video_month", "request_id": "x"})
    assert (answer.status_code, answer.json["error"]) == (401, "missing_token")
    assert client.get("/api/members/redemptions").status_code == 401


def test_voucher_codes_appear_in_no_log(app, client, shopper, make_staff, caplog):
    caplog.set_level(logging.DEBUG)
    codes = voucher_codes("secret", 3)
    make_campaign(app, campaign_json(options=MALL))
    marketer = make_staff("marketer")
    upload = f"/admin/api/campaigns/{SLUG}/options/video_month/codes"
    client.post(upload, data="\n".join(codes), content_type="text/plain",
                headers=marketer.headers)
    client.post(upload, data=f"{codes[0]}\n{codes[1]}\x07\n", content_type="text/plain",
                headers=marketer.headers)  # refused: a control character
    given = redeem(shopper).json["code"]
    redeem(shopper)  # the retry
    redeem(shopper, request_id="again")  # limit reached
    shopper.call("get", "/api/members/redemptions")
    client.get(f"/admin/api/campaigns/{SLUG}", headers=marketer.headers)
    assert given in codes
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert not any(code in logged for code in codes)
