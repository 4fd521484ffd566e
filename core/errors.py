"""One error shape for JSON APIs: ``{"error": "code", "message": "..."}``."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """Raised by services and blueprints; rendered as the contract's JSON error."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    # JSON for API callers; pages and the WeChat callback keep their own bodies.
    if not request.path.startswith("/api/"):
        return exc
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(exc.code or 500, code, exc.description or code)


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
