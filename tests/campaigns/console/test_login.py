"""The console's login form: messages, lockout per account and per address, CSRF, logout,
timeouts, and a new session at every login."""

from __future__ import annotations

import re
import time

import pytest
from limits import parse_many
from sqlalchemy import select

from campaigns.console.auth import SESSION_KEY
from campaigns.console.models import StaffAction
from core.db import db
from tests.fixtures.pages import session_of, text
from tests.fixtures.staff import STAFF_PASSWORD, csrf_token, log_in

WRONG = "用户名或密码错误"
LOCKED = "登录失败次数过多"


def _limit(app, dimension):
    """The smallest window of the staff login's ``dimension``: failures before a lockout."""
    return min(item.amount for item in
               parse_many(app.config["RATE_LIMITS"]["staff_login"][dimension]))


def _actions(app):
    with app.app_context():
        return [(e.action, e.username, e.target) for e in
                db.session.scalars(select(StaffAction).order_by(StaffAction.id))]


def test_the_form_has_exactly_the_contract_fields(client, app):
    page = text(client.get("/admin/login"))
    for name in ("username", "password", "csrf_token"):
        assert f'name="{name}"' in page
    assert "员工登录" in page


def _without_token(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', html)


def test_wrong_password_and_unknown_user_get_the_same_answer(client, app, make_staff):
    username, _ = make_staff("marketer")
    wrong = log_in(client, username, "not the right password")
    unknown = log_in(client, "nobody-here", "not the right password")
    assert wrong.status_code == unknown.status_code == 200
    assert WRONG in text(wrong) and WRONG in text(unknown)
    # Alike but for the name typed and the CSRF token (signed with the second it was made in).
    assert _without_token(text(wrong)).replace(username, "") == \
        _without_token(text(unknown)).replace("nobody-here", "")
    assert SESSION_KEY not in session_of(client, app)
    # Known accounts' failures are audited by name; an unknown name is not written down.
    assert _actions(app)[-2:] == [("login_failed", username, f"staff:{username}"),
                                  ("login_failed", "anonymous", None)]


def test_empty_fields_ask_for_both(client, app):
    response = log_in(client, "", "")
    assert response.status_code == 400 and "请输入用户名和密码" in text(response)


def test_a_login_lands_on_the_home_page(client, app, make_staff):
    username, _ = make_staff("approver")
    response = log_in(client, username)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/"
    home = client.get("/admin/")
    assert home.status_code == 200
    assert username in text(home) and "审批" in text(home)
    assert home.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["Content-Security-Policy"]
    assert _actions(app)[-1] == ("login", username, f"staff:{username}")


def test_a_lockout_per_account_answers_429_with_retry_after(client, app, make_staff):
    username, _ = make_staff("admin")
    for _ in range(_limit(app, "username")):
        assert WRONG in text(log_in(client, username, "guess guess guess"))
    locked = log_in(client, username)  # even the right password, while locked
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert LOCKED in text(locked) and "分钟后再试" in text(locked)
    assert SESSION_KEY not in session_of(client, app)
    assert _actions(app)[-1][:2] == ("login_locked", username)
    with app.app_context():
        entry = db.session.scalar(select(StaffAction).order_by(StaffAction.id.desc()))
        assert entry.after["locked"] == ["username"] and entry.after["retry_after"] > 0


def test_an_unknown_account_locks_like_a_known_one(client, app):
    for _ in range(_limit(app, "username")):
        log_in(client, "ghost", "guess guess guess")
    assert log_in(client, "ghost", "guess guess guess").status_code == 429


def test_only_failures_count(client, app, make_staff):
    username, _ = make_staff("viewer")
    for _ in range(_limit(app, "username") - 1):
        log_in(client, username, "guess guess guess")
    assert log_in(client, username).status_code == 303  # a success gives its attempt back
    client.post("/admin/logout", data={"csrf_token": csrf_token(text(client.get("/admin/")))})
    assert WRONG in text(log_in(client, username, "guess guess guess"))  # the last allowed
    assert log_in(client, username, "guess guess guess").status_code == 429


def _client_at(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_lockout_per_address_stops_spraying_many_accounts(app, make_staff):
    sprayer = _client_at(app, "10.9.8.7")
    per_account = _limit(app, "username")
    for attempt in range(_limit(app, "ip")):
        # A new account every few tries, so that no account's own window fills.
        response = log_in(sprayer, f"user{attempt // (per_account - 1)}", "guess guess guess")
        assert response.status_code == 200, attempt
    username, _ = make_staff("viewer")
    refused = log_in(sprayer, username)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    # The account itself is not locked: from elsewhere its owner logs in.
    owner = _client_at(app, "10.1.1.1")
    assert log_in(owner, username).status_code == 303


def test_a_post_without_the_csrf_token_is_refused(client, app, make_staff):
    username, _ = make_staff("viewer")
    client.get("/admin/login")
    response = client.post("/admin/login", data={"username": username,
                                                 "password": STAFF_PASSWORD})
    assert response.status_code == 400 and "页面已过期" in text(response)
    forged = client.post("/admin/login", data={"username": username, "password": STAFF_PASSWORD,
                                               "csrf_token": "forged"})
    assert forged.status_code == 400
    assert SESSION_KEY not in session_of(client, app)


def test_logout_needs_the_csrf_token_and_ends_the_login(client, app, make_staff):
    username, _ = make_staff("marketer")
    log_in(client, username)
    home = text(client.get("/admin/"))
    copied = client.get_cookie("session").value  # what a thief would have copied

    assert client.post("/admin/logout").status_code == 400  # no token: still logged in
    assert client.get("/admin/").status_code == 200

    response = client.post("/admin/logout", data={"csrf_token": csrf_token(home)})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/login"
    assert "您已安全退出" in text(client.get("/admin/login"))
    assert client.get("/admin/").status_code == 303
    assert _actions(app)[-1] == ("logout", username, f"staff:{username}")

    replay = app.test_client()
    replay.set_cookie("session", copied)
    assert replay.get("/admin/").status_code == 303  # the old cookie died with the logout


def test_an_idle_login_ends_and_activity_keeps_it(client, app, make_staff, monkeypatch):
    monkeypatch.setitem(app.config, "CONSOLE_IDLE_TIMEOUT", 1)
    username, _ = make_staff("viewer")
    log_in(client, username)
    for _ in range(2):
        time.sleep(0.5)
        assert client.get("/admin/").status_code == 200  # each request renews the login
    time.sleep(1.3)
    response = client.get("/admin/audit")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login?next=/admin/audit"
    assert "登录已超时" in text(client.get("/admin/login"))


def test_a_login_ends_after_the_maximum_age_however_active(client, app, make_staff,
                                                          monkeypatch):
    monkeypatch.setitem(app.config, "CONSOLE_MAX_AGE", 1)
    username, _ = make_staff("viewer")
    log_in(client, username)
    assert client.get("/admin/").status_code == 200
    time.sleep(1.2)
    assert client.get("/admin/").status_code == 303


def test_every_login_starts_a_new_session(client, app, make_staff):
    username, _ = make_staff("viewer")
    # A cookie planted before the login, with a CSRF token the planter knows.
    client.get("/admin/login")
    with client.session_transaction() as planted:
        planted["csrf_token"] = "known-to-the-attacker"
        planted["planted"] = True
    page = text(client.get("/admin/login"))
    client.post("/admin/login", data={"username": username, "password": STAFF_PASSWORD,
                                      "csrf_token": csrf_token(page)})
    first = session_of(client, app)
    assert set(first) == {SESSION_KEY}  # nothing from before survived
    client.get("/admin/")
    assert session_of(client, app).get("csrf_token") != "known-to-the-attacker"

    second_client = app.test_client()
    log_in(second_client, username)
    assert session_of(second_client, app)[SESSION_KEY] != first[SESSION_KEY]


def test_console_and_h5_logins_use_their_own_session_keys(client, app, make_staff):
    with client.session_transaction() as h5:  # what an H5 OAuth login leaves
        h5["oa_openid"] = "oFollower000000000000000001"
        h5["oa_login_at"] = int(time.time())
    assert client.get("/admin/").status_code == 303  # an H5 login is no console login
    username, _ = make_staff("viewer")
    log_in(client, username)
    assert not any(key.startswith("oa_") for key in session_of(client, app))


@pytest.mark.parametrize(("next_", "lands_on"), [
    ("/admin/audit", "/admin/audit"),
    ("/admin/audit?before=5", "/admin/audit?before=5"),
    ("https://evil.example/admin/", "/admin/"),
    ("//evil.example/admin/", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("/m/bind", "/admin/"),
])
def test_after_the_login_only_console_paths_are_followed(client, app, make_staff, next_,
                                                         lands_on):
    username, _ = make_staff("viewer")
    response = log_in(client, username, next_=next_)
    assert response.headers["Location"] == lands_on


def test_the_login_page_carries_next_through_the_form(client, app, make_staff):
    redirected = client.get("/admin/audit")
    assert redirected.headers["Location"] == "/admin/login?next=/admin/audit"
    page = text(client.get(redirected.headers["Location"]))
    assert 'name="next" value="/admin/audit"' in page
