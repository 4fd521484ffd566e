"""Workers ride out a Redis restart in the middle of a batch of alerts.

Real processes throughout: a private ``redis-server`` (no persistence, so its
restart loses every queued job, as a crash would), two ``flask --app app worker``
processes, the simulator on a socket and the signed feed. Redis is SIGKILLed
while the alerts are being sent and started again on the same port; then every
transaction's alert must reach WeChat exactly once as a shown message, no delivery
may be left unsent, and both workers must still be running, having logged the
outage once each. The database is a scratch one on DATABASE_URL's PostgreSQL
server when that is set, else a SQLite file.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Worker
from sqlalchemy import func, select

from app import create_app
from config.settings import BASE, load_settings
from core.db import db
from core.worker import Backoff
from members.holders.binding import OFFICIAL_ACCOUNT
from members.holders.models import Binding, CardHolder
from members.protection.pii import vault
from members.transactions.alerts.models import Delivery
from tests.fixtures.database import REAL_DATABASE_URL, scratch_postgres
from tests.fixtures.factories import import_holders
from tests.fixtures.feed import item, post_feed
from tests.fixtures.sim import ACCOUNT, messages_sent, sim_calls, sim_fault, sim_post
from wechat.sim.server import SimServer

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs the redis-server binary")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = "/cgi-bin/message/template/send"
WORKERS = 2
HOLDERS = 30
BATCHES, BATCH = 4, 60  # fed before the kill
SENT_BEFORE_KILL = 40  # alerts WeChat has shown when Redis is killed
OUTAGE_SECONDS = 3.0
WECHAT_LATENCY = 0.05  # s per template/send, so that the kill lands mid-batch
DEADLINE = 45.0  # s from the restart for everything to be sent
RESUMED = "resuming with a fresh RQ worker"


def _wait(what: str, done: Callable[[], Any], timeout: float, every: float = 0.1,
          explain: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g}s\n{explain()}")


class RedisServer:
    """``redis-server`` on a fixed port, without persistence; killed and started at will."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        client = redis_lib.Redis.from_url(self.url, socket_connect_timeout=1)
        _wait("redis-server answering", lambda: self._answers(client), 10)

    def _answers(self, client: redis_lib.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis_lib.ConnectionError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A scratch database beside DATABASE_URL's when that is PostgreSQL (the session's own
    is left alone: other tests share it), else a new SQLite file; the migrations fill it."""
    if not REAL_DATABASE_URL.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'outage.db'}"
        return
    with scratch_postgres("outage") as url:
        yield url


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _environment(sim: SimServer, database: str, redis_url: str) -> dict[str, str]:
    """Settings as environment strings: the workers read these, the test's app their types."""
    return {
        **ACCOUNT, "APP_ENV": "test", "JOBS_EAGER": "false", "LOG_LEVEL": "INFO",
        "DATABASE_URL": database, "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(32), "DATA_ENCRYPTION_KEY": _key(),
        "PII_INDEX_KEY": _key(), "TXN_FEED_SECRET": secrets.token_hex(16),
        "WECHAT_API_BASE": sim.url, "WECHAT_MP_BASE": sim.url, "WECHAT_OPEN_BASE": sim.url,
        "WECHAT_RETRY_BASE_DELAY": "0.01", "WECHAT_HTTP_TIMEOUT": "2.0",
        # The sweep is the recovery path: quick here, so the test is.
        "ALERT_SWEEP_INTERVAL": "1", "ALERT_STUCK_AFTER": "3",
    }


def _openid(n: int) -> str:
    return f"oOutage{n:021d}"


def _bound_holders(app: Flask, sim: SimServer, count: int) -> list[str]:
    """``count`` holders, holder n bound to the follower ``_openid(n)``; their cards."""
    cards = [row.card_no for row in import_holders(app, count)]
    with app.app_context():
        ids = dict(db.session.query(CardHolder.card_index, CardHolder.id).all())
        db.session.add_all(
            Binding(holder_id=ids[vault().blind_index("card", card)], app=OFFICIAL_ACCOUNT,
                    openid=_openid(n)) for n, card in enumerate(cards))
        db.session.commit()
    for n in range(count):
        sim_post(sim, "/sim/users", openid=_openid(n))
    return cards


def _post_batch(app: Flask, cards: list[str], first: int, size: int) -> None:
    batch = [item(n, cards[n % len(cards)]) for n in range(first, first + size)]
    answer = post_feed(app.test_client(), app, batch)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.get_json()["accepted"] == size


def _states(app: Flask) -> dict[str, int]:
    with app.app_context():
        counted = db.session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        states = dict(counted.tuples().all())
        db.session.remove()
    return states


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _metric(directory: Path, name: str) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry.get_sample_value(name) or 0.0


