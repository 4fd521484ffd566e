"""The audience builder in a real (headless) Chromium: a marketer ticks and types the
filter's parts, the live count and the masked sample follow without a reload, a bad value
is named next to its field, and saving lists the audience (audited).

Screenshot: test-artifacts/screenshots/console-audience-builder.png.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from campaigns.console.models import StaffAction
from campaigns.pushes.models import Audience
from core.db import db
from tests.campaigns.pushes.audience_data import build_world
from tests.fixtures.browser import save_screenshot
from tests.fixtures.staff import STAFF_PASSWORD


def _size(page, expected: str) -> None:
    page.wait_for_function(
        "expected => document.querySelector('[data-size]').textContent === expected",
        arg=expected)


def test_build_an_audience_watching_the_count(laptop, live_app, app, make_staff):
    build_world(app)
    make_staff("marketer", username="lin.marketing")
    page = laptop.page
    page.goto(f"{live_app}/admin/login?next=/admin/audiences/new")
    page.fill("#username", "lin.marketing")
    page.fill("#password", STAFF_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/audiences/new$"))

    _size(page, "5")  # "followers now" is ticked to begin with
    page.check("input[name=bound]")
    _size(page, "3")
    page.check("input[name=tiers][value=gold]")
    _size(page, "2")
    page.fill("#active_within_hours", "abc")
    page.wait_for_selector("#active_within_hours-error:not([hidden])")
    assert page.text_content("#active_within_hours-error") == "请填写整数小时数"
    assert page.text_content("[data-size]") == "—"
    page.fill("#active_within_hours", "2")
    _size(page, "1")
    assert "oGol****0001" in page.text_content("[data-sample]")
    assert page.is_hidden("#active_within_hours-error")
    page.fill("#name", "广州金卡近2小时活跃")
    save_screenshot(page, "console-audience-builder")

    with page.expect_navigation():
        page.click(".audience-form button[type=submit]")
    assert page.url.endswith("/admin/audiences")
    assert "已保存" in page.text_content(".notice")
    assert "广州金卡近2小时活跃" in page.text_content("table")
    save_screenshot(page, "console-audience-list")
    assert laptop.problems == []
    with app.app_context():
        audience = db.session.scalar(select(Audience))
        assert audience.filter == {"subscribed": True, "bound": True, "tiers": ["gold"],
                                   "active_within_hours": 2}
        assert db.session.scalar(select(StaffAction.target).where(
            StaffAction.action == "audience.create")) == f"audience:{audience.id}"
