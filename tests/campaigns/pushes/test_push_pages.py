"""The console's push pages (/admin/pushes): the composer and its messages next to the
fields, the approval queue (never the creator's button), a push's page with its actions and
progress JSON, the report with its chart and CSV; roles and CSRF."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from campaigns.pushes.models import Push
from core.db import db
from tests.campaigns.pushes.composing import (
    add_followers,
    make_audience,
    openids,
    started_fixture,  # noqa: F401  (the fixture ``started``)
)
from tests.fixtures.pages import text
from tests.fixtures.staff import csrf_token, log_in

NEW = "/admin/pushes/new"


def logged_in(client, make_staff, role, username=None):
    account = make_staff(role, username)
    assert log_in(client, account.username).status_code == 303
    return account


def post(client, path, data, page=None):
    token = csrf_token(text(client.get(page or path)))
    return client.post(path, data={**data, "csrf_token": token})


def error_of(html, field):
    found = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', html)
    return found.group(1) if found else None


@pytest.fixture
def audience(app):
    add_followers(app, openids(3))
    return make_audience(app, name="全部粉丝")


def composed(audience, **fields):
    values = {"name": "12月权益提醒", "audience_id": str(audience), "channel": "mass",
              "text": "本月消费满1000元即可领取腾讯视频VIP月卡", "send_at": "",
              "rate_per_s": "50", "quiet_from": "21:00", "quiet_to": "08:00"}
    values.update(fields)
    return values


def _push_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Push.id))


def test_the_composer_explains_each_channel_and_lists_audiences(client, make_staff, audience):
    logged_in(client, make_staff, "marketer")
    html = text(client.get(NEW))
    for rule in ("每人每月最多4条", "仅限48小时内发过消息的粉丝", "仅限已同意订阅的粉丝"):
        assert rule in html
    assert "全部粉丝（当前 3 人）" in html
    assert 'data-preview-text' in html and "style=" not in html and "<script>" not in html


def test_problems_show_next_to_their_fields_and_keep_the_form(client, app, make_staff,
                                                              audience):
    logged_in(client, make_staff, "marketer")
    answer = post(client, NEW, composed(audience, text="", rate_per_s="0", quiet_to="21:00",
                                        send_at="2020-01-01T10:00"))
    html = text(answer)
    assert answer.status_code == 400
    assert error_of(html, "text") == "必填"
    assert error_of(html, "rate_per_s") == "须为 1–1000 的整数"
    assert error_of(html, "quiet_hours") == "开始与结束不能相同"
    assert error_of(html, "send_at") == "不能早于现在；留空则审批通过后立即发送"
    assert 'value="12月权益提醒"' in html
    assert _push_id(app) is None


def test_a_subscription_notice_from_keyword_lines(client, app, make_staff, audience):
    logged_in(client, make_staff, "marketer")
    answer = post(client, NEW, composed(audience, channel="subscribe", text="",
                                        template_id="TPL-1",
                                        data="thing1: 腾讯视频VIP月卡\ntime2：2026年12月31日",
                                        send_at="2099-12-01T10:00"))
    assert answer.status_code == 303
    with app.app_context():
        push = db.session.scalar(select(Push))
        assert push.message == {"template_id": "TPL-1", "data": {
            "thing1": "腾讯视频VIP月卡", "time2": "2026年12月31日"}}
        assert push.send_at.isoformat() == "2099-12-01T02:00:00+00:00"
    bad = post(client, NEW, composed(audience, channel="subscribe", template_id="T",
                                     data="thing1: " + "长" * 21))
    assert error_of(text(bad), "data") == "最多 20 个字"


def test_compose_approve_and_follow_a_push(client, app, make_staff, audience, started):
    logged_in(client, make_staff, "approver", "lin")
    created = post(client, NEW, composed(audience))
    assert created.status_code == 303
    push_id = _push_id(app)
    page = f"/admin/pushes/{push_id}"
    assert created.headers["Location"].endswith(page)
    html = text(client.get(page))
    assert "推送已创建，等待另一位审批人审批" in html
    assert "这是您创建的推送，须由另一位审批人审批" in html and "审批通过</button>" not in html
    queue = text(client.get("/admin/pushes/approvals"))
    assert "12月权益提醒" in queue and "审批通过</button>" not in queue
    refused = post(client, f"{page}/approve", {}, page=page)
    assert refused.status_code == 403 and "创建人以外的审批人" in text(refused)

    client = app.test_client()  # another browser
    logged_in(client, make_staff, "approver", "wang")
    assert "审批通过</button>" in text(client.get("/admin/pushes/approvals"))
    approved = post(client, f"{page}/approve", {}, page="/admin/pushes/approvals")
    assert approved.status_code == 303 and started == [push_id]
    html = text(client.get(page))
    assert "推送已审批" in html and 'data-progress-url=' in html and "暂停</button>" in html
    progress = client.get(f"{page}/progress.json").json
    assert progress == {"state": "scheduled", "state_name": "已排期", "eta": progress["eta"],
                        "total": 3, "sent": 0, "skipped": 0, "failed": 0, "pending": 3}
    assert post(client, f"{page}/pause", {}, page=page).status_code == 303
    assert "恢复发送</button>" in text(client.get(page))
    assert post(client, f"{page}/cancel", {}, page=page).status_code == 303
    assert "推送已取消" in text(client.get(page))
    assert post(client, f"{page}/pause", {}, page=page).status_code == 409

    report = text(client.get(f"{page}/report"))
    assert "推送已取消" in report and f"{page}/deliveries.csv" in report
    chart = client.get(f"{page}/report.svg")
    assert chart.mimetype == "image/svg+xml" and b"<script" not in chart.data
    lines = client.get(f"{page}/deliveries.csv").get_data(as_text=True).splitlines()
    assert lines[0] == "openid,state,reason,sent_at" and len(lines) == 4


def test_roles_and_csrf(client, app, make_staff, audience, started):
    logged_in(client, make_staff, "viewer")
    assert client.get(NEW).status_code == 403
    assert client.get("/admin/pushes").status_code == 200
    client = app.test_client()
    logged_in(client, make_staff, "marketer")
    assert client.post(NEW, data=composed(audience)).status_code == 400  # no CSRF token
    assert _push_id(app) is None
    assert post(client, NEW, composed(audience)).status_code == 303
    page = f"/admin/pushes/{_push_id(app)}"
    assert post(client, f"{page}/approve", {}, page=page).status_code == 403
    assert client.get("/admin/pushes/999").status_code == 404
