"""Quiet hours: a push's daily span of Asia/Shanghai time in which nothing is sent.

``from`` and ``to`` are "HH:MM"; ``from`` later than ``to`` wraps midnight (21:00-08:00 is
quiet from 21:00 until 08:00 the next morning). ``from`` is inside the span, ``to`` is not.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from core.clock import SHANGHAI


def _clock(hh_mm: str) -> time:
    hours, minutes = hh_mm.split(":")
    return time(int(hours), int(minutes))


def quiet_until(quiet_from: str | None, quiet_to: str | None, moment: datetime) -> datetime | None:
    """When the quiet span containing ``moment`` ends (aware UTC), or None when ``moment``
    is not inside one (or the push has no quiet hours)."""
    if not quiet_from or not quiet_to or quiet_from == quiet_to:
        return None
    start, end = _clock(quiet_from), _clock(quiet_to)
    local = moment.astimezone(SHANGHAI)
    now = local.time()
    if start < end:
        quiet = start <= now < end
        ends_on = local.date()
    else:  # wraps midnight: quiet from ``start`` tonight, or still quiet from last night
        quiet = now >= start or now < end
        ends_on = local.date() + timedelta(days=1) if now >= start else local.date()
    if not quiet:
        return None
    return datetime.combine(ends_on, end, tzinfo=SHANGHAI).astimezone(UTC)


def is_quiet(quiet_from: str | None, quiet_to: str | None, moment: datetime) -> bool:
    """Whether ``moment`` falls inside the quiet hours."""
    return quiet_until(quiet_from, quiet_to, moment) is not None
