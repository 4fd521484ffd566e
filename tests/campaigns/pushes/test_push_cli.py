"""``flask pushes list | show ID``, as an operator runs them: pushes and their progress,
never a recipient."""

from __future__ import annotations

from sqlalchemy import update

from campaigns.pushes.models import PushDelivery
from core.db import db
from tests.campaigns.pushes.composing import (
    add_followers,
    body,
    make_audience,
    openids,
    started_fixture,  # noqa: F401  (the fixture ``started``)
)


def pushes_cli(app, *args):
    return app.test_cli_runner().invoke(args=["pushes", *args])


def _approved_push(client, app, make_staff) -> int:
    add_followers(app, openids(4))
    audience = make_audience(app)
    push_id = client.post("/admin/api/pushes", json=body(audience, rate_per_s=2),
                          headers=make_staff("marketer").headers).json["id"]
    client.post(f"/admin/api/pushes/{push_id}/approve", headers=make_staff("approver").headers)
    with app.app_context():
        first = db.session.scalar(db.select(PushDelivery.id).order_by(PushDelivery.id))
        db.session.execute(update(PushDelivery).where(PushDelivery.id == first)
                           .values(state="sent", sent_at=db.func.now()))
        db.session.commit()
    return push_id


def test_list_and_show(app, client, make_staff, started):
    assert pushes_cli(app, "list").output.strip() == "no push"
    push_id = _approved_push(client, app, make_staff)
    listed = pushes_cli(app, "list")
    assert listed.exit_code == 0
    assert listed.output.split() == [str(push_id), "scheduled", "mass", "4", "12月权益提醒"]
    assert pushes_cli(app, "list", "--state", "done").output.strip() == "no push"
    shown = pushes_cli(app, "show", str(push_id))
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"push {push_id} '12月权益提醒': scheduled"
    assert lines[1].startswith("  channel mass, audience ")
    assert lines[1].endswith(", 2/s, quiet 21:00-08:00")
    assert "recipients 4: sent 1, skipped 0, failed 0, pending 3 (25.0% done)" in shown.output
    assert "oPushTest" not in shown.output + listed.output


def test_show_an_unknown_push(app):
    result = pushes_cli(app, "show", "404")
    assert result.exit_code == 1 and "no push 404" in result.output
