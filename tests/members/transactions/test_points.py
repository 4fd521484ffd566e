"""Points: rules, earning and taking back through the feed, balance, the paged history."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from config.validation import ConfigError
from core.db import db
from members.transactions import points
from members.transactions.models import PointEntry
from tests.fixtures.factories import holder
from tests.fixtures.feed import item, post_feed
from tests.fixtures.members import Member

RULES = points.Rules(currency="CNY", per_fen=1000, earn={"POS": 1, "ONLINE": 2},
                     take_back={"REFUND": 1})


# Alerts are another module's business; these tests only count points.
pytestmark = pytest.mark.usefixtures("handed")


@pytest.fixture
def member(member, holders, sms_inbox, run_jobs):
    """The member, bound to holder 1's card."""
    member.bind(holders[0], sms_inbox, run_jobs)
    return member


# -- rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("direction", "channel", "currency", "amount", "expected"), [
    ("debit", "POS", "CNY", 12345, ("earn", 12)),  # floored to whole 10 yuan
    ("debit", "ONLINE", "CNY", 12345, ("earn", 24)),  # the channel's rate
    ("debit", "POS", "CNY", 999, None),  # under one unit: no zero entry
    ("debit", "ATM", "CNY", 500000, None),  # channel not earning
    ("debit", "POS", "USD", 500000, None),  # other currencies neither earn...
    ("credit", "REFUND", "USD", 500000, None),  # ...nor take back
    ("credit", "REFUND", "CNY", 5000, ("reverse", -5)),
    ("credit", "SALARY", "CNY", 1000000, None),  # a credit that undoes no purchase
    ("credit", "POS", "CNY", 5000, None),  # earning channels don't take back on credit
    ("debit", "REFUND", "CNY", 5000, None),  # nor take-back channels earn on debit
])
def test_movement(direction, channel, currency, amount, expected):
    move = points.movement(RULES, direction=direction, channel=channel, currency=currency,
                           amount_fen=amount)
    assert (None if move is None else (move.kind, move.points)) == expected


def test_the_shipped_rules_parse():
    from config.settings import BASE

    rules = points.Rules.from_config(BASE["POINTS_RULES"], BASE["TXN_MAX_AMOUNT_FEN"])
    assert rules.per_fen == 1000 and rules.earn["POS"] == 1 and rules.take_back["REFUND"] == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"per_fen": 0}, "per_fen"),
    ({"per_fen": 10.0}, "per_fen"),
    ({"currency": "cny"}, "currency"),
    ({"earn": {"pos": 1}}, "earn"),
    ({"earn": {"POS": -1}}, "earn"),
    ({"earn": {"POS": 1.5}}, "earn"),
    ({"take_back": ["REFUND"]}, "take_back"),
    ({"bonus": {}}, "exactly"),
    ({"earn": {"POS": 10**6}}, "overflows"),  # 10^10 fen // 1000 * 10^6 > 2^31 - 1
])
def test_bad_rules_stop_the_start(change, message):
    raw = {"currency": "CNY", "per_fen": 1000, "earn": {"POS": 1}, "take_back": {"REFUND": 1},
           **change}
    with pytest.raises(ConfigError, match=message):
        points.Rules.from_config(raw, 10**10)


# -- through the feed --------------------------------------------------------------------------

def test_points_are_earned_taken_back_and_shown_in_me(client, app, holders, member):
    card = holders[0].card_no
    post_feed(client, app, [
        item(1, card, amount_fen=12345, channel="POS"),  # +12
        item(2, card, amount_fen=50000, channel="ONLINE"),  # +50
        item(3, card, amount_fen=80000, channel="ATM"),  # 0: no entry
        item(4, card, amount_fen=999, channel="POS"),  # 0: no entry
        item(5, card, amount_fen=20000, direction="credit", channel="REFUND"),  # -20
        item(6, card, amount_fen=900000, direction="credit", channel="SALARY"),  # nothing
    ])
    assert member.call("get", "/api/members/me").json["points"] == 42
    with app.app_context():
        entries = db.session.execute(select(PointEntry.txn_id, PointEntry.kind,
                                            PointEntry.points).order_by(PointEntry.id)).all()
    assert [tuple(e) for e in entries] == [("T202611210000001", "earn", 12),
                                           ("T202611210000002", "earn", 50),
                                           ("T202611210000005", "reverse", -20)]


def test_a_repeated_transaction_never_counts_twice(client, app, holders, member):
    card = holders[0].card_no
    batch = [item(1, card), item(2, card, direction="credit", channel="REFUND", amount_fen=5000)]
    for _ in range(3):
        post_feed(client, app, batch)
    assert member.call("get", "/api/members/me").json["points"] == 12 - 5


def test_the_balance_is_the_ledger_sum_and_may_go_below_zero(client, app, holders, member):
    """A refund takes back what its purchase earned, even after the points were spent."""
    card = holders[0].card_no
    post_feed(client, app, item(1, card, direction="credit", channel="REFUND", amount_fen=30000))
    me = member.call("get", "/api/members/me").json
    with app.app_context():
        holder_id, total = db.session.execute(
            select(PointEntry.holder_id, func.sum(PointEntry.points))
            .group_by(PointEntry.holder_id)).one()
        assert points.balance(holder_id) == total == -30
    assert me["points"] == -30


