"""The holders' H5 benefit pages (/m/campaigns, /m/campaigns/<slug>, /m/benefits): OAuth login,
eligibility in words, one-tap redeem exactly once, the code shown to its holder only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from campaigns.benefits import eligibility, wording
from campaigns.benefits.models import Campaign, Redemption
from core.db import db
from members.holders.models import Binding
from tests.fixtures.benefits import (
    SHANGHAI,
    SLUG,
    campaign_json,
    holder_id,
    make_campaign,
    spend,
    voucher_codes,
)
from tests.fixtures.pages import SECURITY_HEADERS, open_as, text

OWNER = "oBenefitOwner000000000000000001"
OTHER = "oBenefitOther000000000000000002"
STRANGER = "oBenefitStranger00000000000000003"
PAGE = f"/m/campaigns/{SLUG}"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def bind_oa(app, openid, person):
    """An official-account follower bound to ``person``'s card (the binding has its own tests)."""
    with app.app_context():
        db.session.add(Binding(holder_id=holder_id(app, person), app="oa", openid=openid))
        db.session.commit()



def redeem_form(html, option):
    """The fields of ``option``'s redeem form on a campaign page."""
    form = re.search(rf'<form class="panel option"[^>]*>(?:(?!</form>).)*?name="option" '
                     rf'value="{option}"(?:(?!</form>).)*</form>', html, re.S)
    assert form, f"no form for {option}"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0)))
    return fields, form.group(0)


@pytest.fixture
def stocked(app):
    return make_campaign(app, codes={"video_month": voucher_codes("video", 3),
                                     "music_month": voucher_codes("music", 1)})


@pytest.fixture
def owner(client, app, people, handed):
    """Holder 1 (gold) bound to OWNER, who spent ¥1,200.00 (120 points): eligible."""
    bind_oa(app, OWNER, people[0])
    spend(client, app, people[0].card_no, 120000, 1)
    return people[0]


# -- login and the list ------------------------------------------------------------------------

def test_the_pages_log_in_through_wechat_and_come_back(client, app, sim, stocked, owner):
    for path in ("/m/campaigns", PAGE, "/m/benefits"):
        page = open_as(app.test_client(), sim, path, OWNER)  # a browser without a login
        assert page.status_code == 200, path
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value


def test_the_list_shows_open_campaigns_only(client, app, sim, stocked, owner):
    make_campaign(app, campaign_json("draft-one", title="还没发布的活动"), publish=False)
    ended = datetime.now(UTC) - timedelta(days=2)
    make_campaign(app, campaign_json("ended-one", title="已经结束的活动",
                                     starts_at=(ended - timedelta(days=5)).isoformat(),
                                     ends_at=ended.isoformat()))
    html = text(open_as(client, sim, "/m/campaigns", OWNER))
    assert "腾讯视频VIP月卡 12月" in html and "可领取" in html
    assert "还没发布的活动" not in html and "已经结束的活动" not in html
    assert "我的积分 <strong>120</strong>" in html
    assert f'href="{PAGE}"' in html


def test_the_list_without_open_campaigns(client, app, sim, owner):
    html = text(open_as(client, sim, "/m/campaigns", OWNER))
    assert "暂时没有进行中的权益活动" in html


# -- eligibility in words ----------------------------------------------------------------------

def test_a_follower_without_a_card_is_asked_to_bind_it(client, app, sim, stocked, people):
    html = text(open_as(client, sim, PAGE, STRANGER))
    assert "请先绑定联名卡" in html and 'href="/m/bind"' in html
    assert "我的积分" not in html
    _, form = redeem_form(html, "video_month")
    assert " disabled" in form and "暂不符合领取条件" in form


def test_a_holder_of_another_tier_reads_which_tiers_may(client, app, sim, stocked, people, handed):
    bind_oa(app, OWNER, people[3])  # classic
    spend(client, app, people[3].card_no, 500000, 1)
    html = text(open_as(client, sim, PAGE, OWNER))
    assert "仅限金卡、白金卡持卡人" in html
    assert "领取条件</dt><dd>金卡、白金卡持卡人，活动期间消费满 ¥1,000.00" in html


def test_a_holder_short_of_the_spend_reads_how_much_more(client, app, sim, stocked, people,
                                                          handed):
    bind_oa(app, OWNER, people[0])
    spend(client, app, people[0].card_no, 77000, 1)
    html = text(open_as(client, sim, PAGE, OWNER))
    assert "活动期间再消费 ¥230.00 即可领取" in html
    spend(client, app, people[0].card_no, 23000, 2)
    html = text(client.get(PAGE))
    assert "您已符合领取条件" in html and "再消费" not in html


def test_the_spend_wording_of_a_campaign_within_one_month():
    campaign = Campaign(eligibility={"tiers": ["gold"], "min_spend_fen": 100000},
                        starts_at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC),  # 12-01 00:00
                        ends_at=datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC))
    short = eligibility.Eligibility(False, eligibility.MIN_SPEND, 23000)
    assert wording.not_eligible(campaign, short) == "本月再消费 ¥230.00 即可领取"
    assert wording.conditions(campaign) == "金卡持卡人，本月消费满 ¥1,000.00"
    assert wording.period(campaign) == "2026-12-01 00:00 至 2026-12-31 23:59"
    everyone = Campaign(eligibility={}, starts_at=campaign.starts_at, ends_at=campaign.ends_at)
    assert wording.conditions(everyone) == "所有已绑定的持卡人"


