"""Redemption under concurrency: every code given once, no stock oversold, no holder over its
limit or its points, one redemption per request_id, however many requests race.

The stock races need PostgreSQL's row locks (``FOR UPDATE SKIP LOCKED``) and run in real
mode only. One holder's own races take turns on both databases (the holder's row lock on
PostgreSQL, the single writer on SQLite) and run in both modes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from campaigns.benefits import redemption
from campaigns.benefits.models import Redemption, VoucherCode
from core.db import db
from core.errors import ApiError
from members.holders.models import CardHolder
from members.transactions import points
from tests.fixtures.benefits import (
    SLUG,
    campaign_json,
    holder_id,
    make_campaign,
    spend,
    voucher_codes,
)
from tests.fixtures.factories import holder, import_holders
from tests.fixtures.feed import item, post_feed

pytestmark = pytest.mark.usefixtures("handed")  # the feed's alerts are another module's

CODES = voucher_codes("flash", 50)
Outcome = tuple[int, str, str | None]  # holder id, "ok" or the refusal's code, the code given


def on_postgres(app: Flask) -> bool:
    return app.config["DATABASE_URL"].startswith("postgresql")


@pytest.fixture
def busy_app(app: Flask, settings: dict) -> Iterator[Flask]:
    """The app with a pool of 30 connections (40 with overflow), so that many redemptions
    are in flight at once rather than queueing for the session app's ten."""
    if not on_postgres(app):
        pytest.skip("stock races need PostgreSQL (FOR UPDATE SKIP LOCKED): run in real mode "
                    "with DATABASE_URL=postgresql+psycopg://...")
    busy = create_app({**settings, "DB_POOL_SIZE": 30})
    yield busy
    with busy.app_context():
        db.engine.dispose()


def attempt(app: Flask, holder_id: int, option: str, request_id: str,
            start: threading.Barrier) -> Outcome:
    """One redemption as the API runs it: its own unit of work, committed or rolled back."""
    with app.app_context():
        start.wait()
        try:
            result = redemption.redeem(db.session.get(CardHolder, holder_id), SLUG, option,
                                       request_id)
            db.session.commit()
            return holder_id, "ok", result.code
        except ApiError as refused:
            db.session.rollback()
            return holder_id, refused.code, None


def race(app: Flask, requests: list[tuple[int, str, str]]) -> list[Outcome]:
    """All ``requests`` (holder id, option, request_id) at once, each in its own thread."""
    start = threading.Barrier(len(requests))
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(lambda request: attempt(app, *request, start), requests))


def registry_of(app: Flask, count: int) -> list[int]:
    import_holders(app, count)
    with app.app_context():
        return list(db.session.scalars(select(CardHolder.id).order_by(CardHolder.id)))


def stored(app: Flask) -> dict:
    with app.app_context():
        return {
            "redemptions": db.session.scalar(select(func.count()).select_from(Redemption)),
            "codes_given": db.session.scalar(select(func.count(func.distinct(
                Redemption.code_id)))),
            "claimed": db.session.scalar(select(func.count()).select_from(VoucherCode)
                                         .where(VoucherCode.claimed_at.is_not(None))),
            "in_stock": db.session.scalar(select(func.count()).select_from(VoucherCode)
                                          .where(VoucherCode.claimed_at.is_(None))),
        }


def test_200_holders_race_for_50_codes(app, busy_app):
    holders = registry_of(app, 200)
    make_campaign(app, campaign_json(eligibility={"tiers": ["gold"]}, options=[
        {"key": "flash", "title": "限时抢", "points": 0, "limit_per_holder": 1}]),
        codes={"flash": CODES})
    outcomes = race(busy_app, [(holder, "flash", f"req-{holder}") for holder in holders])
    given = [code for _, result, code in outcomes if result == "ok"]
    assert Counter(result for _, result, _ in outcomes) == {"ok": 50, "out_of_stock": 150}
    assert sorted(given) == sorted(CODES)  # each code once
    assert stored(app) == {"redemptions": 50, "codes_given": 50, "claimed": 50, "in_stock": 0}


