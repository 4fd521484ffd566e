"""A push in a real (headless) Chromium, end to end: a marketer chooses an audience and
composes a mass message (the WeChat preview follows the typing), a second person approves
it from the queue, the push really sends through the simulator while its page's progress
bar fills to 100 % without a reload, and the delivery report shows the chart and the CSV.

Screenshots land under test-artifacts/screenshots/ (console-push-*), for people to look at.
"""

from __future__ import annotations

import re
from datetime import datetime

from campaigns.pushes.models import MassAllowance
from core.clock import SHANGHAI
from core.db import db
from tests.campaigns.pushes.composing import make_audience
from tests.campaigns.pushes.engine import add_followers, openids, outcomes, received
from tests.fixtures.browser import save_screenshot
from tests.fixtures.staff import STAFF_PASSWORD

TEXT = "本月消费满1000元即可领取腾讯视频VIP月卡，\n点击菜单“权益”领取。"


def _log_in(page, live_app, username, next_):
    page.goto(f"{live_app}/admin/login?next={next_}")
    page.fill("#username", username)
    page.fill("#password", STAFF_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(next_) + "$"))


def _submit(page, selector):
    with page.expect_navigation():
        page.click(selector)


def test_compose_approve_watch_and_report(laptop, live_app, app, client, sim, run_jobs,
                                          make_staff):
    page = laptop.page
    make_staff("marketer", username="lin.marketing")
    approver = make_staff("approver", username="wang.approver")
    ids = openids("Journey", 6)
    capped = openids("Capped", 2)  # sent 4 mass messages this month already
    add_followers(app, sim, ids + capped)
    with app.app_context():
        month = datetime.now(SHANGHAI).strftime("%Y-%m")
        db.session.add_all(MassAllowance(openid=openid, month=month, used=4)
                           for openid in capped)
        db.session.commit()
    audience = make_audience(app, name="已关注的联名卡粉丝")
    # The approver's own push waits in the queue too: shown to them without the button.
    own = client.post("/admin/api/pushes", headers=approver.headers, json={
        "name": "元旦积分加倍", "audience_id": audience, "channel": "subscribe",
        "message": {"template_id": "tmpl-push-benefit", "data": {"thing1": "元旦积分加倍"}}})
    assert own.status_code == 201

    _log_in(page, live_app, "lin.marketing", "/admin/pushes/new")
    page.fill("#name", "12月权益提醒")
    page.select_option("#audience_id", label="已关注的联名卡粉丝（当前 8 人）")
    page.check("input[name=channel][value=subscribe]")
    assert page.locator("[data-preview=subscribe]").is_visible()
    assert page.locator("#template_id").is_visible() and not page.locator("#text").is_visible()
    page.check("input[name=channel][value=mass]")
    page.fill("#text", TEXT)
    assert page.locator("[data-preview-text]").inner_text() == TEXT  # as it is typed
    assert page.locator("[data-preview=text]").is_visible()
    page.fill("#rate_per_s", "0")  # the mistake
    _submit(page, "button[type=submit].primary")
    assert page.locator("#rate_per_s-error").inner_text() == "须为 1–1000 的整数"
    assert page.locator("[data-preview-text]").inner_text() == TEXT  # kept, not retyped
    save_screenshot(page, "console-push-compose")
    page.fill("#rate_per_s", "20")
    _submit(page, "button[type=submit].primary")
    page.wait_for_url(re.compile(r"/admin/pushes/\d+$"))
    push_url = page.url
    assert "推送已创建" in page.locator(".notice").inner_text()
    assert "须由另一位审批人审批" in page.locator(".own-note").inner_text()

    with page.expect_navigation():
        page.click(".nav-button")  # log out
    _log_in(page, live_app, "wang.approver", "/admin/pushes/approvals")
    cards = page.locator("section.approval")
    assert cards.count() == 2
    mine = cards.filter(has_text="元旦积分加倍")
    assert mine.locator("button").count() == 0 and mine.locator(".own-note").is_visible()
    save_screenshot(page, "console-push-approvals")
    _submit(page, "section.approval:has-text('12月权益提醒') button:has-text('审批通过')")
    page.wait_for_url(push_url)
    assert "推送已审批" in page.locator(".notice").inner_text()

    run_jobs()  # real mode: a worker sends it (embedded test jobs ran at once)
    page.wait_for_function(
        "() => document.querySelector('[data-percent]').textContent === '100%'",
        timeout=20_000)
    assert page.locator("[data-count=sent]").inner_text() == "6"
    assert page.locator("[data-count=skipped]").inner_text() == "2"
    assert page.locator("[data-state]").inner_text() == "已完成"
    save_screenshot(page, "console-push-progress")
    push_id = int(push_url.rsplit("/", 1)[1])
    assert outcomes(app, push_id) == {("sent", None): 6, ("skipped", "monthly_cap"): 2}
    assert received(sim, "mass", ids) == {openid: 1 for openid in ids}

    page.click("text=投递报告")
    page.wait_for_url(re.compile(r"/report$"))
    loaded = page.eval_on_selector(".chart img", "img => img.complete && img.naturalWidth")
    assert loaded == 960
    assert page.locator(".figure-value").all_inner_texts() == ["8", "6", "2", "0", "0"]
    assert "本月群发已满4条" in page.locator(".report-tables").inner_text()
    with page.expect_download() as download:
        page.click("text=下载明细（CSV）")
    lines = download.value.path().read_text(encoding="utf-8").splitlines()
    assert lines[0] == "openid,state,reason,sent_at" and len(lines) == 9
    save_screenshot(page, "console-push-report")
    # No CSP violation, no script error: only the composer's refusal the browser was shown.
    assert laptop.problems == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]

