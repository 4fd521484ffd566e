"""Sending transaction alerts against the simulator: states, WeChat's answers, faults."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client import REGISTRY
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event, select, text

from core.db import db
from members.holders.models import Follower
from members.transactions.alerts import sending, tasks
from members.transactions.alerts.models import Delivery
from tests.fixtures.alerts import (
    MP_OPENID,
    MP_TEMPLATE,
    OA_OPENID,
    SUBSCRIBE_SEND,
    TEMPLATE_SEND,
    age,
    deliveries,
    queue_alerts,
    send,
)
from tests.fixtures.factories import holder
from tests.fixtures.sim import messages_sent, sim_calls, sim_events, sim_fault, sim_post
from tests.fixtures.wechat import Pusher
from wechat import clients, messages
from wechat.quota import next_reset


def states(app, ids=None):
    return [row.state for row in deliveries(app, ids)]


def finish_event(app, client, sim, msgid):
    """Play WeChat's TEMPLATESENDJOBFINISH for ``msgid``, as the simulator composed it."""
    (event,) = [e for e in sim_events(sim) if str(e.get("msg_id")) == msgid]
    response = Pusher(client, app.config).post(event["xml"].encode())
    assert response.status_code == 200


# -- the happy path -----------------------------------------------------------------------------

def test_an_alert_is_sent_with_its_msgid_then_delivered(app, client, sim, run_jobs, alert_follower):
    (delivery_id,) = queue_alerts(app)
    send(app, run_jobs, [delivery_id])

    (row,) = deliveries(app)
    assert (row.state, row.attempts, row.resend, row.errcode) == ("sent", 1, False, None)
    assert row.msgid and row.sent_at
    (call,) = sim_calls(sim, TEMPLATE_SEND)
    body = call["json"]
    assert body["touser"] == OA_OPENID
    assert body["template_id"] == app.config["WECHAT_TXN_TEMPLATE_ID"]
    assert body["client_msg_id"] == f"txn-alert-{delivery_id}"
    values = [item["value"] for item in body["data"].values()]
    assert values == [f"**** {holder(1).card_no[-4:]}", "支出", "123.45元", "Example Coffee",
                      "2026-11-21 12:00:00", "9876.54元"]

    finish_event(app, client, sim, row.msgid)
    (row,) = deliveries(app)
    assert (row.state, row.error) == ("delivered", None)
    assert row.finished_at is not None


def test_a_user_who_blocks_template_messages_reads_as_refused(app, client, sim, run_jobs):
    sim_post(sim, "/sim/users", openid=OA_OPENID, subscribed=True, blocks_templates=True)
    ids = queue_alerts(app)
    send(app, run_jobs, ids)
    (row,) = deliveries(app)
    finish_event(app, client, sim, row.msgid)
    (row,) = deliveries(app)
    assert (row.state, row.error) == ("refused", "failed:user block")


def test_a_finish_event_that_beats_the_record_of_the_send_still_lands(
        app, client, sim, run_jobs, alert_follower, monkeypatch):
    """WeChat may post TEMPLATESENDJOBFINISH before the worker has stored the msgid."""
    record = sending.record_sent

    def callback_first(connection, sent):
        with app.app_context():
            for one in sent:
                finish_event(app, client, sim, one.msgid)
        record(connection, sent)

    monkeypatch.setattr(sending, "record_sent", callback_first)
    send(app, run_jobs, queue_alerts(app))
    (row,) = deliveries(app)
    assert (row.state, row.finished_at is not None) == ("delivered", True)


