"""What survives: a worker killed mid-send, Redis lost mid-batch, the periodic sweep, the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from prometheus_client import REGISTRY
from sqlalchemy import update

from core import schedule
from core.db import db
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
    txn_id_of,
)
from tests.fixtures.sim import messages_sent, sim_calls, sim_events, sim_fault, sim_post
from tests.fixtures.wechat import Pusher
from wechat import clients, messages

pytestmark = pytest.mark.usefixtures("alert_follower")
MARKER = "【补发提醒·非新交易】"


class WorkerKilled(BaseException):
    """The process died: no handler of ours runs (not an Exception)."""


def sweep(app):
    with app.app_context():
        return tasks.sweep()


def kill_after_wechat_answers(monkeypatch):
    def killed(connection, sent):
        raise WorkerKilled

    monkeypatch.setattr(sending, "record_sent", killed)


def crash_after_wechat_answers(app, ids):
    """A worker sends ``ids`` and dies before recording what WeChat accepted."""
    with pytest.MonkeyPatch.context() as patch:
        kill_after_wechat_answers(patch)
        with app.app_context(), pytest.raises(WorkerKilled):
            tasks.send_batch(ids)


def first_claimed(app, ids, seconds_ago):
    """Move the rows' first claim back: time passed since, as far as the resend rule sees."""
    with app.app_context():
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(
            first_claimed_at=datetime.now(UTC) - timedelta(seconds=seconds_ago)))
        db.session.commit()


def resends_counted():
    return {marked: REGISTRY.get_sample_value("txn_alert_resends_total", {"marked": marked}) or 0
            for marked in ("true", "false")}


def show(app, ids):
    """What ``members alerts show`` says about the transaction of ``ids[0]``."""
    result = app.test_cli_runner().invoke(args=["members", "alerts", "show",
                                                txn_id_of(app, ids[0])])
    assert result.exit_code == 0, result.output
    return result.output


def shows_marker(call):
    return any(MARKER in item["value"] for item in call["json"]["data"].values())


# -- the crash window -----------------------------------------------------------------------------

def test_a_worker_killed_after_wechat_answered_leaves_the_alert_sending(app, monkeypatch):
    ids = queue_alerts(app)
    kill_after_wechat_answers(monkeypatch)
    with app.app_context(), pytest.raises(WorkerKilled):
        tasks.send_batch(ids)
    (row,) = deliveries(app)
    assert (row.state, row.msgid, row.attempts) == ("sending", None, 1)
    assert sweep(app) == {"exhausted": 0, "resend": 0, "requeue": 0, "finished": 0}  # too young


def test_a_resend_inside_wechats_window_goes_unmarked_and_wechat_drops_the_copy(
        app, sim, run_jobs):
    ids = queue_alerts(app)
    crash_after_wechat_answers(app, ids)
    assert messages_sent(sim) == 1  # the holder has it; we do not know
    (claimed,) = deliveries(app)
    counted = resends_counted()

    age(app, ids)  # the sweep's cutoff passed; WeChat's window, opened at the claim, did not
    assert sweep(app)["resend"] == 1
    run_jobs()

    (row,) = deliveries(app)
    assert (row.state, row.resend, row.marked, row.attempts) == ("sent", True, False, 2)
    assert row.first_claimed_at == claimed.first_claimed_at  # the first claim's, kept
    first, second = sim_calls(sim, TEMPLATE_SEND)
    assert first["json"]["client_msg_id"] == second["json"]["client_msg_id"]
    # The copy cannot show twice, and may be the holder's only alert: no marker on either.
    assert not shows_marker(first) and not shows_marker(second)
    assert second["json"] == first["json"]
    # Within WeChat's replay window the resend is the same message: nothing new reaches
    # the holder, and its msgid is the first one's.
    assert messages_sent(sim) == 1
    (event,) = sim_events(sim)
    assert str(event["msg_id"]) == row.msgid
    assert resends_counted() == {"true": counted["true"], "false": counted["false"] + 1}
    assert sweep(app) == {"exhausted": 0, "resend": 0, "requeue": 0, "finished": 0}
    assert f"delivery {row.id} (template): sent (resend, unmarked), attempts 2" in show(app, ids)