def test_200_requests_of_80_holders_with_repeats_keep_limits_and_points(client, app, busy_app):
    """Holders 1-20 can afford one (15 points), 21-80 two (30 points); 1-40 send four
    requests each, 41-80 one: 100 could succeed, 50 codes exist."""
    ids = registry_of(app, 80)
    post_feed(client, app, [item(n, holder(n).card_no, amount_fen=15000 if n <= 20 else 30000)
                            for n in range(1, 81)])
    make_campaign(app, campaign_json(eligibility={}, options=[
        {"key": "flash", "title": "积分抢兑", "points": 10, "limit_per_holder": 2}]),
        codes={"flash": CODES})
    requests = [(ids[n], "flash", f"req-{n}-{k}") for n in range(40) for k in range(4)]
    requests += [(ids[n], "flash", f"req-{n}-0") for n in range(40, 80)]
    outcomes = race(busy_app, requests)

    results = Counter(result for _, result, _ in outcomes)
    assert results["ok"] == 50 and set(results) <= {"ok", "out_of_stock", "limit_reached",
                                                    "insufficient_points"}
    assert sorted(code for *_, code in outcomes if code) == sorted(CODES)
    won = Counter(holder_id for holder_id, result, _ in outcomes if result == "ok")
    with app.app_context():
        for number, holder_id in enumerate(ids, start=1):
            start = 15 if number <= 20 else 30
            assert won[holder_id] <= min(2, start // 10)
            assert points.balance(holder_id) == start - 10 * won[holder_id] >= 0
    for holder_id, result, _ in outcomes:
        if result == "limit_reached":
            assert won[holder_id] == 2
    assert stored(app) == {"redemptions": 50, "codes_given": 50, "claimed": 50, "in_stock": 0}


def test_one_request_id_sent_20_times_at_once_redeems_once(app, people, bind_member, client):
    member = bind_member(people[0], "oImpatient000000000000000000001")
    spend(client, app, people[0].card_no, 150000, 1)  # 150 points, ¥1,500 spend
    make_campaign(app, campaign_json(options=[
        {"key": "music_month", "title": "QQ音乐绿钻月卡", "points": 100}]),
        codes={"music_month": voucher_codes("music", 5)})
    start = threading.Barrier(20)

    def post() -> tuple[int, dict]:
        caller = app.test_client()
        start.wait()
        answer = caller.post(f"/api/campaigns/{SLUG}/redeem", headers=member.headers,
                             json={"option": "music_month", "request_id": "tap-tap-tap"})
        return answer.status_code, answer.json

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post(), range(20)))
    assert {status for status, _ in answers} == {200}
    assert all(body == answers[0][1] for _, body in answers)
    assert answers[0][1]["points_balance"] == 50
    assert stored(app)["redemptions"] == 1
    assert member.call("get", "/api/members/me").json["points"] == 50


@pytest.mark.parametrize(("option", "expected"), [
    ({"key": "pricey", "title": "100积分", "points": 100}, {"ok": 2, "insufficient_points": 8}),
    ({"key": "limited", "title": "每人三次", "points": 0, "limit_per_holder": 3},
     {"ok": 3, "limit_reached": 7}),
])
def test_one_holders_parallel_requests_cannot_pass_its_limit_or_points(
        client, app, people, option, expected):
    spend(client, app, people[0].card_no, 250000, 1)  # 250 points, ¥2,500 spend
    make_campaign(app, campaign_json(options=[option]),
                  codes={option["key"]: voucher_codes("p", 10)})
    me = holder_id(app, people[0])
    outcomes = race(app, [(me, option["key"], f"parallel-{n}") for n in range(10)])
    assert Counter(result for _, result, _ in outcomes) == expected
    with app.app_context():
        assert points.balance(me) == 250 - option["points"] * expected["ok"]



def test_one_members_parallel_api_requests_take_turns(app, people, bind_member):
    """The API takes the holder's turn in the statement that finds the caller's session: ten
    requests of one member at once, with fresh request_ids, redeem no more than the limit."""
    member = bind_member(people[0], "oEager00000000000000000000001")
    make_campaign(app, campaign_json(eligibility={"tiers": ["gold"]}, options=[
        {"key": "limited", "title": "每人三次", "points": 0, "limit_per_holder": 3}]),
        codes={"limited": voucher_codes("l", 10)})
    start = threading.Barrier(10)

    def post(n: int) -> tuple[int, str | None]:
        caller = app.test_client()
        start.wait()
        answer = caller.post(f"/api/campaigns/{SLUG}/redeem", headers=member.headers,
                             json={"option": "limited", "request_id": f"eager-{n}"})
        return answer.status_code, answer.json.get("error")

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = Counter(pool.map(post, range(10)))
    assert answers == {(200, None): 3, (409, "limit_reached"): 7}
    assert stored(app)["redemptions"] == 3
