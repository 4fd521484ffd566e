"""``staff_api``: bearer tokens (missing, forged, revoked, expired: 401) and the role ladder
(each role against each requirement, managers only where let in; a 403 is audited).

The views are a probe blueprint on an app of their own (the suite's app has served
requests already and takes no more routes), over the same database and settings.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Blueprint, Flask, g, jsonify
from sqlalchemy import select, update

from app import create_app
from campaigns.console import roles
from campaigns.console.auth import staff_api
from campaigns.console.models import Staff, StaffAction, StaffToken
from core.db import db, utcnow

probe = Blueprint("probe", __name__, url_prefix="/admin/api/probe")


def _answer():
    return jsonify(username=g.staff.username, role=g.staff.role)


for _min_role in roles.LADDER:
    probe.add_url_rule(f"/{_min_role}", f"needs_{_min_role}", staff_api(_min_role)(_answer))
probe.add_url_rule("/marketer-or-manager", "marketer_or_manager",
                   staff_api("marketer", also=("manager",))(_answer))


@pytest.fixture(scope="module")
def probe_app(settings) -> Flask:
    app = create_app(settings)
    app.register_blueprint(probe)
    return app


@pytest.fixture
def probe_client(probe_app, app):  # ``app``: its tables are emptied after the test
    return probe_app.test_client()


# What each role may reach: the ladder, and managers only where named in ``also``.
EXPECTED = {
    "viewer": {"viewer"},
    "marketer": {"viewer", "marketer", "marketer-or-manager"},
    "approver": {"viewer", "marketer", "approver", "marketer-or-manager"},
    "admin": {"viewer", "marketer", "approver", "admin", "marketer-or-manager"},
    "manager": {"marketer-or-manager"},
}


def test_each_role_against_each_requirement(probe_client, make_staff, app):
    for role, allowed in EXPECTED.items():
        account = make_staff(role)
        for path in (*roles.LADDER, "marketer-or-manager"):
            response = probe_client.get(f"/admin/api/probe/{path}", headers=account.headers)
            expected = 200 if path in allowed else 403
            assert response.status_code == expected, (role, path, response.json)
            if expected == 200:
                assert response.json == {"username": account.username, "role": role}
            else:
                assert response.json["error"] == "forbidden"


def test_a_forbidden_call_is_audited(probe_client, make_staff, app):
    account = make_staff("viewer")
    response = probe_client.post("/admin/api/probe/admin", headers=account.headers)
    assert response.status_code == 405  # the route answers GET only: no audit for that
    response = probe_client.get("/admin/api/probe/admin", headers=account.headers)
    assert response.status_code == 403
    with app.app_context():
        entry = db.session.scalar(select(StaffAction).where(StaffAction.action == "forbidden"))
        assert entry.username == account.username and entry.staff_id is not None
        assert entry.target == "path:/admin/api/probe/admin"
        assert entry.after == {"method": "GET", "role": "viewer", "needs": "admin", "also": []}
        assert entry.ip == "127.0.0.1"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz"])
def test_no_token_is_401(probe_client, app, header):
    headers = {"Authorization": header} if header is not None else {}
    response = probe_client.get("/admin/api/probe/viewer", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_forged_token_is_401(probe_client, make_staff, app):
    token = make_staff("admin").token
    for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, token + "x"):
        response = probe_client.get("/admin/api/probe/viewer",
                                    headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401 and response.json["error"] == "invalid_token"


def test_a_revoked_or_expired_token_or_disabled_account_is_401(probe_client, make_staff, app):
    revoked, expired, disabled = make_staff("admin"), make_staff("admin"), make_staff("admin")
    for account in (revoked, expired, disabled):
        assert probe_client.get("/admin/api/probe/viewer",
                                headers=account.headers).status_code == 200
    with app.app_context():
        def staff_id(account):
            return db.session.scalar(select(Staff.id).where(Staff.username == account.username))
        db.session.execute(update(StaffToken).where(StaffToken.staff_id == staff_id(revoked))
                           .values(revoked_at=utcnow()))
        db.session.execute(update(StaffToken).where(StaffToken.staff_id == staff_id(expired))
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.execute(update(Staff).where(Staff.id == staff_id(disabled))
                           .values(disabled=True))
        db.session.commit()
    for account in (revoked, expired, disabled):
        response = probe_client.get("/admin/api/probe/viewer", headers=account.headers)
        assert response.status_code == 401 and response.json["error"] == "invalid_token"


def test_a_token_revoked_with_the_cli_is_401(probe_client, app):
    runner = app.test_cli_runner()
    runner.invoke(args=["staff", "create", "frank", "--role", "admin"],
                  input="correct horse battery staple\n")
    token = runner.invoke(args=["staff", "token", "frank"]).output.splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    assert probe_client.get("/admin/api/probe/admin", headers=headers).status_code == 200
    assert runner.invoke(args=["staff", "revoke", "frank"]).exit_code == 0
    response = probe_client.get("/admin/api/probe/admin", headers=headers)
    assert response.status_code == 401 and response.json["error"] == "invalid_token"


def test_use_is_noted_on_the_token(probe_client, make_staff, app):
    account = make_staff("viewer")
    probe_client.get("/admin/api/probe/viewer", headers=account.headers)
    with app.app_context():
        row = db.session.scalar(select(StaffToken))
        assert row.last_used_at is not None


def test_unknown_admin_api_paths_answer_json(probe_client, app):
    response = probe_client.get("/admin/api/no-such-thing")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_requirements_are_checked_when_the_decorator_is_applied():
    with pytest.raises(ValueError, match="outside the ladder"):
        staff_api("manager")
    with pytest.raises(ValueError, match="unknown roles"):
        staff_api("viewer", also=("boss",))