def test_a_resend_whose_worker_never_reached_wechat_is_the_holders_only_alert_unmarked(
        app, sim, run_jobs, monkeypatch):
    """Killed after the claim, before WeChat was called: the resend is all the holder gets."""
    ids = queue_alerts(app)

    def killed_before_the_call(*args, **kwargs):
        raise WorkerKilled

    monkeypatch.setattr(sending, "_deliver", killed_before_the_call)
    with app.app_context(), pytest.raises(WorkerKilled):
        tasks.send_batch(ids)
    monkeypatch.undo()
    age(app, ids)
    sweep(app)
    run_jobs()
    (call,) = sim_calls(sim, TEMPLATE_SEND)
    assert not shows_marker(call)
    assert messages_sent(sim) == 1


def test_a_worker_killed_before_recording_a_chunk_leaves_it_all_to_the_sweep(
        app, sim, run_jobs, monkeypatch):
    """Sends are recorded per chunk: a crash loses the record of the whole chunk, not one row."""
    monkeypatch.setitem(app.config, "ALERT_SEND_THREADS", 1)
    ids = queue_alerts(app, 3)
    kill_after_wechat_answers(monkeypatch)
    with app.app_context(), pytest.raises(WorkerKilled):
        tasks.send_batch(ids)
    monkeypatch.undo()
    assert [(row.state, row.msgid) for row in deliveries(app)] == [("sending", None)] * 3
    assert messages_sent(sim) == 3

    age(app, ids)
    assert sweep(app)["resend"] == 3
    run_jobs()
    assert [(row.state, row.resend) for row in deliveries(app)] == [("sent", True)] * 3
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 6
    assert messages_sent(sim) == 3  # every copy dropped by WeChat as a replay


def test_a_resend_after_wechats_replay_window_reaches_the_holder_marked(
        app, client, sim, run_jobs):
    ids = queue_alerts(app)
    crash_after_wechat_answers(app, ids)
    # The workers were down for ten minutes: WeChat's window and ours have passed.
    sim_post(sim, "/sim/clock", advance=601)
    first_claimed(app, ids, 601)
    counted = resends_counted()

    age(app, ids)
    sweep(app)
    run_jobs()
    (row,) = deliveries(app)
    assert (row.state, row.resend, row.marked) == ("sent", True, True)
    first, second = sim_calls(sim, TEMPLATE_SEND)
    assert not shows_marker(first)
    assert second["json"]["data"]["keyword2"]["value"] == MARKER + "支出"
    assert messages_sent(sim) == 2  # the one case of a second alert: marked as a resend
    _, event = sim_events(sim)
    assert str(event["msg_id"]) == row.msgid
    Pusher(client, app.config).post(event["xml"].encode())
    assert deliveries(app)[0].state == "delivered"
    assert resends_counted() == {"true": counted["true"] + 1, "false": counted["false"]}
    assert f"delivery {row.id} (template): delivered (resend, marked)" in show(app, ids)


def test_a_resend_is_marked_once_the_window_closes_before_its_call_however_early_its_sweep(
        app, sim, run_jobs, monkeypatch):
    """The rule is applied when WeChat is called: a requeued row may wait in the queue."""
    ids = queue_alerts(app)
    crash_after_wechat_answers(app, ids)
    first_claimed(app, ids, 530)  # inside the unmarked part (540 s) when the sweep runs...
    age(app, ids)
    queued = []
    monkeypatch.setattr(sending, "enqueue_deliveries", queued.extend)
    assert sweep(app)["resend"] == 1
    monkeypatch.undo()
    first_claimed(app, ids, 545)  # ...past it when its job gets to WeChat
    with app.app_context():
        sending.enqueue_deliveries(queued)
    run_jobs()
    _, resent = sim_calls(sim, TEMPLATE_SEND)
    assert shows_marker(resent)
    assert deliveries(app)[0].marked


def test_a_subscribe_message_resend_is_always_marked(app, sim, run_jobs, monkeypatch):
    """No client_msg_id: WeChat shows every copy, so even a prompt resend says what it is."""
    monkeypatch.setitem(app.config, "MINIAPP_TXN_TEMPLATE_ID", MP_TEMPLATE)
    sim_post(sim, "/sim/subscribe-grants", openid=MP_OPENID, template_id=MP_TEMPLATE, count=2)
    ids = queue_alerts(app, channel="subscribe", openid=MP_OPENID)
    crash_after_wechat_answers(app, ids)

    age(app, ids)
    assert sweep(app)["resend"] == 1
    run_jobs()
    (row,) = deliveries(app)
    assert (row.state, row.resend, row.marked) == ("sent", True, True)
    first, second = sim_calls(sim, SUBSCRIBE_SEND)
    assert first["json"]["data"]["thing3"]["value"] == "支出"
    assert second["json"]["data"]["thing3"]["value"] == MARKER + "支出"


