"""WeChat web OAuth2 (网页授权) for H5 pages opened in WeChat (wechat-platform.md §3.10).

Two halves, neither knowing what the page is for:

* ``authorize_url``: where to send the browser. The browser follows it, not our
  transport, so it is built from ``WECHAT_OPEN_BASE`` (the simulator in tests).
  WeChat wants ``appid, redirect_uri, response_type, scope, state`` in this
  order and the ``#wechat_redirect`` fragment. wechatpy's ``WeChatOAuth`` builds
  the same string, but on a hard-coded host and without checking ``state``.
* ``exchange_code``: ``sns/oauth2/access_token`` through the app's
  ``WeChatAPIClient``, so the call takes the project's transport (host rewrite,
  timeout), bounded retries, metrics and typed errors. ``WeChatOAuth`` would
  bring a requests session of its own, with no timeout and no retry.

A code is single use and lives five minutes: 40029 (invalid or expired) and
40163 (used) raise ``OAuthCodeRejected`` and the remedy is to authorize again.
A retry after a timeout whose first try did reach WeChat meets 40163 as well;
authorizing again is the remedy there too.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from wechat.client import WeChatAPIClient
from wechat.errors import WeChatAPIError

SCOPES = ("snsapi_base", "snsapi_userinfo")
AUTHORIZE_PATH = "/connect/oauth2/authorize"
TOKEN_ENDPOINT = "sns/oauth2/access_token"  # noqa: S105 - a path, not a secret
# WeChat's own root: the transport rewrites it to WECHAT_API_BASE.
_API_ROOT = "https://api.weixin.qq.com/"
# WeChat echoes state unchanged if it is up to 128 characters of [A-Za-z0-9].
_STATE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_STATE_ALPHABET = string.ascii_letters + string.digits
STATE_LENGTH = 32  # 32 draws from 62 symbols: about 190 random bits
# Real codes are 32 URL-safe characters; anything else never reaches WeChat.
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CODE_ERRCODES = frozenset({40029, 40163})


class OAuthCodeRejected(WeChatAPIError):
    """WeChat refused the code: 40029 invalid or expired, 40163 used already."""

    @property
    def used(self) -> bool:
        return self.errcode == 40163


@dataclass(frozen=True)
class WebUser:
    """Who authorized. The web access token is dropped: snsapi_base needs nothing more."""

    openid: str
    unionid: str | None
    scope: str
    # A "snapshot page" visitor (朋友圈快照页): a virtual openid, not a real authorization.
    snapshot: bool = False


def new_state() -> str:
    """A fresh, unguessable ``state`` in the alphabet WeChat echoes unchanged."""
    return "".join(secrets.choice(_STATE_ALPHABET) for _ in range(STATE_LENGTH))


def authorize_url(open_base: str, appid: str, redirect_uri: str, scope: str,
                  state: str) -> str:
    """The authorize page's URL, exactly as WeChat wants it."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    if not _STATE.match(state):
        raise ValueError("state must be 1 to 128 characters of [A-Za-z0-9]")
    query = urlencode(
        [("appid", appid), ("redirect_uri", redirect_uri), ("response_type", "code"),
         ("scope", scope), ("state", state)],
        quote_via=quote,  # %20 not "+", and "/" and ":" encoded too (safe="")
    )
    return f"{open_base.rstrip('/')}{AUTHORIZE_PATH}?{query}#wechat_redirect"


def exchange_code(client: WeChatAPIClient, code: str) -> WebUser:
    """Redeem the code WeChat appended to redirect_uri; ``OAuthCodeRejected`` if refused."""
    if not isinstance(code, str) or not _CODE.match(code):
        raise OAuthCodeRejected(40029, "malformed code, not sent", TOKEN_ENDPOINT)
    params = {"appid": client.appid, "secret": client.secret, "code": code,
              "grant_type": "authorization_code"}
    try:
        answer = client.get(TOKEN_ENDPOINT, params=params, api_base_url=_API_ROOT)
    except WeChatAPIError as exc:
        if exc.errcode in CODE_ERRCODES:
            raise OAuthCodeRejected(exc.errcode, exc.errmsg, exc.endpoint) from exc
        raise
    return WebUser(
        openid=answer["openid"], unionid=answer.get("unionid") or None,
        scope=answer.get("scope", ""),
        snapshot=str(answer.get("is_snapshotuser", 0)) == "1",
    )
