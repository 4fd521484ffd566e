"""The quota guard: WeChat's reset clock, pauses, and the share marketing may never use."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from wechat.quota import ALERTS, MARKETING, QuotaGuard, next_reset

TEMPLATE = "message/template/send"
CONFIG = {"WECHAT_DAILY_QUOTAS": {TEMPLATE: 100},
          "WECHAT_MONTHLY_QUOTA_APIS": ["message/mass/send"],
          "WECHAT_QUOTA_RESERVED_FOR_ALERTS": 0.2, "WECHAT_QUOTA_RESET_MARGIN": 60}


@pytest.fixture
def redis():
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def guard(redis):
    return QuotaGuard(redis, "wxaccount1", CONFIG)


def test_the_daily_reset_is_midnight_in_beijing():
    assert next_reset(datetime(2026, 11, 21, 15, 59, tzinfo=UTC)) == \
        datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
    assert next_reset(datetime(2026, 11, 21, 16, 0, tzinfo=UTC)) == \
        datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def test_the_monthly_reset_is_the_first_of_the_month_in_beijing():
    assert next_reset(datetime(2026, 12, 31, 15, 59, tzinfo=UTC), monthly=True) == \
        datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert next_reset(datetime(2026, 12, 31, 16, 0, tzinfo=UTC), monthly=True) == \
        datetime(2027, 1, 31, 16, 0, tzinfo=UTC)


def test_a_pause_lasts_until_the_reset_and_can_be_lifted(guard):
    until = guard.pause(TEMPLATE, 45009)
    assert until == next_reset(datetime.now(UTC)) + timedelta(seconds=60)
    assert guard.paused_until(TEMPLATE) == until
    assert guard.paused([TEMPLATE, "message/custom/send"]) == {TEMPLATE}
    assert guard.pause(TEMPLATE, 45009) == until  # a second refusal keeps the same pause
    assert guard.resume(TEMPLATE) and not guard.resume(TEMPLATE)
    assert guard.paused_until(TEMPLATE) is None


def test_a_mass_send_pause_lasts_the_month(guard):
    until = guard.pause("message/mass/send", 45028)
    assert until == next_reset(datetime.now(UTC), monthly=True) + timedelta(seconds=60)


def test_marketing_never_spends_the_share_kept_for_alerts(guard):
    assert guard.take(TEMPLATE, 50, MARKETING) == 50
    assert guard.take(TEMPLATE, 50, MARKETING) == 30  # 80 of 100: the rest is the alerts'
    assert guard.take(TEMPLATE, 1, MARKETING) == 0
    guard.count(TEMPLATE, 15)  # the day's payment alerts still go out
    assert guard.take(TEMPLATE, 10, ALERTS) == 5
    assert guard.used(TEMPLATE) == 100


def test_alerts_sent_first_leave_marketing_only_what_is_above_the_share(guard):
    guard.count(TEMPLATE, 70)
    assert guard.take(TEMPLATE, 100, MARKETING) == 10


def test_accounts_and_unconfigured_apis_are_apart(redis, guard):
    other = QuotaGuard(redis, "wxaccount2", CONFIG)
    guard.count(TEMPLATE, 100)
    assert other.take(TEMPLATE, 10) == 10
    assert guard.take("message/custom/send", 10_000) == 10_000  # WeChat alone limits it


def test_concurrent_takes_never_exceed_the_limit(guard):
    granted = []

    def take():
        for _ in range(20):
            granted.append(guard.take(TEMPLATE, 1, MARKETING))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 80


def test_an_unknown_priority_is_a_bug(guard):
    with pytest.raises(ValueError, match="priority"):
        guard.take(TEMPLATE, 1, "vip")
