"""The official account's H5 binding page: OAuth login, CSRF, binding, unbinding, refusals."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from config.settings import load_settings
from core.db import db
from members.holders.models import BindChallenge, Binding
from tests.fixtures.factories import holder
from tests.fixtures.pages import SECURITY_HEADERS, authorize, session_of, text
from tests.fixtures.sim import sim_calls, sim_fault, sim_post

OPENID = "oFollowerH5000000000000000001"
UNIONID = "uPersonH5"
OTHER_OPENID = "oFollowerH5000000000000000002"
EXCHANGE = "/sns/oauth2/access_token"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- helpers --------------------------------------------------------------------------------

def log_in(client, sim, openid: str = OPENID) -> str:
    """OAuth through the simulator; returns the callback path (code and state) it used."""
    start = client.get("/m/bind")
    assert start.status_code == 302
    callback = authorize(sim, start.headers["Location"], openid)
    answer = client.get(callback)
    assert (answer.status_code, answer.headers["Location"]) == (302, "/m/bind"), answer.text
    return callback


def csrf(page) -> str:
    return CSRF_FIELD.search(page.get_data(as_text=True)).group(1)


class Follower:
    """One follower on the H5 page, logged in through the simulator's OAuth."""

    def __init__(self, client, sim, openid: str = OPENID) -> None:
        self.client = client
        log_in(client, sim, openid)
        self.pages = []

    def get(self, path: str):
        response = self.client.get(path)
        self.pages.append(response)
        return response

    def post(self, path: str, data: dict, token: str | None = None):
        token = token if token is not None else csrf(self.get("/m/bind"))
        response = self.client.post(path, data={**data, "csrf_token": token})
        self.pages.append(response)
        return response

    def start(self, card_no: str, phone: str):
        return self.post("/m/bind/start", {"card_no": card_no, "phone": phone})

    def confirm(self, code: str):
        return self.post("/m/bind/confirm", {"code": code},
                         token=csrf(self.get("/m/bind/verify")))

    def bind(self, person, sms_inbox, run_jobs):
        started = self.start(person.card_no, person.phone)
        assert (started.status_code, started.headers["Location"]) == (303, "/m/bind/verify")
        run_jobs()
        confirmed = self.confirm(sms_inbox.codes_for(person.phone)[-1])
        assert (confirmed.status_code, confirmed.headers["Location"]) == (303, "/m/bind/done")
        return self.get("/m/bind/done")

    def everything_shown(self) -> str:
        return "\n".join(text(page) for page in self.pages)


@pytest.fixture
def follower(client, sim):
    sim_post(sim, "/sim/users", openid=OPENID, unionid=UNIONID, subscribed=True)
    return Follower(client, sim)


# -- OAuth ------------------------------------------------------------------------------------

def test_bind_page_sends_a_stranger_to_wechat_authorize(client, app, sim):
    answer = client.get("/m/bind")
    assert answer.status_code == 302
    url, _, fragment = answer.headers["Location"].partition("#")
    base, _, query = url.partition("?")
    assert base == f"{sim.url}/connect/oauth2/authorize"
    assert fragment == "wechat_redirect"
    match = re.fullmatch(
        r"appid=(?P<appid>[^&]+)&redirect_uri=(?P<uri>[^&]+)&response_type=code"
        r"&scope=snsapi_base&state=(?P<state>[A-Za-z0-9]+)", query)
    assert match, query
    assert match["appid"] == app.config["WECHAT_APP_ID"]
    assert match["uri"] == "http%3A%2F%2Flocalhost%2Fm%2Foauth%2Fcallback"
    assert len(match["state"]) >= 22  # >= 128 bits in 62 symbols
    assert session_of(client, app) == {"_permanent": True, "oauth_state": match["state"]}
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value


def test_each_visit_draws_a_new_state(app):
    states = set()
    for _ in range(3):
        location = app.test_client().get("/m/bind").headers["Location"]
        states.add(re.search(r"state=([A-Za-z0-9]+)", location).group(1))
    assert len(states) == 3


