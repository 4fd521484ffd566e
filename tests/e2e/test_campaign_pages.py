"""Campaigns in a real (headless) Chromium: staff make one on a laptop through the console's
form (a validation error first, then fixed), stock it with codes and publish it, and its page
shows the figures and the chart; a holder on a phone in WeChat's browser goes from the list
of campaigns through OAuth (the simulator plays WeChat) to a redemption and its history.

Each page is kept under test-artifacts/screenshots/ (tests.fixtures.browser) for people to
look at; the campaign pages of both are at the widths they are made for.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from campaigns.benefits import redemption
from core.db import db
from members.holders.models import Binding, CardHolder
from tests.fixtures.benefits import (
    SHANGHAI,
    SLUG,
    campaign_json,
    holder_id,
    make_campaign,
    spend,
    voucher_codes,
)
from tests.fixtures.browser import save_screenshot
from tests.fixtures.staff import STAFF_PASSWORD
from wechat.sim.config import SimConfig

# Who the simulator's authorize page logs in when the browser names nobody.
FOLLOWER = SimConfig.default_oauth_openid
PHONE = {"width": 375, "height": 812}
LOCAL_INPUT = "%Y-%m-%dT%H:%M:%S"


def _log_in(page, live_app, username):
    page.goto(f"{live_app}/admin/login?next=/admin/campaigns")
    page.fill("#username", username)
    page.fill("#password", STAFF_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/campaigns$"))


def _submit(page, selector="button[type=submit].primary"):
    with page.expect_navigation():
        page.click(selector)


def _redeemed_over_a_week(app, client, people, starts):
    """Holders 1-3 spend on the first day and redeem on different days: bars for the chart."""
    for number, person in enumerate(people[:3], start=1):
        spend(client, app, person.card_no, 120000, number, occurred_at=starts + timedelta(hours=1))
    with app.app_context():
        for number, person in enumerate(people[:3]):
            holder = db.session.get(CardHolder, holder_id(app, person))
            for key, day in (("video_month", number), ("music_month", number + 2),
                             ("music_month", 5)):
                redemption.redeem(holder, "tv-week", key, f"{key}-{day}",
                                  now=starts + timedelta(days=day, hours=10))
        db.session.commit()


def test_staff_make_stock_and_publish_a_campaign(laptop, live_app, app, client, make_staff,
                                                 people, handed):
    page = laptop.page
    make_staff("marketer", username="lin.marketing")
    make_staff("approver", username="wang.approver")
    starts = datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0) \
        - timedelta(days=6)
    ends = starts + timedelta(days=30, seconds=-1)

    _log_in(page, live_app, "lin.marketing")
    assert "还没有权益活动" in page.content()
    save_screenshot(page, "console-campaigns-empty")

    page.click("text=新建活动")
    page.wait_for_url(re.compile(r"/admin/campaigns/_new$"))
    save_screenshot(page, "console-campaign-new")
    page.fill("#slug", "tv-week")
    page.fill("#title", "视频会员周周领")
    page.fill("#starts_at", starts.strftime(LOCAL_INPUT))
    page.fill("#ends_at", (starts - timedelta(days=1)).strftime(LOCAL_INPUT))  # the mistake
    page.check("input[name=tiers][value=gold]")
    page.check("input[name=tiers][value=platinum]")
    page.fill("#min_spend_yuan", "1000")
    page.fill("#option-0-key", "video_month")
    page.fill("#option-0-title", "腾讯视频VIP月卡")
    page.fill("#option-0-limit", "1")
    page.click("[data-add-row]")  # the script adds a second row
    second = page.locator("[data-option-rows] tr").nth(1)
    second.locator("input[name=option_key]").fill("music_month")
    second.locator("input[name=option_title]").fill("QQ音乐绿钻月卡")
    second.locator("input[name=option_points]").fill("50")
    second.locator("input[name=option_limit]").fill("2")
    _submit(page)
    assert page.locator("#ends_at-error").inner_text() == "须晚于开始时间"
    assert page.locator(".error[role=alert]").inner_text().startswith("有 1 处需要修改")
    assert page.input_value("#option-1-title") == "QQ音乐绿钻月卡"  # kept, not retyped
    save_screenshot(page, "console-campaign-form-error")

    page.fill("#ends_at", ends.strftime(LOCAL_INPUT))
    _submit(page)
    page.wait_for_url(re.compile(r"/admin/campaigns/tv-week$"))
    assert "活动已创建，当前为草稿" in page.locator(".notice").inner_text()
    publish = page.locator("button", has_text="发布活动")
    assert publish.is_disabled()  # a marketer may not publish
    for key, prefix in (("video_month", "video"), ("music_month", "music")):
        page.select_option("#codes-option", key)
        codes = "\n".join([*voucher_codes(prefix, 20), f"{prefix.upper()}-0001-K7Q", ""])
        page.set_input_files("#codes-file", files=[{
            "name": f"{prefix}.txt", "mimeType": "text/plain", "buffer": codes.encode()}])
        _submit(page, "#codes button[type=submit]")
    notice = page.locator(".notice").inner_text()
    assert notice == "“QQ音乐绿钻月卡”新增券码 20 个，重复 1 个，当前库存 20 个。"
    save_screenshot(page, "console-campaign-draft")

    with page.expect_navigation():
        page.click(".nav-button")  # log out
    _log_in(page, live_app, "wang.approver")
    page.click("text=视频会员周周领")
    page.wait_for_url(re.compile(r"/admin/campaigns/tv-week$"))
    _submit(page, "button:has-text('发布活动')")
    assert "活动已发布" in page.locator(".notice").inner_text()
    assert "进行中" in page.locator("h1 .tag").inner_text()
    save_screenshot(page, "console-campaign-published")

    _redeemed_over_a_week(app, client, people, starts)
    page.reload()
    figures = page.locator(".figure-value").all_inner_texts()
    assert figures == ["31", "9", "2"]  # 40 codes, 9 redeemed, two options
    loaded = page.eval_on_selector(".chart img", "img => img.complete && img.naturalWidth")
    assert loaded == 960
    page.click(".day-table summary")
    assert page.locator(".day-table tbody tr").count() == 7  # the campaign's days so far
    save_screenshot(page, "console-campaign-figures")

    page.click("text=编辑")
    page.wait_for_url(re.compile(r"/admin/campaigns/tv-week/edit$"))
    assert page.locator("#starts_at").get_attribute("readonly") is not None
    save_screenshot(page, "console-campaign-edit")

    page.click("nav >> text=权益活动")
    page.wait_for_url(re.compile(r"/admin/campaigns$"))
    assert "视频会员周周领" in page.content() and "进行中" in page.content()
    save_screenshot(page, "console-campaigns")
    # No CSP violation, no script error: only the form's refusal the browser was shown.
    assert laptop.problems == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]


def test_a_holder_redeems_on_the_campaign_page(phone, live_app, app, client, sim, people,
                                               handed):
    page = phone.page
    page.set_viewport_size(PHONE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app)
    make_campaign(app, campaign_json(title="腾讯视频VIP月卡 · 12月权益"),
                  codes={"video_month": voucher_codes("video", 30),
                         "music_month": voucher_codes("music", 5)})
    person = people[0]  # gold

    # -> the simulator's authorize page (as FOLLOWER) -> callback -> back to the list
    page.goto(f"{live_app}/m/campaigns")
    page.wait_for_url(re.compile(re.escape(f"{live_app}/m/campaigns") + "(#.*)?$"))
    page.click(".campaign-card")
    page.wait_for_url(re.compile(re.escape(f"/m/campaigns/{SLUG}") + "(#.*)?$"))
    assert page.locator(".verdict-box").inner_text().startswith("请先绑定联名卡")
    assert page.locator(".verdict-box a").get_attribute("href") == "/m/bind"
    save_screenshot(page, "h5-campaign-not-bound")

    with app.app_context():
        db.session.add(Binding(holder_id=holder_id(app, person), app="oa", openid=FOLLOWER))
        db.session.commit()
    spend(client, app, person.card_no, 77000, 1)
    page.reload()
    assert page.locator(".verdict-box").inner_text() == "活动期间再消费 ¥230.00 即可领取"
    save_screenshot(page, "h5-campaign-min-spend")

    spend(client, app, person.card_no, 50000, 2)  # ¥1,270.00 in all: 127 points
    page.goto(f"{live_app}/m/campaigns")
    assert page.locator(".verdict").inner_text() == "可领取"
    assert page.locator(".balance strong").inner_text() == "127"
    save_screenshot(page, "h5-campaigns")

    page.click(".campaign-card")
    page.wait_for_url(re.compile(re.escape(f"/m/campaigns/{SLUG}") + "(#.*)?$"))
    assert page.locator(".verdict-box").inner_text() == "您已符合领取条件"
    video = page.locator("form.option", has_text="腾讯视频VIP月卡").first
    assert "剩余 30 份" in video.inner_text()
    music = page.locator("form.option", has_text="QQ音乐绿钻月卡")
    assert music.locator("button").is_disabled() and "积分不足" in music.inner_text()
    # One column on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, "h5-campaign")

    with page.expect_navigation():
        video.locator("button").click()
    code = page.locator("#code").inner_text()
    assert re.fullmatch(r"VIDEO-\d{4}-K7Q", code)
    page.click("button[data-copy]")
    page.wait_for_function("document.querySelector('.copy-status').textContent === '已复制'")
    assert page.evaluate("navigator.clipboard.readText()") == code
    save_screenshot(page, "h5-redeemed")

    page.click("text=查看我的权益")
    page.wait_for_url(re.compile(r"/m/benefits(#.*)?$"))
    assert page.locator(".voucher-code").all_inner_texts() == [code]
    assert "腾讯视频VIP月卡 · 12月权益" in page.content()
    save_screenshot(page, "h5-benefits")

    content = page.content()
    assert person.card_no not in content and person.phone not in content
    assert phone.problems == []  # no CSP violation, no script error
