"""``flask staff create | token | revoke``, as an operator runs them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns.console.models import Staff, StaffAction, StaffToken
from core.db import db
from tests.fixtures.staff import STAFF_PASSWORD, log_in


def staff_cli(app, *args, password=None):
    return app.test_cli_runner().invoke(args=["staff", *args],
                                        input=None if password is None else password + "\n")


def test_create_reads_the_password_from_stdin_and_audits(app, client):
    result = staff_cli(app, "create", "Alice", "--role", "approver", password=STAFF_PASSWORD)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created alice (approver)"
    assert STAFF_PASSWORD not in result.output
    with app.app_context():
        account = db.session.scalar(select(Staff))
        assert (account.username, account.role, account.branch) == ("alice", "approver", None)
        entry = db.session.scalar(select(StaffAction))
        assert (entry.username, entry.staff_id, entry.action, entry.target) == (
            "cli", None, "staff.create", "staff:alice")
        assert entry.before is None
        assert entry.after == {"username": "alice", "role": "approver", "branch": None}
    assert log_in(client, "alice").status_code == 303


def test_a_manager_needs_a_branch_and_only_a_manager_has_one(app):
    result = staff_cli(app, "create", "mgr", "--role", "manager", password=STAFF_PASSWORD)
    assert result.exit_code == 1 and "branch" in result.output
    result = staff_cli(app, "create", "mkt", "--role", "marketer", "--branch", "0101",
                       password=STAFF_PASSWORD)
    assert result.exit_code == 1 and "only a manager" in result.output
    result = staff_cli(app, "create", "mgr", "--role", "manager", "--branch", "0101",
                       password=STAFF_PASSWORD)
    assert result.exit_code == 0 and result.output.strip() == "created mgr (manager, branch 0101)"


@pytest.mark.parametrize(("args", "password", "message"), [
    (["create", "bob", "--role", "boss"], STAFF_PASSWORD, "Invalid value for '--role'"),
    (["create", "bob", "--role", "viewer"], "too-short", "at least 12 characters"),
    (["create", "bob", "--role", "viewer"], "", "at least 12 characters"),
    (["create", "b", "--role", "viewer"], STAFF_PASSWORD, "a username is 2 to 32"),
    (["create", "bob smith", "--role", "viewer"], STAFF_PASSWORD, "a username is 2 to 32"),
])
def test_create_refuses(app, args, password, message):
    result = staff_cli(app, *args, password=password)
    assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert db.session.scalar(select(Staff)) is None


def test_create_refuses_a_taken_username(app):
    staff_cli(app, "create", "carol", "--role", "viewer", password=STAFF_PASSWORD)
    result = staff_cli(app, "create", "CAROL", "--role", "admin", password=STAFF_PASSWORD)
    assert result.exit_code == 1 and "already an account 'carol'" in result.output


def test_token_is_alone_on_the_last_line_and_stored_as_a_hash(app):
    staff_cli(app, "create", "dave", "--role", "viewer", password=STAFF_PASSWORD)
    result = staff_cli(app, "token", "dave")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    token = lines[-1]
    assert len(lines) >= 2 and token == token.strip() and len(token) >= 43 and " " not in token
    with app.app_context():
        row = db.session.scalar(select(StaffToken))
        assert row.token_hash != token and len(row.token_hash) == 64
        entries = db.session.scalars(select(StaffAction).order_by(StaffAction.id)).all()
        assert [e.action for e in entries] == ["staff.create", "staff.token"]
        assert token not in repr(entries[-1].after)
        assert entries[-1].after["token_id"] == row.id


def test_token_and_revoke_name_unknown_accounts(app):
    for command in ("token", "revoke"):
        result = staff_cli(app, command, "nobody")
        assert result.exit_code == 1 and "no staff account 'nobody'" in result.output


def test_revoke_ends_every_token_and_console_login(app, client):
    # That the API then answers 401: test_api_auth.py.
    staff_cli(app, "create", "erin", "--role", "viewer", password=STAFF_PASSWORD)
    staff_cli(app, "token", "erin")
    staff_cli(app, "token", "erin")
    assert log_in(client, "erin").status_code == 303
    assert client.get("/admin/").status_code == 200

    result = staff_cli(app, "revoke", "erin")
    assert result.exit_code == 0
    assert result.output.strip() == "revoked 2 token(s) of erin; its console logins ended"
    assert client.get("/admin/").status_code == 303  # the console login is over
    with app.app_context():
        rows = db.session.scalars(select(StaffToken)).all()
        assert len(rows) == 2 and all(row.revoked_at for row in rows)
        entry = db.session.scalar(select(StaffAction).where(StaffAction.action == "staff.revoke"))
        assert entry.after == {"tokens_revoked": 2, "console_logins_ended": 1}
