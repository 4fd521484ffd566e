"""The chart of redemptions per day: every day of the campaign so far, whole-number ticks, and
an SVG that holds no script."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from campaigns.benefits import chart
from campaigns.benefits.models import Campaign

# 2026-12-01 00:00 to 2026-12-10 23:59:59 in Asia/Shanghai.
CAMPAIGN = Campaign(starts_at=datetime(2026, 11, 30, 16, tzinfo=UTC),
                    ends_at=datetime(2026, 12, 10, 15, 59, 59, tzinfo=UTC))


def test_the_days_so_far_with_the_days_without_redemptions():
    per_day = [(date(2026, 12, 1), 3), (date(2026, 12, 3), 1)]
    # 12-04 01:00 in Shanghai is still 12-03 in UTC: days are Shanghai's.
    shown = chart.days(CAMPAIGN, per_day, now=datetime(2026, 12, 3, 17, tzinfo=UTC))
    assert shown == [(date(2026, 12, 1), 3), (date(2026, 12, 2), 0), (date(2026, 12, 3), 1),
                     (date(2026, 12, 4), 0)]


def test_an_ended_campaign_stops_at_its_last_day_and_a_future_one_has_none():
    ended = chart.days(CAMPAIGN, [], now=datetime(2027, 1, 1, tzinfo=UTC))
    assert (ended[0][0], ended[-1][0], len(ended)) == (date(2026, 12, 1), date(2026, 12, 10), 10)
    assert chart.days(CAMPAIGN, [], now=datetime(2026, 11, 1, tzinfo=UTC)) == []


def test_ticks_are_whole_numbers_with_room_above_the_tallest_bar():
    assert chart.count_labels(0) == [0, 1]
    assert chart.count_labels(3) == [0, 1, 2, 3, 4]
    assert chart.count_labels(7) == [0, 2, 4, 6, 8]
    assert chart.count_labels(1234) == [0, 500, 1000, 1500]


def test_the_svg_has_the_days_and_no_script():
    per_day = [(date(2026, 12, 1), 3), (date(2026, 12, 2), 0), (date(2026, 12, 3), 12)]
    svg = chart.svg(per_day)
    assert svg.startswith("<svg") and 'width="960"' in svg and 'height="300"' in svg
    assert "<script" not in svg and "<?xml" not in svg
    for label in ("12-01", "12-02", "12-03"):
        assert label in svg


def test_a_long_campaign_labels_every_few_days_in_full():
    first = date(2026, 1, 1)
    per_day = [(date.fromordinal(first.toordinal() + n), n % 5) for n in range(120)]
    labels = re.findall(r'class="major">(\d\d-\d\d)</text>', chart.svg(per_day))
    assert labels[0] == "01-01" and 8 <= len(labels) <= chart._MAX_LABELS
