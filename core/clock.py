"""The bank's clock: Beijing time, in which people read every time we show them, campaigns
open and close, quiet hours fall, and WeChat resets its daily quotas. Stored times are UTC."""

from __future__ import annotations

from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
