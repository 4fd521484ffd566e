"""One error shape for JSON APIs: ``{"error": "code", "message": "..."}``, plus the fields a
contract adds to some errors (a refused redemption's ``"reason"``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from core.db import db


class ApiError(Exception):
    """Raised by services and blueprints; rendered as the contract's JSON error."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = dict(extra or {})  # more fields of the error JSON, beside error and message


class Refusal(ApiError):
    """A refusal whose record must outlive it.

    A refused request normally changes nothing: its unit of work is rolled back. Some
    refusals are facts to keep: a wrong code counted against its challenge (and the card
    lock it may trigger), a flood or a refused region in the audit trail, a login WeChat
    refused. Without the record the next attempt would find nothing, and an attacker
    could try forever. A service raises ``Refusal`` for those, having added what must be
    kept to the session; ``finish_refused`` then commits it. That is the one place where
    a refusal commits: services never do.
    """


def finish_refused(exc: ApiError) -> None:
    """End a refused request's unit of work: keep what a ``Refusal`` recorded, drop the rest."""
    if isinstance(exc, Refusal):
        db.session.commit()
    else:
        db.session.rollback()


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None,
                   extra: Mapping[str, Any] | None = None) -> Response:
    response = jsonify({**(extra or {}), "error": code, "message": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    finish_refused(exc)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    # JSON for API callers (members' and staff's); pages and the WeChat callback keep their
    # own bodies.
    if not request.path.startswith(("/api/", "/admin/api/")):
        return exc
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.code or 500, code, exc.description or code)


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
