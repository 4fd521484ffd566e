"""Metrics of transaction alerts: sends, latency, lag, recovery (quota pauses: wechat/metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ALERT_SENDS = Counter(
    "txn_alert_sends_total",
    "Transaction alert sends by channel and WeChat's answer (errcode, http_N, network)",
    ["channel", "errcode"],
)
ALERT_LATENCY = Histogram(
    "txn_alert_latency_seconds",
    "From the transaction's time to WeChat accepting its alert", ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
ALERT_QUEUE_LAG = Histogram(
    "txn_alert_queue_lag_seconds", "From enqueueing a send job to a worker starting it",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
ALERT_RECOVERED = Counter(
    "txn_alert_recovered_total",
    "Deliveries the sweep re-drove: resend (stuck in sending), requeue (lost job), "
    "exhausted (gave up)", ["kind"],
)
ALERT_RESENDS = Counter(
    "txn_alert_resends_total",
    "Resends WeChat accepted, by whether they carried the resend marker (false: inside "
    "WeChat's client_msg_id window, where a copy of a message that got through is dropped)",
    ["marked"],
)
