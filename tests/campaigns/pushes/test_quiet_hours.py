"""Quiet hours in Asia/Shanghai, across midnight; a push sends nothing inside them and its
batch is queued again for their end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns.pushes import chains, quiet_hours, sending, tasks
from campaigns.pushes.quiet_hours import quiet_until
from core.clock import SHANGHAI
from tests.campaigns.pushes.engine import (
    add_followers,
    make_push,
    openids,
    outcomes,
    start,
)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(("moment", "end"), [
    (_at(1, 21, 0), _at(2, 8)),  # from is inside
    (_at(1, 23, 59), _at(2, 8)),
    (_at(2, 0, 0), _at(2, 8)),  # after midnight: still last night's span
    (_at(2, 7, 59), _at(2, 8)),
    (_at(2, 8, 0), None),  # to is outside
    (_at(2, 12, 0), None),
    (_at(2, 20, 59), None),
])
def test_a_span_wrapping_midnight(moment, end):
    got = quiet_until("21:00", "08:00", moment.astimezone(UTC))
    assert got == (end.astimezone(UTC) if end else None)


def test_a_span_within_one_day_and_no_span():
    assert quiet_until("12:00", "14:00", _at(1, 13).astimezone(UTC)) == _at(1, 14)
    assert quiet_until("12:00", "14:00", _at(1, 14)) is None
    assert quiet_until(None, None, _at(1, 3)) is None


def test_shanghai_time_whatever_the_moments_zone():
    # 13:30 UTC is 21:30 in Shanghai.
    assert quiet_hours.is_quiet("21:00", "08:00", datetime(2026, 12, 1, 13, 30, tzinfo=UTC))


def test_nothing_is_sent_in_quiet_hours_and_the_batch_waits_for_their_end(
        app, sim, run_jobs, monkeypatch):
    ids = openids("Quiet", 3)
    add_followers(app, sim, ids, messaged_ago=timedelta(hours=1))
    late_evening = _at(1, 22).astimezone(UTC)
    monkeypatch.setattr(sending, "utcnow", lambda: late_evening)
    handed: list = []
    monkeypatch.setattr(chains, "_enqueue", lambda *args: handed.append(args))
    push_id = make_push(app, "custom", ids, quiet=("21:00", "08:00"))
    start(app, push_id, run_jobs)  # its chains' first jobs are caught in ``handed``
    first = handed.pop(0)
    with app.app_context():
        tasks.send_batch(*first[:3])
    assert outcomes(app, push_id) == {("pending", None): 3}
    # That job sent nothing and queued the chain's next for 08:00 Shanghai.
    assert handed[-1][:2] == first[:2] and handed[-1][3] == _at(2, 8).astimezone(UTC)