def test_an_eligible_holder_sees_prices_stock_and_limits(client, app, sim, stocked, owner):
    html = text(open_as(client, sim, PAGE, OWNER))
    assert "您已符合领取条件" in html
    _, video = redeem_form(html, "video_month")
    assert "免费" in video and "剩余 3 份" in video and "每人限领 1 次" in video
    assert " disabled" not in video and "立即领取" in video
    _, music = redeem_form(html, "music_month")
    # 500 points, the holder has 120.
    assert "500 积分" in music and "立即兑换" in music and "积分不足" in music
    assert " disabled" in music


# -- redeeming ---------------------------------------------------------------------------------

def test_a_double_tap_redeems_once_and_shows_the_same_code(client, app, sim, stocked, owner):
    html = text(open_as(client, sim, PAGE, OWNER))
    fields, _ = redeem_form(html, "video_month")
    assert len(fields["request_id"]) >= 16
    first = client.post(f"{PAGE}/redeem", data=fields)
    second = client.post(f"{PAGE}/redeem", data=fields)  # the same form sent again
    assert first.status_code == second.status_code == 200
    code = re.search(r'<p class="voucher-code" id="code"[^>]*>([^<]+)</p>', text(first)).group(1)
    assert code.startswith("VIDEO-")
    assert code in text(second)
    assert "领取成功" in text(first) and 'data-copy="code"' in text(first)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 1
    # A fresh page makes a fresh request: the limit of one is reached now.
    again = text(client.get(PAGE))
    _, video = redeem_form(again, "video_month")
    assert "您已领 1 次" in video and "已达每人限领次数" in video and " disabled" in video


def test_a_refusal_is_explained_on_the_campaign_page(client, app, sim, stocked, owner):
    html = text(open_as(client, sim, PAGE, OWNER))
    fields, _ = redeem_form(html, "music_month")  # 500 points, the holder has 120
    refused = client.post(f"{PAGE}/redeem", data=fields)
    assert refused.status_code == 409
    assert '<p class="error" role="alert">积分不足，暂时无法兑换。</p>' in text(refused)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 0


def test_the_last_code_goes_to_one_holder(client, app, sim, people, handed):
    make_campaign(app, campaign_json(eligibility={}), codes={"video_month": ["LAST-ONE"]})
    bind_oa(app, OWNER, people[0])
    bind_oa(app, OTHER, people[1])
    mine, theirs = client, app.test_client()
    my_fields, _ = redeem_form(text(open_as(mine, sim, PAGE, OWNER)), "video_month")
    their_fields, _ = redeem_form(text(open_as(theirs, sim, PAGE, OTHER)), "video_month")
    assert "LAST-ONE" in text(mine.post(f"{PAGE}/redeem", data=my_fields))
    late = theirs.post(f"{PAGE}/redeem", data=their_fields)
    assert late.status_code == 409 and "手慢了，该权益已领完。" in text(late)
    assert "LAST-ONE" not in text(late)


def test_a_redeem_without_login_or_token_changes_nothing(client, app, sim, stocked, owner):
    fields, _ = redeem_form(text(open_as(client, sim, PAGE, OWNER)), "video_month")
    stranger = app.test_client()
    assert stranger.post(f"{PAGE}/redeem", data=fields).status_code == 400  # no session: no token
    no_token = {name: value for name, value in fields.items() if name != "csrf_token"}
    refused = client.post(f"{PAGE}/redeem", data=no_token)
    assert refused.status_code == 400 and "页面已过期" in text(refused)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Redemption)) == 0


def test_unknown_unpublished_and_malformed_campaigns_are_not_found(client, app, sim, owner):
    make_campaign(app, campaign_json("draft-one"), publish=False)
    open_as(client, sim, "/m/campaigns", OWNER)
    for path in ("/m/campaigns/no-such", "/m/campaigns/draft-one", "/m/campaigns/BAD%00"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "活动不存在或已结束" in text(response)


# -- 我的权益 ----------------------------------------------------------------------------------

def test_my_benefits_show_my_codes_and_nobody_elses(client, app, sim, stocked, owner, people):
    fields, _ = redeem_form(text(open_as(client, sim, PAGE, OWNER)), "video_month")
    code = re.search(r'id="code"[^>]*>([^<]+)<', text(client.post(f"{PAGE}/redeem",
                                                                   data=fields))).group(1)
    mine = text(client.get("/m/benefits"))
    assert code in mine and "腾讯视频VIP月卡 12月" in mine
    today = datetime.now(SHANGHAI).strftime("%Y-%m-%d")
    assert today in mine

    bind_oa(app, OTHER, people[1])
    other = app.test_client()
    theirs = text(open_as(other, sim, "/m/benefits", OTHER))
    assert code not in theirs and "您还没有领取过权益" in theirs
    unbound = text(open_as(app.test_client(), sim, "/m/benefits", STRANGER))
    assert "请先绑定联名卡" in unbound and code not in unbound


def test_no_page_shows_a_card_number(client, app, sim, stocked, owner):
    shown = [text(open_as(client, sim, "/m/campaigns", OWNER)), text(client.get(PAGE))]
    fields, _ = redeem_form(shown[-1], "video_month")
    shown += [text(client.post(f"{PAGE}/redeem", data=fields)), text(client.get("/m/benefits"))]
    for html in shown:
        for secret in (owner.card_no, owner.phone, owner.id_no, owner.name, owner.card_no[-8:]):
            assert secret not in html