def test_redirect_uri_uses_the_configured_public_base(client, app):
    app.config["PUBLIC_BASE_URL"] = "https://wx.bank.example/"
    try:
        location = client.get("/m/bind", headers={"Host": "evil.example"}).headers["Location"]
    finally:
        app.config["PUBLIC_BASE_URL"] = ""
    assert "redirect_uri=https%3A%2F%2Fwx.bank.example%2Fm%2Foauth%2Fcallback&" in location


def test_production_cookies_are_secure_only():
    assert load_settings("production", environ={})["SESSION_COOKIE_SECURE"] is True
    assert load_settings("test", environ={})["SESSION_COOKIE_SECURE"] is False


def test_login_through_the_simulator_shows_the_form(client, app, sim):
    sim_post(sim, "/sim/users", openid=OPENID, unionid=UNIONID)
    log_in(client, sim)
    assert session_of(client, app) == {
        "_permanent": True, "oa_openid": OPENID, "oa_unionid": UNIONID,
        "oa_login_at": pytest.approx(time.time(), abs=5)}
    page = client.get("/m/bind")
    assert page.status_code == 200
    assert 'name="card_no"' in text(page) and 'name="phone"' in text(page)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value


@pytest.mark.parametrize("state", ["missing", "wrong", "empty", "non-ascii"])
def test_callback_without_the_right_state_stores_nothing(client, app, sim, state):
    location = client.get("/m/bind").headers["Location"]
    callback = urlsplit(authorize(sim, location, OPENID))
    code = re.search(r"code=([^&]+)", callback.query).group(1)
    query = {"missing": {"code": code}, "wrong": {"code": code, "state": "A" * 32},
             "empty": {"code": code, "state": ""},
             "non-ascii": {"code": code, "state": "状态"}}[state]
    answer = client.get("/m/oauth/callback", query_string=query)
    assert answer.status_code == 400
    assert "重新进入" in text(answer) and 'href="/m/bind"' in text(answer)
    assert session_of(client, app) == {"_permanent": True}  # the state is spent as well
    assert sim_calls(sim, EXCHANGE) == []
    assert client.get("/m/bind").status_code == 302  # still nobody


def test_callback_without_a_code_exchanges_nothing(client, app, sim):
    location = client.get("/m/bind").headers["Location"]
    state = re.search(r"state=([A-Za-z0-9]+)", location).group(1)
    answer = client.get("/m/oauth/callback", query_string={"state": state})
    assert answer.status_code == 400 and "授权已失效" in text(answer)
    assert sim_calls(sim, EXCHANGE) == []
    assert "oa_openid" not in session_of(client, app)


def test_a_state_works_once(client, app, sim):
    callback = log_in(client, sim)
    state = re.search(r"state=([A-Za-z0-9]+)", callback).group(1)
    # Another user's fresh code under the spent state: refused, never exchanged.
    location = app.test_client().get("/m/bind").headers["Location"]
    fresh = urlsplit(authorize(sim, location, OTHER_OPENID)).query
    code = re.search(r"code=([^&]+)", fresh).group(1)
    replay = client.get("/m/oauth/callback", query_string={"code": code, "state": state})
    assert replay.status_code == 400
    assert len(sim_calls(sim, EXCHANGE)) == 1
    assert session_of(client, app)["oa_openid"] == OPENID


def test_a_used_oauth_code_gets_a_friendly_page(client, app, sim):
    callback = log_in(client, sim)
    code = re.search(r"code=([^&]+)", callback).group(1)
    second = app.test_client()
    state = re.search(r"state=([A-Za-z0-9]+)",
                      second.get("/m/bind").headers["Location"]).group(1)
    answer = second.get("/m/oauth/callback", query_string={"code": code, "state": state})
    assert answer.status_code == 400
    assert "授权已失效" in text(answer) and 'href="/m/bind"' in text(answer)
    assert "oa_openid" not in session_of(second, app)


