"""WeChat failing (-1, 45009, 45028, slowly), pauses, a worker killed mid-push, Redis
flushed mid-push: no recipient lost, none sent twice; only in-flight ones interrupted."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from campaigns.pushes import sending
from campaigns.pushes.models import Push
from core.db import db, utcnow
from tests.campaigns.pushes.engine import (
    CUSTOM_PATH,
    add_followers,
    age_claims,
    make_push,
    openids,
    outcomes,
    push_state,
    received,
    start,
    sweep,
)
from tests.fixtures.sim import sim_fault


@pytest.fixture
def quick_retries(app):
    saved = {key: app.config[key] for key in ("PUSH_RETRY_BASE_DELAY", "PUSH_SEND_RETRIES")}
    app.config.update(PUSH_RETRY_BASE_DELAY=0.01, PUSH_SEND_RETRIES=1)
    yield
    app.config.update(saved)


def _followers(app, sim, prefix, count):
    ids = openids(prefix, count)
    add_followers(app, sim, ids, messaged_ago=timedelta(hours=1))
    return ids


def test_minus_one_is_retried_and_sent_once(app, sim, run_jobs, quick_retries):
    ids = _followers(app, sim, "Busy", 3)
    sim_fault(sim, path=CUSTOM_PATH, errcode=-1, times=4)  # beyond the client's own retries
    push_id = make_push(app, "custom", ids)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 3}
    assert received(sim, "custom", ids) == {o: 1 for o in ids}


def test_minus_one_for_ever_fails_with_the_errcode_and_the_push_goes_on(
        app, sim, run_jobs, quick_retries):
    ids = _followers(app, sim, "Down", 2)
    sim_fault(sim, path=CUSTOM_PATH, errcode=-1, times=-1)
    push_id = make_push(app, "custom", ids)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("failed", "unavailable"): 2}
    assert push_state(app, push_id).state == "done"


def test_45009_pauses_the_push_until_the_reset_and_it_resumes_by_itself(
        app, sim, run_jobs):
    ids = _followers(app, sim, "Daily", 4)
    sim_fault(sim, path=CUSTOM_PATH, errcode=45009)
    push_id = make_push(app, "custom", ids)
    start(app, push_id, run_jobs)
    push = push_state(app, push_id)
    assert (push.state, push.pause_reason) == ("paused", "quota_daily")
    assert push.paused_until > utcnow()
    assert outcomes(app, push_id) == {("pending", None): 4}  # refused, so given back
    # The reset passes (WeChat's guard pause lapses with it).
    with app.app_context():
        db.session.execute(update(Push).values(paused_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        app.extensions["wechat.quotas"]["official_account"].resume(sending.APIS["custom"])
    assert sweep(app, run_jobs)["resumed"] == 1
    assert outcomes(app, push_id) == {("sent", None): 4}
    assert received(sim, "custom", ids) == {o: 1 for o in ids}


def test_our_guard_refusing_marketing_pauses_without_touching_the_alerts_share(
        app, sim, run_jobs):
    ids = _followers(app, sim, "Guard", 2)
    quotas = dict(app.config["WECHAT_DAILY_QUOTAS"])
    app.config["WECHAT_DAILY_QUOTAS"] = {**quotas, "message/custom/send": 1}  # 80 % of 1: 0
    app.extensions["wechat.quotas"]["official_account"].daily = app.config["WECHAT_DAILY_QUOTAS"]
    try:
        push_id = make_push(app, "custom", ids)
        start(app, push_id, run_jobs)
    finally:
        app.config["WECHAT_DAILY_QUOTAS"] = quotas
        app.extensions["wechat.quotas"]["official_account"].daily = quotas
    assert push_state(app, push_id).pause_reason == "quota_daily"
    assert received(sim, "custom", ids) == {o: 0 for o in ids}


def test_a_slow_wechat_and_a_pause_that_holds_within_a_second(app, sim, run_jobs):
    if not app.extensions["redis_embedded"]:
        pytest.skip("the embedded runner runs the push on this thread's side; see below")
    ids = _followers(app, sim, "Slow", 40)
    sim_fault(sim, path=CUSTOM_PATH, delay=0.2, times=-1)
    push_id = make_push(app, "custom", ids, rate_per_s=20)
    runner = threading.Thread(target=start, args=(app, push_id, run_jobs))
    runner.start()
    time.sleep(1.0)
    with app.app_context():
        db.session.execute(update(Push).values(state="paused", pause_reason="staff"))
        db.session.commit()
    paused_at = time.monotonic()
    runner.join(10)
    stopped_within = time.monotonic() - paused_at
    sent_then = outcomes(app, push_id)[("sent", None)]
    time.sleep(0.5)
    assert outcomes(app, push_id)[("sent", None)] == sent_then
    assert stopped_within < 1.0 + 0.2 * 2  # a state check, and the calls in flight
    assert 0 < sent_then < 40
    assert outcomes(app, push_id)[("pending", None)] == 40 - sent_then  # none left claimed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_killed_mid_push_interrupts_only_its_sends_in_flight(
        app, sim, run_jobs, monkeypatch):
    ids = _followers(app, sim, "Killed", 20)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CLAIM_SIZE", 4)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    real_send = sending.messages.send
    calls = []

    def die_on_the_sixth(client, api, body):
        calls.append(body["touser"])
        answer = real_send(client, api, body)
        if len(calls) == 6:
            raise SystemExit("killed after WeChat took it, before we kept the answer")
        return answer

    monkeypatch.setattr(sending.messages, "send", die_on_the_sixth)
    push_id = make_push(app, "custom", ids)
    start(app, push_id, run_jobs)
    monkeypatch.setattr(sending.messages, "send", real_send)
    # The second claim (rows 5-8) was in flight: 5 and 6 went out, 7 and 8 were next.
    assert outcomes(app, push_id) == {("sent", None): 16, ("claimed", None): 4}
    age_claims(app, timedelta(seconds=app.config["PUSH_CLAIM_TIMEOUT"] + 1))
    sweep(app, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 16, ("failed", "interrupted"): 4}
    delivered = received(sim, "custom", ids)
    assert max(delivered.values()) == 1  # nobody twice, and never resent
    assert sum(delivered.values()) == 16 + 2
    assert push_state(app, push_id).state == "done"


def test_redis_flushed_mid_push_the_sweep_recovers_and_nothing_doubles(
        app, sim, run_jobs, monkeypatch):
    ids = _followers(app, sim, "Flushed", 24)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    real_claim = sending._claim
    claims = []

    def flush_on_the_second_claim(connection, push_id, size):
        claims.append(size)
        if len(claims) == 2:
            app.extensions["redis"].flushdb()  # jobs, chain keys, buckets: all gone
        return real_claim(connection, push_id, size)

    monkeypatch.setattr(sending, "_claim", flush_on_the_second_claim)
    # Three seconds of work: the flush refills the bucket (one second's worth), and still
    # more is left than goes before the job's next state check finds its chain gone.
    push_id = make_push(app, "custom", ids, rate_per_s=8)
    start(app, push_id, run_jobs)
    monkeypatch.setattr(sending, "_claim", real_claim)
    assert outcomes(app, push_id)[("pending", None)] > 0  # the chain died with its key
    sweep(app, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 24}
    assert received(sim, "custom", ids) == {o: 1 for o in ids}
    assert push_state(app, push_id).state == "done"
