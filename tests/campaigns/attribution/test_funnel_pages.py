"""The console's funnel pages: the ranking with its filters and export, a channel's chart,
and a manager's own channels (another's: the 403 page, audited)."""

from __future__ import annotations

from sqlalchemy import select

from campaigns.console.models import StaffAction
from core.db import db
from tests.campaigns.attribution import people as p
from tests.fixtures.channels import make_channel


def _managers(app, make_staff):
    make_staff("manager", "mgr_a")
    make_staff("manager", "mgr_b")
    make_channel(app, "mgr_a_code", "manager", "张三", staff="mgr_a")
    make_channel(app, "mgr_b_code", "manager", "李四", staff="mgr_b")
    with app.app_context():
        p.follower("fa", "mgr_a_code", p.day(0))
        p.binding(p.holder(), "oa", "fa", p.day(0, hours=1))
        db.session.commit()


def test_the_ranking_page_its_filters_and_its_export(app, client, make_staff, console_login):
    _managers(app, make_staff)
    console_login(client, make_staff("viewer").username)
    page = client.get("/admin/funnel/").get_data(as_text=True)
    assert page.index("张三") < page.index("李四")
    assert "/admin/funnel/_export.csv" in page
    bad = client.get("/admin/funnel/", query_string={"from": "2026-02-30"})
    assert bad.status_code == 400 and "日期须为" in bad.get_data(as_text=True)
    export = client.get("/admin/funnel/_export.csv", query_string={"by": "transacting"})
    assert export.mimetype == "text/csv" and "mgr_a_code,张三" in export.get_data(as_text=True)


def test_a_channels_funnel_page_and_chart(app, client, make_staff, console_login):
    _managers(app, make_staff)
    console_login(client, make_staff("viewer").username)
    page = client.get("/admin/funnel/mgr_a_code")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "张三 的转化漏斗" in text and "关注 → 绑卡" in text and "100.0%" in text
    chart = client.get("/admin/funnel/mgr_a_code/chart.svg")
    assert chart.mimetype == "image/svg+xml" and b"<script" not in chart.get_data()


def test_a_manager_sees_its_own_channel_at_home_and_is_refused_anothers(app, client,
                                                                       make_staff,
                                                                       console_login):
    _managers(app, make_staff)
    console_login(client, "mgr_a")
    home = client.get("/admin/").get_data(as_text=True)
    assert "我的推广渠道" in home and "mgr_a_code" in home and "mgr_b_code" not in home
    assert client.get("/admin/funnel/mgr_a_code").status_code == 200
    refused = client.get("/admin/funnel/mgr_b_code")
    assert refused.status_code == 403 and "其他客户经理" in refused.get_data(as_text=True)
    assert client.get("/admin/funnel/").status_code == 403
    with app.app_context():
        targets = list(db.session.scalars(select(StaffAction.target).where(
            StaffAction.action == "forbidden")))
    assert "path:/admin/funnel/mgr_b_code" in targets
