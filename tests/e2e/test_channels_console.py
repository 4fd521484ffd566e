"""Channels in a real (headless) Chromium: a marketer on a laptop creates a channel (a code
with a hyphen first, then fixed), sees its QR code and mini-program code, and imports a branch's
staff list from CSV (a bad row first, then fixed). The simulator plays WeChat.

Screenshots land under test-artifacts/screenshots/ (console-channels*)."""

from __future__ import annotations

import re

from tests.fixtures.browser import save_screenshot
from tests.fixtures.sim import sim_calls
from tests.fixtures.staff import STAFF_PASSWORD

STAFF_LIST = ("code,kind,name,branch,staff\n"
              "branch_0101,branch,杭州西湖支行,0101,\n"
              "m_0101_wang,manager,王晓明,0101,wang.xm\n"
              "m_0101_li,manager,李静,0101,li.jing\n")


def _submit(page, selector):
    with page.expect_navigation():
        page.click(selector)


def _image_shown(page, selector) -> bool:
    page.wait_for_function(
        f"() => {{ const i = document.querySelector({selector!r}); "
        "return i && i.complete && i.naturalWidth > 0; }")
    return True


def test_a_marketer_creates_and_imports_channels_and_sees_the_codes(laptop, live_app, app,
                                                                    make_staff, sim,
                                                                    monkeypatch):
    page = laptop.page
    make_staff("marketer", username="lin.marketing")
    make_staff("manager", username="wang.xm", branch="0101")
    make_staff("manager", username="li.jing", branch="0101")

    page.goto(f"{live_app}/admin/login?next=/admin/channels")
    page.fill("#username", "lin.marketing")
    page.fill("#password", STAFF_PASSWORD)
    _submit(page, "button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/channels$"))
    assert "公众号永久二维码额度" in page.content()

    assert page.get_attribute("#channel-code", "maxlength") == "32"  # no 33rd character
    page.fill("#channel-code", "spring-2027")  # a hyphen
    page.select_option("#channel-kind", "campaign")
    page.fill("#channel-name", "春季开卡礼")
    _submit(page, "#create button[type=submit]")
    assert page.locator("#channel-code-error").inner_text() == \
        "渠道编码须为 1 至 32 位英文字母、数字或下划线"
    assert page.input_value("#channel-name") == "春季开卡礼"  # kept, not retyped
    save_screenshot(page, "console-channels-form-error")

    page.fill("#channel-code", "spring_2027")
    _submit(page, "#create button[type=submit]")
    assert re.search(r"/admin/channels/spring_2027#top$", page.url)
    assert "渠道“春季开卡礼”已创建" in page.locator(".notice").inner_text()
    assert _image_shown(page, "img[src$='/qrcode.png']")
    assert _image_shown(page, "img[src$='/miniapp-code.png']")
    assert len(sim_calls(sim, "/cgi-bin/qrcode/create")) == 1
    save_screenshot(page, "console-channel")

    _submit(page, ".crumbs a")
    bad = STAFF_LIST.replace("wang.xm", "nobody")
    page.set_input_files("#import-file", files=[{
        "name": "0101.csv", "mimeType": "text/csv", "buffer": bad.encode("utf-8-sig")}])
    _submit(page, "#import button[type=submit]")
    errors = page.locator(".row-errors tbody tr")
    assert errors.count() == 1
    assert errors.first.inner_text().split("\t") == ["3", "客户经理账号", "没有这个员工账号"]
    save_screenshot(page, "console-channels-import-error")

    page.set_input_files("#import-file", files=[{
        "name": "0101.csv", "mimeType": "text/csv", "buffer": STAFF_LIST.encode("utf-8-sig")}])
    _submit(page, "#import button[type=submit]")
    assert page.locator(".notice").inner_text() == "已导入 3 个渠道。"
    rows = page.locator("table.table tbody tr")
    assert rows.count() == 4
    save_screenshot(page, "console-channels")

    page.click("text=王晓明")
    page.wait_for_url(re.compile(r"/admin/channels/m_0101_wang$"), wait_until="commit")
    assert _image_shown(page, "img[src$='/qrcode.png']")

    monkeypatch.setitem(app.config, "WECHAT_PERMANENT_QR_LIMIT", 3)  # 2 of 3 used: 67 %
    monkeypatch.setitem(app.config, "WECHAT_PERMANENT_QR_WARNING", 0.6)
    page.goto(f"{live_app}/admin/channels")
    assert "永久二维码已使用 66.7%，即将用完" in page.locator(".budget .warning").inner_text()
    save_screenshot(page, "console-channels-budget-warning")
    # the two refused forms answered 400, as they should; nothing else went wrong
    assert laptop.problems == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"] * 2
