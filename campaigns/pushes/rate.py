"""One rate in Redis for all workers together: a token bucket per push, and one for the
account's mass-send calls.

A bucket holds at most one second's worth of tokens (``capacity`` = the rate), so no
burst goes above it, and refills continuously; a send takes its tokens first. The bucket
lives in one Redis hash updated by a Lua script, atomic across processes, timed by
Redis's own clock (``TIME``) so that workers on several hosts with drifting clocks still
share one rate. The ``limits`` library (used for the login limits) offers fixed and
moving windows but no token bucket, and a moving window of 300 per second lets all 300
go in the first millisecond of each second; hence this script.

Tokens not there yet are taken in advance: the bucket goes below zero and the taker
waits until they are due, so every take is one Redis call, and takers waiting together
queue in the order they came rather than poll (eight sending threads polling for their
batch's tokens took about nine calls a batch). Nobody is served before the tokens taken
ahead of it are due, so the rate holds as before, and a burst stays within one second's
worth plus what sending threads hold in hand (at most ``TAKE_SECONDS`` of the rate each,
``take_size``). A taker stopped while it waits (a pause), or whose tokens come only
after the end it gave (its slice's), gives them back.

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

TAKE_SECONDS = 0.05  # the most of a push's rate one sending thread takes at once (take_size)

# KEYS[1] the bucket; ARGV: rate per second, capacity, tokens wanted (negative: given back).
# Takes them, ahead of time if need be, and returns the seconds until they are due ("0" when
# they were there; a string: Lua numbers come back from Redis truncated to integers).
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, capacity, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = capacity, now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate, capacity + wanted) - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 60)
return tostring(math.max(0, -tokens) / rate)
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

    def take(self, wanted: int = 1) -> float:
        """Take ``wanted`` tokens, in advance if they are not there yet: the seconds until
        they are due (0.0: now). ``wanted`` is at most the capacity (a bucket never holds
        more)."""
        if wanted > self.capacity:
            raise ValueError(f"{wanted} tokens wanted of a bucket of {self.capacity:g}")
        return float(self._take(keys=[self.key], args=[self.rate, self.capacity, wanted]))

    def give_back(self, count: int) -> None:
        """``count`` tokens taken and not used after all; the bucket still holds at most
        its capacity."""
        self._take(keys=[self.key], args=[self.rate, self.capacity, -count])

    def acquire(self, wanted: int = 1, stop: threading.Event | None = None,
                until: float | None = None) -> bool:
        """Take ``wanted`` tokens and wait until they are due; False when ``stop`` was set
        first (a pause must not wait for the rate) or they are not due by ``until`` (a
        ``time.monotonic()`` moment: the end of the taker's slice), the tokens then given
        back."""
        started = time.monotonic()
        wait = self.take(wanted)
        if wait > 0:
            pause = wait if until is None else min(wait, max(0.0, until - started))
            given_up = pause < wait  # due after ``until``: waited for only until then
            if stop is None:
                time.sleep(pause)
            elif stop.wait(pause):
                given_up = True
            if given_up:
                self.give_back(wanted)
                return False
        PUSH_RATE_TOKENS.labels(channel=self.channel).inc(wanted)
        PUSH_RATE_WAIT.observe(time.monotonic() - started)
        return True


def push_bucket(redis: Redis, push_id: int, rate_per_s: int, channel: str,
                largest_take: int = 1) -> TokenBucket:
    """The bucket every worker sending ``push_id`` shares: ``rate_per_s`` recipients a
    second; ``largest_take`` is the most one send takes at once (a mass call's openids)."""
    return TokenBucket(redis, f"pushes:rate:{push_id}", rate_per_s, channel, largest_take)


def take_size(rate_per_s: int, batch: int) -> int:
    """Tokens a sending thread takes at once for its ``batch`` of recipients: at most
    ``TAKE_SECONDS`` of the rate, at least one. Tokens taken together are due together, so
    a send never waits for a later recipient's token by more than that, and a thread
    stopped while it waits (its slice's end) leaves a gap of at most that in the rate; at
    300/s a batch of 12 takes its tokens in one call."""
    return max(1, min(batch, int(rate_per_s * TAKE_SECONDS)))


def mass_call_size(rate_per_s: int, chunk: int) -> int:
    """Openids per mass call of a push: at most one second's worth of its rate and at most
    ``chunk`` (WeChat: 2 to 10,000), never fewer than WeChat's 2."""
    return max(messages.MASS_MIN_OPENIDS, min(chunk, messages.MASS_MAX_OPENIDS, rate_per_s))


def mass_call_bucket(redis: Redis, calls_per_minute: int) -> TokenBucket:
    """The account's mass-send calls, across all pushes (WeChat: 60 a minute)."""
    return TokenBucket(redis, "pushes:rate:mass-calls", calls_per_minute / 60, "mass_calls")
