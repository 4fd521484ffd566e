"""The Redis handle: the real server with REDIS_URL, an in-process stand-in without.

Everything that may be lost and rebuilt (token cache, dedupe keys, rate windows,
queues) talks to this one handle through redis-py's API, so embedded and real
mode run the same code. Embedded mode uses fakeredis, which keeps the data in
this process only.
"""

from __future__ import annotations

import logging

import fakeredis
import redis
from flask import Flask, current_app

log = logging.getLogger(__name__)


def connect(url: str) -> redis.Redis:
    """Open ``url`` and prove it answers; a configured Redis that is down is fatal."""
    client = redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30
    )
    client.ping()
    return client


def init_app(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    if url:
        app.extensions["redis"] = connect(url)
        app.extensions["redis_embedded"] = False
        return
    app.extensions["redis"] = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    app.extensions["redis_embedded"] = True
    log.warning(
        "REDIS_URL is not set: embedded mode (caches in memory, jobs in this process); "
        "run with REDIS_URL for several processes"
    )


def get_redis() -> redis.Redis:
    """The current app's Redis handle."""
    return current_app.extensions["redis"]


def is_embedded() -> bool:
    return current_app.extensions["redis_embedded"]
