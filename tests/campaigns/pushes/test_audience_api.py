"""``/admin/api/audiences``: create, count and read, with their roles and refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns.console.models import StaffAction
from campaigns.pushes.models import Audience
from core.db import db
from tests.campaigns.pushes.audience_data import build_world

GOLD = {"subscribed": True, "tiers": ["gold"]}


@pytest.fixture
def marketer(make_staff):
    return make_staff("marketer", username="mia.marketing")


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_create_then_read_counts_now(app, client, marketer, make_staff):
    build_world(app)
    created = client.post("/admin/api/audiences", headers=marketer.headers,
                          json={"name": "金卡粉丝", "filter": GOLD})
    assert created.status_code == 201
    assert set(created.json) == {"id", "size"} and created.json["size"] == 2
    viewer = make_staff("viewer")
    shown = client.get(f"/admin/api/audiences/{created.json['id']}", headers=viewer.headers)
    assert shown.status_code == 200
    assert shown.json == {"id": created.json["id"], "name": "金卡粉丝", "filter": GOLD,
                          "size": 2}
    assert _count(app, StaffAction, StaffAction.action == "audience.create",
                  StaffAction.username == "mia.marketing") == 1


def test_the_live_count(app, client, marketer):
    build_world(app)
    answer = client.post("/admin/api/audiences/count", headers=marketer.headers,
                         json={"filter": {"bound": False}})
    assert answer.status_code == 200 and answer.json == {"size": 2}
    bad = client.post("/admin/api/audiences/count", headers=marketer.headers,
                      json={"filter": {"bound": "no"}})
    assert bad.status_code == 400 and bad.json["error"] == "invalid_filter"
    assert bad.json["fields"] == {"filter.bound": "must be true or false"}


@pytest.mark.parametrize(("body", "error"), [
    (b"{not json", "invalid_json"),
    (b'{"name": "a", "name": "b", "filter": {}}', "invalid_json"),
    (b"[]", "invalid_json"),
    (b'{"filter": {}}', "missing_field"),
    (b'{"name": "a"}', "missing_field"),
    (b'{"name": "a", "filter": {}, "size": 3}', "unknown_field"),
    (b'{"name": "", "filter": {}}', "invalid_audience"),
    ('{"name": "%s", "filter": {}}' % ("名" * 65), "invalid_audience"),
    (b'{"name": 7, "filter": {}}', "invalid_audience"),
    (b'{"name": "a", "filter": []}', "invalid_filter"),
    (b'{"name": "a", "filter": {"tiers": []}}', "invalid_filter"),
    (b'{"name": "a", "filter": {"active_within_hours": -1}}', "invalid_filter"),
])
def test_bad_bodies_are_refused_and_change_nothing(app, client, marketer, body, error):
    answer = client.post("/admin/api/audiences", headers=marketer.headers,
                         data=body if isinstance(body, bytes) else body.encode(),
                         content_type="application/json")
    assert answer.status_code == 400, answer.json
    assert answer.json["error"] == error and answer.json["message"]
    assert _count(app, Audience) == 0
    assert _count(app, StaffAction, StaffAction.action == "audience.create") == 0


def test_unknown_audiences_are_404(client, make_staff):
    viewer = make_staff("viewer")
    for path in ("/admin/api/audiences/999", "/admin/api/audiences/abc"):
        answer = client.get(path, headers=viewer.headers)
        assert answer.status_code == 404 and "error" in answer.json


def test_roles(app, client, make_staff):
    body = {"name": "a", "filter": {}}
    assert client.post("/admin/api/audiences", json=body).status_code == 401
    assert client.get("/admin/api/audiences/1").status_code == 401
    assert client.post("/admin/api/audiences/count", json={"filter": {}}).status_code == 401
    for role in ("viewer", "manager"):
        account = make_staff(role)
        assert client.post("/admin/api/audiences", json=body,
                           headers=account.headers).status_code == 403
        assert client.post("/admin/api/audiences/count", json={"filter": {}},
                           headers=account.headers).status_code == 403
    assert _count(app, Audience) == 0
    assert _count(app, StaffAction, StaffAction.action == "forbidden") == 4
    for role in ("approver", "admin"):
        assert client.post("/admin/api/audiences", json=body,
                           headers=make_staff(role).headers).status_code == 201
