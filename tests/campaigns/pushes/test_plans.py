"""The push services (campaigns.pushes.plans): the push body's rules, four-eyes approval,
the recipient list frozen in one statement, legal transitions only, progress, the report
and the recipients' CSV; every change in the audit trail."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, update

from campaigns.console import audit, staff
from campaigns.console.models import StaffAction
from campaigns.pushes import plans
from campaigns.pushes.models import PushDelivery
from core.db import db
from core.errors import ApiError
from members.holders.models import Follower
from tests.campaigns.pushes.composing import (
    add_followers,
    body,
    make_audience,
    openids,
    started_fixture,  # noqa: F401  (the fixture ``started``)
)
from tests.fixtures.staff import STAFF_PASSWORD

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


@pytest.fixture
def people(app_context):
    """A marketer who composes, two approvers."""
    accounts = {name: staff.create(audit.CLI, name, role, STAFF_PASSWORD)
                for name, role in (("lin", "marketer"), ("wang", "approver"),
                                   ("zhao", "approver"))}
    db.session.commit()
    return accounts


@pytest.fixture
def audience(app):
    add_followers(app, openids(5))
    return make_audience(app)


def _problems(people, bad_body) -> dict[str, str]:
    with pytest.raises(plans.PushProblems) as refused:
        plans.create_push(people["lin"], bad_body, now=NOW)
    assert refused.value.status == 400 and refused.value.code == "invalid_push"
    db.session.rollback()
    return refused.value.problems


def _actions() -> list[str]:
    return list(db.session.scalars(select(StaffAction.action).where(
        StaffAction.action != "staff.create").order_by(StaffAction.id)))


def test_a_push_is_created_waiting_for_approval(people, audience):
    push = plans.create_push(people["lin"], body(audience, send_at="2026-12-01T10:30:00+08:00"),
                             now=NOW)
    db.session.commit()
    assert push.state == "pending_approval" and push.created_by == "lin"
    assert push.send_at == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert (push.quiet_from, push.quiet_to, push.rate_per_s) == ("21:00", "08:00", 50)
    entry = db.session.scalars(select(StaffAction).where(
        StaffAction.action == "push.create")).one()
    assert entry.target == f"push:{push.id}" and entry.username == "lin"
    assert entry.after["message"] == {"text": "本月消费满1000元即可领取腾讯视频VIP月卡"}


def test_defaults_rate_and_no_quiet_hours(people, audience, app):
    push = plans.create_push(people["lin"], body(audience, rate_per_s=..., quiet_hours=...),
                             now=NOW)
    assert push.rate_per_s == app.config["PUSH_DEFAULT_RATE_PER_S"]
    assert push.quiet_from is None and push.send_at is None


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"name": "  "}, "name", "is required"),
    ({"name": "名" * 65}, "name", "must be at most 64 characters"),
    ({"audience_id": 999}, "audience_id", "is no audience"),
    ({"channel": "sms"}, "channel", "must be one of mass, custom, subscribe"),
    ({"message": {"text": " \n "}}, "message.text", "is required"),
    ({"message": {"text": "满" * 601}}, "message.text", "must be at most 600 characters"),
    ({"message": {"text": "a\x07b"}}, "message.text",
     "must hold no control character (line breaks are fine)"),
    ({"message": {"body": "x"}}, "message.body", "is not a known field"),
    ({"channel": "custom", "message": {"text": "满" * 683}}, "message.text",
     "must be at most 2048 bytes of UTF-8 (about 680 Chinese characters)"),
    ({"channel": "subscribe", "message": {"text": "x"}}, "message.template_id", "is required"),
    ({"channel": "subscribe", "message": {"template_id": "T1", "data": {"thing1": "满" * 21}}},
     "message.data.thing1", "must be at most 20 characters"),
    ({"channel": "subscribe", "message": {"template_id": "T1", "data": {"thing1": "a\nb"}}},
     "message.data.thing1", "must hold no control character or line break"),
    ({"channel": "subscribe", "message": {"template_id": "T1", "data": {"Title": "x"}}},
     "message.data", "keywords are a type and a number, e.g. thing1"),
    ({"channel": "subscribe", "message": {"template_id": "T1", "data": {}}},
     "message.data", "must hold 1-5 keywords"),
    ({"send_at": "2026-12-01T10:30:00"}, "send_at", "must carry a UTC offset, e.g. +08:00"),
    ({"send_at": "2026-12-01T09:59:00+08:00"}, "send_at",
     "must not be in the past (leave it out to send once approved)"),
    ({"send_at": "tomorrow"}, "send_at", "must be an ISO-8601 date and time"),
    ({"rate_per_s": 0}, "rate_per_s", "must be 1-1000 messages a second"),
    ({"rate_per_s": 1001}, "rate_per_s", "must be 1-1000 messages a second"),
    ({"rate_per_s": 2.5}, "rate_per_s", "must be an integer"),
    ({"rate_per_s": True}, "rate_per_s", "must be an integer"),
    ({"quiet_hours": {"from": "21:00", "to": "21:00"}}, "quiet_hours.to",
     "must differ from quiet_hours.from"),
    ({"quiet_hours": {"from": "24:00", "to": "8:00"}}, "quiet_hours.from",
     "must be a time HH:MM (00:00-23:59)"),
    ({"quiet_hours": {"from": "21:00"}}, "quiet_hours.to", "is required"),
    ({"colour": "red"}, "colour", "is not a known field"),
    ({"name": ...}, "name", "is required"),
])
def test_a_body_that_breaks_a_rule_is_refused_by_field(people, audience, changes, field, reason):
    problems = _problems(people, body(audience, **changes))
    assert problems[field] == reason
    assert db.session.scalar(select(func.count()).select_from(plans.Push)) == 0


def test_every_problem_is_told_at_once(people, audience):
    problems = _problems(people, body(audience, name="", rate_per_s=0, message={"text": ""}))
    assert set(problems) == {"name", "rate_per_s", "message.text"}


def test_a_body_that_is_no_object_is_refused(people):
    assert _problems(people, [1, 2]) == {"": "must be a JSON object"}


def test_the_template_channel_is_refused(people, audience):
    with pytest.raises(ApiError) as refused:
        plans.create_push(people["lin"], body(audience, channel="template"), now=NOW)
    assert (refused.value.status, refused.value.code) == (400, "channel_not_allowed")


def test_a_subscription_notice_keeps_its_template_data_and_page(people, audience):
    message = {"template_id": "TPL-benefit", "data": {"thing1": " 腾讯视频VIP月卡 ",
                                                     "time2": "2026年12月31日"},
               "page": "https://bank.example/m/campaigns/video"}
    push = plans.create_push(people["lin"], body(audience, channel="subscribe",
                                                 message=message), now=NOW)
    assert push.message == {**message, "data": {"thing1": "腾讯视频VIP月卡",
                                                "time2": "2026年12月31日"}}


def _push(people, audience, **changes):
    push = plans.create_push(people["lin"], body(audience, **changes), now=NOW)
    db.session.commit()
    return push


def test_the_creator_never_approves_and_the_refusal_is_kept(people, audience, started):
    creator = staff.create(audit.CLI, "qian", "approver", STAFF_PASSWORD)
    push = plans.create_push(creator, body(audience), now=NOW)
    db.session.commit()
    with pytest.raises(ApiError) as refused:
        plans.approve(creator, push)
    assert (refused.value.status, refused.value.code) == (403, "own_push")
    db.session.commit()  # what a Refusal keeps: the audit entry
    assert push.state == "pending_approval" and started == []
    entry = db.session.scalars(select(StaffAction).where(
        StaffAction.action == "forbidden")).one()
    assert entry.username == "qian" and entry.after["reason"] == "own_push"


def test_approval_freezes_the_audience_in_one_statement(people, audience, started, app):
    push = _push(people, audience)
    add_followers(app, ["oGoneAway000001"], subscribed=False)  # not in the audience
    inserts: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PUSH_DELIVERY"):
            inserts.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        plans.approve(people["wang"], push)
        db.session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    assert (push.state, push.total, push.approved_by) == ("scheduled", 5, "wang")
    assert started == [push.id]
    recipients = db.session.scalars(select(PushDelivery.openid).where(
        PushDelivery.push_id == push.id).order_by(PushDelivery.openid)).all()
    assert recipients == openids(5)
    assert _actions() == ["push.create", "push.approve"]


def test_the_frozen_list_stays_when_followers_change(people, audience, started, app):
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    db.session.commit()
    add_followers(app, ["oLateComer000001"])
    db.session.execute(update(Follower).where(Follower.openid == openids(5)[0])
                       .values(subscribed=False))
    db.session.commit()
    assert plans.progress(push).total == 5
    lines = list(csv.reader(io.StringIO("".join(plans.deliveries_csv(push)))))
    assert [row[0] for row in lines[1:]] == openids(5)


def test_approving_twice_is_refused(people, audience, started):
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    db.session.commit()
    with pytest.raises(ApiError) as refused:
        plans.approve(people["zhao"], push)
    assert (refused.value.status, refused.value.code) == (409, "invalid_state")
    db.session.rollback()
    assert plans.progress(push).total == 5 and started == [push.id]


def test_pause_resume_and_cancel_follow_the_legal_transitions(people, audience, started):
    push = _push(people, audience)
    for refused_action in (plans.pause, plans.resume):
        with pytest.raises(ApiError) as refused:
            refused_action(people["lin"], push)
        assert refused.value.status == 409 and refused.value.extra == {
            "state": "pending_approval"}
        db.session.rollback()
    plans.approve(people["wang"], push)
    plans.pause(people["lin"], push)
    db.session.commit()
    assert (push.state, push.pause_reason) == ("paused", "staff")
    with pytest.raises(ApiError):
        plans.pause(people["lin"], push)
    db.session.rollback()
    plans.resume(people["lin"], push)
    db.session.commit()
    assert (push.state, push.pause_reason, push.paused_until) == ("scheduled", None, None)
    assert started == [push.id, push.id]
    with pytest.raises(ApiError):
        plans.resume(people["lin"], push)
    db.session.rollback()
    assert _actions() == ["push.create", "push.approve", "push.pause", "push.resume"]


def test_a_quota_pause_is_resumed_by_staff_too(people, audience, started):
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    push.state, push.pause_reason = "paused", "quota"
    push.paused_until = NOW + timedelta(hours=3)
    db.session.commit()
    plans.resume(people["lin"], push)
    assert (push.state, push.pause_reason, push.paused_until) == ("scheduled", None, None)


def test_a_cancel_skips_the_pending_and_leaves_those_in_flight(people, audience, started):
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    ids = db.session.scalars(select(PushDelivery.id).where(
        PushDelivery.push_id == push.id).order_by(PushDelivery.id)).all()
    db.session.execute(update(PushDelivery).where(PushDelivery.id == ids[0])
                       .values(state="sent", sent_at=NOW))
    db.session.execute(update(PushDelivery).where(PushDelivery.id == ids[1])
                       .values(state="claimed", claimed_at=NOW))
    assert plans.cancel(people["lin"], push) == 3
    db.session.commit()
    assert push.state == "cancelled" and push.finished_at is not None
    shown = plans.progress(push)
    assert (shown.sent, shown.skipped, shown.pending) == (1, 3, 1)
    assert plans.report(push).skipped_by_reason == [("cancelled", 3)]
    for action in (plans.cancel, plans.pause, plans.resume):
        with pytest.raises(ApiError) as refused:
            action(people["lin"], push)
        assert refused.value.status == 409
        db.session.rollback()
    entry = db.session.scalars(select(StaffAction).where(
        StaffAction.action == "push.cancel")).one()
    assert entry.before["state"] == "scheduled" and entry.after["recipients_unsent"] == 3


def test_a_push_waiting_for_approval_may_be_cancelled(people, audience):
    push = _push(people, audience)
    assert plans.cancel(people["lin"], push) == 0
    assert push.state == "cancelled"


def _set_states(push, states):
    """The push's recipients, in id order, given these (state, reason, errcode)."""
    ids = db.session.scalars(select(PushDelivery.id).where(
        PushDelivery.push_id == push.id).order_by(PushDelivery.id)).all()
    for row_id, (state, reason, errcode) in zip(ids, states, strict=False):
        db.session.execute(update(PushDelivery).where(PushDelivery.id == row_id).values(
            state=state, reason=reason, errcode=errcode,
            sent_at=NOW if state == "sent" else None))
    db.session.commit()


