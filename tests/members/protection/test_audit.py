"""The audit trail: hashed identifiers, no personal data in detail, rollback-proof events."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import db
from core.errors import ApiError, Refusal, finish_refused
from members.holders.models import Follower
from members.protection import audit
from members.protection.audit import audit_command
from members.protection.models import SecurityEvent
from members.protection.pii import vault

CARD = "6217000012345678901"
OPENID = "oTestOpenid0000000000000001"
IP = "203.0.113.9"
PLAINTEXTS = (CARD, CARD[-8:], OPENID, IP)


def _events(app) -> list[SecurityEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(SecurityEvent).order_by(SecurityEvent.id)))
        db.session.expunge_all()
        return rows


def _no_plaintext(text: str) -> None:
    for value in PLAINTEXTS:
        assert value not in text


def test_identifiers_are_stored_as_blind_indexes(app):
    with app.app_context():
        audit.record("code_failed", openid=OPENID, card_no=CARD, ip=IP, region="hangzhou",
                     attempt=2)
        db.session.commit()
        pii = vault()
        expected = (pii.blind_index("openid", OPENID), pii.blind_index("card", CARD),
                    pii.blind_index("ip", IP))
    [row] = _events(app)
    assert (row.openid_hash, row.card_hash, row.ip_hash) == expected
    assert (row.kind, row.region, row.detail) == ("code_failed", "hangzhou", {"attempt": 2})
    _no_plaintext(repr(vars(row)))


def test_card_number_and_card_index_name_the_same_card(app):
    with app.app_context():
        card_index = vault().blind_index("card", CARD)
        audit.record("bind", card_no="6217 0000 1234 5678 901")
        audit.record("unbind", card_index=card_index)
        with pytest.raises(TypeError, match="not both"):
            audit.record("bind", card_no=CARD, card_index=card_index)
        with pytest.raises(ValueError, match="unknown audit kind"):
            audit.record("logged_in", openid=OPENID)
        db.session.commit()
    assert [row.card_hash for row in _events(app)] == [card_index, card_index]


@pytest.mark.parametrize("detail", [
    {"phone": "x"}, {"Card_No": "x"}, {"id_no": "x"}, {"unionid": "x"}, {"otp": "123456"},
    {"note": "6217 0000 1234 5678 901"},  # card, spaced
    {"note": "卡号6217000012345678901"},  # card, after Chinese text
    {"note": "call +86 138-0013-8000"},  # phone
    {"note": "11010519491231002X"},  # resident ID
    {"amount": 6217000012345678901},  # a card number as a JSON number
    {"outer": {"list": ["fine", "13800138000"]}},  # nested
    {"outer": {"mobile": "x"}},
    {"contact": "someone@example.com"},
    {"peer": "198.51.100.23"},
])
def test_personal_data_in_detail_is_refused(app, detail):
    with app.app_context(), pytest.raises(ValueError, match="personal data"):
        audit.record("login", openid=OPENID, **detail)


def test_ordinary_detail_passes(app):
    detail = {"challenge": "3f2a9c0b7d1e4a5f8b6c2d0e9f1a3b4c", "attempt": 3, "matched": True,
              "errcode": 40029, "path": "/api/members/bind/start", "app": "miniapp",
              "dimensions": ["card", "ip"], "version": "1.2.3", "retry_after": 3479,
              "reason": None, "ratio": 0.5}
    with app.app_context():
        audit.record("rate_limited", **detail)
        with pytest.raises(TypeError, match="not JSON"):
            audit.record("login", when=datetime.now(UTC))
        db.session.commit()
    assert _events(app)[0].detail == detail


def test_production_redacts_instead_of_losing_the_event(app, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "APP_ENV", "production")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="members.protection.audit"):
        audit.record("login", openid=OPENID, phone="13800138000", note=f"card {CARD}", attempt=1)
        db.session.commit()
    [row] = _events(app)
    assert row.detail == {"phone": audit.REDACTED, "note": audit.REDACTED, "attempt": 1}
    assert "detail.phone" in caplog.text and "detail.note" in caplog.text
    _no_plaintext(caplog.text)


def test_a_refusal_keeps_what_it_recorded(app):
    with app.app_context():
        db.session.add(Follower(openid="oKept"))
        audit.record("code_failed", openid=OPENID, attempt=1)
        finish_refused(Refusal(400, "invalid_code", "the code is not correct"))
        db.session.remove()
        assert db.session.scalar(select(func.count()).select_from(Follower)) == 1
    assert [(row.kind, row.detail) for row in _events(app)] == [("code_failed", {"attempt": 1})]


def test_any_other_refusal_keeps_nothing(app):
    with app.app_context():
        db.session.add(Follower(openid="oDropped"))
        audit.record("bind", openid=OPENID)
        finish_refused(ApiError(400, "invalid_card_no", "card_no is not valid"))
        db.session.remove()
        assert db.session.scalar(select(func.count()).select_from(Follower)) == 0
    assert _events(app) == []


def test_a_login_wechat_refused_is_in_the_trail(client, app, sim):
    response = client.post("/api/miniapp/login", json={"code": "nonsense"})
    assert response.status_code == 400
    assert [(row.kind, row.detail["errcode"]) for row in _events(app)] == [
        ("login_failed", 40029)]


# -- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def trail(app, monkeypatch):
    """Four events an hour apart, oldest first."""
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with app.app_context():
        for hour, (kind, openid, card) in enumerate([
            ("login", OPENID, None), ("bind_started", OPENID, CARD),
            ("code_failed", "oSomeoneElse", CARD), ("login", "oSomeoneElse", None),
        ]):
            monkeypatch.setattr(audit, "utcnow", lambda hour=hour: start + timedelta(hours=hour))
            audit.record(kind, openid=openid, card_no=card, ip=IP, hour=hour)
        db.session.commit()
    return start


def _cli(app, *args, stdin=None):
    result = app.test_cli_runner().invoke(audit_command, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    _no_plaintext(result.output)
    return [json.loads(line) for line in result.output.splitlines()]


def test_cli_prints_json_lines_newest_first(app, trail):
    lines = _cli(app)
    assert [line["detail"]["hour"] for line in lines] == [3, 2, 1, 0]
    first = lines[0]
    assert set(first) == {"id", "at", "kind", "openid_hash", "card_hash", "ip_hash", "region",
                          "detail"}
    assert datetime.fromisoformat(first["at"]) == trail + timedelta(hours=3)
    with app.app_context():
        assert first["ip_hash"] == vault().blind_index("ip", IP)


def test_cli_filters(app, trail):
    def hours(*args, stdin=None):
        return [line["detail"]["hour"] for line in _cli(app, *args, stdin=stdin)]

    assert hours("--kind", "login") == [3, 0]
    assert hours("--card", "6217-0000-1234-5678-901") == [2, 1]  # hashed as the index is
    assert hours("--openid", OPENID) == [1, 0]
    assert hours("--card", CARD, "--openid", OPENID) == [1]
    assert hours("--since", "2026-11-20T09:00:00") == [3, 2, 1]  # naive means UTC
    assert hours("--since", "2026-11-20T17:30:00+08:00") == [3, 2]
    assert hours("--limit", "1") == [3]
    assert hours("--card", "-", stdin=f"{CARD}\n") == [2, 1]  # kept out of shell history


def test_cli_refuses_bad_options(app):
    runner = app.test_cli_runner()
    assert runner.invoke(audit_command, ["--since", "yesterday"]).exit_code == 2
    assert runner.invoke(audit_command, ["--kind", "nonsense"]).exit_code == 2
    assert runner.invoke(audit_command, ["--limit", "0"]).exit_code == 2
