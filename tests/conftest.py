"""Fixtures: the app in embedded mode, and in real mode when DATABASE_URL / REDIS_URL are set.

Real mode uses exactly the servers the environment names and fails loudly if
they do not answer; without them only the real-mode parametrisation is absent.
The tables of the database and the keys of the Redis database named there are
wiped: point them at databases kept for tests.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
import requests
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from werkzeug.serving import make_server

from app import create_app
from core.db import db
from core.worker import AppWorker
from wechat.sim.config import SimConfig
from wechat.sim.server import SimServer

REAL_DATABASE_URL = os.environ.get("DATABASE_URL", "")
REAL_REDIS_URL = os.environ.get("REDIS_URL", "")
MODES = ["embedded"] + (["real"] if REAL_DATABASE_URL or REAL_REDIS_URL else [])

ACCOUNT = {
    "WECHAT_APP_ID": "wxtest00000000oa1",
    "WECHAT_APP_SECRET": "test-oa-secret-0123456789",
    "WECHAT_TOKEN": "testtoken42",
    "WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WECHAT_ORIGINAL_ID": "gh_test00000001",
    "MINIAPP_APP_ID": "wxtest00000000mp1",
    "MINIAPP_APP_SECRET": "test-mp-secret-0123456789",
    "WECHAT_TXN_TEMPLATE_ID": "tmpl-txn-alert-test",
}


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    """The WeChat simulator on a real socket, shared by the session (reset per test)."""
    config = SimConfig(
        oa_app_id=ACCOUNT["WECHAT_APP_ID"], oa_app_secret=ACCOUNT["WECHAT_APP_SECRET"],
        oa_token=ACCOUNT["WECHAT_TOKEN"], oa_aes_key=ACCOUNT["WECHAT_AES_KEY"],
        oa_original_id=ACCOUNT["WECHAT_ORIGINAL_ID"], mp_app_id=ACCOUNT["MINIAPP_APP_ID"],
        mp_app_secret=ACCOUNT["MINIAPP_APP_SECRET"],
        template_ids=(ACCOUNT["WECHAT_TXN_TEMPLATE_ID"],),
    )
    server = SimServer(config)
    server.start()
    yield server
    server.stop()


class SmsInbox:
    """The bank's SMS platform, played by a tiny HTTP server that keeps what it gets."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        with self.lock:
            self.messages.append(json.loads(environ["wsgi.input"].read(length)))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']

    def codes_for(self, phone: str) -> list[str]:
        """The 6-digit codes sent to ``phone``, oldest first."""
        with self.lock:
            texts = [m["message"] for m in self.messages if m["phone"] == phone]
        return [match for text in texts for match in re.findall(r"(?<!\d)\d{6}(?!\d)", text)]


@pytest.fixture(scope="session")
def sms_inbox() -> Iterator[SmsInbox]:
    inbox = SmsInbox()
    server = make_server("127.0.0.1", 0, inbox, threaded=True)
    inbox.url = f"http://127.0.0.1:{server.server_port}/sms"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield inbox
    server.shutdown()


@pytest.fixture(scope="session", params=MODES)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _wipe_database(url: str) -> None:
    """Drop everything so the migrations are proven from an empty schema."""
    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


@pytest.fixture(scope="session")
def settings(backend: str, sim: SimServer, sms_inbox: SmsInbox,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Overrides for create_app in this mode."""
    values: dict[str, Any] = {
        "APP_ENV": "test", **ACCOUNT,
        "WECHAT_API_BASE": sim.url, "WECHAT_MP_BASE": sim.url, "WECHAT_OPEN_BASE": sim.url,
        "WECHAT_RETRY_BASE_DELAY": 0.01, "WECHAT_HTTP_TIMEOUT": 2.0,
        "WECHAT_KEYWORD_REPLIES": {"积分": "您的积分请在小程序查看"},
        "WECHAT_MENU_REPLIES": {"MENU_HELP": "客服热线 95500"},
        "SMS_GATEWAY_URL": sms_inbox.url,
    }
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    if backend == "real":
        values["DATABASE_URL"] = REAL_DATABASE_URL or sqlite_url
        values["REDIS_URL"] = REAL_REDIS_URL
        if REAL_DATABASE_URL:
            _wipe_database(REAL_DATABASE_URL)
        if REAL_REDIS_URL:
            redis_lib.Redis.from_url(REAL_REDIS_URL).flushdb()
    else:
        values["DATABASE_URL"] = sqlite_url
        values["REDIS_URL"] = ""
    return values


@pytest.fixture(scope="session")
def app(settings: dict) -> Flask:
    """The app of this mode; its schema is built by the migrations (AUTO_MIGRATE)."""
    return create_app(settings)


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest, sim: SimServer,
                 sms_inbox: SmsInbox) -> Iterator[None]:
    """Each test starts with empty tables, an empty Redis, no SMS and a fresh simulator."""
    requests.post(f"{sim.url}/sim/reset", timeout=5).raise_for_status()
    sms_inbox.messages.clear()
    yield
    if "app" not in request.fixturenames:
        return
    flask_app: Flask = request.getfixturevalue("app")
    with flask_app.app_context():
        db.session.remove()
        tables = db.metadata.sorted_tables
        if db.engine.dialect.name == "postgresql":
            # TRUNCATE: fast, and not stopped by the audit trail's append-only trigger.
            names = ", ".join(f'"{table.name}"' for table in tables)
            db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                db.session.execute(table.delete())
        db.session.commit()
        flask_app.extensions["redis"].flushdb()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def run_jobs(app: Flask):
    """Run queued jobs now: a burst RQ worker in real mode; embedded test jobs run eagerly."""

    def run() -> None:
        if app.extensions["redis_embedded"]:
            return
        runner = app.extensions["jobs"]
        worker = AppWorker(list(runner.queues.values()), connection=app.extensions["redis"])
        worker.app = app
        worker.work(burst=True)

    return run


@pytest.fixture
def live_app(app: Flask) -> Iterator[str]:
    """The app on a real socket (for the simulator's callback sender)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()