@pytest.mark.parametrize(("fault", "status", "title"), [
    ({"errcode": -1, "times": 3}, 503, "微信服务繁忙"),
    ({"http_status": 502, "times": 3}, 503, "微信服务繁忙"),
    ({"errcode": 40164}, 502, "暂时无法完成微信授权"),
])
def test_wechat_failures_give_a_retry_page_not_a_500(client, app, sim, fault, status, title):
    location = client.get("/m/bind").headers["Location"]
    callback = authorize(sim, location, OPENID)
    sim_fault(sim, path=EXCHANGE, **fault)
    answer = client.get(callback)
    assert answer.status_code == status
    assert title in text(answer) and 'href="/m/bind"' in text(answer)
    assert "oa_openid" not in session_of(client, app)


def test_a_login_counts_for_a_limited_time(follower, client):
    with client.session_transaction() as session:
        session["oa_login_at"] -= 31 * 60
    assert client.get("/m/bind").status_code == 302


# -- CSRF -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "data"), [
    ("/m/bind/start", {"card_no": "6217000000000000018", "phone": "13800138000"}),
    ("/m/bind/confirm", {"code": "123456"}),
    ("/m/unbind", {}),
])
@pytest.mark.parametrize("token", ["missing", "forged", "another session's"])
def test_posts_need_the_sessions_csrf_token(follower, client, app, sim, sms_inbox, path,
                                            data, token):
    form = dict(data)
    if token == "forged":
        form["csrf_token"] = "x" * 40
    elif token == "another session's":
        other = Follower(app.test_client(), sim, OTHER_OPENID)
        form["csrf_token"] = csrf(other.get("/m/bind"))
    answer = client.post(path, data=form)
    assert answer.status_code == 400
    assert "页面已过期" in text(answer)
    with app.app_context():
        assert db.session.scalar(select(BindChallenge.id)) is None
    assert sms_inbox.messages == []


def test_a_post_after_the_login_expired_asks_to_reopen(follower, client, holders):
    token = csrf(client.get("/m/bind"))
    with client.session_transaction() as session:
        session["oa_login_at"] -= 31 * 60
    person = holders[0]
    answer = client.post("/m/bind/start", data={"card_no": person.card_no,
                                                "phone": person.phone, "csrf_token": token})
    assert answer.status_code == 401 and "登录已过期" in text(answer)


# -- binding ----------------------------------------------------------------------------------

def test_bind_shows_only_the_masked_card(follower, holders, sms_inbox, run_jobs, app, caplog):
    caplog.set_level(logging.DEBUG)
    person = holders[0]
    done = follower.bind(person, sms_inbox, run_jobs)
    assert done.status_code == 200
    assert f"**** {person.card_no[-4:]}" in text(done) and "绑定成功" in text(done)
    verify = follower.pages[-3]
    assert f"{person.phone[:3]}****{person.phone[-4:]}" in text(verify)
    home = follower.get("/m/bind")
    assert f"**** {person.card_no[-4:]}" in text(home) and "解除绑定" in text(home)
    shown = follower.everything_shown()
    for secret in (person.card_no, person.phone, person.id_no):
        assert secret not in shown
        assert secret not in caplog.text
    with app.app_context():
        rows = db.session.execute(select(Binding.app, Binding.openid, Binding.unionid)
                                  .where(Binding.unbound_at.is_(None))).all()
    assert [tuple(row) for row in rows] == [("oa", OPENID, UNIONID)]


def test_unbind(follower, holders, sms_inbox, run_jobs, app):
    follower.bind(holders[0], sms_inbox, run_jobs)
    answer = follower.post("/m/unbind", {})
    assert (answer.status_code, answer.headers["Location"]) == (303, "/m/bind")
    page = follower.get("/m/bind")
    assert "已解除绑定" in text(page) and 'name="card_no"' in text(page)
    with app.app_context():
        assert db.session.scalar(select(Binding.id).where(Binding.unbound_at.is_(None))) is None


