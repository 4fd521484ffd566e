"""The shell of every H5 page inside WeChat's browser, whichever package serves it.

``protect(bp)`` gives a blueprint the pages' security headers (a strict CSP, no
framing, no Referer, no caching of personal pages) and the CSRF check of every POST
(``core.pages``). Who is asking comes from WeChat web OAuth (``oa_login``), never
from a form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_wtf.csrf import generate_csrf

from core import pages

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


Page = tuple[str, int, dict[str, str]]
_PAGE_BLUEPRINTS: set[str] = set()  # the blueprints protect() was given: the H5 pages


def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": generate_csrf}


def protect(bp: Blueprint) -> Blueprint:
    """Give ``bp`` the shell's headers, CSRF check and template helpers; its GET pages become
    places a login may return to (``is_page``)."""
    _PAGE_BLUEPRINTS.add(bp.name)
    bp.after_request(pages.security_headers(SECURITY_HEADERS))
    # A token outlives neither its session nor the login it was issued under.
    bp.before_request(pages.csrf_check("H5_LOGIN_MAX_AGE", _expired))
    bp.context_processor(_template_helpers)
    return bp


def is_page(endpoint: str) -> bool:
    """Whether ``endpoint`` is one of the H5 pages (of a blueprint given to ``protect``)."""
    return endpoint.partition(".")[0] in _PAGE_BLUEPRINTS and not pages.is_static(endpoint)


def error_page(status: int, title: str, message: str,
               headers: dict[str, str] | None = None) -> Page:
    page = render_template("members/error.html", title=title, message=message)
    return page, status, headers or {}


def _expired() -> Page:
    return error_page(400, "页面已过期", "请返回重新操作。")


def login_expired() -> Page:
    # A page, not a redirect: CSP form-action would stop a POST's redirect chain at WeChat.
    return error_page(401, "登录已过期", "请重新打开页面。")
