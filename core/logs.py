"""JSON logs carrying the request id (or job id) of the work that wrote them."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar

from flask import Flask, Response, request
from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)

_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Terminal colour codes: Werkzeug's dev server colours its request lines for a terminal,
# and inside a JSON field they are noise to the reader and to any log shipper.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Libraries whose INFO lines are about themselves, not about our work: Alembic announces
# its dialect on every command that starts the app (and so migrates).
_QUIET = ("alembic",)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


class _Formatter(JsonFormatter):
    """JSON lines, non-ASCII text kept readable (Chinese, not \\u escapes), no colour codes."""

    def process_log_record(self, log_record: dict) -> dict:
        message = log_record.get("message")
        if isinstance(message, str):
            log_record["message"] = _ANSI.sub("", message)
        return log_record


def configure(level: str) -> None:
    """One JSON handler on the root logger; idempotent across app instances."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_json_handler", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._json_handler = True
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        _Formatter(
            "{asctime}{levelname}{name}{message}{request_id}{job_id}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    )
    root.addHandler(handler)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


@contextlib.contextmanager
def job_context(value: str) -> Iterator[None]:
    """Tag every log line written inside with ``job_id``."""
    token = job_id.set(value)
    try:
        yield
    finally:
        job_id.reset(token)


def begin_request(inbound: str) -> str:
    """Tag the log lines of this request: the caller's X-Request-Id if sane, else a new id."""
    value = inbound if _INBOUND_ID.fullmatch(inbound) else os.urandom(16).hex()
    request_id.set(value)
    return value


def end_request() -> None:
    request_id.set(None)


def _begin_request() -> None:
    begin_request(request.headers.get("X-Request-Id", ""))


def _tag_response(response: Response) -> Response:
    response.headers["X-Request-Id"] = request_id.get() or ""
    return response


def _end_request(_exc: BaseException | None) -> None:
    end_request()


def init_app(app: Flask) -> None:
    configure(app.config["LOG_LEVEL"])
    app.before_request(_begin_request)
    app.after_request(_tag_response)
    app.teardown_request(_end_request)