def test_points_of_another_holder_and_of_unknown_cards_are_not_mine(client, app, holders,
                                                                    member):
    post_feed(client, app, [item(1, holders[1].card_no), item(2, holder(99).card_no)])
    assert member.call("get", "/api/members/me").json["points"] == 0
    with app.app_context():
        assert db.session.scalar(select(func.count(PointEntry.id))) == 1  # holder 2's only


# -- history -----------------------------------------------------------------------------------

def _pages(member, limit: int) -> list[list[dict]]:
    pages, cursor = [], ""
    while True:
        answer = member.call("get", f"/api/members/points?limit={limit}&cursor={cursor}")
        assert answer.status_code == 200, answer.json
        pages.append(answer.json["entries"])
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20


def test_history_pages_newest_first_with_keyset_cursors(client, app, holders, member):
    card = holders[0].card_no
    for n in range(5):  # one request each: ids in the order they happened
        post_feed(client, app, item(n, card, amount_fen=(n + 1) * 1000))
    pages = _pages(member, 2)
    assert [[entry["points"] for entry in page] for page in pages] == [[5, 4], [3, 2], [1]]
    first = pages[0][0]
    assert first["kind"] == "earn" and first["reason"] == "debit:POS"
    assert first["transaction"] == {
        "merchant": "Example Coffee", "amount_fen": 5000, "currency": "CNY",
        "occurred_at": "2026-11-21T04:00:00+00:00", "card_last4": card[-4:]}
    assert set(first) == {"id", "kind", "points", "reason", "created_at", "transaction"}
    # Entries added between pages don't shift what the next page shows.
    second_page_cursor = pages[0][-1]["id"]
    post_feed(client, app, item(9, card, amount_fen=9000))
    again = member.call("get", f"/api/members/points?limit=2&cursor={second_page_cursor}").json
    assert [entry["points"] for entry in again["entries"]] == [3, 2]


def test_history_default_page_and_its_end(client, app, holders, member):
    post_feed(client, app, [item(n, holders[0].card_no) for n in range(25)])
    first = member.call("get", "/api/members/points").json
    assert len(first["entries"]) == 20 and first["next_cursor"] is not None
    rest = member.call("get", f"/api/members/points?cursor={first['next_cursor']}").json
    assert len(rest["entries"]) == 5 and rest["next_cursor"] is None
    assert len(_pages(member, 100)[0]) == 25


def test_history_never_shows_the_card_number(client, app, holders, member):
    post_feed(client, app, [item(n, holders[0].card_no) for n in range(3)])
    dump = json.dumps(member.call("get", "/api/members/points").json)
    assert holders[0].card_no not in dump and holders[0].card_no[:12] not in dump


def test_history_is_only_the_callers_own(client, app, sim, holders, member, sms_inbox,
                                         run_jobs):
    post_feed(client, app, [item(1, holders[0].card_no), item(2, holders[1].card_no)])
    unbound = Member(client, sim, "oMemberB000000000000000000002", unionid="uPersonB")
    assert unbound.call("get", "/api/members/points").json == {"entries": [],
                                                               "next_cursor": None}
    mine = member.call("get", "/api/members/points").json["entries"]
    # A cursor names a position, not a ledger: it cannot reach another holder's entries.
    unbound.bind(holders[1], sms_inbox, run_jobs)
    theirs = unbound.call("get", "/api/members/points?cursor=999999").json["entries"]
    assert [e["transaction"]["card_last4"] for e in mine] == [holders[0].card_no[-4:]]
    assert [e["transaction"]["card_last4"] for e in theirs] == [holders[1].card_no[-4:]]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=ten",
                                   "limit=1.5", "cursor=abc", "cursor=0", "cursor=-5",
                                   "cursor=99999999999999999999", "limit=%EF%BC%91"])
def test_history_refuses_bad_paging(member, query):
    answer = member.call("get", f"/api/members/points?{query}")
    assert answer.status_code == 400
    assert answer.json["error"] in ("invalid_limit", "invalid_cursor")


def test_history_needs_a_member_token(client):
    answer = client.get("/api/members/points")
    assert (answer.status_code, answer.json["error"]) == (401, "missing_token")


# -- spending ----------------------------------------------------------------------------------

def test_spending_is_a_negative_entry_made_once_per_reference(client, app, holders, member):
    post_feed(client, app, item(1, holders[0].card_no, amount_fen=500000))  # +500
    with app.app_context():
        holder_id = db.session.scalar(select(PointEntry.holder_id))
        assert points.spend(holder_id, 120, "redeem:video/music", reference="redemption:7")
        assert not points.spend(holder_id, 120, "redeem:video/music", reference="redemption:7")
        assert points.spend(holder_id, 80, "redeem:video/music", reference="redemption:8")
        db.session.commit()
    assert member.call("get", "/api/members/me").json["points"] == 300
    newest = member.call("get", "/api/members/points").json["entries"][0]
    assert (newest["kind"], newest["points"], newest["reason"], newest["transaction"]) == (
        "redeem", -80, "redeem:video/music", None)


@pytest.mark.parametrize("amount", [0, -5, 1.5])
def test_spending_needs_a_positive_integer(app_context, amount):
    with pytest.raises(ValueError, match="positive integer"):
        points.spend(1, amount, "redeem:x", reference="redemption:1")
