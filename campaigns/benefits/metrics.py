"""Metrics of benefit redemptions."""

from __future__ import annotations

from prometheus_client import Counter

REDEMPTIONS = Counter(
    "benefit_redemptions_total", "Redemption requests by outcome: redeemed, replayed (a "
    "request_id seen before), or the refusal's error code (out_of_stock, limit_reached...)",
    ["outcome"],
)
