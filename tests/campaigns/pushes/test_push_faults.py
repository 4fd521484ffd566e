"""WeChat failing (-1, 45009, 45028, slowly), pauses, a worker killed mid-push, Redis
flushed mid-push, a job's watcher failing or stuck, a thread stalled past the claim
timeout: no recipient lost, none sent twice; only in-flight ones interrupted; no thread
sends past its slice.

In process first (the jobs run here, a death played by an exception), then with real
``flask worker`` processes on PostgreSQL and a private redis-server: one SIGKILLed while
it sends, and Redis killed and restarted empty mid-push."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from flask import Flask
from rq import Worker
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from app import create_app
from campaigns.pushes import quiet_hours, rate, sending, tasks
from campaigns.pushes.models import Push, PushDelivery
from config.settings import BASE, load_settings
from core.db import db, utcnow
from core.jobs import enqueue
from tests.campaigns.pushes.engine import (
    CUSTOM_PATH,
    add_followers,
    age_claims,
    log_tails,
    make_push,
    openids,
    outcomes,
    push_state,
    received,
    requested,
    start,
    sweep,
)
from tests.core.test_worker_outage import (
    REDIS_SERVER,
    RedisServer,
    _environment,
    _start_worker,
    _stop,
    _wait,
)
from tests.fixtures.database import REAL_DATABASE_URL, scratch_postgres
from tests.fixtures.sim import sim_calls, sim_fault
from wechat.sim.server import SimServer


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
        app, sim, run_jobs, monkeypatch):
    ids = _followers(app, sim, "Daily", 4)
    # One thread: the fault refuses one call only, and on PostgreSQL a second thread can
    # claim a row beside the first and send it before the pause (WeChat refuses them all).
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
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


def test_our_guard_granting_part_of_a_take_sends_those_and_pauses_for_the_rest(
        app, sim, run_jobs, monkeypatch):
    ids = _followers(app, sim, "Share", 6)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    quotas = {**app.config["WECHAT_DAILY_QUOTAS"], "message/custom/send": 5}  # 80 % of 5: 4
    monkeypatch.setitem(app.config, "WECHAT_DAILY_QUOTAS", quotas)
    monkeypatch.setattr(app.extensions["wechat.quotas"]["official_account"], "daily", quotas)
    push_id = make_push(app, "custom", ids)  # one batch, its six tokens taken at once
    start(app, push_id, run_jobs)
    assert push_state(app, push_id).pause_reason == "quota_daily"
    assert outcomes(app, push_id) == {("sent", None): 4, ("pending", None): 2}
    assert sum(received(sim, "custom", ids).values()) == 4


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
    # The second claim (rows 5-8) was in flight: 5's answer was kept as the thread went
    # down, 6 went out unrecorded, 7 and 8 were next (a SIGKILL keeps nothing: see the
    # test with real workers below).
    assert outcomes(app, push_id) == {("sent", None): 17, ("claimed", None): 3}
    age_claims(app, timedelta(seconds=app.config["PUSH_CLAIM_TIMEOUT"] + 1))
    sweep(app, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 17, ("failed", "interrupted"): 3}
    delivered = received(sim, "custom", ids)
    assert max(delivered.values()) == 1  # nobody twice, and never resent
    assert sum(delivered.values()) == 17 + 1
    assert push_state(app, push_id).state == "done"


def test_redis_flushed_mid_push_the_sweep_recovers_and_nothing_doubles(
        app, sim, run_jobs, monkeypatch):
    ids = _followers(app, sim, "Flushed", 24)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    real_claim = sending._claim_sendable
    claims = []

    def flush_on_the_second_claim(*args):
        claims.append(args)
        if len(claims) == 2:
            app.extensions["redis"].flushdb()  # jobs, chain keys, buckets: all gone
        return real_claim(*args)

    monkeypatch.setattr(sending, "_claim_sendable", flush_on_the_second_claim)
    # Three seconds of work: the flush refills the bucket (one second's worth), and still
    # more is left than goes before the job's next state check finds its chain gone.
    push_id = make_push(app, "custom", ids, rate_per_s=8)
    start(app, push_id, run_jobs)
    monkeypatch.setattr(sending, "_claim_sendable", real_claim)
    assert outcomes(app, push_id)[("pending", None)] > 0  # the chain died with its key
    sweep(app, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 24}
    assert received(sim, "custom", ids) == {o: 1 for o in ids}
    assert push_state(app, push_id).state == "done"


def _push_threads(push_id):
    return [t for t in threading.enumerate() if t.name.startswith(f"push-{push_id}-")]


def test_a_row_put_back_after_another_thread_found_none_left_is_sent_by_the_chain(
        app, sim, run_jobs, monkeypatch):
    """One thread finds nothing left to claim while the other still holds a row it has not
    sent; the slice then ends and that row goes back to pending: the chain goes on and
    sends it, rather than end and leave it to the sweep a period later."""
    ids = _followers(app, sim, "PutBack", 3)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 2)
    monkeypatch.setitem(app.config, "PUSH_CLAIM_SIZE", 2)  # one thread claims 2, the other 1
    slices = []
    real_worker = sending._single_worker

    def seen(app_, work):
        slices.append(work)
        real_worker(app_, work)

    takes = Counter()
    real_acquire = rate.TokenBucket.acquire

    def second_take_after_the_other_found_none(bucket, wanted, *args):
        takes[threading.get_ident()] += 1
        first = slices[0]
        if takes[threading.get_ident()] == 2 and not first.stop.is_set():
            # The row of this thread's batch still to send: the other thread meanwhile sent
            # its one row and found nothing more; then the slice's time is up.
            give_up = time.monotonic() + 5
            while not first.exhausted and time.monotonic() < give_up:
                time.sleep(0.01)
            first.halt("slice")
        return real_acquire(bucket, wanted, *args)

    monkeypatch.setattr(sending, "_single_worker", seen)
    monkeypatch.setattr(rate.TokenBucket, "acquire", second_take_after_the_other_found_none)
    push_id = make_push(app, "custom", ids, rate_per_s=10)  # a token a take, all there
    start(app, push_id, run_jobs)
    assert slices[0].exhausted
    assert outcomes(app, push_id) == {("sent", None): 3}
    assert received(sim, "custom", ids) == {o: 1 for o in ids}
    assert push_state(app, push_id).state == "done"


def test_a_job_that_fails_while_its_threads_send_stops_them_and_puts_their_rows_back(
        app, sim, run_jobs, monkeypatch):
    """The job's watcher raises (a read that fails) while a thread waits for its tokens:
    the thread stops and its unsent rows go back to pending before the job fails, rather
    than go on sending with nobody to end the slice."""
    ids = _followers(app, sim, "WatchFails", 6)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_STATE_CHECK_SECONDS", 0.1)

    def read_fails(*args):
        raise RuntimeError("the watcher's read failed")

    monkeypatch.setattr(quiet_hours, "is_quiet", read_fails)
    # 2/s: the first claim's two rows go at once (a full bucket), the second claim's first
    # row waits half a second for its token: the watcher fails at its first check, 0.1 s.
    push_id = make_push(app, "custom", ids, rate_per_s=2)
    start(app, push_id, run_jobs)
    assert not _push_threads(push_id)
    counted = outcomes(app, push_id)
    assert set(counted) == {("sent", None), ("pending", None)}, counted  # none left claimed
    assert sum(received(sim, "custom", ids).values()) == counted[("sent", None)]


def test_a_thread_ends_its_slice_on_time_while_the_watcher_is_stuck(
        app, sim, run_jobs, monkeypatch):
    """The watcher's read does not come back for 3 s; the slice's time is up at 0.5 s and
    its thread's next token is due at 1 s: the thread gives it back and ends the slice
    itself at 0.5 s, its row goes back; the next job sends it once the watcher is back."""
    ids = _followers(app, sim, "WatchStuck", 2)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_STATE_CHECK_SECONDS", 0.1)
    monkeypatch.setitem(app.config, "PUSH_JOB_SECONDS", 0.5)
    monkeypatch.setitem(app.config, "PUSH_JOB_MAX_SECONDS", 0.5)
    real_is_quiet = quiet_hours.is_quiet
    stuck = []

    def stuck_once(*args):
        if not stuck:
            stuck.append(time.monotonic())
            time.sleep(3.0)
        return real_is_quiet(*args)

    monkeypatch.setattr(quiet_hours, "is_quiet", stuck_once)
    push_id = make_push(app, "custom", ids, rate_per_s=1)  # one claim, one token at a time
    start(app, push_id, run_jobs)
    first, second = sorted(call["time"] for call in sim_calls(sim, CUSTOM_PATH))
    assert second - first > 2.5, second - first  # not at 1 s: only after the watcher is back
    assert outcomes(app, push_id) == {("sent", None): 2}
    assert push_state(app, push_id).state == "done"


def test_a_stalled_thread_leaves_its_batch_to_the_sweep_and_calls_none_of_it_after(
        app, sim, run_jobs, monkeypatch):
    """A call that does not come back for longer than PUSH_CLAIM_TIMEOUT: meanwhile the
    sweep ends the thread's batch interrupted (the push is done). When the call returns,
    its answer and the one before are kept, and the rest of the batch is never called: a
    slice lasts at most half of PUSH_CLAIM_TIMEOUT, and no call starts after it."""
    ids = _followers(app, sim, "Stalled", 4)
    monkeypatch.setitem(app.config, "PUSH_CHAINS", 1)
    monkeypatch.setitem(app.config, "PUSH_SEND_THREADS", 1)
    monkeypatch.setitem(app.config, "PUSH_CLAIM_SIZE", 4)
    monkeypatch.setitem(app.config, "PUSH_CLAIM_TIMEOUT", 2)
    real_send = sending.messages.send

    def stall_on_the_second(client, api, body):
        if body["touser"] == ids[1]:
            time.sleep(2.5)  # the batch is older than PUSH_CLAIM_TIMEOUT now
            assert tasks.sweep()["interrupted"] == 4  # this thread's app context
        return real_send(client, api, body)

    monkeypatch.setattr(sending.messages, "send", stall_on_the_second)
    push_id = make_push(app, "custom", ids)  # one batch of four, its tokens at once
    start(app, push_id, run_jobs)
    assert outcomes(app, push_id) == {("sent", None): 2, ("failed", "interrupted"): 2}
    assert requested(sim, CUSTOM_PATH) == {ids[0]: 1, ids[1]: 1}
    assert received(sim, "custom", ids) == {ids[0]: 1, ids[1]: 1, ids[2]: 0, ids[3]: 0}
    assert push_state(app, push_id).state == "done"
    assert not _push_threads(push_id)


# -- real workers: a SIGKILL, a Redis restart -----------------------------------------------------
# Two `flask worker` processes on a scratch PostgreSQL database and a private redis-server
# (no persistence: a restart loses every job, chain key and bucket), the simulator answering
# custom/send slowly so that sends are in flight at the fault. The sweep runs every second
# and gives up on claims after a few seconds, so that recovery fits in a test.

REAL_WORKERS = 2
REAL_RECIPIENTS = 240
REAL_RATE = 40  # s: six seconds of sending
WECHAT_DELAY = 0.1  # s per custom/send, after the simulator recorded the call
FAULT_AFTER = 60  # calls the simulator saw before the fault
REAL_DEADLINE = 60.0  # s from the fault for every recipient to be settled
real_processes = pytest.mark.skipif(
    not REAL_DATABASE_URL.startswith("postgresql") or REDIS_SERVER is None,
    reason="needs PostgreSQL (DATABASE_URL) and the redis-server binary")


@dataclass
class RealEngine:
    app: Flask
    redis: RedisServer
    env: dict[str, str]
    logs: list[Path]
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_workers(self) -> None:
        self.workers = [_start_worker(self.env, log) for log in self.logs]
        _wait("workers registered", lambda: self._registered() == REAL_WORKERS, 30,
              explain=self.tails)

    def _registered(self) -> int:
        try:
            return Worker.count(connection=self.app.extensions["redis"])
        except redis_lib.ConnectionError:
            return 0

    def tails(self) -> str:
        return log_tails(self.logs)


@pytest.fixture
def real_engine(sim: SimServer, tmp_path: Path) -> Iterator[RealEngine]:
    with scratch_postgres("push_faults") as database:
        server = RedisServer(tmp_path)
        server.start()
        env = {**_environment(sim, database, server.url), "PUSH_SWEEP_INTERVAL": "1",
               "PUSH_CLAIM_TIMEOUT": "5", "PUSH_CHAIN_TTL": "3"}
        app = create_app(load_settings(environ={**env, "LOG_LEVEL": "WARNING"}))
        engine = RealEngine(app, server, {**os.environ, **env},
                            [tmp_path / f"worker-{n}.log" for n in range(REAL_WORKERS)])
        try:
            yield engine
        finally:
            for process in engine.workers:
                _stop(process)
            with app.app_context():
                db.engine.dispose()
            server.kill()


def _real_push(engine: RealEngine, sim: SimServer, prefix: str) -> tuple[int, list[str]]:
    ids = _followers(engine.app, sim, prefix, REAL_RECIPIENTS)
    sim_fault(sim, path=CUSTOM_PATH, delay=WECHAT_DELAY, times=-1)
    engine.start_workers()
    push_id = make_push(engine.app, "custom", ids, rate_per_s=REAL_RATE)
    with engine.app.app_context():
        enqueue(tasks.start_push, push_id, queue=tasks.QUEUE)
    _wait("the first sends", lambda: len(sim_calls(sim, CUSTOM_PATH)) >= FAULT_AFTER, 30,
          every=0.05, explain=engine.tails)
    assert outcomes(engine.app, push_id)[("pending", None)] > 0, "the push ended too soon"
    return push_id, ids


def _settled(engine: RealEngine, push_id: int) -> None:
    def done() -> bool:
        try:
            return push_state(engine.app, push_id).state == "done"
        except OperationalError:
            return False

    _wait("every recipient settled", done, REAL_DEADLINE, every=0.5,
          explain=lambda: f"{outcomes(engine.app, push_id)}\n{engine.tails()}")


def _states_by_openid(app: Flask, push_id: int) -> dict[str, tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(select(PushDelivery.openid, PushDelivery.state,
                                         PushDelivery.reason)
                                  .where(PushDelivery.push_id == push_id)).all()
        db.session.remove()
    return {openid: (state, reason) for openid, state, reason in rows}


@real_processes
def test_a_worker_sigkilled_mid_push_the_other_and_the_sweep_finish_it(
        sim: SimServer, real_engine: RealEngine) -> None:
    push_id, ids = _real_push(real_engine, sim, "Sigkill")
    redis = real_engine.app.extensions["redis"]
    sending_now = {worker.pid for worker in Worker.all(connection=redis)
                   if (job := worker.get_current_job()) and job.func_name.endswith("send_batch")}
    victim = next(p for p in real_engine.workers if p.pid in sending_now)
    os.killpg(victim.pid, signal.SIGKILL)  # the worker and its RQ scheduler, mid-send
    victim.wait(5)
    _settled(real_engine, push_id)

    states = _states_by_openid(real_engine.app, push_id)
    counted = Counter(states.values())
    interrupted = counted[("failed", "interrupted")]
    assert set(counted) <= {("sent", None), ("failed", "interrupted")}, counted
    # Only the victim's claims in flight: each of its threads holds at most one claim.
    limit = BASE["PUSH_SEND_THREADS"] * BASE["PUSH_CLAIM_SIZE"]
    assert 1 <= interrupted <= limit, counted
    print(f"after the SIGKILL: {dict(counted)}")
    asked = requested(sim, CUSTOM_PATH)
    delivered = received(sim, "custom", ids)
    for openid, (state, _reason) in states.items():
        if state == "sent":
            assert asked[openid] == delivered[openid] == 1, openid
        else:  # in flight when the worker died: WeChat may have it, never a second time
            assert asked[openid] <= 1 and delivered[openid] <= 1, openid
    survivor = next(p for p in real_engine.workers if p is not victim)
    assert survivor.poll() is None, real_engine.tails()


@real_processes
def test_redis_restarted_mid_push_with_real_workers_loses_and_doubles_nothing(
        sim: SimServer, real_engine: RealEngine) -> None:
    push_id, ids = _real_push(real_engine, sim, "Restart")
    real_engine.redis.kill()  # every job, chain key and bucket gone
    time.sleep(2.0)
    real_engine.redis.start()
    _settled(real_engine, push_id)

    assert outcomes(real_engine.app, push_id) == {("sent", None): REAL_RECIPIENTS}
    assert requested(sim, CUSTOM_PATH) == {openid: 1 for openid in ids}
    assert received(sim, "custom", ids) == {openid: 1 for openid in ids}
    for process in real_engine.workers:
        assert process.poll() is None, real_engine.tails()
