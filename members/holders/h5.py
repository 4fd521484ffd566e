"""The shell of every H5 page inside WeChat's browser, whichever package serves it.

``protect(bp)`` gives a blueprint the pages' security headers (a strict CSP, no
framing, no Referer, no caching of personal pages) and the CSRF check of every POST:
a token tied to the session (Flask-WTF's ``generate_csrf``/``validate_csrf``), since
the SameSite cookie alone leaves older browsers and same-site subdomains open.
Flask-WTF's ``CSRFProtect`` is not used, as it would check every POST of the app (the
WeChat callback, the JSON APIs) unless told otherwise. Who is asking comes from
WeChat web OAuth (``oa_login``), never from a form.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms import ValidationError

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def is_static(endpoint: str | None) -> bool:
    """A blueprint's static files (Flask names every one ``<blueprint>.static``): cacheable,
    and never a page a login returns to."""
    return (endpoint or "").endswith(".static")

Page = tuple[str, int, dict[str, str]]
_PAGE_BLUEPRINTS: set[str] = set()  # the blueprints protect() was given: the H5 pages


def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if not is_static(request.endpoint):
        response.headers["Cache-Control"] = "no-store"
    return response


def _check_csrf() -> Page | None:
    if request.method != "POST":
        return None
    try:
        # A token outlives neither its session nor the login it was issued under.
        validate_csrf(request.form.get("csrf_token"),
                      time_limit=current_app.config["H5_LOGIN_MAX_AGE"])
    except ValidationError as exc:
        log.info("csrf refused", extra={"path": request.path, "reason": str(exc)})
        return error_page(400, "页面已过期", "请返回重新操作。")
    return None


def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": generate_csrf}


def protect(bp: Blueprint) -> Blueprint:
    """Give ``bp`` the shell's headers, CSRF check and template helpers; its GET pages become
    places a login may return to (``is_page``)."""
    _PAGE_BLUEPRINTS.add(bp.name)
    bp.after_request(_security_headers)
    bp.before_request(_check_csrf)
    bp.context_processor(_template_helpers)
    return bp


def is_page(endpoint: str) -> bool:
    """Whether ``endpoint`` is one of the H5 pages (of a blueprint given to ``protect``)."""
    return endpoint.partition(".")[0] in _PAGE_BLUEPRINTS and not is_static(endpoint)


def error_page(status: int, title: str, message: str,
               headers: dict[str, str] | None = None) -> Page:
    page = render_template("members/error.html", title=title, message=message)
    return page, status, headers or {}


def login_expired() -> Page:
    # A page, not a redirect: CSP form-action would stop a POST's redirect chain at WeChat.
    return error_page(401, "登录已过期", "请重新打开页面。")
