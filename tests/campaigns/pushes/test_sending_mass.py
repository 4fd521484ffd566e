"""Mass sends by openid list: the 4-a-month cap across pushes (and its race), chunking,
the clientmsgid that makes a retried call harmless, a lone recipient, MASSSENDJOBFINISH."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns.pushes import sending
from campaigns.pushes.models import DONE, MassAllowance, PushMassJob
from core.db import db, utcnow
from tests.campaigns.pushes.engine import (
    MASS_PATH,
    add_followers,
    age_claims,
    make_push,
    openids,
    outcomes,
    push_state,
    received,
    requested,
    start,
    sweep,
)
from tests.fixtures.sim import sim_calls, sim_fault
from tests.fixtures.wechat import push_message


@pytest.fixture
def small_chunks(app):
    previous = app.config["PUSH_MASS_CHUNK"]
    app.config["PUSH_MASS_CHUNK"] = 4
    yield 4
    app.config["PUSH_MASS_CHUNK"] = previous


def test_a_mass_push_goes_in_calls_of_at_most_the_chunk_each_recipient_once(
        app, sim, run_jobs, small_chunks):
    ids = openids("Mass", 10)
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids)
    start(app, push_id, run_jobs)

    calls = sim_calls(sim, MASS_PATH)
    assert [len(call["json"]["touser"]) for call in calls] == [4, 4, 2]
    assert received(sim, "mass", ids) == {openid: 1 for openid in ids}
    assert outcomes(app, push_id) == {("sent", None): 10}
    push = push_state(app, push_id)
    assert push.state == DONE and push.finished_at is not None
    with app.app_context():
        jobs = db.session.scalars(select(PushMassJob).order_by(PushMassJob.id)).all()
        assert [job.recipients for job in jobs] == [4, 4, 2]
        # WeChat's msg_ids are 64-bit; the simulator starts above 2**31 to prove the column.
        assert all(job.msg_id and job.msg_id > 2**31 for job in jobs)
        assert len({job.client_msg_id for job in jobs}) == 3


def test_the_fifth_mass_push_of_a_month_is_skipped_monthly_cap(app, sim, run_jobs):
    ids = openids("Cap", 3)
    add_followers(app, sim, ids)
    pushes = [make_push(app, "mass", ids) for _ in range(5)]
    for push_id in pushes:
        start(app, push_id, run_jobs)

    for push_id in pushes[:4]:
        assert outcomes(app, push_id) == {("sent", None): 3}
    assert outcomes(app, pushes[4]) == {("skipped", "monthly_cap"): 3}
    assert received(sim, "mass", ids) == {openid: 4 for openid in ids}
    assert len(sim_calls(sim, MASS_PATH)) == 4  # the fifth never called WeChat


def test_two_pushes_racing_for_the_fourth_message_cannot_both_take_it(app):
    """The conditional upsert, run by two pushes at once for the same followers who have
    three this month already: exactly one gets each fourth."""
    ids = openids("Race", 200)
    month = sending._month(utcnow())
    with app.app_context():
        db.session.add_all(MassAllowance(openid=o, month=month, used=3) for o in ids)
        db.session.commit()
    barrier = threading.Barrier(2)
    taken: list[set[str]] = []

    def take() -> None:
        with app.app_context(), db.engine.connect() as connection:
            barrier.wait()
            taken.append(sending._take_allowance(connection, ids, month, 4))
            connection.commit()

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not taken[0] & taken[1]
    assert taken[0] | taken[1] == set(ids)
    with app.app_context():
        assert set(db.session.scalars(select(MassAllowance.used))) == {4}


def test_a_retried_mass_call_is_answered_45065_and_sends_nothing_twice(app, sim, run_jobs):
    """The first call went through but its answer was lost (a timeout): the job's
    clientmsgid, committed before the call, makes the retry a no-op that names the first
    msg_id."""
    ids = openids("Retry", 3)
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids)
    real_send = sending.messages.send
    answers = []

    def lose_the_first_answer(client, api, body):
        answer = real_send(client, api, body)
        if not answers:
            answers.append(answer)
            raise sending.WeChatUnavailable(None, "ReadTimeout", api)
        return answer

    sending.messages.send = lose_the_first_answer
    try:
        app.config["PUSH_RETRY_BASE_DELAY"], delay = 0.01, app.config["PUSH_RETRY_BASE_DELAY"]
        start(app, push_id, run_jobs)
    finally:
        sending.messages.send = real_send
        app.config["PUSH_RETRY_BASE_DELAY"] = delay

    assert len(sim_calls(sim, MASS_PATH)) == 2  # the call and its retry
    assert received(sim, "mass", ids) == {openid: 1 for openid in ids}
    assert outcomes(app, push_id) == {("sent", None): 3}
    with app.app_context():
        job = db.session.scalars(select(PushMassJob)).one()
        assert job.msg_id == int(answers[0])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_dead_before_wechats_answer_was_kept_is_resubmitted_not_resent(
        app, sim, run_jobs):
    ids = openids("Dead", 4)
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids)
    real_record = sending._record_mass_sent

    def die(*args):
        raise SystemExit("worker killed after WeChat accepted the job")

    sending._record_mass_sent = die  # the sending thread dies there, as its worker would
    try:
        start(app, push_id, run_jobs)
    finally:
        sending._record_mass_sent = real_record
    assert outcomes(app, push_id) == {("claimed", None): 4}
    age_claims(app, timedelta(hours=1))
    sweep(app, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 4}
    assert requested(sim, MASS_PATH) == {openid: 2 for openid in ids}  # asked twice…
    assert received(sim, "mass", ids) == {openid: 1 for openid in ids}  # …delivered once


def test_a_lone_last_recipient_is_skipped_mass_needs_two_without_calling_wechat(
        app, sim, run_jobs):
    ids = openids("Lone", 2)
    add_followers(app, sim, ids[:1])
    add_followers(app, None, ids[1:], subscribed=False)
    push_id = make_push(app, "mass", ids)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("skipped", "mass_needs_two"): 1,
                                      ("skipped", "unsubscribed"): 1}
    assert sim_calls(sim, MASS_PATH) == []
    with app.app_context():  # its allowance was given back
        assert db.session.scalar(select(MassAllowance.used)) == 0


def test_a_lone_recipient_in_the_middle_waits_for_the_next_call(app, sim, run_jobs,
                                                                small_chunks):
    """A chunk of 4 with 3 unfollowed leaves one: it goes with the next chunk's."""
    ids = openids("Mid", 7)
    add_followers(app, sim, ids[:1] + ids[4:])
    add_followers(app, None, ids[1:4], subscribed=False)
    push_id = make_push(app, "mass", ids)
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 4, ("skipped", "unsubscribed"): 3}
    assert [len(call["json"]["touser"]) for call in sim_calls(sim, MASS_PATH)] == [4]


