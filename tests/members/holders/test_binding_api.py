"""Mini-program login, binding by SMS code, unbinding, ownership, bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import create_app
from core.db import db, utcnow
from members.holders.models import BindChallenge, Binding, CardHolder, MemberSession
from members.protection.models import SecurityEvent
from members.protection.pii import vault
from tests.fixtures.factories import holder
from tests.fixtures.members import Member, follow
from tests.fixtures.sim import sim_calls, sim_post

MEMBER_CALLS = [
    ("get", "/api/members/me", None),
    ("delete", "/api/members/binding", None),
    ("post", "/api/members/bind/start", {"card_no": "6217000000000000018", "phone": "13800138000"}),
    ("post", "/api/members/bind/confirm", {"challenge_id": "0" * 32, "otp": "123456"}),
    ("post", "/api/miniapp/phone", {"code": "x"}),
    ("post", "/api/miniapp/logout", {}),
]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
def other(client, sim):
    """A second member, another person (the ``member`` fixture is the first)."""
    return Member(client, sim, "oMemberB000000000000000000002", unionid="uPersonB")


# -- login ----------------------------------------------------------------------------------

def test_login_returns_an_opaque_token_and_keeps_the_session_key(member, app):
    assert member.login["bound"] is False
    assert len(member.login["token"]) >= 43 and member.login["expires_in"] > 0
    assert "session_key" not in json.dumps(member.login)


def test_login_and_me_find_the_holder_directly_or_through_the_unionid(client, sim, app,
                                                                     holders):
    """Login's ``bound`` and /me name the holder of the caller's own binding, else of a binding
    of its unionid (the same person's official account), and the own one comes first."""
    with app.app_context():
        ids = [db.session.scalar(select(CardHolder.id).where(
            CardHolder.card_index == vault().blind_index("card", person.card_no)))
            for person in holders]
        db.session.add_all([
            Binding(holder_id=ids[0], app="oa", openid="oTwinOA0000000000000000000001",
                    unionid="uTwin"),
            Binding(holder_id=ids[1], app="oa", openid="oBothOA0000000000000000000001",
                    unionid="uBoth"),
            Binding(holder_id=ids[2], app="miniapp", openid="oBothMP0000000000000000000001",
                    unionid="uBoth")])
        db.session.commit()
    twin = Member(client, sim, "oTwinMP0000000000000000000001", unionid="uTwin")
    both = Member(client, sim, "oBothMP0000000000000000000001", unionid="uBoth")
    nobody = Member(client, sim, "oNobody0000000000000000000001", unionid="uNobody")
    assert [m.login["bound"] for m in (twin, both, nobody)] == [True, True, False]
    assert twin.call("get", "/api/members/me").json["card_last4"] == holders[0].card_no[-4:]
    assert both.call("get", "/api/members/me").json["card_last4"] == holders[2].card_no[-4:]
    assert nobody.call("get", "/api/members/me").json == {"bound": False}


def test_the_phone_step_keeps_the_number_encrypted_on_the_session(member, sim, app):
    code = sim_post(sim, "/sim/miniapp/phone-code", phone="13912345678")["code"]
    answer = member.call("post", "/api/miniapp/phone", {"code": code})
    assert answer.status_code == 200 and answer.json == {"phone": "139****5678"}
    with app.app_context():
        stored = db.session.scalar(select(MemberSession.phone))
        assert "13912345678" not in stored
        assert vault().decrypt(stored, "member_session.phone") == "13912345678"


def test_me_outside_a_transaction_leaves_its_connection_in_one(settings, client, sim, app):
    """/me runs its one statement in autocommit; the pooled connection it used must be back
    in transactions for the next request: a rolled-back write stays unwritten."""
    single = create_app({**settings, "DB_POOL_SIZE": 1})  # the next request gets /me's connection
    try:
        member = Member(single.test_client(), sim, "oAlone00000000000000000000001")
        assert member.call("get", "/api/members/me").json == {"bound": False}
        with single.app_context():
            db.session.execute(update(MemberSession).values(revoked_at=utcnow()))
            db.session.rollback()
        assert member.call("get", "/api/members/me").status_code == 200
    finally:
        with single.app_context():
            db.engine.dispose()


def test_login_with_refused_codes(client, sim):
    code = sim_post(sim, "/sim/miniapp/code", openid="oOnce00000000000000000000001")["code"]
    assert client.post("/api/miniapp/login", json={"code": code}).status_code == 200
    reused = client.post("/api/miniapp/login", json={"code": code})
    assert (reused.status_code, reused.json["error"]) == (400, "code_used")
    unknown = client.post("/api/miniapp/login", json={"code": "nonsense"})
    assert (unknown.status_code, unknown.json["error"]) == (400, "invalid_code")


@pytest.mark.parametrize(("body", "status", "error"), [
    ("not json", 400, "invalid_json"),
    ("[1, 2]", 400, "invalid_json"),
    ("{}", 400, "missing_field"),
    ('{"code": 42}', 400, "invalid_type"),
    ('{"code": true}', 400, "invalid_type"),
    ('{"code": "x", "openid": "oVictim"}', 400, "unknown_field"),
    ('{"code": "' + "x" * 20000 + '"}', 413, "body_too_large"),
    ('{"code": ""}', 400, "invalid_code"),
    ('{"code": "a b"}', 400, "invalid_code"),
    ('{"code": "\\ud800"}', 400, "invalid_json"),
    ('{"code": "x\\udfff"}', 400, "invalid_json"),
])
def test_login_bad_bodies(client, sim, body, status, error):
    response = client.post("/api/miniapp/login", data=body, content_type="application/json")
    assert (response.status_code, response.json["error"]) == (status, error)
    assert set(response.json) == {"error", "message"}
    assert sim_calls(sim, "/sns/jscode2session") == []  # refused before WeChat is asked


def test_lone_surrogates_are_refused_in_bind_confirm(member, sim):
    response = member.client.post(
        "/api/members/bind/confirm", headers=member.headers, content_type="application/json",
        data='{"challenge_id": "\\ud800' + "0" * 31 + '", "otp": "123456"}')
    assert (response.status_code, response.json["error"]) == (400, "invalid_json")


def test_a_surrogate_pair_is_text(client, sim):
    # An escaped emoji is a valid pair: it is not refused as JSON (the code is then no code).
    response = client.post("/api/miniapp/login", data='{"code": "\\ud83d\\ude00"}',
                           content_type="application/json")
    assert (response.status_code, response.json["error"]) == (400, "invalid_code")


# -- binding --------------------------------------------------------------------------------

def test_bind_confirm_me_and_unbind(member, holders, sms_inbox, run_jobs, app):
    person = holders[0]
    answer = member.bind(person, sms_inbox, run_jobs)
    assert answer == {"bound": True, "card_last4": person.card_no[-4:]}
    me = member.call("get", "/api/members/me").json
    assert me["bound"] is True and me["card_last4"] == person.card_no[-4:]
    assert me["phone"] == person.phone[:3] + "****" + person.phone[-4:]
    assert person.card_no not in json.dumps(me) and person.id_no not in json.dumps(me)
    assert member.call("delete", "/api/members/binding").json == {"bound": False}
    assert member.call("get", "/api/members/me").json["bound"] is False
    with app.app_context():
        kinds = list(db.session.scalars(select(SecurityEvent.kind).order_by(SecurityEvent.id)))
    assert kinds == ["login", "bind_started", "bind", "unbind"]


def test_start_answers_alike_for_unknown_card_and_wrong_phone(member, holders, sms_inbox,
                                                              run_jobs):
    known = holders[0]
    stranger = holder(99)
    cases = [(known.card_no, known.phone), (known.card_no, stranger.phone),
             (stranger.card_no, stranger.phone)]
    answers = [member.start(card, phone) for card, phone in cases]
    assert {a.status_code for a in answers} == {200}
    assert {tuple(a.json) for a in answers} == {("challenge_id",)}
    run_jobs()
    # Every phone got a code; only the true pair's code can ever confirm.
    for (_card, phone), answer in zip(cases[1:], answers[1:], strict=True):
        code = sms_inbox.codes_for(phone)[-1]
        refused = member.confirm(answer.json["challenge_id"], code)
        assert (refused.status_code, refused.json["error"]) == (400, "invalid_code")
    assert member.call("get", "/api/members/me").json["bound"] is False


def test_wrong_codes_are_limited_per_challenge(member, holders, sms_inbox, run_jobs):
    person = holders[0]
    challenge = member.start(person.card_no, person.phone).json["challenge_id"]
    run_jobs()
    right = sms_inbox.codes_for(person.phone)[-1]
    for _ in range(5):
        assert member.confirm(challenge, wrong(right)).json["error"] == "invalid_code"
    spent = member.confirm(challenge, right)
    # The contract's answer to too many tries: 429 with Retry-After, the code kept.
    assert spent.status_code == 429 and spent.json["error"] == "too_many_attempts"
    assert 0 < int(spent.headers["Retry-After"]) <= 300


def test_a_challenge_is_single_use_and_expires(member, holders, sms_inbox, run_jobs, app):
    person = holders[0]
    member.bind(person, sms_inbox, run_jobs)
    with app.app_context():
        used = db.session.scalar(select(BindChallenge.id))
    replay = member.confirm(used, sms_inbox.codes_for(person.phone)[-1])
    assert (replay.status_code, replay.json["error"]) == (400, "challenge_used")

    second = member.start(person.card_no, person.phone).json["challenge_id"]
    run_jobs()
    with app.app_context():
        db.session.execute(update(BindChallenge).where(BindChallenge.id == second)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    late = member.confirm(second, sms_inbox.codes_for(person.phone)[-1])
    assert late.json["error"] == "challenge_expired"


def test_repeated_failures_lock_the_card_and_tell_the_holder(member, holders, sms_inbox,
                                                             run_jobs, app):
    app.config["CARD_LOCK_FAILURES"] = 3
    try:
        person = holders[0]
        for _ in range(3):
            challenge = member.start(person.card_no, person.phone).json["challenge_id"]
            run_jobs()
            member.confirm(challenge, wrong(sms_inbox.codes_for(person.phone)[-1]))
        run_jobs()
        with app.app_context():
            locked = db.session.scalar(select(CardHolder.locked_until)
                                       .where(CardHolder.card_last4 == person.card_no[-4:]))
        assert locked is not None and locked > utcnow()
        notices = [m["message"] for m in sms_inbox.messages if m["phone"] == person.phone]
        assert any("锁定" in text for text in notices)
        # While locked, even the right code does not bind.
        challenge = member.start(person.card_no, person.phone).json["challenge_id"]
        run_jobs()
        right = member.confirm(challenge, sms_inbox.codes_for(person.phone)[-1])
        assert right.json["error"] == "invalid_code"
    finally:
        app.config["CARD_LOCK_FAILURES"] = 10


def test_failures_on_a_wrong_phone_never_lock_the_real_card(member, holders, app):
    app.config["CARD_LOCK_FAILURES"] = 2
    try:
        person, stranger = holders[0], holder(50)
        for _ in range(4):
            challenge = member.start(person.card_no, stranger.phone).json["challenge_id"]
            member.confirm(challenge, "000000")
        with app.app_context():
            assert db.session.scalar(select(CardHolder.locked_until)
                                     .where(CardHolder.card_last4 == person.card_no[-4:])) is None
    finally:
        app.config["CARD_LOCK_FAILURES"] = 10


# -- ownership ------------------------------------------------------------------------------

def test_nobody_can_touch_another_members_challenge_or_binding(member, other, holders,
                                                                sms_inbox, run_jobs):
    person = holders[0]
    challenge = member.start(person.card_no, person.phone).json["challenge_id"]
    run_jobs()
    code = sms_inbox.codes_for(person.phone)[-1]
    stolen = other.confirm(challenge, code)
    assert (stolen.status_code, stolen.json["error"]) == (400, "invalid_challenge")
    assert member.confirm(challenge, code).status_code == 200
    assert other.call("get", "/api/members/me").json == {"bound": False}
    assert other.call("delete", "/api/members/binding").json == {"bound": False}
    assert member.call("get", "/api/members/me").json["bound"] is True


@pytest.mark.parametrize(("method", "path", "body"), MEMBER_CALLS)
@pytest.mark.parametrize("token", [None, "forged-token", "expired", "revoked"])
def test_member_calls_need_a_live_token(client, sim, app, method, path, body, token):
    headers = {}
    if token in ("expired", "revoked"):
        victim = Member(client, sim, f"oTok{token}0000000000000000000")
        headers = victim.headers
        if token == "expired":
            with app.app_context():
                from members.holders.models import MemberSession

                db.session.execute(update(MemberSession).values(expires_at=utcnow()))
                db.session.commit()
        else:
            victim.call("post", "/api/miniapp/logout", {})
    elif token:
        headers = {"Authorization": f"Bearer {token}"}
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] in ("missing_token", "invalid_token")


# -- one person, two apps -------------------------------------------------------------------

def _oa_bindings(app) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(select(Binding.openid, Binding.app)
                                  .where(Binding.unbound_at.is_(None)).order_by(Binding.app))
        return [tuple(row) for row in rows]


def test_follow_after_binding_links_the_official_account(member, holders, sms_inbox, run_jobs,
                                                         sim, client, app):
    member.bind(holders[0], sms_inbox, run_jobs)
    sim_post(sim, "/sim/users", openid="oOfficialA00000000000000001", unionid="uPersonA",
             subscribed=True)
    follow(client, app)
    run_jobs()
    assert _oa_bindings(app) == [("oMemberA000000000000000000001", "miniapp"),
                                 ("oOfficialA00000000000000001", "oa")]


def test_binding_after_follow_links_the_official_account(member, holders, sms_inbox, run_jobs,
                                                         sim, client, app):
    sim_post(sim, "/sim/users", openid="oOfficialA00000000000000001", unionid="uPersonA",
             subscribed=True)
    follow(client, app)
    run_jobs()
    member.bind(holders[0], sms_inbox, run_jobs)
    assert _oa_bindings(app) == [("oMemberA000000000000000000001", "miniapp"),
                                 ("oOfficialA00000000000000001", "oa")]


def test_rebinding_moves_the_card_and_tells_the_old_account(member, other, holders, sms_inbox,
                                                            run_jobs, sim, client, app):
    sim_post(sim, "/sim/users", openid="oOfficialA00000000000000001", unionid="uPersonA",
             subscribed=True)
    follow(client, app)
    run_jobs()
    member.bind(holders[0], sms_inbox, run_jobs)
    other.bind(holders[0], sms_inbox, run_jobs)
    run_jobs()
    assert member.call("get", "/api/members/me").json["bound"] is False
    assert other.call("get", "/api/members/me").json["bound"] is True
    notices = sim_calls(sim, "/cgi-bin/message/custom/send")
    assert [n["json"]["touser"] for n in notices] == ["oOfficialA00000000000000001"]


def test_flooding_bind_start_gets_429_with_retry_after(member, holders, app):
    person = holders[0]
    answers = [member.start(person.card_no, person.phone) for _ in range(12)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "the card's window never closed"
    assert limited[0].json["error"] == "too_many_requests"
    assert int(limited[0].headers["Retry-After"]) > 0
    with app.app_context():
        kinds = set(db.session.scalars(select(SecurityEvent.kind)))
    assert "rate_limited" in kinds


def test_audit_trail_holds_no_plaintext_identifiers(member, holders, sms_inbox, run_jobs, app):
    person = holders[0]
    member.bind(person, sms_inbox, run_jobs)
    with app.app_context():
        rows = [json.dumps([e.openid_hash, e.card_hash, e.ip_hash, e.detail], default=str)
                for e in db.session.scalars(select(SecurityEvent))]
    dump = " ".join(rows)
    for plaintext in (person.card_no, person.phone, person.id_no, member.openid):
        assert plaintext not in dump
