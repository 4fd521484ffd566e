"""access_token issue, rotation and validation (wechat-platform.md §3.1).

`/cgi-bin/token` and `/cgi-bin/stable_token` keep separate token families per app: a call to one
never invalidates a token of the other.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from .clock import SimClock
from .config import SimLimits
from .errors import ApiError
from .windows import WindowCounter

BASIC = "basic"
STABLE = "stable"


@dataclass
class Credential:
    """A bearer value: an access_token (owner = appid) or a web OAuth token (owner = openid)."""

    value: str
    owner: str
    expires_at: float
    dead_at: float = math.inf  # superseded or revoked: from then on it is "not latest" (40001)
    scope: str = ""

    def check(self, now: float) -> None:
        if now >= self.dead_at:
            raise ApiError(40001)
        if now >= self.expires_at:
            raise ApiError(42001)

    def usable(self, now: float) -> bool:
        return now < self.expires_at and now < self.dead_at


def new_token() -> str:
    """136 URL-safe characters, about as long as WeChat's (which asks for 512 of storage)."""
    return secrets.token_urlsafe(102)


def lookup(table: dict[str, Credential], value: str | None, now: float) -> Credential:
    """The credential behind ``value``: 41001 when absent, 40001 unknown, 42001 expired."""
    if not value:
        raise ApiError(41001)
    credential = table.get(value)
    if credential is None:
        raise ApiError(40001)
    credential.check(now)
    return credential


class TokenStore:
    """All access tokens of all apps; not locked itself (SimState's lock guards it)."""

    def __init__(self, clock: SimClock, limits: SimLimits) -> None:
        self._clock = clock
        self._limits = limits
        self._tokens: dict[str, Credential] = {}
        self._current: dict[tuple[str, str], Credential] = {}  # (appid, family) → newest
        self._daily = WindowCounter()  # (appid, family or "force") per Beijing day
        self._last_force: dict[str, float] = {}

    def resolve(self, value: str | None) -> str:
        """The appid owning a valid token, or the ApiError WeChat would answer."""
        return lookup(self._tokens, value, self._clock.now()).owner

    def issue_basic(self, appid: str) -> Credential:
        """`/cgi-bin/token`: always a new token; the previous one lives ``token_grace`` more."""
        self._count(appid, BASIC, self._limits.token_daily_limit)
        now = self._clock.now()
        previous = self._current.get((appid, BASIC))
        if previous is not None:
            previous.dead_at = min(previous.dead_at, now + self._limits.token_grace)
        self._prune(appid)
        return self._issue(appid, BASIC)

    def issue_stable(self, appid: str, force: bool) -> tuple[Credential, int]:
        """`/cgi-bin/stable_token`: (token, expires_in); idempotent unless ``force``."""
        self._count(appid, STABLE, self._limits.stable_token_daily_limit)
        now = self._clock.now()
        current = self._current.get((appid, STABLE))
        if force:
            self._check_force(appid, now)
            if current is not None:
                current.dead_at = now
        elif current is not None and current.usable(now):
            remaining = round(current.expires_at - now)
            if remaining > self._limits.stable_rotate_before:
                return current, remaining
            # Rotation window: hand out a fresh token; the old one runs out on its own schedule.
        token = self._issue(appid, STABLE)
        return token, self._limits.token_ttl

    def expire(self, appid: str) -> None:
        """Every live token of ``appid`` now answers 42001."""
        now = self._clock.now()
        for token in self._tokens.values():
            if token.owner == appid:
                token.expires_at = min(token.expires_at, now)

    def revoke(self, appid: str) -> None:
        """Every live token of ``appid`` now answers 40001."""
        now = self._clock.now()
        for token in self._tokens.values():
            if token.owner == appid:
                token.dead_at = min(token.dead_at, now)

    def _issue(self, appid: str, family: str) -> Credential:
        token = Credential(new_token(), appid, self._clock.now() + self._limits.token_ttl)
        self._tokens[token.value] = token
        self._current[(appid, family)] = token
        return token

    def _count(self, appid: str, family: str, limit: int) -> None:
        if not self._daily.take((appid, family), self._clock.day(), limit):
            raise ApiError(45009)

    def _check_force(self, appid: str, now: float) -> None:
        last = self._last_force.get(appid)
        if last is not None and now - last < self._limits.stable_force_interval:
            raise ApiError(45011, "force_refresh at most once per 30 s")
        self._count(appid, "force", self._limits.stable_force_daily_limit)
        self._last_force[appid] = now

    def _prune(self, appid: str) -> None:
        """Forget superseded tokens past their grace; unknown and superseded both answer 40001."""
        now = self._clock.now()
        dead = [v for v, t in self._tokens.items() if t.owner == appid and now >= t.dead_at]
        for value in dead:
            del self._tokens[value]
