"""/m/transactions/<txn_id>, the page a transaction alert links to: login, ownership, content."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from core.db import db, utcnow
from members.holders import oa_login
from members.holders.models import Binding, CardHolder
from members.transactions.alerts.models import Delivery
from members.transactions.models import Transaction
from tests.fixtures.feed import item, post_feed
from tests.fixtures.pages import SECURITY_HEADERS, authorize, open_as, session_of, text
from tests.fixtures.sim import sim_calls, sim_post

OWNER = "oTxnOwner00000000000000000001"
OTHER = "oTxnOther00000000000000000002"
STRANGER = "oTxnStranger000000000000000003"
TXN = "T202611210000001"
PAGE = f"/m/transactions/{TXN}"
NOT_FOUND = "未找到该交易"


# -- helpers --------------------------------------------------------------------------------

def bind(app, openid: str, holder_number: int, *, oa: bool = True,
         unionid: str | None = None) -> None:
    """An active binding as members.binding leaves it (the binding flow has its own tests)."""
    with app.app_context():
        holder = db.session.scalars(select(CardHolder).order_by(CardHolder.id)).all()[
            holder_number]
        db.session.add(Binding(holder_id=holder.id, app="oa" if oa else "miniapp",
                               openid=openid, unionid=unionid))
        db.session.commit()



@pytest.fixture
def holders(holders, app):
    """The registry's holders; the first bound to OWNER, the second to OTHER."""
    bind(app, OWNER, 0)
    bind(app, OTHER, 1)
    return holders


@pytest.fixture
def posted(client, app, holders, handed):
    """Two of the owner's transactions and one of the other holder's, through the feed."""
    answer = post_feed(client, app, [
        item(1, holders[0].card_no),
        item(2, holders[0].card_no, amount_fen=100_000, merchant="Example Mall"),
        item(3, holders[1].card_no),
    ])
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return holders


def mark_resent(app, txn_id: str) -> None:
    with app.app_context():
        txn = db.session.scalar(select(Transaction.id).where(Transaction.txn_id == txn_id))
        db.session.execute(update(Delivery).where(Delivery.transaction_id == txn)
                           .values(resend=True, marked=True))
        db.session.commit()


# -- the owner ------------------------------------------------------------------------------

def test_the_owner_sees_the_transaction_after_logging_in(client, app, sim, posted):
    person = posted[0]
    page = open_as(client, sim, PAGE, OWNER)
    assert page.status_code == 200
    html = text(page)
    for shown in (f"**** {person.card_no[-4:]}", "支出", "123.45元", "Example Coffee",
                  "2026-11-21 12:00:00（北京时间）", "交易后余额", "9876.54元", "首次提醒", TXN):
        assert shown in html, shown
    assert "补发" not in html
    # 123.45 + 1000.00 yuan at one point per 10 yuan: the holder's balance, not this one's.
    assert '<dd class="points">112</dd>' in html
    for secret in (person.card_no, person.phone, person.id_no, person.name):
        assert secret not in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value


def test_a_resent_alert_says_it_is_not_a_new_transaction(client, app, sim, posted):
    mark_resent(app, TXN)
    html = text(open_as(client, sim, PAGE, OWNER))
    assert "并非新的交易" in html and "补发提醒（非新交易）" in html


def test_a_credit_in_another_currency_without_balance(client, app, sim, holders, handed):
    post_feed(client, app, item(9, holders[0].card_no, direction="credit", currency="USD",
                                amount_fen=1200, balance_fen=None, channel="TRANSFER"))
    html = text(open_as(client, sim, "/m/transactions/T202611210000009", OWNER))
    assert "入账" in html and "12.00 USD" in html
    assert "交易后余额" not in html
    assert '<dd class="points">0</dd>' in html


def test_markup_from_the_feed_is_escaped(client, app, sim, holders, handed):
    post_feed(client, app, item(1, holders[0].card_no, merchant="<script>x()</script>"))
    html = text(open_as(client, sim, PAGE, OWNER))
    assert "<script>x()" not in html and "&lt;script&gt;x()" in html


def test_the_owners_mini_program_twin_sees_it_without_an_alert_row(client, app, sim,
                                                                   holders, handed):
    # Bound in the mini-program only; the follower is the same person (one unionid).
    third = holders[2]
    bind(app, "oTxnMiniTwin0000000000000001", 2, oa=False, unionid="uTxnTwin")
    sim_post(sim, "/sim/users", openid=STRANGER, unionid="uTxnTwin", subscribed=True)
    post_feed(client, app, item(1, third.card_no))
    html = text(open_as(client, sim, PAGE, STRANGER))
    assert "123.45元" in html
    assert "提醒类型" not in html  # no alert of it went to this openid


# -- nobody else ----------------------------------------------------------------------------

def not_found_as(client, sim, path: str, openid: str):
    answer = open_as(client, sim, path, openid)
    assert answer.status_code == 404
    assert NOT_FOUND in text(answer)
    return answer


