"""What holders are offered (``GET /api/campaigns``) and who is eligible: bound holders only,
tiers, and spend net of refunds and reversals since the campaign started."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from campaigns.benefits import catalogue, eligibility, offers
from core.db import db, utcnow
from core.errors import ApiError
from members.holders.models import CardHolder
from tests.fixtures.benefits import (
    SHANGHAI,
    SLUG,
    campaign_json,
    holder_id,
    make_campaign,
    shanghai,
    spend,
    voucher_codes,
)
from tests.fixtures.feed import item, post_feed

pytestmark = pytest.mark.usefixtures("handed")  # the feed's alerts are another module's


def verdict(app, person) -> eligibility.Eligibility:
    with app.app_context():
        holder = db.session.get(CardHolder, holder_id(app, person))
        return eligibility.of(catalogue.find(SLUG), holder, now=utcnow())


def test_the_list_shows_open_campaigns_with_exactly_the_contracts_fields(app, shopper):
    body = make_campaign(app, codes={"video_month": voucher_codes("v", 3)})
    answer = shopper.call("get", "/api/campaigns")
    assert answer.status_code == 200
    assert answer.json == {"campaigns": [{
        "slug": SLUG, "title": body["title"], "starts_at": body["starts_at"],
        "ends_at": body["ends_at"], "eligible": True, "reason": None,
        "options": [
            {"key": "video_month", "title": "腾讯视频VIP月卡", "points": 0, "remaining": 3,
             "redeemed_by_me": 0},
            {"key": "music_month", "title": "QQ音乐绿钻月卡", "points": 500, "remaining": 0,
             "redeemed_by_me": 0}]}]}


def test_drafts_closed_and_future_campaigns_are_not_listed(app, shopper):
    now = datetime.now(SHANGHAI)
    make_campaign(app, campaign_json("a-draft"), publish=False)
    make_campaign(app, campaign_json("closed", starts_at=shanghai(now - timedelta(days=9)),
                                     ends_at=shanghai(now - timedelta(seconds=1))))
    make_campaign(app, campaign_json("future", starts_at=shanghai(now + timedelta(hours=1)),
                                     ends_at=shanghai(now + timedelta(days=9))))
    make_campaign(app, campaign_json("ends-later", ends_at=shanghai(now + timedelta(days=60))))
    make_campaign(app, campaign_json("ends-soon", ends_at=shanghai(now + timedelta(days=2))))
    listed = shopper.call("get", "/api/campaigns").json["campaigns"]
    assert [campaign["slug"] for campaign in listed] == ["ends-soon", "ends-later"]


def test_an_unbound_member_sees_the_campaigns_as_not_bound(app, member):
    make_campaign(app, campaign_json(eligibility={}))
    listed = member.call("get", "/api/campaigns").json["campaigns"]
    assert (listed[0]["eligible"], listed[0]["reason"]) == (False, "not_bound")
    assert all(option["redeemed_by_me"] == 0 for option in listed[0]["options"])


def test_the_list_needs_a_member_token(client, app):
    make_campaign(app)
    assert client.get("/api/campaigns").status_code == 401
    assert client.get("/api/campaigns", headers={"Authorization": "Bearer x"}).status_code == 401


def test_another_tier_is_not_eligible(app, people, bind_member):
    make_campaign(app, campaign_json(eligibility={"tiers": ["gold"]}))
    classic = bind_member(people[3], "oClassic0000000000000000000001")
    listed = classic.call("get", "/api/campaigns").json["campaigns"]
    assert (listed[0]["eligible"], listed[0]["reason"]) == (False, "tier")
    assert verdict(app, people[3]) == eligibility.Eligibility(False, "tier")
    assert verdict(app, people[0]).eligible  # gold


def test_tiers_come_before_spend(app, people):
    make_campaign(app)
    assert verdict(app, people[3]).reason == "tier"  # classic, and spent nothing either


def test_min_spend_counts_purchases_net_of_refunds_and_reversals_since_the_start(
        client, app, people):
    make_campaign(app)  # 100000 fen since a day ago
    card = people[0].card_no
    before_start = datetime.now(SHANGHAI) - timedelta(days=2)
    spend(client, app, card, 500000, 1, occurred_at=before_start)  # before: no count
    spend(client, app, card, 100000, 2)  # POS
    spend(client, app, card, 30000, 3, channel="ONLINE")
    spend(client, app, card, 20000, 4, direction="credit", channel="REFUND")
    spend(client, app, card, 10000, 5, direction="credit", channel="REVERSAL")
    spend(client, app, card, 900000, 6, channel="ATM")  # cash is no spend
    spend(client, app, card, 900000, 7, direction="credit", channel="SALARY")  # nor income
    assert verdict(app, people[0]) == eligibility.ELIGIBLE  # 1000 + 300 - 200 - 100 = 1000 yuan
    spend(client, app, card, 23000, 8, direction="credit", channel="REFUND")
    assert verdict(app, people[0]) == eligibility.Eligibility(False, "min_spend", 23000)


def test_spend_in_another_currency_does_not_count(client, app, people):
    make_campaign(app)
    spend(client, app, people[0].card_no, 5000000, 1, channel="POS")
    post_feed(client, app, item(2, people[0].card_no, currency="USD", amount_fen=10**7,
                                occurred_at=shanghai(datetime.now(SHANGHAI))))
    with app.app_context():
        campaign = catalogue.find(SLUG)
        assert eligibility.spend_fen(holder_id(app, people[0]), since=campaign.starts_at,
                                     until=utcnow()) == 5000000


def test_the_missing_amount_is_what_pages_show(client, app, people, bind_member):
    make_campaign(app)
    spend(client, app, people[0].card_no, 77000, 1)
    member = bind_member(people[0], "oSpender00000000000000000000001")
    listed = member.call("get", "/api/campaigns").json["campaigns"]
    assert (listed[0]["eligible"], listed[0]["reason"]) == (False, "min_spend")
    with app.app_context():
        holder = db.session.get(CardHolder, holder_id(app, people[0]))
        offer = offers.offer(SLUG, holder, now=utcnow())
    assert offer.eligibility.missing_fen == 23000  # "本月再消费 ¥230.00 即可领取"


def test_a_refund_of_an_earlier_purchase_can_make_spend_negative(client, app, people):
    make_campaign(app)
    spend(client, app, people[0].card_no, 30000, 1, direction="credit", channel="REFUND")
    assert verdict(app, people[0]) == eligibility.Eligibility(False, "min_spend", 130000)


def test_a_campaign_without_rules_is_for_every_bound_holder(app, people):
    make_campaign(app, campaign_json(eligibility={}))
    assert verdict(app, people[3]) == eligibility.ELIGIBLE


def test_the_offer_of_a_draft_or_unknown_campaign_is_404(app, people):
    make_campaign(app, publish=False)
    with app.app_context():
        for slug in (SLUG, "unknown", "Not A Slug"):
            with pytest.raises(ApiError) as caught:
                offers.offer(slug, None, now=utcnow())
            assert caught.value.status == 404
