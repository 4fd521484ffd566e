"""A staff member logs in to the console in a real (headless) Chromium on a laptop: a wrong
password, a lockout, a form posted without its CSRF token, then the right password.

Each page is kept under test-artifacts/screenshots/ (tests.fixtures.browser) for people
to look at.
"""

from __future__ import annotations

import re

from limits import parse_many

from tests.fixtures.browser import save_screenshot
from tests.fixtures.staff import STAFF_PASSWORD


def _submit(page, username, password):
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_staff_login_in_the_browser(laptop, live_app, app, make_staff):
    page = laptop.page
    locked_name, _ = make_staff("marketer", username="lin.marketing")
    username, _ = make_staff("approver", username="wang.approver")

    page.goto(f"{live_app}/admin/")  # not logged in: to the login form, and back after it
    page.wait_for_url(re.compile(r"/admin/login\?next=/admin/$"))
    assert page.locator("h1").inner_text() == "员工登录"
    # The stylesheet loaded under the CSP (the top bar is the bank's red).
    bar = page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor")
    assert bar == "rgb(179, 18, 29)"
    save_screenshot(page, "console-login")

    _submit(page, locked_name, "not my password at all")
    assert "用户名或密码错误" in page.locator(".error").inner_text()
    save_screenshot(page, "console-login-wrong-password")

    failures = min(item.amount for item in
                   parse_many(app.config["RATE_LIMITS"]["staff_login"]["username"]))
    for _ in range(failures - 1):
        _submit(page, locked_name, "not my password at all")
    response = page.request.post(f"{live_app}/admin/login", form={
        "username": locked_name, "password": STAFF_PASSWORD,
        "csrf_token": page.input_value("input[name=csrf_token]")}, max_redirects=0)
    assert response.status == 429 and int(response.headers["retry-after"]) > 0
    _submit(page, locked_name, STAFF_PASSWORD)  # locked: even the right password
    assert "登录失败次数过多" in page.locator(".error").inner_text()
    save_screenshot(page, "console-login-locked")

    # The form without its token (a cross-site post would have none): refused.
    page.eval_on_selector("input[name=csrf_token]", "e => e.remove()")
    _submit(page, username, STAFF_PASSWORD)
    assert "页面已过期" in page.locator("h1").inner_text()
    save_screenshot(page, "console-login-no-csrf")

    page.goto(f"{live_app}/admin/login?next=/admin/")
    _submit(page, username, STAFF_PASSWORD)
    page.wait_for_url(re.compile(re.escape(live_app) + r"/admin/$"))
    assert page.locator("h1").inner_text() == f"您好，{username}"
    assert "审批" in page.locator(".whoami").inner_text()
    links = [a.inner_text() for a in page.locator(".nav a").all()]
    assert links == ["首页", "权益活动", "人群", "推送", "渠道与海报", "转化漏斗", "审计日志"]
    assert page.locator(".nav-button").inner_text() == "退出"
    save_screenshot(page, "console-home")

    page.click("text=审计日志")
    page.wait_for_url(re.compile(r"/admin/audit$"))
    assert "login_locked" in page.content() and username in page.content()
    save_screenshot(page, "console-audit")

    with page.expect_navigation():
        page.click(".nav-button")
    assert "您已安全退出" in page.content()
    # No CSP violation, no script error: only the two refusals the browser was shown.
    assert laptop.problems == [
        f"Failed to load resource: the server responded with a status of {status}"
        for status in ("429 (TOO MANY REQUESTS)", "400 (BAD REQUEST)")]
