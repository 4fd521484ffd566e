"""Staff passwords: argon2id, never stored or logged in clear, redone when the parameters
change, and weak ones refused."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app import create_app
from campaigns.console import audit, staff
from campaigns.console.models import Staff, StaffAction
from config import ConfigError
from core.db import db
from core.errors import ApiError
from tests.fixtures.staff import STAFF_PASSWORD, log_in


def _account(app, username):
    with app.app_context():
        return db.session.scalar(select(Staff).where(Staff.username == username))


def test_the_password_is_stored_as_an_argon2id_hash_only(app, make_staff, client, caplog):
    caplog.set_level(logging.DEBUG)
    username, _ = make_staff("marketer")
    log_in(client, username, "wrong password here")
    log_in(client, username)
    account = _account(app, username)
    assert account.password_hash.startswith("$argon2id$v=19$")
    with app.app_context():
        stored = [repr(row.__dict__) for row in db.session.scalars(select(Staff))]
        stored += [repr((row.before, row.after, row.target))
                   for row in db.session.scalars(select(StaffAction))]
    assert not any(STAFF_PASSWORD in text for text in stored)
    assert "wrong password here" not in caplog.text and STAFF_PASSWORD not in caplog.text


def test_a_hash_made_under_other_parameters_is_redone_at_the_next_login(app, make_staff,
                                                                         client, monkeypatch):
    username, _ = make_staff("viewer")
    before = _account(app, username).password_hash
    stronger = {"time_cost": 2, "memory_cost": 16 * 1024, "parallelism": 1}
    monkeypatch.setitem(app.config, "STAFF_PASSWORD_HASH", stronger)

    log_in(client, username, "not the password at all")
    assert _account(app, username).password_hash == before  # a failure changes nothing

    assert log_in(client, username).status_code == 303
    after = _account(app, username).password_hash
    assert after != before and "$m=16384,t=2,p=1$" in after
    # The new hash opens with the same password.
    assert log_in(app.test_client(), username).status_code == 303


@pytest.mark.parametrize(("password", "reason"), [
    ("short-pass1", "at least 12 characters"),
    ("aaaaaaaaaaaaaaaa", "different characters"),
    ("my-alice-password", "must not contain the username"),
    (" padded password ", "must not start or end with a space"),
    ("x" * 200 + "0123456789" * 6, "at most 256"),
])
def test_weak_passwords_are_refused(app_context, password, reason):
    with pytest.raises(ApiError, match=reason) as refused:
        staff.create(audit.CLI, "alice", "marketer", password)
    assert refused.value.code == "weak_password"
    db.session.rollback()



@pytest.mark.parametrize("parameters", [
    {"time_cost": 0, "memory_cost": 8192, "parallelism": 1},
    {"time_cost": 2, "memory_cost": 8192},
])
def test_unusable_hash_parameters_stop_the_app(tmp_path, parameters):
    with pytest.raises(ConfigError, match="STAFF_PASSWORD_HASH"):
        create_app({"APP_ENV": "test", "INSTANCE_PATH": str(tmp_path),
                    "STAFF_PASSWORD_HASH": parameters})
