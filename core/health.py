"""Liveness, readiness and the metrics page."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from core import jobs, kv, metrics
from core.db import db

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        log.warning("readiness: database unavailable: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    finally:
        db.session.rollback()
    if not kv.is_embedded():
        try:
            kv.get_redis().ping()
            checks["redis"] = "ok"
        except Exception as exc:
            log.warning("readiness: redis unavailable: %s", type(exc).__name__)
            checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def metrics_page() -> Response:
    try:
        depth = jobs.queue_depth()
    except Exception:  # metrics must render even when Redis is away
        current_app.logger.warning("metrics: queue depth unavailable")
        depth = {}
    body, content_type = metrics.exposition(depth)
    return Response(body, content_type=content_type)
