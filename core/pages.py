"""What every server-rendered shell (the holders' H5 pages, the staff console) is built from:
its security headers on every answer, and the CSRF check of every POST.

The CSRF token is Flask-WTF's, tied to the session (``generate_csrf``/``validate_csrf``):
the SameSite cookie alone leaves older browsers and same-site subdomains open. Flask-WTF's
``CSRFProtect`` is not used, as it would check every POST of the app (the WeChat callback,
the JSON APIs) unless told otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, current_app, request
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

log = logging.getLogger(__name__)


def is_static(endpoint: str | None) -> bool:
    """A blueprint's static files (Flask names every one ``<blueprint>.static``): cacheable,
    and never a page a login returns to."""
    return (endpoint or "").endswith(".static")


def security_headers(headers: Mapping[str, str]) -> Callable[[Response], Response]:
    """An after-request hook adding ``headers``; pages (not static files) are never cached."""

    def add(response: Response) -> Response:
        response.headers.update(headers)
        if not is_static(request.endpoint):
            response.headers["Cache-Control"] = "no-store"
        return response

    return add


def csrf_check(max_age_setting: str, refused: Callable[[], Any]) -> Callable[[], Any]:
    """A before-request hook refusing a POST without a valid token (``refused()`` answers);
    a token lives no longer than the setting ``max_age_setting`` (seconds) says."""

    def check() -> Any:
        if request.method != "POST":
            return None
        try:
            validate_csrf(request.form.get("csrf_token"),
                          time_limit=current_app.config[max_age_setting])
        except ValidationError as exc:
            log.info("csrf refused", extra={"path": request.path, "reason": str(exc)})
            return refused()
        return None

    return check
