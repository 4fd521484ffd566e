"""Web OAuth2 sessions (wechat-platform.md §3.10): codes, web tokens, refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass

from .clock import SimClock
from .codes import OneTimeCodes
from .config import SimLimits
from .errors import ApiError
from .tokens import Credential, lookup, new_token
from .windows import drop_leading

SCOPES = ("snsapi_base", "snsapi_userinfo")


@dataclass(frozen=True)
class WebGrant:
    access: Credential
    refresh: Credential


class WebSessions:
    def __init__(self, clock: SimClock, limits: SimLimits) -> None:
        self._clock = clock
        self._limits = limits
        self._codes = OneTimeCodes(clock, limits.code_ttl, reuse_errcode=40163)
        self._access: dict[str, Credential] = {}
        self._refresh: dict[str, Credential] = {}

    def authorize(self, openid: str, scope: str) -> str:
        """The code the authorize page hands to redirect_uri for this user and scope."""
        return self._codes.mint((openid, scope))

    def exchange(self, code: str | None) -> WebGrant:
        openid, scope = self._codes.redeem(code)
        refresh = self._store(self._refresh, openid, scope, self._limits.web_refresh_ttl)
        return WebGrant(self._new_access(openid, scope), refresh)

    def refresh(self, refresh_token: str | None) -> WebGrant:
        """A new web token for a refresh token: 40030 when unknown, 42002 when expired."""
        refresh = self._refresh.get(refresh_token or "")
        if refresh is None:
            raise ApiError(40030)
        if not refresh.usable(self._clock.now()):
            raise ApiError(42002)
        return WebGrant(self._new_access(refresh.owner, refresh.scope), refresh)

    def resolve(self, access_token: str | None) -> Credential:
        return lookup(self._access, access_token, self._clock.now())

    def _new_access(self, openid: str, scope: str) -> Credential:
        return self._store(self._access, openid, scope, self._limits.token_ttl)

    def _store(self, table: dict[str, Credential], openid: str, scope: str, ttl: int) -> Credential:
        now = self._clock.now()
        # Expired values linger one more lifetime so they still answer 42001, not 40001.
        drop_leading(table, lambda credential: credential.expires_at + ttl <= now)
        credential = Credential(new_token(), openid, now + ttl, scope=scope)
        table[credential.value] = credential
        return credential
