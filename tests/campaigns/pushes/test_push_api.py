"""``/admin/api/pushes``: the contract's calls, roles, answers and errors; bad input changes
nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns.console.models import StaffAction
from campaigns.pushes.models import Push
from core.db import db
from tests.campaigns.pushes.composing import (
    add_followers,
    body,
    make_audience,
    openids,
    started_fixture,  # noqa: F401  (the fixture ``started``)
)

API = "/admin/api/pushes"


@pytest.fixture
def audience(app):
    add_followers(app, openids(3))
    return make_audience(app)


@pytest.fixture
def crew(make_staff):
    return {role: make_staff(role) for role in ("viewer", "marketer", "approver", "manager")}


def _create(client, account, audience, **changes):
    return client.post(API, json=body(audience, **changes), headers=account.headers)


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_a_marketer_creates_and_an_approver_approves(client, app, crew, audience, started):
    created = _create(client, crew["marketer"], audience,
                      send_at="2099-12-01T10:00:00+08:00")
    assert created.status_code == 201
    push_id = created.json["id"]
    assert created.json == {"id": push_id, "state": "pending_approval"}
    approved = client.post(f"{API}/{push_id}/approve", headers=crew["approver"].headers)
    assert (approved.status_code, approved.json) == (200, {"state": "scheduled"})
    assert started == [push_id]
    shown = client.get(f"{API}/{push_id}", headers=crew["viewer"].headers)
    assert shown.status_code == 200
    assert {key: shown.json[key] for key in ("id", "state", "total", "sent", "skipped",
                                             "failed", "pending")} == {
        "id": push_id, "state": "scheduled", "total": 3, "sent": 0, "skipped": 0,
        "failed": 0, "pending": 3}
    listed = client.get(API, headers=crew["viewer"].headers)
    assert [push["id"] for push in listed.json["pushes"]] == [push_id]


def test_pause_resume_and_cancel(client, crew, audience, started):
    push_id = _create(client, crew["marketer"], audience).json["id"]
    marketer = crew["marketer"].headers
    assert client.post(f"{API}/{push_id}/pause", headers=marketer).status_code == 409
    client.post(f"{API}/{push_id}/approve", headers=crew["approver"].headers)
    for action, state in (("pause", "paused"), ("resume", "scheduled"),
                          ("cancel", "cancelled")):
        answer = client.post(f"{API}/{push_id}/{action}", headers=marketer)
        assert (answer.status_code, answer.json) == (200, {"state": state}), action
    again = client.post(f"{API}/{push_id}/cancel", headers=marketer)
    assert again.status_code == 409 and again.json["error"] == "invalid_state"
    assert again.json["state"] == "cancelled"
    shown = client.get(f"{API}/{push_id}", headers=marketer).json
    assert (shown["skipped"], shown["pending"]) == (3, 0)


def test_the_creator_may_not_approve(client, app, make_staff, audience, started):
    approver = make_staff("approver")
    push_id = _create(client, approver, audience).json["id"]
    refused = client.post(f"{API}/{push_id}/approve", headers=approver.headers)
    assert refused.status_code == 403 and refused.json["error"] == "own_push"
    assert started == []
    with app.app_context():
        assert db.session.get(Push, push_id).state == "pending_approval"
        assert db.session.scalar(select(func.count()).select_from(StaffAction).where(
            StaffAction.action == "forbidden")) == 1


@pytest.mark.parametrize(("role", "method", "path"), [
    ("viewer", "post", ""), ("manager", "post", ""), ("marketer", "post", "/{id}/approve"),
    ("viewer", "post", "/{id}/pause"), ("viewer", "post", "/{id}/resume"),
    ("viewer", "post", "/{id}/cancel"), ("manager", "get", "/{id}"),
    ("manager", "get", "/{id}/deliveries.csv"), ("manager", "get", ""),
])
def test_roles(client, crew, audience, role, method, path):
    push_id = _create(client, crew["marketer"], audience).json["id"]
    url = API + path.format(id=push_id)
    answer = getattr(client, method)(url, json=body(audience), headers=crew[role].headers)
    assert answer.status_code == 403 and answer.json["error"] == "forbidden"
    assert getattr(client, method)(url).status_code == 401


def test_unknown_push_is_404(client, crew):
    for method, path in (("get", "/9999"), ("get", "/9999/deliveries.csv"),
                         ("post", "/9999/approve"), ("post", "/9999/pause")):
        answer = getattr(client, method)(API + path, headers=crew["approver"].headers)
        assert answer.status_code == 404 and answer.json["error"] == "unknown_push"


@pytest.mark.parametrize("raw", [b"{", b"", b'{"name": "a", "name": "b"}', b"NaN"])
def test_bad_json_is_400_and_creates_nothing(client, app, crew, raw):
    answer = client.post(API, data=raw, content_type="application/json",
                         headers=crew["marketer"].headers)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"
    assert _count(app, Push) == 0


def test_a_body_breaking_the_rules_is_400_by_field(client, app, crew, audience):
    answer = _create(client, crew["marketer"], audience, rate_per_s=0, audience_id=404)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_push"
    assert answer.json["fields"] == {"audience_id": "is no audience",
                                     "rate_per_s": "must be 1-1000 messages a second"}
    assert _count(app, Push) == 0


def test_the_template_channel_is_refused(client, app, crew, audience):
    answer = _create(client, crew["marketer"], audience, channel="template")
    assert (answer.status_code, answer.json["error"]) == (400, "channel_not_allowed")
    assert _count(app, Push) == 0


def test_the_deliveries_csv(client, crew, audience, started):
    push_id = _create(client, crew["marketer"], audience).json["id"]
    client.post(f"{API}/{push_id}/approve", headers=crew["approver"].headers)
    answer = client.get(f"{API}/{push_id}/deliveries.csv", headers=crew["viewer"].headers)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    lines = answer.get_data(as_text=True).splitlines()
    assert lines == ["openid,state,reason,sent_at", *(f"{openid},pending,,"
                                                      for openid in openids(3))]
