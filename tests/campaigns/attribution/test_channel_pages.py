"""The console's channel pages through Flask's client: the budget banner, the create form's
messages, the import's row errors, a manager's own channel only, deactivation."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from campaigns.attribution.models import Channel
from campaigns.console.models import StaffAction
from core.db import db
from tests.fixtures.channels import make_channel
from tests.fixtures.staff import csrf_token, log_in


def _logged_in(client, make_staff, role, **extra):
    account = make_staff(role, **extra)
    assert log_in(client, account.username).status_code == 303
    return account


def _token(client):
    return csrf_token(client.get("/admin/channels").get_data(as_text=True))


def test_the_list_shows_the_budget_and_warns_at_80_percent(client, make_staff, app,
                                                           monkeypatch):
    _logged_in(client, make_staff, "viewer")
    page = client.get("/admin/channels").get_data(as_text=True)
    assert "公众号永久二维码额度" in page and "即将用完" not in page
    assert "新建渠道" not in page  # a viewer writes nothing
    monkeypatch.setitem(app.config, "WECHAT_PERMANENT_QR_LIMIT", 0)
    assert "额度已用完" in client.get("/admin/channels").get_data(as_text=True)


def test_the_create_form_names_what_to_fix_and_keeps_what_was_typed(client, make_staff, app):
    _logged_in(client, make_staff, "marketer")
    form = {"code": "x" * 33, "kind": "manager", "name": "张三", "branch": "0101",
            "staff": "", "csrf_token": _token(client)}
    refused = client.post("/admin/channels", data=form)
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "渠道编码超过 32 位" in html and "客户经理渠道须填写客户经理的用户名" in html
    assert 'value="张三"' in html
    created = client.post("/admin/channels", data={**form, "code": "branch_0101",
                                                    "kind": "branch"})
    assert created.status_code == 303
    assert created.location.endswith("/admin/channels/branch_0101#top")


def test_an_import_lists_its_bad_rows(client, make_staff, app):
    _logged_in(client, make_staff, "marketer")
    csv = "code,kind,name,branch,staff\nok_1,branch,网点,0101,\nbad-code,branch,网点,0101,\n"
    refused = client.post("/admin/channels/_import", data={
        "csrf_token": _token(client), "file": (io.BytesIO(csv.encode()), "list.csv", "text/csv")})
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "有 1 行需要修改，整个文件均未导入" in html and "<td class=\"num\">3</td>" in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Channel)) == 0
    done = client.post("/admin/channels/_import", data={
        "csrf_token": _token(client),
        "file": (io.BytesIO(csv.replace("bad-code", "ok_2").encode()), "list.csv", "text/csv")})
    assert done.status_code == 303
    assert "已导入 2 个渠道" in client.get("/admin/channels").get_data(as_text=True)


def test_a_manager_lands_on_its_own_channel_and_not_on_anothers(client, make_staff, app, sim):
    _logged_in(client, make_staff, "manager", username="mgr.own")
    make_staff("manager", username="mgr.other")
    make_channel(app, "m_own", kind="manager", name="王经理", staff="mgr.own")
    make_channel(app, "m_other", kind="manager", staff="mgr.other")
    landing = client.get("/admin/channels")
    assert landing.status_code == 303 and landing.location.endswith("/admin/channels/m_own")
    page = client.get("/admin/channels/m_own").get_data(as_text=True)
    assert "王经理" in page and "/admin/channels/m_own/qrcode.png" in page
    image = client.get("/admin/channels/m_own/qrcode.png?download=1")
    assert image.mimetype == "image/png"
    assert image.headers["Content-Disposition"] == 'attachment; filename="m_own-qrcode.png"'
    assert client.get("/admin/channels/m_other").status_code == 403
    assert client.get("/admin/channels/m_other/qrcode.png").status_code == 403
    with app.app_context():
        assert db.session.scalars(select(StaffAction.target).where(
            StaffAction.action == "forbidden")).all() == [
            "path:/admin/channels/m_other", "path:/admin/channels/m_other/qrcode.png"]


def test_deactivating_from_the_page(client, make_staff, app):
    _logged_in(client, make_staff, "marketer")
    make_channel(app, "branch_0101")
    done = client.post("/admin/channels/branch_0101/deactivate",
                       data={"csrf_token": _token(client)})
    assert done.status_code == 303
    page = client.get("/admin/channels/branch_0101").get_data(as_text=True)
    assert "已停用" in page and "停用渠道" not in page
    assert client.get("/admin/channels/nope").status_code == 404
