"""The global rate: one token bucket in Redis holds ``rate_per_s`` recipients a second across
workers (here two real ``flask worker`` processes on real Redis sharing one push), a mass
call taking one token per openid it carries."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import timedelta

import pytest
from rq import Worker

from campaigns.pushes import chains, rate, tasks
from core.jobs import enqueue
from tests.campaigns.pushes.engine import (
    CUSTOM_PATH,
    MASS_PATH,
    add_followers,
    log_tails,
    make_push,
    openids,
    outcomes,
    push_state,
    received,
    start,
)
from tests.core.test_worker_outage import _environment, _start_worker, _stop, _wait
from tests.fixtures.redis import REAL_REDIS_URL
from tests.fixtures.sim import sim_calls

RATE = 50
# Fifteen seconds of work after the first second's burst: long enough that one worker's
# hand-over (a tenth of a second, paid back from the bucket) is within the tolerance.
STEADY_SECONDS = 15
RECIPIENTS = RATE * (STEADY_SECONDS + 1)
TOLERANCE = 0.05


def test_a_bucket_gives_one_seconds_worth_then_the_rate(app):
    with app.app_context():
        bucket = rate.push_bucket(app.extensions["redis"], 999, 10, "custom")
        assert [bucket.take() for _ in range(10)] == [0.0] * 10  # full: one second's worth
        wait = bucket.take()
        assert 0 < wait <= 0.1  # then a token every 1/10 s
        # Taken in advance: the next taker queues behind, it does not poll.
        assert 0.1 < bucket.take(5) - wait <= 0.5
        with pytest.raises(ValueError):
            bucket.take(11)  # more than the capacity would never come


def test_a_bucket_admits_one_take_larger_than_its_rate(app):
    with app.app_context():
        bucket = rate.push_bucket(app.extensions["redis"], 998, 1, "mass", largest_take=2)
        assert bucket.take(2) == 0.0
        assert 1.9 < bucket.take(2) <= 2.0  # the next pair in two seconds


def test_tokens_given_back_serve_the_next_taker_and_never_overfill(app):
    with app.app_context():
        bucket = rate.push_bucket(app.extensions["redis"], 997, 10, "custom")
        assert bucket.take(10) == 0.0
        assert 0.4 < bucket.take(5) <= 0.5  # due in half a second…
        bucket.give_back(5)  # …and not used after all
        assert 0 < bucket.take() <= 0.1  # the next is due as if they were never taken
        bucket.give_back(100)
        assert [bucket.take() for _ in range(10)] == [0.0] * 10  # full, no more
        assert bucket.take() > 0


def test_a_stop_while_waiting_gives_the_tokens_back(app):
    with app.app_context():
        bucket = rate.push_bucket(app.extensions["redis"], 996, 10, "custom")
        assert bucket.acquire(10)
        stop = threading.Event()
        threading.Timer(0.05, stop.set).start()
        started = time.monotonic()
        assert not bucket.acquire(10, stop)  # a second's wait, cut short by the stop
        assert time.monotonic() - started < 0.5
        assert 0.8 < bucket.take(10) <= 1.0  # the stopped take's tokens are not owed


def test_tokens_not_due_by_the_end_given_are_waited_for_only_until_then_and_given_back(app):
    with app.app_context():
        bucket = rate.push_bucket(app.extensions["redis"], 995, 10, "custom")
        assert bucket.acquire(10)
        started = time.monotonic()
        # Due in a second; the taker's slice ends in a tenth of one.
        assert not bucket.acquire(10, threading.Event(), until=started + 0.1)
        assert 0.09 < time.monotonic() - started < 0.5
        assert 0.8 < bucket.take(10) <= 1.0  # the tokens given up are not owed


@pytest.mark.parametrize(("rate_per_s", "sizes", "apart"), [(3, [3, 3, 3], 1.0),
                                                            (1, [2, 2], 2.0)])
def test_a_mass_call_carries_one_seconds_worth_and_takes_a_token_per_openid(
        app, sim, run_jobs, rate_per_s, sizes, apart):
    """At 3/s, calls of 3 a second apart; at 1/s, pairs (WeChat's least) two seconds apart."""
    ids = openids(f"MassRate{rate_per_s}", sum(sizes))
    add_followers(app, sim, ids)
    push_id = make_push(app, "mass", ids, rate_per_s=rate_per_s)
    start(app, push_id, run_jobs)
    calls = sim_calls(sim, MASS_PATH)
    assert [len(call["json"]["touser"]) for call in calls] == sizes
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(calls)]
    # The first call drew the full bucket; each next one waited for its tokens.
    assert all(apart - 0.15 < gap < apart + 0.5 for gap in gaps), gaps
    assert received(sim, "mass", ids) == {o: 1 for o in ids}


