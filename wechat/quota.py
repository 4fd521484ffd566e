"""One quota guard per WeChat account and API: WeChat's reset clock, pauses, and the share
of each daily quota that marketing may never use.

WeChat counts most send APIs per account per day and resets the counters at midnight
Beijing time (mass sends: per calendar month). Once it answers that a quota is used up
(45009, or 45028 for mass sends) every further call that period fails, so the API is
paused here until the reset (plus ``WECHAT_QUOTA_RESET_MARGIN``) and callers keep their
work in the database until then. Redis may forget a pause (a restart): the next call
then meets the refusal again and pauses anew, which costs one refused call.

Transaction alerts come first. Every send is counted against the API's daily quota in
``WECHAT_DAILY_QUOTAS``; alerts (``ALERTS``) may use all of it, marketing sends
(``MARKETING``) only what is left above the ``WECHAT_QUOTA_RESERVED_FOR_ALERTS`` share,
so a blast can never spend what the day's payment alerts need. Marketing asks before it
sends (``take``, atomic across processes); alerts only count (``count``), which keeps
their hot path at one Redis command per batch. The counts are ours; WeChat's counter is
the truth, and a 45009 pauses everybody whatever ours say.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from core.clock import SHANGHAI
from wechat.metrics import QUOTA_PAUSES, QUOTA_REFUSED

log = logging.getLogger(__name__)

ALERTS = "alerts"
MARKETING = "marketing"
PRIORITIES = (ALERTS, MARKETING)

# used + n within the limit: count all n; else as many as fit (none below zero). Returns
# how many were counted. KEYS[1] the counter, ARGV: n, limit, expiry (unix seconds).
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local room = tonumber(ARGV[2]) - used
local granted = math.max(0, math.min(tonumber(ARGV[1]), room))
if granted > 0 then
  redis.call('INCRBY', KEYS[1], granted)
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
return granted
"""


def next_reset(now: datetime, monthly: bool = False) -> datetime:
    """The next midnight in Asia/Shanghai after ``now`` (of the next month's first day when
    ``monthly``), as an aware UTC datetime."""
    local = now.astimezone(SHANGHAI)
    if monthly:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        reset = datetime(year, month, 1, tzinfo=SHANGHAI)
    else:
        reset = datetime(local.year, local.month, local.day, tzinfo=SHANGHAI) + timedelta(days=1)
    return reset.astimezone(UTC)


class QuotaGuard:
    """The quotas of one WeChat account (an app id), per API (``message/template/send``...)."""

    def __init__(self, redis: Redis, account: str, config: Mapping[str, Any]) -> None:
        self.redis = redis
        self.account = account
        self.daily: Mapping[str, int] = config["WECHAT_DAILY_QUOTAS"]
        self.monthly: frozenset[str] = frozenset(config["WECHAT_MONTHLY_QUOTA_APIS"])
        self.reserved: float = config["WECHAT_QUOTA_RESERVED_FOR_ALERTS"]
        self.margin = timedelta(seconds=config["WECHAT_QUOTA_RESET_MARGIN"])
        self._take = redis.register_script(_TAKE)

    def _key(self, kind: str, api: str, suffix: str = "") -> str:
        return f"wechat:quota:{kind}:{self.account}:{api}{suffix}"

    # -- pauses (WeChat said the quota is used up) ----------------------------------------------

    def pause(self, api: str, errcode: int | None) -> datetime:
        """Stop calling ``api`` until WeChat resets its quota; raise the alarm once per pause."""
        until = next_reset(datetime.now(UTC), monthly=api in self.monthly) + self.margin
        first = self.redis.set(self._key("paused", api), until.isoformat(), nx=True,
                               exat=int(until.timestamp()))
        if first:
            QUOTA_PAUSES.labels(api=api).inc()
            log.error("WeChat quota used up: API paused until it resets",
                      extra={"account": self.account, "api": api, "errcode": errcode,
                             "until": until.isoformat()})
        return until

    def paused_until(self, api: str) -> datetime | None:
        """When ``api`` resumes, or None when it is not paused."""
        value = self.redis.get(self._key("paused", api))
        return datetime.fromisoformat(value.decode()) if value else None

    def paused(self, apis: Iterable[str]) -> set[str]:
        """Those of ``apis`` paused now (one round trip)."""
        names = list(apis)
        values = self.redis.mget([self._key("paused", api) for api in names])
        return {api for api, value in zip(names, values, strict=True) if value}

    def resume(self, api: str) -> bool:
        """Lift a pause early (WeChat raised the quota); True when there was one."""
        return bool(self.redis.delete(self._key("paused", api)))

    # -- counting against the daily quota -------------------------------------------------------

    def _counter(self, api: str, now: datetime) -> tuple[str, int]:
        day = now.astimezone(SHANGHAI).strftime("%Y%m%d")
        return self._key("used", api, f":{day}"), int(next_reset(now).timestamp()) + 3600

    def count(self, api: str, sent: int) -> None:
        """Count ``sent`` messages that went out (alerts: counted, never refused)."""
        if sent <= 0 or api not in self.daily:
            return
        key, expiry = self._counter(api, datetime.now(UTC))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, sent)
            pipe.expireat(key, expiry)
            pipe.execute()

    def take(self, api: str, wanted: int, priority: str = MARKETING) -> int:
        """How many of ``wanted`` sends of ``priority`` may go now; those are counted.

        Marketing stops at the quota less the share reserved for alerts; alerts may use it
        all. An API without a configured daily quota is limited only by WeChat's answers.
        """
        if priority not in PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}")
        if api not in self.daily:
            return wanted
        limit = self.daily[api]
        if priority == MARKETING:
            limit = int(limit * (1 - self.reserved))
        key, expiry = self._counter(api, datetime.now(UTC))
        granted = int(self._take(keys=[key], args=[wanted, limit, expiry]))
        if granted < wanted:
            QUOTA_REFUSED.labels(api=api, priority=priority).inc(wanted - granted)
        return granted

    def used(self, api: str) -> int:
        """Sends counted against ``api`` today (Beijing)."""
        key, _ = self._counter(api, datetime.now(UTC))
        return int(self.redis.get(key) or 0)