def test_masssendjobfinish_is_kept_on_its_job(app, sim, run_jobs, pusher):
    ids = openids("Fin", 2)
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids)
    start(app, push_id, run_jobs)
    with app.app_context():
        job = db.session.scalars(select(PushMassJob)).one()
        msg_id = job.msg_id
    answer = pusher.post(push_message(
        "event", "oSIMmassSendAdmin00000000000", Event="MASSSENDJOBFINISH", MsgID=msg_id,
        Status="send success", TotalCount=2, FilterCount=2, SentCount=2, ErrorCount=0))
    assert answer.status_code == 200
    with app.app_context():
        job = db.session.get(PushMassJob, job.id)
        assert (job.status, job.total_count, job.filter_count, job.sent_count,
                job.error_count) == ("send success", 2, 2, 2, 0)
        assert job.finished_at is not None


def test_a_masssendjobfinish_before_our_record_is_applied_by_the_record(app, pusher):
    msg_id = 9_123_456_789_012
    answer = pusher.post(push_message(
        "event", "oSIMmassSendAdmin00000000000", Event="MASSSENDJOBFINISH", MsgID=msg_id,
        Status="err(40002)", TotalCount=5, FilterCount=5, SentCount=0, ErrorCount=5))
    assert answer.status_code == 200
    ids = openids("Early", 2)
    push_id = make_push(app, "mass", ids)
    with app.app_context(), db.engine.connect() as connection:
        job_id = connection.scalar(sending.insert(PushMassJob).values(
            push_id=push_id, client_msg_id="early", recipients=2).returning(PushMassJob.id))
        connection.commit()
        job = sending.MassJob(job_id, "early", [], "2026-12")
        sending._record_mass_sent(connection, job, str(msg_id))
        stored = db.session.get(PushMassJob, job_id)
        assert (stored.status, stored.error_count) == ("err(40002)", 5)


def test_the_mass_quota_pauses_the_push_and_gives_back_the_allowance(app, sim, run_jobs):
    ids = openids("Quota", 3)
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids)
    sim_fault(sim, path=MASS_PATH, errcode=45028)
    start(app, push_id, run_jobs)
    push = push_state(app, push_id)
    assert (push.state, push.pause_reason) == ("paused", "quota_monthly")
    assert push.paused_until > utcnow() + timedelta(hours=1) or push.paused_until.day == 1
    assert outcomes(app, push_id) == {("pending", None): 3}
    assert received(sim, "mass", ids) == {openid: 0 for openid in ids}
    with app.app_context():
        assert set(db.session.scalars(select(MassAllowance.used))) == {0}
        assert db.session.scalars(select(PushMassJob)).all() == []
