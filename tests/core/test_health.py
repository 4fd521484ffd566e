"""Health, readiness, metrics, request ids."""

from __future__ import annotations

import json
import logging

from app import create_app


def test_healthz_and_readyz(client, app):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"]["database"] == "ok"
    if not app.extensions["redis_embedded"]:
        assert ready.json["checks"]["redis"] == "ok"


def test_readyz_is_503_when_the_database_is_gone(settings, tmp_path):
    broken = create_app({**settings, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/x.db",
                         "AUTO_MIGRATE": False})
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "unavailable"


def test_request_id_is_returned_and_logged(client, caplog):
    caplog.set_level(logging.WARNING)
    response = client.post("/wechat/callback", headers={"X-Request-Id": "req-abc-1"})
    assert response.headers["X-Request-Id"] == "req-abc-1"
    assert any(getattr(r, "request_id", None) == "req-abc-1" for r in caplog.records)
    forged = "x" * 65 + "<script>"
    hostile = client.get("/healthz", headers={"X-Request-Id": forged})
    assert hostile.headers["X-Request-Id"] != forged
    assert len(hostile.headers["X-Request-Id"]) == 32


def test_log_lines_are_json_and_carry_no_stale_request_id(client):
    client.get("/healthz", headers={"X-Request-Id": "req-before"})
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_json_handler", 0))
    record = logging.getLogger("probe").makeRecord(
        "probe", logging.WARNING, __file__, 1, "hello %s", ("there",), None,
        extra={"detail": 1})
    handler.filter(record)
    line = json.loads(handler.format(record))
    assert line["message"] == "hello there" and line["level"] == "WARNING"
    assert line["detail"] == 1
    assert line["request_id"] is None  # outside a request, no id from an earlier one
