"""Metrics of the console."""

from __future__ import annotations

from prometheus_client import Counter

STAFF_LOGINS = Counter(
    "console_logins_total",
    "Console login attempts by outcome (success, failed, locked): a rise in failed or "
    "locked is someone guessing",
    ["outcome"],
)
