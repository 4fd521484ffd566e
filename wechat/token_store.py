"""One access-token store shared by every process that talks to WeChat.

The token lives in Redis. When it is missing, or a caller reports the token it
used as rejected, exactly one process refreshes it under a Redis lock; the
others wait on the lock and reuse what it stored. A rejected token is only
refreshed if it is still the current one, so N callers failing with the same
token cause one refresh per token generation, never N.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis import Redis
from redis.exceptions import LockError

from core.metrics import TOKEN_REFRESHES

log = logging.getLogger(__name__)

Fetch = Callable[[], tuple[str, int]]


class TokenUnavailable(RuntimeError):
    """No token could be obtained within the lock timeout."""


class TokenStore:
    def __init__(self, redis: Redis, appid: str, fetch: Fetch, *,
                 margin: int, lock_timeout: float) -> None:
        self.redis = redis
        self.appid = appid
        self.fetch = fetch
        self.margin = margin
        self.lock_timeout = lock_timeout
        self.key = f"wechat:token:{appid}"

    def get(self) -> str:
        """The current token, fetching one if none is stored."""
        token = self.redis.get(self.key)
        return token.decode() if token else self._refresh(rejected=None)

    def replace(self, rejected: str) -> str:
        """``rejected`` failed at WeChat: refresh unless another process already did."""
        return self._refresh(rejected=rejected)

    def _refresh(self, rejected: str | None) -> str:
        lock = self.redis.lock(
            f"wechat:token-lock:{self.appid}",
            timeout=self.lock_timeout,
            blocking_timeout=self.lock_timeout,
            sleep=0.02,
        )
        if not lock.acquire():
            raise TokenUnavailable(f"token lock for {self.appid} not acquired")
        try:
            current = self.redis.get(self.key)
            if current and current.decode() != rejected:
                return current.decode()
            token, expires_in = self.fetch()
            # Keep it until shortly before WeChat's expiry; never less than a minute.
            self.redis.set(self.key, token, ex=max(expires_in - self.margin, 60))
            TOKEN_REFRESHES.labels(app=self.appid).inc()
            log.info("access token refreshed", extra={"appid": self.appid})
            return token
        finally:
            try:
                lock.release()
            except LockError:
                log.warning("token lock for %s expired before release", self.appid)