def test_bad_input_is_refused_without_echoing_the_card(follower, holders, sms_inbox):
    person = holders[0]
    bad_luhn = person.card_no[:-1] + str((int(person.card_no[-1]) + 1) % 10)
    answer = follower.start(bad_luhn, person.phone)
    assert answer.status_code == 400 and "卡号有误" in text(answer)
    assert bad_luhn not in text(answer) and f"**** {bad_luhn[-4:]}" in text(answer)
    answer = follower.start(person.card_no, "12345")
    assert answer.status_code == 400 and "手机号码" in text(answer)
    assert person.card_no not in text(answer)
    assert sms_inbox.messages == []


def test_wrong_and_malformed_codes(follower, holders, sms_inbox, run_jobs, app):
    person = holders[0]
    follower.start(person.card_no, person.phone)
    run_jobs()
    right = sms_inbox.codes_for(person.phone)[-1]
    malformed = follower.confirm("12ab")
    assert malformed.status_code == 400 and "6 位数字" in text(malformed)
    wrong = follower.confirm(f"{(int(right) + 1) % 10**6:06d}")
    assert wrong.status_code == 400 and "验证码不正确" in text(wrong)
    with app.app_context():
        assert db.session.scalar(select(BindChallenge.attempts)) == 1  # the typo cost none
    assert follower.confirm(right).status_code == 303


def test_a_spent_challenge_sends_back_to_the_form(follower, holders, sms_inbox, run_jobs):
    person = holders[0]
    follower.start(person.card_no, person.phone)
    run_jobs()
    right = sms_inbox.codes_for(person.phone)[-1]
    for _ in range(5):
        follower.confirm(f"{(int(right) + 1) % 10**6:06d}")
    spent = follower.confirm(right)
    assert spent.status_code == 429 and "验证码已失效" in text(spent)
    assert int(spent.headers["Retry-After"]) > 0
    assert 'name="card_no"' in text(spent)
    assert follower.get("/m/bind/verify").status_code == 302  # no challenge pending


def test_flooding_start_gets_429_with_retry_after(follower, holders):
    person = holders[0]
    answers = [follower.start(person.card_no, holder(60 + n).phone) for n in range(7)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "the card's window never closed"
    assert int(limited[0].headers["Retry-After"]) > 0
    assert "操作过于频繁" in text(limited[0])


def test_a_card_bound_in_the_mini_program_shows_as_bound(follower, holders, sms_inbox,
                                                          run_jobs, sim, app):
    from members.holders import binding

    person = holders[1]
    with app.test_request_context():
        twin = binding.Actor(app=binding.MINIAPP, openid="oMiniH5", unionid=UNIONID)
        origin = binding.Origin(ip="127.0.0.1", region="local-dev", local=True)
        challenge = binding.start(twin, origin, person.card_no, person.phone)
        db.session.commit()
    run_jobs()
    with app.test_request_context():
        binding.confirm(twin, origin, challenge, sms_inbox.codes_for(person.phone)[-1])
        db.session.commit()
    page = follower.get("/m/bind")
    assert f"**** {person.card_no[-4:]}" in text(page)


def test_pages_without_a_pending_step_go_home(follower):
    assert follower.get("/m/bind/verify").headers["Location"] == "/m/bind"
    assert follower.get("/m/bind/done").headers["Location"] == "/m/bind"


def test_a_snapshot_page_visitor_is_not_logged_in(client, app, sim, monkeypatch):
    from wechat import oauth

    monkeypatch.setattr(oauth, "exchange_code", lambda client, code: oauth.WebUser(
        openid="oVirtual", unionid=None, scope="snsapi_base", snapshot=True))
    location = client.get("/m/bind").headers["Location"]
    answer = client.get(authorize(sim, location, OPENID))
    assert answer.status_code == 403 and "使用完整服务" in text(answer)
    assert "oa_openid" not in session_of(client, app)


def test_pages_are_never_cached_but_every_shells_static_files_are(client, app):
    assert client.get("/m/bind").headers["Cache-Control"] == "no-store"
    for path in ("/m/static/members/h5.css", "/m/campaigns/_static/copy.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" not in response.headers.get("Cache-Control", ""), path
