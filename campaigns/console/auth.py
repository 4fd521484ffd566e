"""Who the staff caller is and whether its role may: the decorators of every console view.

``staff_api(min_role, *, also=())`` for ``/admin/api/...`` JSON views: the caller's
``Authorization: Bearer STAFF_TOKEN`` sets ``g.staff`` (the ``Staff`` row). No token, or
an unknown, revoked or expired one (or a disabled account's): 401 in the API's error shape
(``core.errors``). A role that may not: 403 ``forbidden``, kept in the audit trail
(action ``forbidden``).

``staff_page(min_role, *, also=())`` for console HTML views: the console login of the
browser's session sets ``g.staff``. Not logged in, idle longer than
``CONSOLE_IDLE_TIMEOUT`` or logged in longer than ``CONSOLE_MAX_AGE``: a redirect to
``/admin/login?next=<this page>``. A role that may not: the 403 page, audited the same way.

The role check is ``roles.allows``: ``min_role`` on the ladder viewer < marketer <
approver < admin, or one of ``also`` (``also=("manager",)`` lets managers in; the view
then checks that what they ask for is theirs). Both decorators check their arguments when
applied, so a misspelt role fails at import.

The console login lives in Flask's cookie session under ``SESSION_KEY`` alone, apart from
the H5 pages' ``oa_*`` keys (``members.holders.oa_login``); ``campaigns.console.sessions``
keeps the login itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import flash, g, redirect, render_template, request, session, url_for

from campaigns.console import audit, roles, sessions, staff
from campaigns.console.models import Staff
from core.db import db
from core.errors import ApiError, Refusal

SESSION_KEY = "console_login"
_NEXT_MAX = 512
View = TypeVar("View", bound=Callable[..., Any])


def _record_forbidden(account: Staff, min_role: str, also: tuple[str, ...]) -> None:
    audit.record(account, "forbidden", f"path:{request.path}"[:audit.TARGET_MAX],
                 after={"method": request.method, "role": account.role,
                        "needs": min_role, "also": list(also)})


def staff_api(min_role: str, *, also: tuple[str, ...] = ()) -> Callable[[View], View]:
    """Decorate a JSON view of ``/admin/api``: bearer token → ``g.staff``, or 401 / 403."""
    roles.check_requirement(min_role, also)

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "missing_token", "send Authorization: Bearer <staff token>",
                               {"WWW-Authenticate": 'Bearer realm="admin"'})
            row = staff.authenticate_token(token.strip())
            g.staff = row.staff
            if staff.touch(row):
                db.session.commit()  # its own unit of work: a refused or read-only call keeps it
            if not roles.allows(g.staff.role, min_role, also):
                _record_forbidden(g.staff, min_role, also)
                raise Refusal(403, "forbidden", "your role may not do this")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def console_staff() -> Staff | None:
    """The staff member logged in to the console in this browser, or None; a login that has
    ended is dropped from the session."""
    login_id = session.get(SESSION_KEY)
    if not isinstance(login_id, str):
        return None
    login = sessions.resume(login_id)
    account = db.session.get(Staff, login.staff_id) if login else None
    if account is None or account.disabled:
        sessions.close(login_id)
        session.pop(SESSION_KEY, None)
        return None
    return account


def safe_next(value: object) -> str | None:
    """``value`` if it is a path of this site under /admin/ (where a login may return to)."""
    if not isinstance(value, str) or len(value) > _NEXT_MAX or "\\" in value:
        return None
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/"):
        return None
    return value


def _to_login(expired: bool) -> Any:
    if expired:
        flash("登录已超时，请重新登录。")
    # Only a GET can be repeated after the login; a form posted meanwhile is not replayed.
    target = safe_next(request.full_path.rstrip("?")) if request.method == "GET" else None
    return redirect(url_for("console.login", next=target), 303)


def forbidden_page() -> Any:
    return render_template("console/error.html", title="没有权限",
                           message="您的角色不能使用此页面。如需权限，请联系管理员。"), 403


def staff_page(min_role: str, *, also: tuple[str, ...] = ()) -> Callable[[View], View]:
    """Decorate a console page: the console login → ``g.staff``, or the login page / 403."""
    roles.check_requirement(min_role, also)

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            had_login = SESSION_KEY in session
            account = console_staff()
            if account is None:
                return _to_login(expired=had_login)
            g.staff = account
            if not roles.allows(account.role, min_role, also):
                _record_forbidden(account, min_role, also)
                db.session.commit()  # kept, though the page is refused
                return forbidden_page()
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