def test_a_batch_larger_than_a_job_is_split_and_all_sent(app, sim, run_jobs, alert_follower,
                                                         monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_BATCH_SIZE", 4)
    ids = queue_alerts(app, 10)
    send(app, run_jobs, ids)
    assert states(app) == ["sent"] * 10
    assert messages_sent(sim) == 10
    assert len({row.msgid for row in deliveries(app)}) == 10


# -- WeChat's faults: retried inside the client, one message in the end ---------------------------

@pytest.mark.parametrize("fault", [
    {"errcode": -1, "times": 2},
    {"http_status": 502, "times": 1},
    {"delay": 2.5, "times": 1},  # longer than the test client's 2 s timeout
], ids=["-1 twice", "HTTP 502", "slow"])
def test_transient_faults_end_in_one_message(app, sim, run_jobs, alert_follower, fault):
    sim_fault(sim, path=TEMPLATE_SEND, **fault)
    ids = queue_alerts(app)
    send(app, run_jobs, ids)
    (row,) = deliveries(app)
    assert (row.state, row.attempts) == ("sent", 1)
    # The slow call did reach WeChat; the retry carried the same client_msg_id and was dropped.
    assert messages_sent(sim) == 1
    assert len({c["json"]["client_msg_id"] for c in sim_calls(sim, TEMPLATE_SEND)}) == 1


def test_a_revoked_token_is_refreshed_once_and_the_alert_sent(app, sim, run_jobs, alert_follower):
    with app.app_context():
        clients.official_account().access_token  # noqa: B018 - a token to revoke
    sim_post(sim, "/sim/tokens/revoke", appid=app.config["WECHAT_APP_ID"])
    send(app, run_jobs, queue_alerts(app))
    assert states(app) == ["sent"]
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 2  # 40001, then the retry
    assert len(sim_calls(sim, "/cgi-bin/stable_token")) == 2
    assert messages_sent(sim) == 1


def test_wechat_unavailable_throughout_puts_the_alert_back_then_fails_it(
        app, sim, run_jobs, alert_follower, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_MAX_ATTEMPTS", 2)
    sim_fault(sim, path=TEMPLATE_SEND, errcode=-1, times=-1)
    (delivery_id,) = queue_alerts(app)
    send(app, run_jobs, [delivery_id])
    (row,) = deliveries(app)
    if app.extensions["redis_embedded"]:
        # Eager jobs ignore the retry time: the second attempt ran at once, and was the last.
        assert (row.state, row.attempts, row.errcode) == ("failed", 2, -1)
        return
    assert (row.state, row.attempts, row.errcode) == ("queued", 1, -1)
    registry = ScheduledJobRegistry(tasks.QUEUE, connection=app.extensions["redis"])
    assert len(registry.get_job_ids()) == 1  # the retry, with backoff


# -- WeChat's refusals ----------------------------------------------------------------------------

def test_43004_fails_the_alert_and_marks_the_follower(app, sim, run_jobs):
    sim_post(sim, "/sim/users", openid=OA_OPENID, subscribed=False)
    with app.app_context():
        db.session.add(Follower(openid=OA_OPENID, subscribed=True))
        db.session.commit()
    send(app, run_jobs, queue_alerts(app))
    (row,) = deliveries(app)
    assert (row.state, row.errcode) == ("failed", 43004)
    assert row.finished_at is not None
    with app.app_context():
        assert db.session.scalar(select(Follower.subscribed)) is False
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 1  # not retried


def test_43004_for_an_openid_never_seen_following_records_it(app, sim, run_jobs):
    sim_post(sim, "/sim/users", openid=OA_OPENID, subscribed=False)
    send(app, run_jobs, queue_alerts(app, 2))
    assert states(app) == ["failed", "failed"]
    with app.app_context():
        assert db.session.execute(select(Follower.openid, Follower.subscribed)).all() == [
            (OA_OPENID, False)]


def test_any_other_errcode_fails_for_good_with_the_code_kept(app, sim, run_jobs, alert_follower):
    sim_fault(sim, path=TEMPLATE_SEND, errcode=47003)
    send(app, run_jobs, queue_alerts(app))
    (row,) = deliveries(app)
    assert (row.state, row.errcode, row.attempts) == ("failed", 47003, 1)
    assert "47003" in row.error
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 1


def test_45009_pauses_the_channel_until_the_quota_resets(app, sim, run_jobs, alert_follower,
                                                          caplog):
    sim_fault(sim, path=TEMPLATE_SEND, errcode=45009, times=-1)
    ids = queue_alerts(app, 3)
    send(app, run_jobs, ids)
    rows = deliveries(app)
    assert [(r.state, r.attempts, r.errcode) for r in rows] == [("queued", 0, 45009)] * 3
    with app.app_context():
        until = clients.official_account_quota().paused_until(messages.TEMPLATE)
    margin = timedelta(seconds=app.config["WECHAT_QUOTA_RESET_MARGIN"])
    assert until == next_reset(datetime.now(UTC)) + margin
    assert any(r.levelname == "ERROR" and "quota" in r.getMessage() for r in caplog.records)
    called = len(sim_calls(sim, TEMPLATE_SEND))
    assert 1 <= called <= 3  # in-flight sends may meet the quota too; none starts after

    # Nothing is sent while paused: not by a new job, not by the sweep.
    age(app, ids)
    with app.app_context():
        sending.enqueue_deliveries(ids)
        assert tasks.sweep()["requeue"] == 0
    run_jobs()
    assert len(sim_calls(sim, TEMPLATE_SEND)) == called

    # Midnight in Shanghai: the pause expires (here: lifted), the sweep sends the backlog.
    requests.delete(f"{sim.url}/sim/faults", timeout=5).raise_for_status()
    with app.app_context():
        assert sending.resume("template")
        assert tasks.sweep()["requeue"] == 3
    run_jobs()
    assert states(app) == ["sent"] * 3
    assert messages_sent(sim) == 3


def test_next_quota_reset_is_midnight_in_shanghai():
    assert next_reset(datetime(2026, 11, 21, 15, 59, tzinfo=UTC)) == \
        datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
    assert next_reset(datetime(2026, 11, 21, 16, 0, tzinfo=UTC)) == \
        datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


# -- the mini-program's subscribe message ---------------------------------------------------------

@pytest.fixture
def miniapp_template(app, monkeypatch):
    monkeypatch.setitem(app.config, "MINIAPP_TXN_TEMPLATE_ID", MP_TEMPLATE)
    return MP_TEMPLATE


def test_a_granted_subscribe_message_is_sent(app, sim, run_jobs, miniapp_template):
    sim_post(sim, "/sim/subscribe-grants", openid=MP_OPENID, template_id=MP_TEMPLATE, count=1)
    send(app, run_jobs, queue_alerts(app, channel="subscribe", openid=MP_OPENID))
    (row,) = deliveries(app)
    assert (row.state, row.errcode) == ("sent", None)
    assert row.msgid
    (call,) = sim_calls(sim, SUBSCRIBE_SEND)
    assert call["json"]["data"]["amount2"] == {"value": "123.45元"}
    assert call["json"]["page"].startswith("pages/transactions/detail?txn=T")


def test_a_subscribe_message_without_a_grant_fails_with_43101(app, sim, run_jobs,
                                                              miniapp_template):
    sim_post(sim, "/sim/subscribe-grants", openid=MP_OPENID, template_id=MP_TEMPLATE, count=1)
    send(app, run_jobs, queue_alerts(app, 2, channel="subscribe", openid=MP_OPENID))
    # One grant, one message: whichever was sent first used it (they go out concurrently).
    assert sorted((r.state, r.errcode or 0) for r in deliveries(app)) == [
        ("failed", 43101), ("sent", 0)]


def test_subscribe_messages_fail_with_a_reason_when_not_configured(app, sim, run_jobs):
    send(app, run_jobs, queue_alerts(app, channel="subscribe", openid=MP_OPENID))
    (row,) = deliveries(app)
    assert (row.state, row.errcode, row.attempts) == ("failed", None, 0)
    assert "MINIAPP_TXN_TEMPLATE_ID" in row.error
    assert sim_calls(sim, SUBSCRIBE_SEND) == []


# -- concurrency ----------------------------------------------------------------------------------

def test_two_workers_on_the_same_deliveries_send_each_once(app, sim, alert_follower):
    ids = queue_alerts(app, 20)
    barrier = threading.Barrier(2)
    errors = []

    def worker():
        with app.app_context():
            barrier.wait()
            try:
                tasks.send_batch(ids)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert states(app) == ["sent"] * 20
    assert [row.attempts for row in deliveries(app)] == [1] * 20
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 20
    assert messages_sent(sim) == 20


def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(app, sim, alert_follower):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks: PostgreSQL only (SQLite runs one writer at a time)")
    ids = queue_alerts(app, 3)
    done = threading.Event()

    def worker():
        with app.app_context():
            tasks.send_batch(ids)
        done.set()

    with app.app_context(), db.engine.connect() as other:
        # Another worker in the middle of claiming the first row: locked, not yet committed.
        other.execute(select(Delivery.id).where(Delivery.id == ids[0]).with_for_update())
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        waited = not done.wait(10)
        other.rollback()
    thread.join()
    assert not waited, "the claim waited for another worker's lock"
    assert states(app) == ["queued", "sent", "sent"]  # left to whoever holds it
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 2


def test_a_job_finds_its_rows_by_primary_key_whatever_the_backlog(app, alert_follower):
    """Driven by the state index instead, a job's load and claims grow with the backlog."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's planner")
    (first,) = queue_alerts(app)
    with app.app_context(), db.engine.connect() as connection:
        # A backlog the statistics have not seen yet: a burst of queued rows, no ANALYZE since.
        connection.execute(text(
            "INSERT INTO delivery (transaction_id, holder_id, openid, channel, state, resend,"
            " attempts, created_at, updated_at) SELECT transaction_id, holder_id,"
            " 'oBacklog' || n, channel, 'queued', false, 0, now(), now()"
            " FROM delivery, generate_series(1, 5000) AS n WHERE id = :first"), {"first": first})
        executed = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            executed.append((statement, parameters))

        ids = list(range(first, first + 7))
        event.listen(connection, "before_cursor_execute", keep)
        connection.execute(sending._LOAD, {"ids": ids}).all()
        connection.execute(sending._CLAIM, {"ids": ids, "now": datetime.now(UTC)}).all()
        event.remove(connection, "before_cursor_execute", keep)
        plan = " ".join(row[0] for statement, parameters in executed
                        for row in connection.exec_driver_sql("EXPLAIN " + statement,
                                                              parameters))
        connection.rollback()
    assert "pk_delivery" in plan
    assert "ix_delivery_state_updated_at" not in plan, plan


def test_a_job_claims_and_records_each_chunk_in_one_statement(app, sim, alert_follower,
                                                             monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_SEND_THREADS", 2)
    ids = queue_alerts(app, 10)
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split()[0])

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            tasks.send_batch(ids)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert states(app) == ["sent"] * 10
    # The load, then per thread's chunk of five: one claim, one record (an executemany).
    assert sorted(statements) == ["SELECT", "UPDATE", "UPDATE", "UPDATE", "UPDATE"]


def test_a_job_reads_the_access_token_from_redis_once(app, sim, alert_follower, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_SEND_THREADS", 1)
    ids = queue_alerts(app, 5)
    with app.app_context():
        clients.official_account().access_token  # noqa: B018 - a token in Redis already
    redis = app.extensions["redis"]
    key = f"wechat:token:{app.config['WECHAT_APP_ID']}".encode()
    reads = []
    real_get = redis.get

    def get(name):
        reads.append(name)
        return real_get(name)

    monkeypatch.setattr(redis, "get", get)
    with app.app_context():
        tasks.send_batch(ids)
        tasks.send_batch(queue_alerts(app, 2))  # the next job asks Redis again
    assert states(app) == ["sent"] * 7
    assert [name for name in reads if name in (key, key.decode())] == [key.decode()] * 2


# -- metrics -------------------------------------------------------------------------------------

def _sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def test_outcomes_latency_and_queue_lag_are_counted(app, sim, run_jobs, alert_follower):
    before = (_sample("txn_alert_sends_total", channel="template", errcode="0"),
              _sample("txn_alert_sends_total", channel="template", errcode="47003"),
              _sample("txn_alert_latency_seconds_count", channel="template"),
              _sample("txn_alert_queue_lag_seconds_count"))
    sim_fault(sim, path=TEMPLATE_SEND, errcode=47003)
    ids = queue_alerts(app, 2)
    for delivery_id in ids:  # one job each, so the fault meets the first
        send(app, run_jobs, [delivery_id])
    after = (_sample("txn_alert_sends_total", channel="template", errcode="0"),
             _sample("txn_alert_sends_total", channel="template", errcode="47003"),
             _sample("txn_alert_latency_seconds_count", channel="template"),
             _sample("txn_alert_queue_lag_seconds_count"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 2]