def test_others_unbound_and_unknown_get_the_same_404(app, sim, posted):
    """No oracle: another card's transaction, no card, and no such txn look alike."""
    others = not_found_as(app.test_client(), sim, PAGE, OTHER)
    unbound = not_found_as(app.test_client(), sim, PAGE, STRANGER)
    unknown = not_found_as(app.test_client(), sim, "/m/transactions/T209912319999999", OWNER)
    assert text(others) == text(unbound) == text(unknown)
    for page in (others, unbound, unknown):
        assert "Example Coffee" not in text(page) and "123.45" not in text(page)
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
    per_response = {"Set-Cookie", "X-Request-Id"}  # the session and the request's own id
    assert ({k: v for k, v in others.headers.items() if k not in per_response}
            == {k: v for k, v in unknown.headers.items() if k not in per_response})
    # The other holder does see their own.
    assert app.test_client().get(PAGE).status_code == 302
    mine = open_as(app.test_client(), sim, "/m/transactions/T202611210000003", OTHER)
    assert mine.status_code == 200


def test_an_unbound_card_no_longer_shows(client, app, sim, posted):
    assert open_as(client, sim, PAGE, OWNER).status_code == 200
    with app.app_context():
        db.session.execute(update(Binding).where(Binding.openid == OWNER)
                           .values(unbound_at=utcnow()))
        db.session.commit()
    assert client.get(PAGE).status_code == 404


@pytest.mark.parametrize("txn_id", ["%00", "T" * 65, "交易", "T1%0A", "T1%20"])
def test_malformed_ids_are_404_before_anything_else(client, app, sim, posted, txn_id):
    path = f"/m/transactions/{txn_id}"
    assert client.get(path).status_code == 404  # no login asked for, nothing looked up
    open_as(client, sim, PAGE, OWNER)
    answer = client.get(path)
    assert answer.status_code == 404 and NOT_FOUND in text(answer)


# -- login and the way back -----------------------------------------------------------------

def test_the_login_remembers_the_page_only_in_the_session(client, app, sim, posted):
    client.get(PAGE)
    assert session_of(client, app)["oauth_return_to"] == PAGE
    other = app.test_client()
    other.get("/m/bind")
    assert "oauth_return_to" not in session_of(other, app)


def test_an_expired_login_goes_round_again_and_back(client, app, sim, posted):
    open_as(client, sim, PAGE, OWNER)
    with client.session_transaction() as session:
        session["oa_login_at"] -= 31 * 60
    assert open_as(client, sim, PAGE, OWNER).status_code == 200


def test_a_next_parameter_is_ignored(client, app, sim, posted):
    first = client.get(PAGE, query_string={"next": "https://evil.example/",
                                           "return_to": "//evil.example"})
    back = client.get(authorize(sim, first.headers["Location"], OWNER))
    assert back.headers["Location"] == PAGE


def test_the_alerts_link_opens_the_page(client, app, sim, holders, run_jobs, monkeypatch):
    """End to end: the feed, the template message WeChat got, its link, the login, the page."""
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "http://localhost")
    sim_post(sim, "/sim/users", openid=OWNER, subscribed=True)
    assert post_feed(client, app, item(1, holders[0].card_no)).status_code == 202
    run_jobs()
    (call,) = sim_calls(sim, "/cgi-bin/message/template/send")
    link = urlsplit(call["json"]["url"])
    assert (link.scheme, link.netloc, link.path) == ("http", "localhost", PAGE)
    page = open_as(client, sim, link.path, OWNER)
    assert page.status_code == 200 and "123.45元" in text(page)


# -- open redirects -------------------------------------------------------------------------

EVIL_TARGETS = [
    "https://evil.example/m/bind", "//evil.example/m/bind", "/\\evil.example", "/m/\\evil",
    "///evil.example", "/m//evil.example", "/m/../evil", "/m/./bind", "/m/%2e%2e/evil",
    "/m/bind\n", "/m/bind?next=//evil.example", "/m/bind#x", " /m/bind", "/m/bind/",
    "/m/oauth/callback", "/m/static/members/h5.css", "/m/unbind", "/healthz", "/api/members/me",
    "/m", "m/bind", "", None, 42, ["/m/bind"], "/m/" + "a" * 300,
]


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_only_our_own_pages_are_return_paths(app, target):
    with app.test_request_context():
        assert oa_login.safe_return_path(target) is None


@pytest.mark.parametrize("target", ["/m/bind", "/m/bind/verify", PAGE,
                                    "/m/transactions/ABC.def_1:2-3"])
def test_our_pages_are_return_paths(app, target):
    with app.test_request_context():
        assert oa_login.safe_return_path(target) == target


def test_every_feed_txn_id_makes_a_return_path(app):
    from flask import url_for

    with app.test_request_context():
        path = url_for("transaction_pages.transaction_page", txn_id="AZaz09._:-")
        assert oa_login.safe_return_path(path) == path == "/m/transactions/AZaz09._:-"


def test_begin_keeps_no_bad_target(app):
    with app.test_request_context():
        from flask import session

        oa_login.begin("/m/bind")
        assert session["oauth_return_to"] == "/m/bind"
        oa_login.begin("https://evil.example/")
        assert "oauth_return_to" not in session


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example",
                                    "/\\evil.example", "/m/../evil", "/m/oauth/callback"])
def test_a_tampered_return_path_lands_on_the_bind_page(client, app, sim, target):
    """Even a validly signed session naming another site is not followed (checked on use)."""
    location = client.get(PAGE).headers["Location"]
    with client.session_transaction() as session:
        session["oauth_return_to"] = target
    back = client.get(authorize(sim, location, OWNER))
    assert (back.status_code, back.headers["Location"]) == (302, "/m/bind")
