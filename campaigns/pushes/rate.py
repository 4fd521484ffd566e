"""One rate in Redis for all workers together: a token bucket per push, and one for the
account's mass-send calls.

A bucket holds at most one second's worth of tokens (``capacity`` = the rate), so no
burst goes above it, and refills continuously; a send takes its tokens first. The bucket
lives in one Redis hash updated by a Lua script, atomic across processes, timed by
Redis's own clock (``TIME``) so that workers on several hosts with drifting clocks still
share one rate. The ``limits`` library (used for the login limits) offers fixed and
moving windows but no token bucket, and a moving window of 300 per second lets all 300
go in the first millisecond of each second; hence this script.

What a token is worth (``sending``): one recipient, on every channel, so ``rate_per_s``
is recipients a second whatever the channel. A customer-service message or subscription
notice takes one token of its push's bucket. A mass call takes one token per openid it
carries, and carries at most ``min(10,000, max(2, rate_per_s))`` of them, so that one
call is never more than one second's worth; it also takes one token of the account's
mass-call bucket (WeChat allows 60 mass calls a minute), which bounds a mass push from
above at about 60 × 10,000 recipients a minute. WeChat refuses a mass call of fewer than
2 openids, so a mass push's bucket admits at least 2 at once: at ``rate_per_s`` 1 it
sends a pair every 2 s, the one case where a burst exceeds one second's worth (1
recipient), and the mean rate still holds.

Redis forgets a bucket on a flush: it comes back full, one second's worth at most.
Embedded mode runs the same script on fakeredis (Lua through lupa).
"""

from __future__ import annotations

import threading
import time

from redis import Redis

from campaigns.pushes.metrics import PUSH_RATE_TOKENS, PUSH_RATE_WAIT
from wechat import messages

# KEYS[1] the bucket; ARGV: rate per second, capacity, tokens wanted. Takes them and
# returns "0", or takes nothing and returns the seconds until they will be there (a
# string: Lua numbers come back from Redis truncated to integers).
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, capacity, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = capacity, now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
else
  wait = (wanted - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""

class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` held at once: one second's worth
    (``rate``, at least 1) unless a single take must be larger."""

    def __init__(self, redis: Redis, key: str, rate: float, channel: str,
                 capacity: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("a rate is positive")
        self.redis = redis
        self.key = key
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate, capacity or 0.0)
        self.channel = channel
        self._take = redis.register_script(_TAKE)  # a hash only: EVALSHA, loaded on first use

    def try_take(self, wanted: int = 1) -> float:
        """Take ``wanted`` tokens now (0.0), or take none and say how many seconds until
        they will be there. ``wanted`` is at most the capacity (more would never come)."""
        if wanted > self.capacity:
            raise ValueError(f"{wanted} tokens wanted of a bucket of {self.capacity:g}")
        wait = float(self._take(keys=[self.key], args=[self.rate, self.capacity, wanted]))
        if wait == 0:
            PUSH_RATE_TOKENS.labels(channel=self.channel).inc(wanted)
        return wait

    def acquire(self, wanted: int = 1, stop: threading.Event | None = None) -> bool:
        """Wait for ``wanted`` tokens and take them; False when ``stop`` was set first
        (a pause must not wait for the rate)."""
        started = time.monotonic()
        while True:
            wait = self.try_take(wanted)
            if wait == 0:
                PUSH_RATE_WAIT.observe(time.monotonic() - started)
                return True
            # Sleep until the tokens should be there, waking for a stop at least every 0.1 s;
            # the next take re-checks, as other workers may have taken them meanwhile.
            if stop is not None:
                if stop.wait(min(wait, 0.1)):
                    return False
            else:
                time.sleep(min(wait, 0.1))


def push_bucket(redis: Redis, push_id: int, rate_per_s: int, channel: str,
                largest_take: int = 1) -> TokenBucket:
    """The bucket every worker sending ``push_id`` shares: ``rate_per_s`` recipients a
    second; ``largest_take`` is the most one send takes at once (a mass call's openids)."""
    return TokenBucket(redis, f"pushes:rate:{push_id}", rate_per_s, channel, largest_take)


def mass_call_size(rate_per_s: int, chunk: int) -> int:
    """Openids per mass call of a push: at most one second's worth of its rate and at most
    ``chunk`` (WeChat: 2 to 10,000), never fewer than WeChat's 2."""
    return max(messages.MASS_MIN_OPENIDS, min(chunk, messages.MASS_MAX_OPENIDS, rate_per_s))


def mass_call_bucket(redis: Redis, calls_per_minute: int) -> TokenBucket:
    """The account's mass-send calls, across all pushes (WeChat: 60 a minute)."""
    return TokenBucket(redis, "pushes:rate:mass-calls", calls_per_minute / 60, "mass_calls")
