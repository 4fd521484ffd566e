"""A customer manager in a real (headless) Chromium: logs in to the console, sees only their
own channel on the home page, downloads its poster, views its funnel, and is refused
another manager's; a viewer looks at the ranking of channels. Screenshots are kept under
test-artifacts/screenshots/ for people to look at."""

from __future__ import annotations

import re

from core.db import db
from tests.campaigns.attribution import people as p
from tests.fixtures.browser import save_screenshot
from tests.fixtures.channels import make_channel
from tests.fixtures.staff import STAFF_PASSWORD


def _log_in(page, live_app, username):
    page.goto(f"{live_app}/admin/login")
    page.fill("#username", username)
    page.fill("#password", STAFF_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def _brought(app):
    """mgr_zhang's channel brought 12 scans, 8 followers; 5 bound, 3 spent, 2 redeemed."""
    with app.app_context():
        for n in range(12):
            p.scan(f"z{n}", "mgr_zhang", p.day(0), followed=n < 8)
        for n in range(8):
            p.follower(f"z{n}", "mgr_zhang", p.day(0))
        for n in range(5):
            holder = p.holder()
            p.binding(holder, "oa", f"z{n}", p.day(1))
            if n < 3:
                p.transaction(holder, p.day(2))
            if n < 2:
                p.redemption(holder, p.day(3))
        for n in range(3):
            p.follower(f"l{n}", "mgr_li", p.day(0))
        db.session.commit()


def test_a_manager_sees_downloads_and_follows_their_own_channel(laptop, live_app, app,
                                                                make_staff, sim):
    page = laptop.page
    make_staff("manager", username="zhang.wei")
    make_staff("manager", username="li.na")
    make_channel(app, "mgr_zhang", "manager", "张伟（南京西路支行）", staff="zhang.wei")
    make_channel(app, "mgr_li", "manager", "李娜（南京西路支行）", staff="li.na")
    _brought(app)

    _log_in(page, live_app, "zhang.wei")
    mine = page.locator(".my-channels")
    assert "张伟（南京西路支行）" in mine.inner_text() and "mgr_zhang" in mine.inner_text()
    assert "mgr_li" not in page.content()
    save_screenshot(page, "console-manager-home")

    with page.expect_download() as download:
        page.click(".my-channels >> text=下载推广海报")
    poster = download.value
    with open(poster.path(), "rb") as image:
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"

    with page.expect_navigation():
        page.click("text=查看转化漏斗")
    page.wait_for_url(re.compile(r"/admin/funnel/mgr_zhang$"))
    assert page.locator(".figure-value").all_inner_texts() == ["12", "8", "5", "3", "2"]
    loaded = page.eval_on_selector(".chart img", "img => img.complete && img.naturalWidth")
    assert loaded == 960
    assert "62.5%" in page.locator(".funnel-rates").inner_text()  # 5 of 8 bound
    save_screenshot(page, "console-manager-funnel")

    refused = page.goto(f"{live_app}/admin/funnel/mgr_li")
    assert refused.status == 403 and "其他客户经理" in page.content()
    # No script error or CSP violation on the way; the refused page's own 403 aside.
    assert [problem for problem in laptop.problems if "403" not in problem] == []


def test_a_viewer_ranks_the_channels_and_exports_them(laptop, live_app, app, make_staff):
    page = laptop.page
    make_staff("viewer", username="zhao.report")
    make_staff("manager", username="zhang.wei")
    make_staff("manager", username="li.na")
    make_channel(app, "mgr_zhang", "manager", "张伟（南京西路支行）", staff="zhang.wei")
    make_channel(app, "mgr_li", "manager", "李娜（南京西路支行）", staff="li.na")
    make_channel(app, "branch_0101", "branch", "南京西路支行")
    _brought(app)

    _log_in(page, live_app, "zhao.report")
    page.goto(f"{live_app}/admin/funnel/")
    names = page.locator(".funnel-ranking tbody tr td:nth-child(2) a").all_inner_texts()
    assert names[:2] == ["张伟（南京西路支行）", "李娜（南京西路支行）"]
    page.select_option("#by", "transacting")
    page.fill("#branch", "0101")
    page.fill("#from", "2026-11-01")
    page.fill("#to", "2026-11-30")
    with page.expect_navigation():
        page.click("button[type=submit].primary")
    assert "by=transacting" in page.url
    save_screenshot(page, "console-funnel-ranking")
    with page.expect_download() as download:
        page.click("text=导出 CSV")
    with open(download.value.path(), encoding="utf-8-sig") as exported:
        assert exported.readline().strip() == (
            "code,name,kind,branch,scans,follows,binds,transacting,redemptions")
    assert laptop.problems == []