def test_workers_ride_out_a_redis_restart_mid_batch(sim: SimServer, redis_server: RedisServer,
                                                    database: str, tmp_path: Path) -> None:
    env = _environment(sim, database, redis_server.url)
    # The schema comes from the migrations (AUTO_MIGRATE); this process logs as tests do.
    app = create_app(load_settings(environ={**env, "LOG_LEVEL": "WARNING"}))
    cards = _bound_holders(app, sim, HOLDERS)
    sim_fault(sim, path=TEMPLATE_PATH, delay=WECHAT_LATENCY, times=-1)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    worker_env = {**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    workers = [_start_worker(worker_env, log) for log in logs]

    def tails() -> str:
        """The workers' last log lines, without the line per WeChat call."""
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(
                [line[:300] for line in log.read_text().splitlines()
                 if '"wechat call"' not in line][-30:]) for log in logs)

    try:
        redis = app.extensions["redis"]
        _wait("workers registered", lambda: Worker.count(connection=redis) == WORKERS, 30,
              explain=tails)
        for batch in range(BATCHES):
            _post_batch(app, cards, batch * BATCH, BATCH)
        _wait("the first alerts shown", lambda: messages_sent(sim) >= SENT_BEFORE_KILL, 20,
              every=0.02)

        redis_server.kill()
        assert messages_sent(sim) < BATCHES * BATCH, "Redis was killed after the batch was sent"
        _post_batch(app, cards, BATCHES * BATCH, BATCH)  # fed while Redis is down
        time.sleep(OUTAGE_SECONDS)
        redis_server.start()

        total = (BATCHES + 1) * BATCH
        _wait(f"all {total} deliveries sent", lambda: _states(app) == {"sent": total},
              DEADLINE, every=0.5, explain=lambda: f"{_states(app)}\n{tails()}")

        with app.app_context():
            expected = {(openid, f"txn-alert-{row_id}") for row_id, openid
                        in db.session.execute(select(Delivery.id, Delivery.openid))}
        calls = sim_calls(sim, TEMPLATE_PATH)
        shown = Counter((call["json"]["touser"], call["json"]["client_msg_id"])
                        for call in calls)
        # WeChat shows one message per (openid, client_msg_id) within ten minutes: every
        # alert was asked for, and the simulator showed exactly as many messages as alerts.
        assert set(shown) == expected, (f"{len(expected - set(shown))} alerts never asked "
                                        f"for, {len(set(shown) - expected)} unknown")
        shown_count = messages_sent(sim)
        assert shown_count == total, f"WeChat showed {shown_count} messages for {total} alerts"

        for process, log in zip(workers, logs, strict=True):
            # The other worker may have sent everything while this one was still backing
            # off: it resumes within the backoff's cap of Redis's return.
            _wait(f"{log.name}: resumed", lambda log=log: RESUMED in log.read_text(),
                  BASE["WORKER_REDIS_RETRY_MAX_DELAY"] + 5, explain=tails)
            assert process.poll() is None, f"a worker died:\n{tails()}"
            text_ = log.read_text()
            assert text_.count("Redis unreachable") == 1, f"{log.name}: not once\n{tails()}"
            assert "unhandled exception" not in text_, f"{log.name}: RQ quit\n{tails()}"
        counted = [_metric(metrics, f"worker_redis_{name}_total")
                   for name in ("outages", "reconnects")]
        assert counted == [WORKERS, WORKERS], f"outages, reconnects counted: {counted}"
    finally:
        for process in workers:
            _stop(process)
        with app.app_context():
            db.engine.dispose()


def _sqlite_worker_env(sim: SimServer, redis_server: RedisServer,
                       tmp_path: Path) -> dict[str, str]:
    env = _environment(sim, f"sqlite:///{tmp_path / 'worker.db'}", redis_server.url)
    return {**os.environ, **env}


def test_a_burst_worker_still_exits_when_the_queues_are_empty(
        sim: SimServer, redis_server: RedisServer, tmp_path: Path) -> None:
    log = tmp_path / "burst.log"
    with log.open("wb") as out:
        finished = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], cwd=ROOT,
            env=_sqlite_worker_env(sim, redis_server, tmp_path), stdout=out,
            stderr=subprocess.STDOUT, timeout=60, check=False)
    assert finished.returncode == 0, log.read_text()[-2000:]
    assert "done, quitting" in log.read_text()


def test_a_worker_waiting_for_redis_stops_on_sigterm(
        sim: SimServer, redis_server: RedisServer, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = _start_worker(_sqlite_worker_env(sim, redis_server, tmp_path), log)
    try:
        redis = redis_lib.Redis.from_url(redis_server.url)
        _wait("worker registered", lambda: Worker.count(connection=redis) == 1, 30,
              explain=log.read_text)
        redis_server.kill()
        _wait("outage logged", lambda: "Redis unreachable" in log.read_text(), 10,
              explain=log.read_text)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(5) == 0, log.read_text()[-2000:]
        assert "stop requested while waiting for Redis" in log.read_text()
    finally:
        _stop(worker)


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(0.5, 10.0)
    delays = [backoff.next() for _ in range(8)]
    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 8, 10, 10, 10], strict=True):
        assert ceiling / 2 <= delay <= ceiling