def test_one_send_job_per_state_check_gives_its_worker_up_to_waiting_alerts(app, backend):
    if backend != "real":
        pytest.skip("RQ's queues: real mode only")
    period = app.config["PUSH_STATE_CHECK_SECONDS"]
    with app.app_context():
        assert not chains.others_waiting()  # nobody waits: slices run long
        app.extensions["jobs"].queues["alerts"].enqueue("builtins.print")
        assert chains.others_waiting()  # this job gives way…
        assert not chains.others_waiting()  # …the others go on: one alert needs one worker
        time.sleep(period + 0.05)
        assert chains.others_waiting()  # still waiting at the next check: one more gives way


@pytest.mark.skipif(not REAL_REDIS_URL, reason="two worker processes need a real Redis")
def test_two_workers_together_hold_the_rate(app, sim, backend, database_url, redis_url,
                                           tmp_path):
    if backend != "real":
        pytest.skip("real mode only")
    ids = openids("Rate", RECIPIENTS)
    add_followers(app, sim, ids, messaged_ago=timedelta(hours=1))
    env = {**os.environ, **_environment(sim, database_url, redis_url),
           "PUSH_CHAINS": "4"}
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [_start_worker(env, log) for log in logs]
    try:
        deadline = time.monotonic() + 30
        while Worker.count(connection=app.extensions["redis"]) < 2:
            assert time.monotonic() < deadline, "workers did not register"
            time.sleep(0.2)
        push_id = make_push(app, "custom", ids, rate_per_s=RATE)
        with app.app_context():
            enqueue(tasks.start_push, push_id, queue=tasks.QUEUE)
        _wait("the push done", lambda: push_state(app, push_id).state == "done",
              STEADY_SECONDS + 60, every=0.5,
              explain=lambda: _what_the_push_was_doing(app, sim, push_id, logs))
    finally:
        for worker in workers:
            _stop(worker)
    assert outcomes(app, push_id) == {("sent", None): RECIPIENTS}
    times = sorted(call["time"] for call in sim_calls(sim, CUSTOM_PATH))
    assert len(times) == RECIPIENTS
    assert received(sim, "custom", ids) == {o: 1 for o in ids}
    # After the first second (the full bucket's one second's worth), the rate is held.
    steady = [t for t in times if t >= times[0] + 1.0]
    held = (len(steady) - 1) / (steady[-1] - steady[0])
    assert abs(held - RATE) / RATE < TOLERANCE, (held, os.getloadavg())
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * RATE + 2  # one second's worth of burst at most, plus the rate
    for log in logs:  # both workers shared the push
        assert "send_batch" in log.read_text(), log.read_text()[-2000:]


def _what_the_push_was_doing(app, sim, push_id, logs):
    """For a push that did not finish: its recipients, WeChat's calls, its keys in Redis
    (the bucket, the chains) with Redis's clock beside ours, and the workers' last lines."""
    redis = app.extensions["redis"]
    keys = {key.decode(): redis.hgetall(key) if redis.type(key) == b"hash" else redis.get(key)
            for pattern in (f"pushes:rate:{push_id}", f"pushes:chain:{push_id}:*")
            for key in redis.scan_iter(pattern)}
    seconds, micro = redis.time()
    return (f"{dict(outcomes(app, push_id))}; WeChat called "
            f"{len(sim_calls(sim, CUSTOM_PATH))} times; {keys}; Redis's clock "
            f"{seconds + micro / 1e6 - time.time():+.3f} s from ours; "
            f"load {os.getloadavg()}\n{log_tails(logs, 40)}")