def test_progress_and_report_count_by_state_reason_and_errcode(people, audience, started):
    push = _push(people, audience, rate_per_s=2, quiet_hours=None)
    plans.approve(people["wang"], push)
    _set_states(push, [("sent", None, None), ("skipped", "monthly_cap", None),
                       ("failed", "refused", 45015), ("claimed", None, None)])
    shown = plans.progress(push, now=NOW)
    assert shown.as_dict() == {"total": 5, "sent": 1, "skipped": 1, "failed": 1, "pending": 2}
    assert shown.eta_seconds == 1  # two left at 2 a second
    report = plans.report(push)
    assert report.skipped_by_reason == [("monthly_cap", 1)]
    assert report.failed_by_errcode == [(45015, 1)]


def test_the_eta_waits_out_the_quiet_hours(people, app):
    add_followers(app, openids(600))
    audience = make_audience(app)
    # 20:50 in Shanghai, quiet 21:00-08:00: 600 at 1 a second fit the 10 minutes before
    # the night.
    push = _push(people, audience, rate_per_s=1)
    push.state = "scheduled"
    evening = datetime(2026, 12, 1, 12, 50, tzinfo=UTC)
    assert plans._eta(push, 600, evening) == 600
    # 1,200 left: 600 before the night, the rest from 08:00 the next morning.
    assert plans._eta(push, 1200, evening) == 600 + 11 * 3600 + 600
    # Approved at 23:00: nothing until 08:00, then 100 seconds.
    late = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert plans._eta(push, 100, late) == 9 * 3600 + 100
    push.state = "paused"
    assert plans._eta(push, 100, late) is None


def test_the_csv_has_one_row_per_recipient(people, audience, started, app):
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    _set_states(push, [("sent", None, None), ("skipped", "outside_48h", None),
                       ("failed", "interrupted", None), ("claimed", None, None)])
    lines = "".join(plans.deliveries_csv(push)).split("\r\n")
    assert lines[0] == "openid,state,reason,sent_at"
    ids = openids(5)
    assert lines[1:] == [f"{ids[0]},sent,,2026-12-01T10:00:00+08:00",
                         f"{ids[1]},skipped,outside_48h,", f"{ids[2]},failed,interrupted,",
                         f"{ids[3]},pending,,", f"{ids[4]},pending,,", ""]


def test_the_csv_defuses_formulas(people, started, app):
    add_followers(app, ["=HYPERLINK(\"x\")", "+1", "@sum", "oPlain"])
    audience = make_audience(app)
    push = _push(people, audience)
    plans.approve(people["wang"], push)
    rows = list(csv.reader(io.StringIO("".join(plans.deliveries_csv(push)))))
    assert sorted(row[0] for row in rows[1:]) == ["'+1", "'=HYPERLINK(\"x\")", "'@sum",
                                                  "oPlain"]
