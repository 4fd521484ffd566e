"""Who is on the H5 pages: WeChat web OAuth (snsapi_base) into Flask's signed session.

The session cookie holds the OAuth ``state`` while the browser is at WeChat,
then the follower's openid (and unionid) with the time of the login. It is
signed, not encrypted: it holds nothing the follower's own WeChat does not
already know, and never card or phone numbers. Its lifetime and flags come
from the settings (SESSION_COOKIE_*, PERMANENT_SESSION_LIFETIME); on top of
that a login counts for H5_LOGIN_MAX_AGE seconds however active the page is.

A page that needs a login (the transaction page an alert links to) passes its
own path to ``begin``; the callback sends the browser back there. That path is
kept in the session, never read from the request's query, and is checked when
stored and again when used: only a path of one of our own ``/m/`` pages, so
the login can never be made to redirect anywhere else.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass

from flask import current_app, session, url_for
from werkzeug.exceptions import HTTPException

from members.holders import h5
from members.holders.binding import OFFICIAL_ACCOUNT, Actor
from wechat import clients, oauth

_STATE = "oauth_state"
_OPENID = "oa_openid"
_UNIONID = "oa_unionid"
_LOGIN_AT = "oa_login_at"
_RETURN_TO = "oauth_return_to"

# A return path: /m/ and plain segments; no scheme, host, "//", backslash, query, fragment,
# percent-escape, space or control character can pass.
_RETURN_PATH = re.compile(r"/m(?:/[A-Za-z0-9._:~-]+)+")
_RETURN_PATH_MAX = 256
# Pages that are no place to land after a login.
_NOT_RETURNABLE = frozenset({"member_pages.oauth_callback"})


class StateMismatch(Exception):
    """The callback's ``state`` is missing, wrong or used: not the login this browser began."""


@dataclass(frozen=True)
class Login:
    """A finished OAuth round trip: who, and the checked page to go back to (if any)."""

    user: oauth.WebUser
    return_to: str | None


def current_actor() -> Actor | None:
    """The logged-in follower, or None when there is no login or it is too old."""
    openid = session.get(_OPENID)
    login_at = session.get(_LOGIN_AT)
    if not openid or not isinstance(login_at, int):
        return None
    if time.time() - login_at > current_app.config["H5_LOGIN_MAX_AGE"]:
        return None
    return Actor(app=OFFICIAL_ACCOUNT, openid=openid, unionid=session.get(_UNIONID))


def begin(return_to: str | None = None) -> str:
    """Remember a fresh state in the session; the authorize URL to send the browser to.

    ``return_to``: the path of the page to come back to after the login. Anything but
    one of our own GET pages under /m/ is dropped (the login then lands on /m/bind).
    """
    state = oauth.new_state()
    session[_STATE] = state
    target = safe_return_path(return_to)
    if target is not None:
        session[_RETURN_TO] = target
    else:
        session.pop(_RETURN_TO, None)  # no stale target of an earlier, abandoned login
    session.permanent = True  # the cookie expires (PERMANENT_SESSION_LIFETIME)
    config = current_app.config
    return oauth.authorize_url(config["WECHAT_OPEN_BASE"], config["WECHAT_APP_ID"],
                               callback_url(), "snsapi_base", state)


def finish(state: str | None, code: str | None) -> Login:
    """Check and spend the state, redeem the code, and log the follower in.

    Raises ``StateMismatch`` (nothing stored), or the ``WeChatAPIError`` of the
    exchange (``oauth.OAuthCodeRejected`` for a bad or used code). A snapshot-page
    visitor is returned without being logged in: its openid is not a real one.
    """
    expected = session.pop(_STATE, None)  # one use, whatever follows
    return_to = safe_return_path(session.pop(_RETURN_TO, None))  # checked again on the way out
    if not (isinstance(expected, str) and state
            and hmac.compare_digest(expected.encode(), state.encode())):
        raise StateMismatch
    user = oauth.exchange_code(clients.official_account(), code or "")
    if not user.snapshot:
        _log_in(user)
    return Login(user=user, return_to=return_to)


def safe_return_path(value: object) -> str | None:
    """``value`` if it is the path of one of our own GET pages under /m/, else None.

    Never an absolute URL, a scheme-relative ``//host``, a backslash trick, a
    dot segment, a query, or a path that routes to anything but an H5 page
    (the OAuth callback and static files are refused as well).
    """
    if (not isinstance(value, str) or len(value) > _RETURN_PATH_MAX
            or not _RETURN_PATH.fullmatch(value)
            or any(segment in (".", "..") for segment in value.split("/"))):
        return None
    try:
        endpoint, _ = current_app.url_map.bind("localhost").match(value, method="GET")
    except HTTPException:  # no such page, not a GET page, or a redirect (a trailing slash)
        return None
    if not h5.is_page(str(endpoint)) or endpoint in _NOT_RETURNABLE:
        return None
    return value


def _log_in(user: oauth.WebUser) -> None:
    # A new session, not the old one amended: nothing set before the login (a fixated
    # cookie, an old CSRF token, a pending challenge) survives it.
    session.clear()
    session.permanent = True
    session[_OPENID] = user.openid
    if user.unionid:
        session[_UNIONID] = user.unionid
    session[_LOGIN_AT] = int(time.time())


def callback_url() -> str:
    """The redirect_uri: under PUBLIC_BASE_URL when set (see config/settings.py)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if base:
        return base.rstrip("/") + url_for("member_pages.oauth_callback")
    return url_for("member_pages.oauth_callback", _external=True)
