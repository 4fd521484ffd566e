"""The audience console pages: roles, the form's refusals next to their fields, the
preview's JSON."""

from __future__ import annotations

from sqlalchemy import func, select

from campaigns.pushes.models import Audience
from core.db import db
from tests.campaigns.pushes.audience_data import build_world
from tests.fixtures.staff import csrf_token, log_in


def test_a_viewer_reads_the_list_but_cannot_build(app, client, make_staff):
    viewer = make_staff("viewer")
    log_in(client, viewer.username)
    assert client.get("/admin/audiences").status_code == 200
    assert client.get("/admin/audiences/new").status_code == 403
    token = csrf_token(client.get("/admin/audiences").get_data(as_text=True))
    answer = client.post("/admin/audiences/_preview", data={"csrf_token": token})
    assert answer.status_code == 403


def test_not_logged_in_goes_to_the_login(client):
    answer = client.get("/admin/audiences/new")
    assert answer.status_code == 303 and "/admin/login" in answer.headers["Location"]


def test_the_form_names_its_problems_and_saves_nothing(app, client, make_staff):
    log_in(client, make_staff("marketer").username)
    token = csrf_token(client.get("/admin/audiences/new").get_data(as_text=True))
    answer = client.post("/admin/audiences/new", data={
        "csrf_token": token, "name": "", "channels": "ok_1 bad-code",
        "active_within_hours": "0"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "请填写人群名称" in html and "渠道代码须为 1–32 位字母、数字或“_”" in html
    assert "须为 1–87840 之间的整数" in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Audience)) == 0
    assert client.post("/admin/audiences/new", data={"name": "x"}).status_code == 400  # no CSRF


def test_the_preview(app, client, make_staff):
    build_world(app)
    log_in(client, make_staff("marketer").username)
    token = csrf_token(client.get("/admin/audiences/new").get_data(as_text=True))
    answer = client.post("/admin/audiences/_preview", data={
        "csrf_token": token, "cities": "广州，深圳", "subscribed": "yes"})
    assert answer.status_code == 200
    assert answer.json["size"] == 3 and answer.json["problems"] == {}
    assert {row["holder"]["city"] for row in answer.json["sample"]} == {"广州", "深圳"}
    bad = client.post("/admin/audiences/_preview", data={"csrf_token": token,
                                                         "active_within_hours": "2.5"})
    assert bad.json == {"size": None, "sample": [],
                        "problems": {"active_within_hours": "请填写整数小时数"}}
