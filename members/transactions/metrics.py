"""Metrics of the core-banking feed."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TXN_FEED_ITEMS = Counter(
    "txn_feed_items_total", "Transactions from core banking by outcome "
    "(accepted, duplicate; unknown_card counts accepted ones of cards not in the registry)",
    ["outcome"],
)
TXN_FEED_REJECTED = Counter(
    "txn_feed_rejected_total", "Feed requests refused, by error code (signatures, payloads)",
    ["error"],
)
TXN_FEED_SECONDS = Histogram(
    "txn_feed_request_seconds", "Time to verify, validate and store one feed request",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
