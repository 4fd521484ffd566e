"""POST /api/transactions: signature, size, validation, idempotency, storage, alerts' outbox."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import event, select

from core.db import db
from members.transactions.alerts import sending as alerts
from members.transactions.alerts.models import Delivery
from members.transactions.models import PointEntry, Transaction
from tests.fixtures.factories import holder
from tests.fixtures.feed import NOTHING, counts, item, post_feed, signature
from tests.fixtures.members import Member, follow
from tests.fixtures.sim import sim_post

OA_OPENID = "oOfficialA00000000000000001"
MP_OPENID = "oMemberA000000000000000000001"


def bind_with_official_account(client, sim, app, person, sms_inbox, run_jobs) -> Member:
    """A member bound in the mini-program who also follows the official account (one unionid)."""
    sim_post(sim, "/sim/users", openid=OA_OPENID, unionid="uPersonA", subscribed=True)
    follow(client, app, OA_OPENID)
    run_jobs()
    member = Member(client, sim, MP_OPENID, unionid="uPersonA")
    member.bind(person, sms_inbox, run_jobs)
    return member


def stored(app) -> list[Transaction]:
    with app.app_context():
        rows = list(db.session.scalars(select(Transaction).order_by(Transaction.txn_id)))
        db.session.expunge_all()
        return rows


def deliveries(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.execute(
            select(Transaction.txn_id, Delivery.channel, Delivery.openid)
            .join(Transaction, Transaction.id == Delivery.transaction_id)
            .order_by(Transaction.txn_id))
        return [tuple(row) for row in rows]


# -- accepted ----------------------------------------------------------------------------------

def test_a_single_object_is_stored_without_the_card_number(client, app, card, handed):
    response = post_feed(client, app, item(1, card))
    assert response.status_code == 202
    assert response.json == {"accepted": 1, "duplicate": 0, "unknown_card": 0}
    [row] = stored(app)
    assert (row.txn_id, row.card_last4, row.amount_fen, row.currency, row.direction) == (
        "T202611210000001", card[-4:], 12345, "CNY", "debit")
    assert row.holder_id is not None and row.balance_fen == 987654
    assert row.occurred_at.isoformat() == "2026-11-21T04:00:00+00:00"
    with app.app_context():
        dump = json.dumps([list(r) for r in db.session.execute(select(Transaction.__table__))],
                          default=str)
    assert card not in dump and card[:12] not in dump


def test_a_batch_is_stored_and_optional_fields_may_be_absent_or_null(client, app, card, handed):
    batch = [item(1, card), item(2, card, balance_fen=None),
             {key: value for key, value in item(3, card).items()
              if key not in ("merchant", "balance_fen")}]
    response = post_feed(client, app, batch)
    assert (response.status_code, response.json["accepted"]) == (202, 3)
    assert [(row.merchant, row.balance_fen) for row in stored(app)] == [
        ("Example Coffee", 987654), ("Example Coffee", None), ("", None)]


def test_an_empty_batch_is_accepted_with_nothing_to_do(client, app):
    response = post_feed(client, app, [])
    assert response.status_code == 202
    assert response.json == {"accepted": 0, "duplicate": 0, "unknown_card": 0}


def test_card_numbers_with_separators_find_their_holder(client, app, card, handed):
    spaced = " ".join(card[i:i + 4] for i in range(0, len(card), 4))
    assert post_feed(client, app, item(1, spaced)).json["unknown_card"] == 0
    assert stored(app)[0].holder_id is not None


def test_unknown_card_is_accepted_and_counted_without_points_or_alert(client, app, holders,
                                                                       handed):
    stranger = holder(77).card_no
    response = post_feed(client, app, [item(1, stranger), item(2, holders[0].card_no)])
    assert response.json == {"accepted": 2, "duplicate": 0, "unknown_card": 1}
    unknown = stored(app)[0]
    assert (unknown.holder_id, unknown.card_last4) == (None, stranger[-4:])
    assert counts(app)["point_entry"] == 1  # the known card's only
    again = post_feed(client, app, [item(1, stranger)])
    assert again.json == {"accepted": 0, "duplicate": 1, "unknown_card": 0}


def test_other_currencies_are_stored_as_sent_and_earn_nothing(client, app, card, sim,
                                                              sms_inbox, run_jobs, handed):
    bind_with_official_account(client, sim, app, holder(1), sms_inbox, run_jobs)
    response = post_feed(client, app, item(1, card, currency="USD", amount_fen=2500))
    assert response.json["accepted"] == 1
    [row] = stored(app)
    assert (row.currency, row.amount_fen) == ("USD", 2500)
    assert counts(app)["point_entry"] == 0
    assert deliveries(app) == [("T202611210000001", "template", OA_OPENID)]


def test_channels_are_stored_upper_case(client, app, card, handed):
    post_feed(client, app, item(1, card, channel="online"))
    assert stored(app)[0].channel == "ONLINE"


# -- signature ---------------------------------------------------------------------------------

def _tampered(client, app, card):
    body = json.dumps(item(1, card)).encode()
    stamp = str(int(time.time()))
    forged = body.replace(b"12345", b"99999")
    return client.post("/api/transactions", data=forged, content_type="application/json",
                       headers={"X-Timestamp": stamp,
                                "X-Signature": signature("dev-feed-secret", stamp, body)})


@pytest.mark.parametrize(("case", "error"), [
    ("no headers", "missing_signature"),
    ("no signature", "missing_signature"),
    ("no timestamp", "missing_signature"),
    ("wrong secret", "invalid_signature"),
    ("garbage signature", "invalid_signature"),
    ("non-ascii signature", "invalid_signature"),
    ("upper-case hex", "invalid_signature"),
    ("stale", "stale_timestamp"),
    ("future", "stale_timestamp"),
    ("milliseconds", "invalid_timestamp"),
    ("not a number", "invalid_timestamp"),
    ("timestamp re-signed", "invalid_signature"),
    ("tampered body", "invalid_signature"),
])
def test_bad_signatures_are_refused_and_store_nothing(client, app, card, case, error):
    now = int(time.time())
    payload = item(1, card)
    if case == "tampered body":
        response = _tampered(client, app, card)
    else:
        options = {
            "no headers": {"headers": {"X-Timestamp": "", "X-Signature": ""}},
            "no signature": {"headers": {"X-Signature": ""}},
            "no timestamp": {"headers": {"X-Timestamp": ""}},
            "wrong secret": {"secret": "not-the-secret"},
            "garbage signature": {"headers": {"X-Signature": "0" * 64}},
            "non-ascii signature": {"headers": {"X-Signature": "é" * 64}},
            "stale": {"timestamp": now - 301},
            "future": {"timestamp": now + 301},
            "milliseconds": {"timestamp": now * 1000},
            "not a number": {"headers": {"X-Timestamp": "12e8"}},
            # A fresh timestamp on an old signature: the timestamp is part of what is signed.
            "timestamp re-signed": {"timestamp": now - 100, "headers": {"X-Timestamp": str(now)}},
        }.get(case, {})
        if case == "upper-case hex":
            body = json.dumps(payload).encode()
            upper = signature(app.config["TXN_FEED_SECRET"], str(now), body).upper()
            options = {"raw": body, "timestamp": now, "headers": {"X-Signature": upper}}
        response = post_feed(client, app, payload, **options)
    assert response.status_code == 401, response.json
    assert response.json["error"] == error and set(response.json) == {"error", "message"}
    assert counts(app) == NOTHING


def test_a_timestamp_inside_the_window_is_accepted(client, app, card, handed):
    now = int(time.time())
    assert post_feed(client, app, item(1, card), timestamp=now - 290).status_code == 202
    assert post_feed(client, app, item(2, card), timestamp=now + 290).status_code == 202


def test_the_signature_is_checked_before_the_body_is_parsed(client, app):
    response = post_feed(client, app, raw=b"{not json", secret="wrong")
    assert (response.status_code, response.json["error"]) == (401, "invalid_signature")
    assert post_feed(client, app, raw=b"{not json").json["error"] == "invalid_json"


# -- size --------------------------------------------------------------------------------------

def test_an_oversize_body_is_refused_before_it_is_read(client, app, card):
    limit = app.config["TXN_FEED_MAX_BYTES"]
    body = json.dumps([item(1, card, merchant="x" * 100)]).encode()
    body = body[:-1] + b" " * (limit + 1 - len(body)) + b"]"
    assert len(body) == limit + 1
    response = post_feed(client, app, raw=body)
    assert (response.status_code, response.json["error"]) == (413, "body_too_large")
    assert counts(app) == NOTHING


def test_more_than_a_thousand_items_is_too_large(client, app, card):
    response = post_feed(client, app, [item(n, card) for n in range(1001)])
    assert (response.status_code, response.json["error"]) == (413, "too_many_items")
    assert counts(app) == NOTHING


def test_the_largest_valid_batch_fits_under_the_cap(client, app, holders, handed):
    """1,000 items with every field at its longest, escaped and pretty-printed: no 413."""
    batch = [item(n, holders[0].card_no, txn_id=f"{n:06d}".ljust(64, "X"), merchant="咖" * 128,
                  channel="C" * 32, amount_fen=10**10, direction="credit",
                  occurred_at="2026-11-21T12:00:00.123456+08:00", balance_fen=2**63 - 1)
             for n in range(1000)]
    body = json.dumps(batch, indent=2).encode()  # ensure_ascii: \uXXXX, 6 bytes a character
    assert len(body) <= app.config["TXN_FEED_MAX_BYTES"]
    response = post_feed(client, app, raw=body)
    assert (response.status_code, response.json["accepted"]) == (202, 1000)


# -- validation --------------------------------------------------------------------------------

ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
INVALID = [
    ("amount_fen", 123.45, "invalid_type"),
    ("amount_fen", 100.0, "invalid_type"),
    ("amount_fen", "12345", "invalid_type"),
    ("amount_fen", True, "invalid_type"),
    ("amount_fen", None, "invalid_type"),
    ("amount_fen", 0, "invalid_value"),
    ("amount_fen", -100, "invalid_value"),
    ("amount_fen", 10**10 + 1, "invalid_value"),
    ("amount_fen", 10**30, "invalid_value"),
    ("balance_fen", -1, "invalid_value"),
    ("balance_fen", 2**63, "invalid_value"),
    ("balance_fen", 1.5, "invalid_type"),
    ("balance_fen", "987654", "invalid_type"),
    ("currency", "cny", "invalid_value"),
    ("currency", "RMB¥", "invalid_value"),
    ("currency", "", "invalid_value"),
    ("currency", "CNY\n", "invalid_value"),
    ("currency", 156, "invalid_type"),
    ("direction", "DEBIT", "invalid_value"),
    ("direction", "refund", "invalid_value"),
    ("occurred_at", "2026-11-21T12:00:00", "invalid_value"),
    ("occurred_at", "2026-11-21", "invalid_value"),
    ("occurred_at", "yesterday", "invalid_value"),
    ("occurred_at", "0001-01-01T00:00:00+01:00", "invalid_value"),
    ("occurred_at", "2026-11-21T12:00:00+08:00" + " " * 40, "invalid_value"),
    ("occurred_at", 1763697600, "invalid_type"),
    ("txn_id", "", "invalid_value"),
    ("txn_id", "T" * 65, "invalid_value"),
    ("txn_id", "T1; DROP TABLE", "invalid_value"),
    ("txn_id", "T1\n", "invalid_value"),
    ("txn_id", "交易1", "invalid_value"),
    ("txn_id", 20261121000001, "invalid_type"),
    ("card_no", "6217000000000001235", "invalid_value"),  # Luhn
    ("card_no", "62170000", "invalid_value"),
    ("card_no", 6217000000000001234, "invalid_type"),
    # digits of other scripts are no card number (int() would read them as one)
    ("card_no", "6217000000000001234".translate(ARABIC_INDIC_DIGITS), "invalid_value"),
    ("card_no", "6217000000000001234".translate(FULLWIDTH_DIGITS), "invalid_value"),
    ("merchant", "x" * 129, "invalid_value"),
    ("merchant", "Coffee\x00", "invalid_value"),
    ("merchant", None, "invalid_type"),
    ("channel", "", "invalid_value"),
    ("channel", "P O S", "invalid_value"),
    ("channel", "C" * 33, "invalid_value"),
    ("unexpected", "x", "unknown_field"),
]


@pytest.mark.parametrize(("field", "value", "error"), INVALID)
def test_one_invalid_item_stores_nothing_of_the_batch(client, app, card, field, value, error):
    batch = [item(1, card), item(2, card), item(3, card, **{field: value})]
    response = post_feed(client, app, batch)
    assert response.status_code == 400, response.json
    assert response.json["error"] == error
    assert f"item 2: {field}:" in response.json["message"]
    assert card not in response.json["message"] and card[-8:] not in response.json["message"]
    assert counts(app) == NOTHING


@pytest.mark.parametrize("field", ["merchant", "txn_id", "card_no"])
def test_lone_surrogates_are_refused_and_store_nothing(client, app, card, field):
    body = json.dumps([item(1, card), item(2, card, **{field: "\ud800"})]).encode()
    assert b"\\ud800" in body  # json.dumps escapes it: valid JSON, but no text
    response = post_feed(client, app, raw=body)
    assert (response.status_code, response.json["error"]) == (400, "invalid_json")
    assert counts(app) == NOTHING


@pytest.mark.parametrize("field", ["txn_id", "card_no", "amount_fen", "currency", "direction",
                                   "channel", "occurred_at"])
def test_required_fields(client, app, card, field):
    payload = item(1, card)
    del payload[field]
    response = post_feed(client, app, payload)
    assert (response.status_code, response.json["error"]) == (400, "missing_field")
    assert f"item 0: {field}: is required" in response.json["message"]


def test_every_problem_is_listed_by_item_and_field(client, app, card):
    batch = [item(1, card, amount_fen="1"), item(2, card), item(3, card, currency="usd",
                                                                 direction="sideways")]
    message = post_feed(client, app, batch).json["message"]
    for expected in ("item 0: amount_fen", "item 2: currency", "item 2: direction"):
        assert expected in message
    assert "item 1" not in message


def test_a_txn_id_twice_in_one_batch_is_refused(client, app, card):
    response = post_feed(client, app, [item(1, card), item(2, card), item(1, card)])
    assert (response.status_code, response.json["error"]) == (400, "duplicate_txn_id")
    assert "item 2: txn_id" in response.json["message"]
    assert counts(app) == NOTHING


@pytest.mark.parametrize(("raw", "error"), [
    (b"not json", "invalid_json"),
    (b'{"txn_id": "T1", "txn_id": "T2"}', "invalid_json"),  # two readings of one body
    (b'{"amount_fen": NaN}', "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b"42", "invalid_type"),
    (b'"a string"', "invalid_type"),
    (b"[[]]", "invalid_type"),
    (b"[1, 2]", "invalid_type"),
])
def test_bodies_that_are_not_transactions(client, app, raw, error):
    response = post_feed(client, app, raw=raw)
    assert (response.status_code, response.json["error"]) == (400, error)
    assert set(response.json) == {"error", "message"}


# -- idempotency -------------------------------------------------------------------------------

def test_a_batch_posted_again_is_all_duplicates_and_changes_nothing(client, app, card, sim,
                                                                    sms_inbox, run_jobs, handed):
    bind_with_official_account(client, sim, app, holder(1), sms_inbox, run_jobs)
    batch = [item(n, card) for n in range(5)]
    assert post_feed(client, app, batch).json == {"accepted": 5, "duplicate": 0,
                                                  "unknown_card": 0}
    before = counts(app)
    again = post_feed(client, app, batch)
    assert again.json == {"accepted": 0, "duplicate": 5, "unknown_card": 0}
    overlap = post_feed(client, app, [item(4, card), item(5, card)])
    assert overlap.json == {"accepted": 1, "duplicate": 1, "unknown_card": 0}
    assert counts(app) == {"card_transaction": 6, "point_entry": 6, "delivery": 6}
    assert before == {"card_transaction": 5, "point_entry": 5, "delivery": 5}
    assert [len(ids) for ids in handed] == [5, 1]


def test_a_duplicate_with_other_values_keeps_the_first(client, app, card, handed):
    post_feed(client, app, item(1, card, amount_fen=100_00))
    response = post_feed(client, app, item(1, card, amount_fen=999_00))
    assert response.json["duplicate"] == 1
    assert stored(app)[0].amount_fen == 100_00


def test_the_same_batch_posted_concurrently_is_stored_once(app, holders, sim, sms_inbox,
                                                           run_jobs, client, handed):
    bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)
    batch = [item(n, holders[n % 3].card_no) for n in range(300)]
    answers: list = []
    start = threading.Barrier(3)

    def post() -> None:
        start.wait()
        answers.append(post_feed(app.test_client(), app, batch))

    for _round in range(3):
        answers.clear()
        threads = [threading.Thread(target=post) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [a.status_code for a in answers] == [202, 202, 202], [a.json for a in answers]
        assert sum(a.json["accepted"] for a in answers) == (300 if _round == 0 else 0)
        assert sum(a.json["duplicate"] for a in answers) == (600 if _round == 0 else 900)
    assert counts(app) == {"card_transaction": 300, "point_entry": 300, "delivery": 100}
    with app.app_context():
        per_txn = db.session.execute(select(PointEntry.txn_id)).scalars().all()
    assert len(per_txn) == len(set(per_txn))
    handed_over = [i for ids in handed for i in ids]
    assert len(handed_over) == len(set(handed_over)) == 100


# -- the alerts' outbox ------------------------------------------------------------------------

def test_alerts_are_queued_for_the_official_account_and_handed_over_after_commit(
        client, app, holders, sim, sms_inbox, run_jobs, monkeypatch):
    bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)
    committed: list[bool] = []
    handed: list[list[int]] = []

    def hand(ids: list[int]) -> None:
        # Called after the commit: another session already sees the rows.
        with app.app_context():
            committed.append(all(db.session.get(Delivery, i) is not None for i in ids))
        handed.append(ids)

    monkeypatch.setattr(alerts, "enqueue_deliveries", hand)
    batch = [item(1, holders[0].card_no), item(2, holders[0].card_no, direction="credit",
                                                channel="TRANSFER"),
             item(3, holders[1].card_no)]  # holder 2 is bound nowhere
    assert post_feed(client, app, batch).status_code == 202
    assert deliveries(app) == [("T202611210000001", "template", OA_OPENID),
                               ("T202611210000002", "template", OA_OPENID)]
    with app.app_context():
        rows = list(db.session.scalars(select(Delivery)))
    assert {(row.state, row.resend, row.attempts) for row in rows} == {("queued", False, 0)}
    assert handed == [[row.id for row in rows]] and committed == [True]


def test_a_member_without_the_official_account_gets_a_subscribe_message(
        client, app, holders, sim, sms_inbox, run_jobs, handed):
    Member(client, sim, MP_OPENID, unionid="uPersonA").bind(holders[0], sms_inbox, run_jobs)
    post_feed(client, app, item(1, holders[0].card_no))
    assert deliveries(app) == [("T202611210000001", "subscribe", MP_OPENID)]


def test_an_unbound_member_gets_no_alert(client, app, holders, sim, sms_inbox, run_jobs, handed):
    member = bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)
    member.call("delete", "/api/members/binding")
    assert post_feed(client, app, item(1, holders[0].card_no)).json["accepted"] == 1
    assert deliveries(app) == [] and handed == []


def test_an_invalid_batch_hands_nothing_over(client, app, holders, sim, sms_inbox, run_jobs,
                                             handed):
    bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)
    post_feed(client, app, [item(1, holders[0].card_no), item(2, holders[0].card_no,
                                                              amount_fen=-1)])
    assert handed == [] and counts(app) == NOTHING


def test_a_failing_hand_over_still_answers_202_and_keeps_the_rows(client, app, holders, sim,
                                                                  sms_inbox, run_jobs,
                                                                  monkeypatch):
    bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)

    def broken(ids: list[int]) -> None:
        raise ConnectionError("queue unreachable")

    monkeypatch.setattr(alerts, "enqueue_deliveries", broken)
    assert post_feed(client, app, item(1, holders[0].card_no)).status_code == 202
    assert counts(app)["delivery"] == 1


# -- cost --------------------------------------------------------------------------------------

def test_a_thousand_items_take_a_handful_of_statements(client, app, holders, sim, sms_inbox,
                                                       run_jobs, handed):
    """Set-based storing: the statement count does not grow with the batch."""
    bind_with_official_account(client, sim, app, holders[0], sms_inbox, run_jobs)
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    batch = [item(n, holders[n % 3].card_no) for n in range(1000)]
    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        response = post_feed(client, app, batch)
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.json["accepted"] == 1000
    assert len(statements) <= 12, statements
    assert elapsed < 5  # generous for slow CI; the README's figure is the real measure
