"""The benchmarks' backing services and settings: the bench account, PostgreSQL, Redis.

Each benchmark gets its own PostgreSQL database (created when missing, its
``public`` schema dropped and recreated first) and its own Redis database
(flushed first), fresh random keys, and the same WeChat credentials for the app
and the simulator. The settings are built once as environment strings, so a
gunicorn server, an RQ worker and an in-process app all read exactly the same
configuration.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.harness import proc
from config.settings import BASE, load_settings

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DATABASE = "cobrand_bench"
REDIS_SERVER = "redis://127.0.0.1:6379"
SERVICES = ("redis-server", "postgres")  # process names: their CPU is reported apart


@dataclass(frozen=True)
class Credentials:
    """One official account's callback settings, shared by every target."""

    token: str
    aes_key: str  # 43-character EncodingAESKey
    app_id: str
    original_id: str  # gh_… id, the ToUserName of inbound messages

    def env(self) -> dict[str, str]:
        """The environment variables the project and the peer apps read them from."""
        return {
            "WECHAT_TOKEN": self.token,
            "WECHAT_AES_KEY": self.aes_key,
            "WECHAT_APP_ID": self.app_id,
            "WECHAT_ORIGINAL_ID": self.original_id,
        }


BENCH_CREDENTIALS = Credentials(
    token="benchToken2024",
    aes_key="Bench0aesKey1for2the3callback4benchmark5678",
    app_id="wxbe0c4a11bac0ffee",
    original_id="gh_b3c4a11bac00",
)
# The mini-program of the bench account (the official account is BENCH_CREDENTIALS).
MINIAPP_APP_ID = "wxbe0c4a11bac0ffe1"
MINIAPP_APP_SECRET = "bench-miniapp-secret-0123456789ab"  # simulator only
OA_APP_SECRET = "bench-oa-secret-0123456789abcdef"  # simulator only


def database_url(name: str = DATABASE) -> str:
    """The URL of the bench database ``name`` on this machine's PostgreSQL."""
    return f"{PG_SERVER}/{name}"


def reset_database(url: str) -> None:
    """Create the database when missing, then drop and recreate its public schema."""
    name = make_url(url).database
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def settle(url: str) -> None:
    """CHECKPOINT before the measured load, which would otherwise pay for flushing the seed.

    No ANALYZE: this machine's PostgreSQL runs without autovacuum, and statistics
    taken while the outbox is empty would stay "empty" as it fills, steering the
    planner to sequential scans (measured: 5 ms of PostgreSQL CPU per alert).
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()


def reset_redis(url: str) -> None:
    """Flush the bench's Redis database ``url``."""
    redis.Redis.from_url(url).flushdb()


class Database:
    """The bench's own connection to a target's database, for read-only queries."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=1)

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.scalar(text(sql))

    def rows(self, sql: str) -> list[tuple]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]

    def close(self) -> None:
        self.engine.dispose()


def service_pids() -> list[int]:
    """The Redis and PostgreSQL server processes (PostgreSQL: one per connection)."""
    return proc.pids_named(SERVICES)


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def wechat_env() -> dict[str, str]:
    """Both apps of the bench account; the app and the simulator read the same values."""
    return {
        **BENCH_CREDENTIALS.env(),
        "WECHAT_APP_SECRET": OA_APP_SECRET,
        "MINIAPP_APP_ID": MINIAPP_APP_ID,
        "MINIAPP_APP_SECRET": MINIAPP_APP_SECRET,
    }


def app_env(database: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Environment strings of the app under test: services, fresh keys, the account."""
    return {
        **wechat_env(),
        "APP_ENV": "development",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATA_ENCRYPTION_KEY": _key(),
        "PII_INDEX_KEY": _key(),
        "LOG_LEVEL": "INFO",
        **extra,
    }


def metrics_env(workdir: Path, name: str) -> dict[str, str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR under ``workdir``: a target's own metric files."""
    return {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"prometheus-{name}-",
                                                         dir=workdir)}


def with_sim(env: Mapping[str, str], sim_url: str) -> dict[str, str]:
    """The process environment plus ``env``, with the simulator as every WeChat host."""
    hosts = ("WECHAT_API_BASE", "WECHAT_MP_BASE", "WECHAT_OPEN_BASE")
    return {**os.environ, **env, **dict.fromkeys(hosts, sim_url)}


def settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The typed settings ``create_app`` would read from ``env`` (for an in-process app)."""
    return load_settings(environ={**os.environ, **env})


def rate_limits(**actions: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The default ``RATE_LIMITS`` with the given actions' windows replaced."""
    table = {action: dict(windows) for action, windows in BASE["RATE_LIMITS"].items()}
    for action, windows in actions.items():
        table[action].update(windows)
    return table


def as_env(value: Any) -> str:
    """A JSON setting as the environment string load_settings parses."""
    return json.dumps(value)
