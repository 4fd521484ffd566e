"""Alert channels paused by WeChat's daily quota (45009) until it resets.

WeChat counts a template-message quota per account per day, reset at midnight
Beijing time. Once it answers 45009 every further send that day fails, so the
channel is paused in Redis until then (plus a margin) and the deliveries stay
``queued`` in the database; the recovery sweep re-drives them once the pause
has lifted. Redis may forget a pause (restart): the next send then meets 45009
again and pauses anew, which costs one refused call.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app

from core.kv import get_redis
from core.metrics import ALERT_CHANNEL_PAUSES
from members.transactions.alerts.content import SHANGHAI

log = logging.getLogger(__name__)

CHANNELS = ("template", "subscribe")
_KEY = "alerts:paused:{}"


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Asia/Shanghai after ``now``, as an aware UTC datetime."""
    local = now.astimezone(SHANGHAI)
    midnight = datetime(local.year, local.month, local.day, tzinfo=SHANGHAI) + timedelta(days=1)
    return midnight.astimezone(UTC)


def pause(channel: str, errcode: int | None) -> datetime:
    """Stop sending on ``channel`` until WeChat's quota resets; raise the alarm once per pause."""
    margin = timedelta(seconds=current_app.config["ALERT_QUOTA_RESET_MARGIN"])
    until = next_quota_reset(datetime.now(UTC)) + margin
    first = get_redis().set(_KEY.format(channel), until.isoformat(), nx=True,
                            exat=int(until.timestamp()))
    if first:
        ALERT_CHANNEL_PAUSES.labels(channel=channel).inc()
        log.error("alert channel paused: WeChat's daily quota is used up",
                  extra={"channel": channel, "errcode": errcode, "until": until.isoformat()})
    return until


def paused_until(channel: str) -> datetime | None:
    """When ``channel`` resumes, or None when it is not paused."""
    value = get_redis().get(_KEY.format(channel))
    return datetime.fromisoformat(value.decode()) if value else None


def paused_channels() -> set[str]:
    values = get_redis().mget([_KEY.format(channel) for channel in CHANNELS])
    return {channel for channel, value in zip(CHANNELS, values, strict=True) if value}


def resume(channel: str) -> bool:
    """Lift a pause early (WeChat raised the quota); True when there was one."""
    return bool(get_redis().delete(_KEY.format(channel)))
