"""One access-token store shared by every process that talks to WeChat.

The token lives in Redis. When it is missing, or a caller reports the token it
used as rejected, exactly one process refreshes it under a Redis lock; the
others wait on the lock and reuse what it stored. A rejected token is only
refreshed if it is still the current one, so N callers failing with the same
token cause one refresh per token generation, never N.

A burst of calls (a send job's threads) may hold the token in the process for
a few seconds (``held``) instead of reading Redis before every call. A held
token that WeChat rejects is dropped at once, and a token another process has
replaced meanwhile costs one rejected call, answered by ``replace`` with the
token in Redis, never with a second refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError

from wechat.metrics import TOKEN_REFRESHES

log = logging.getLogger(__name__)

Fetch = Callable[[], tuple[str, int]]
# Seconds a held token is reused before Redis is asked again: short, so a token refreshed
# by another process (which WeChat keeps accepting for minutes) is picked up soon.
HOLD_SECONDS = 5.0


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
        self._holders = 0  # open ``held`` blocks; the token is kept only while there are some
        self._held: tuple[str, float] | None = None  # (token, monotonic deadline)
        self._hold_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Within the block, reuse a token read from Redis for up to HOLD_SECONDS.

        Outside any such block every ``get`` reads Redis, as a token refreshed by
        another process must be seen at once by callers that are not in a burst.
        """
        with self._hold_lock:
            self._holders += 1
        try:
            yield
        finally:
            with self._hold_lock:
                self._holders -= 1
                if not self._holders:
                    self._held = None

    def get(self) -> str:
        """The current token, fetching one if none is stored."""
        held = self._held
        if held is not None and time.monotonic() < held[1]:
            return held[0]
        stored = self.redis.get(self.key)
        return self._hold(stored.decode() if stored else self._refresh(rejected=None))

    def replace(self, rejected: str) -> str:
        """``rejected`` failed at WeChat: refresh unless another process already did."""
        self._held = None
        return self._hold(self._refresh(rejected=rejected))

    def _hold(self, token: str) -> str:
        with self._hold_lock:
            if self._holders:
                self._held = (token, time.monotonic() + HOLD_SECONDS)
        return token

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