def test_a_delivery_that_keeps_killing_its_worker_is_given_up(app, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_MAX_ATTEMPTS", 1)
    ids = queue_alerts(app)
    kill_after_wechat_answers(monkeypatch)
    with app.app_context(), pytest.raises(WorkerKilled):
        tasks.send_batch(ids)
    age(app, ids)
    assert sweep(app)["exhausted"] == 1
    (row,) = deliveries(app)
    assert row.state == "failed"
    assert "worker lost" in row.error


def test_a_late_worker_recording_its_send_cancels_the_resend(app, sim, run_jobs, monkeypatch):
    """A worker slower than ALERT_STUCK_AFTER still records WeChat's answer; no second send."""
    ids = queue_alerts(app)
    recorded, resends = [], []
    enqueue_deliveries = sending.enqueue_deliveries

    monkeypatch.setattr(sending, "record_sent", lambda connection, sent: recorded.extend(sent))
    with app.app_context():
        tasks.send_batch(ids)
    monkeypatch.undo()
    age(app, ids)
    monkeypatch.setattr(sending, "enqueue_deliveries", resends.extend)
    assert sweep(app)["resend"] == 1  # the sweep gave up on that worker...
    monkeypatch.undo()
    with app.app_context(), db.engine.connect() as connection:
        sending.record_sent(connection, recorded)  # ...which then comes back with the answer
        enqueue_deliveries(resends)  # and only now does the resend's job run
    run_jobs()
    (row,) = deliveries(app)
    assert (row.state, row.msgid) == ("sent", recorded[0].msgid)
    assert len(sim_calls(sim, TEMPLATE_SEND)) == 1


# -- Redis lost ----------------------------------------------------------------------------------

def test_send_jobs_redis_could_not_take_are_enqueued_by_the_sweep(app, sim, run_jobs,
                                                                   monkeypatch):
    ids = queue_alerts(app, 3)

    def refused(*args, **kwargs):
        raise redis_lib.exceptions.ConnectionError("Redis is restarting")

    monkeypatch.setattr(sending, "enqueue", refused)
    send(app, run_jobs, ids)  # no error for the feed that hands them over
    assert [row.state for row in deliveries(app)] == ["queued"] * 3
    monkeypatch.undo()

    assert sweep(app)["requeue"] == 0  # not yet: their job may just be slow
    age(app, ids)
    assert sweep(app)["requeue"] == 3
    run_jobs()
    assert [row.state for row in deliveries(app)] == ["sent"] * 3
    assert messages_sent(sim) == 3


def _restart_redis(app):
    """What a Redis restart without persistence does: every key gone, every connection cut."""
    redis = app.extensions["redis"]
    redis.flushdb()
    if app.extensions["redis_embedded"]:
        return
    db_number = redis.connection_pool.connection_kwargs.get("db", 0)
    for entry in redis.client_list():
        if int(entry["db"]) == db_number and entry["id"] != str(redis.client_id()):
            redis.client_kill_filter(_id=entry["id"])
    redis.connection_pool.disconnect()


# RQ's pubsub listener thread of the test's worker may trip over its cut connection.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_redis_restarted_mid_batch_loses_no_alert_and_sends_none_twice(
        app, sim, run_jobs, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_BATCH_SIZE", 2)
    monkeypatch.setitem(app.config, "ALERT_SEND_THREADS", 1)
    ids = queue_alerts(app, 6)
    record = sending.record_sent
    sends = []

    def restart_after_the_second(connection, sent):
        record(connection, sent)
        sends.extend(sent)
        if len(sends) == 2:
            _restart_redis(app)

    monkeypatch.setattr(sending, "record_sent", restart_after_the_second)
    send(app, run_jobs, ids)
    if not app.extensions["redis_embedded"]:
        # The jobs of the other batches died with Redis; their rows wait in the database.
        assert [row.state for row in deliveries(app)] == ["sent"] * 2 + ["queued"] * 4
    age(app, [row.id for row in deliveries(app) if row.state == "queued"])
    sweep(app)
    run_jobs()

    assert [row.state for row in deliveries(app)] == ["sent"] * 6
    assert messages_sent(sim) == 6
    client_msg_ids = [call["json"]["client_msg_id"] for call in sim_calls(sim, TEMPLATE_SEND)]
    assert sorted(client_msg_ids) == sorted(f"txn-alert-{i}" for i in ids)  # each once


# -- the sweep's other duties --------------------------------------------------------------------

def test_the_sweep_applies_a_finish_event_both_sides_missed(app, client, sim, run_jobs):
    ids = queue_alerts(app)
    send(app, run_jobs, ids)
    with app.app_context():  # the event stored while the row was not yet visible as sent
        db.session.execute(Delivery.__table__.update().values(state="sending"))
        db.session.commit()
    (event,) = sim_events(sim)
    Pusher(client, app.config).post(event["xml"].encode())
    with app.app_context():
        db.session.execute(Delivery.__table__.update().values(state="sent"))
        db.session.commit()
    assert sweep(app)["finished"] == 1
    assert deliveries(app)[0].state == "delivered"


def test_the_sweep_runs_periodically_once_per_period_across_processes(app):
    with app.app_context():
        assert "alerts.sweep" in schedule.tick()
        assert "alerts.sweep" not in schedule.tick()  # another worker's tick, same period


def test_a_repeated_finish_event_changes_nothing(app, client, sim, run_jobs):
    send(app, run_jobs, queue_alerts(app))
    (event,) = sim_events(sim)
    pusher = Pusher(client, app.config)
    pusher.post(event["xml"].encode())
    finished = deliveries(app)[0].finished_at
    pusher.post(event["xml"].encode())
    assert (deliveries(app)[0].state, deliveries(app)[0].finished_at) == ("delivered", finished)


# -- the CLI --------------------------------------------------------------------------------------

def test_alerts_show_tells_an_alerts_history(app, client, sim, run_jobs):
    ids = queue_alerts(app)
    send(app, run_jobs, ids)
    (event,) = sim_events(sim)
    Pusher(client, app.config).post(event["xml"].encode())
    txn_id = txn_id_of(app, ids[0])

    result = app.test_cli_runner().invoke(args=["members", "alerts", "show", txn_id])
    assert result.exit_code == 0, result.output
    assert f"transaction {txn_id}: card **** " in result.output
    assert "debit 123.45元, at 2026-11-21 12:00:00 (Asia/Shanghai)" in result.output
    assert f"delivery {ids[0]} (template): delivered, attempts 1" in result.output
    assert "  first claimed: 20" in result.output
    assert f"msgid: {event['msg_id']}" in result.output
    assert "WeChat's report: success" in result.output
    assert OA_OPENID not in result.output

    missing = app.test_cli_runner().invoke(args=["members", "alerts", "show", "T-unknown"])
    assert missing.exit_code == 1
    assert "no transaction T-unknown" in missing.output


def test_alerts_redrive_sends_failed_alerts_again(app, sim, run_jobs):
    sim_fault(sim, path=TEMPLATE_SEND, errcode=47003)
    sim_fault(sim, path=TEMPLATE_SEND, errcode=40037)
    ids = queue_alerts(app, 3)
    with app.app_context():
        for delivery_id in ids:  # one at a time, so the faults land in order
            sending.enqueue_deliveries([delivery_id])
            run_jobs()
    assert [(r.state, r.errcode) for r in deliveries(app)] == [
        ("failed", 47003), ("failed", 40037), ("sent", None)]

    runner = app.test_cli_runner()
    dry = runner.invoke(args=["members", "alerts", "redrive", "--errcode", "47003", "--dry-run"])
    assert "would re-drive: 1 alert(s)" in dry.output
    assert deliveries(app)[0].state == "failed"

    result = runner.invoke(args=["members", "alerts", "redrive", "--errcode", "47003",
                                 "--since", "2000-01-01T00:00"])
    assert result.exit_code == 0, result.output
    assert "re-driven: 1 alert(s)" in result.output
    run_jobs()
    assert [(r.state, r.errcode, r.attempts) for r in deliveries(app)] == [
        ("sent", None, 1), ("failed", 40037, 1), ("sent", None, 1)]


def test_alerts_redrive_leaves_a_message_wechat_would_drop_as_a_replay(app, client, sim,
                                                                     run_jobs):
    ids = queue_alerts(app)
    send(app, run_jobs, ids)
    with app.app_context():  # WeChat accepted it, then reported that it failed
        db.session.execute(Delivery.__table__.update().values(
            state="failed", error="failed: system failed"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["members", "alerts", "redrive"])
    assert "re-driven: 0 alert(s)" in result.output
    assert "left alone: 1" in result.output


def test_alerts_resume_lifts_a_quota_pause(app):
    with app.app_context():
        clients.official_account_quota().pause(messages.TEMPLATE, 45009)
    runner = app.test_cli_runner()
    assert "template: resumed" in runner.invoke(args=["members", "alerts", "resume",
                                                      "template"]).output
    assert "template: was not paused" in runner.invoke(args=["members", "alerts", "resume",
                                                             "template"]).output
