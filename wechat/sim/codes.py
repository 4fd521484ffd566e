"""Single-use codes with a short life: wx.login codes, phone codes, OAuth codes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from .clock import SimClock
from .errors import ApiError
from .windows import drop_leading


@dataclass
class _Code:
    payload: Any
    expires_at: float
    used: bool = False


class OneTimeCodes:
    """Mint and redeem codes: unknown or expired → 40029, a second use → ``reuse_errcode``."""

    def __init__(self, clock: SimClock, ttl: int, reuse_errcode: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._reuse_errcode = reuse_errcode
        self._codes: dict[str, _Code] = {}  # insertion = minting order

    def mint(self, payload: Any) -> str:
        self._forget_stale()
        code = secrets.token_urlsafe(24)  # 32 characters, like a wx.login code
        self._codes[code] = _Code(payload, self._clock.now() + self._ttl)
        return code

    def redeem(self, code: str | None) -> Any:
        if not code:
            raise ApiError(41008)
        entry = self._codes.get(code)
        if entry is None or self._clock.now() >= entry.expires_at:
            raise ApiError(40029)
        if entry.used:
            raise ApiError(self._reuse_errcode)
        entry.used = True
        return entry.payload

    def _forget_stale(self) -> None:
        """Drop codes expired for a whole extra lifetime; until then reuse still says 40163."""
        horizon = self._clock.now() - self._ttl
        drop_leading(self._codes, lambda entry: entry.expires_at <= horizon)
