"""Who is on the H5 pages: WeChat web OAuth (snsapi_base) into Flask's signed session.

The session cookie holds the OAuth ``state`` while the browser is at WeChat,
then the follower's openid (and unionid) with the time of the login. It is
signed, not encrypted: it holds nothing the follower's own WeChat does not
already know, and never card or phone numbers. Its lifetime and flags come
from the settings (SESSION_COOKIE_*, PERMANENT_SESSION_LIFETIME); on top of
that a login counts for H5_LOGIN_MAX_AGE seconds however active the page is.
"""

from __future__ import annotations

import hmac
import time

from flask import current_app, session, url_for

from members.binding import OFFICIAL_ACCOUNT, Actor
from wechat import clients, oauth

_STATE = "oauth_state"
_OPENID = "oa_openid"
_UNIONID = "oa_unionid"
_LOGIN_AT = "oa_login_at"


class StateMismatch(Exception):
    """The callback's ``state`` is missing, wrong or used: not the login this browser began."""


def current_actor() -> Actor | None:
    """The logged-in follower, or None when there is no login or it is too old."""
    openid = session.get(_OPENID)
    login_at = session.get(_LOGIN_AT)
    if not openid or not isinstance(login_at, int):
        return None
    if time.time() - login_at > current_app.config["H5_LOGIN_MAX_AGE"]:
        return None
    return Actor(app=OFFICIAL_ACCOUNT, openid=openid, unionid=session.get(_UNIONID))


def begin() -> str:
    """Remember a fresh state in the session; the authorize URL to send the browser to."""
    state = oauth.new_state()
    session[_STATE] = state
    session.permanent = True  # the cookie expires (PERMANENT_SESSION_LIFETIME)
    config = current_app.config
    return oauth.authorize_url(config["WECHAT_OPEN_BASE"], config["WECHAT_APP_ID"],
                               callback_url(), "snsapi_base", state)


def finish(state: str | None, code: str | None) -> oauth.WebUser:
    """Check and spend the state, redeem the code, and log the follower in.

    Raises ``StateMismatch`` (nothing stored), or the ``WeChatAPIError`` of the
    exchange (``oauth.OAuthCodeRejected`` for a bad or used code). A snapshot-page
    visitor is returned without being logged in: its openid is not a real one.
    """
    expected = session.pop(_STATE, None)  # one use, whatever follows
    if not (isinstance(expected, str) and state
            and hmac.compare_digest(expected.encode(), state.encode())):
        raise StateMismatch
    user = oauth.exchange_code(clients.official_account(), code or "")
    if not user.snapshot:
        _log_in(user)
    return user


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
