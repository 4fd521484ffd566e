"""The staff audit trail: what ``record`` keeps, who sees what on ``/admin/audit``, paging,
and the append-only trigger on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from campaigns.console import audit, staff
from campaigns.console.models import Staff, StaffAction
from core.db import db
from tests.fixtures.pages import text as page_text
from tests.fixtures.staff import log_in


def _staff(username):
    return db.session.scalar(select(Staff).where(Staff.username == username))


def test_record_drops_secret_fields_at_any_depth(app_context):
    entry = audit.record(audit.CLI, "campaign.codes_add", "campaign:video-2026-12",
                         before={"stock": 3, "codes": ["SECRET-1"]},
                         after={"stock": 5, "options": [{"key": "a", "voucher_code": "X1"}],
                                "Password": "p", "starts_at": datetime(2026, 12, 1, tzinfo=UTC)})
    assert entry.before == {"stock": 3}
    assert entry.after == {"stock": 5, "options": [{"key": "a"}],
                           "starts_at": "2026-12-01T00:00:00+00:00"}
    assert audit.without_secrets({"name": "x", "note": "y"}, "note") == {"name": "x"}
    with pytest.raises(TypeError):
        audit.record(audit.CLI, "x.y", None, after={"raw": object()})
    with pytest.raises(TypeError):
        audit.record("somebody", "x.y", None)
    db.session.rollback()


def test_an_entry_outside_a_request_has_no_address(app_context):
    assert audit.record(audit.CLI, "x.y", None).ip is None
    db.session.rollback()


def _entries_by(app, usernames):
    with app.app_context():
        for username in usernames:
            audit.record(_staff(username), "campaign.update", f"campaign:{username}-1",
                         before={"title": "旧"}, after={"title": "新"})
        db.session.commit()


def test_approvers_and_admins_see_everyone_others_only_themselves(app, make_staff):
    accounts = {role: make_staff(role).username
                for role in ("viewer", "marketer", "approver", "admin", "manager")}
    _entries_by(app, accounts.values())
    for role, username in accounts.items():
        client = app.test_client()
        log_in(client, username)
        page = page_text(client.get("/admin/audit"))
        shown = {name for name in accounts.values() if f"campaign:{name}-1" in page}
        if role in ("approver", "admin"):
            assert shown == set(accounts.values()), role
            assert "全部员工" in page
        else:
            assert shown == {username}, role
            assert "您本人" in page


def test_the_page_shows_who_what_before_after_and_when_in_shanghai_time(app, make_staff):
    username, _ = make_staff("admin")
    with app.app_context():
        entry = audit.record(_staff(username), "campaign.publish", "campaign:video-2026-12",
                             before={"state": "draft"}, after={"state": "published"},
                             ip="10.0.0.8")
        entry.at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai; not yet stored
        db.session.commit()
    client = app.test_client()
    log_in(client, username)
    page = page_text(client.get("/admin/audit"))
    assert "2026-12-01 10:00:00" in page
    quoted = "{&#34;state&#34;: &#34;%s&#34;}"
    for shown in ("campaign.publish", "campaign:video-2026-12", quoted % "draft",
                  quoted % "published", "10.0.0.8", username):
        assert shown in page, shown


def test_the_trail_is_paged_newest_first(app, make_staff):
    username, _ = make_staff("admin")
    with app.app_context():
        account = _staff(username)
        for number in range(audit.PAGE_SIZE + 5):
            audit.record(account, "campaign.update", f"campaign:c{number:03d}")
        db.session.commit()
    client = app.test_client()
    log_in(client, username)
    first = page_text(client.get("/admin/audit"))
    newest = f"campaign:c{audit.PAGE_SIZE + 4:03d}"
    assert newest in first and "campaign:c000" not in first
    older = first.split('href="/admin/audit?before=')[1].split('"')[0]
    second = page_text(client.get(f"/admin/audit?before={older}"))
    assert "campaign:c000" in second and newest not in second
    assert "最新记录" in second and "更早的记录" not in second


def test_the_trail_is_append_only_on_postgresql(app_context):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigger is PostgreSQL's (real mode)")
    staff.create(audit.CLI, "grace", "admin", "correct horse battery staple")
    db.session.commit()
    entry_id = db.session.scalar(select(StaffAction.id))
    for statement in ("UPDATE staff_action SET action = 'nothing' WHERE id = :id",
                      "DELETE FROM staff_action WHERE id = :id"):
        with pytest.raises(DBAPIError, match="staff_action is append-only"):
            db.session.execute(text(statement), {"id": entry_id})
        db.session.rollback()
    assert db.session.get(StaffAction, entry_id).action == "staff.create"
