"""Deliver-once for callbacks: WeChat retries a push it got no answer for.

The first delivery claims the push's key (SET NX) and stores its reply when
done; a retry finds the key, waits briefly if the first is still running, and
answers with the stored reply, so no side effect repeats and the user sees one
answer. Keys outlive the callback's timestamp window, so an old push replayed
later is refused by its timestamp before it could miss the key.
"""

from __future__ import annotations

import time

from redis import Redis

_PENDING = b"\x00pending"


class ReplyCache:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def _key(dedupe_key: str) -> str:
        return f"wechat:push:{dedupe_key}"

    def claim(self, dedupe_key: str) -> bool:
        """True for the first delivery of this push."""
        return bool(self.redis.set(self._key(dedupe_key), _PENDING, nx=True, ex=self.ttl))

    def store(self, dedupe_key: str, reply: bytes) -> None:
        """Keep the reply (b'' for 'success') for the retries to come."""
        self.redis.set(self._key(dedupe_key), reply, ex=self.ttl)

    def release(self, dedupe_key: str) -> None:
        """The first delivery failed: let WeChat's retry do the work."""
        self.redis.delete(self._key(dedupe_key))

    def wait(self, dedupe_key: str, timeout: float) -> bytes | None:
        """The stored reply; None if the first delivery is still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.redis.get(self._key(dedupe_key))
            if value != _PENDING:
                return value or b""
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
