"""Prometheus metrics. Under gunicorn set PROMETHEUS_MULTIPROC_DIR so /metrics sums workers."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

CALLBACKS = Counter(
    "wechat_callbacks_total", "Official-account callbacks by message type and outcome",
    ["type", "outcome"],
)
WECHAT_CALLS = Counter(
    "wechat_api_calls_total", "Calls to WeChat's server API by endpoint and errcode",
    ["endpoint", "errcode"],
)
WECHAT_CALL_SECONDS = Histogram(
    "wechat_api_call_seconds", "Duration of calls to WeChat's server API", ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TOKEN_REFRESHES = Counter(
    "wechat_token_refreshes_total", "Access tokens fetched from WeChat", ["app"],
)
# Transaction alerts (members/alerts.py). The feed's own counters belong to members/feed.py.
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
ALERT_CHANNEL_PAUSES = Counter(
    "txn_alert_channel_paused_total",
    "Alert channels paused until WeChat's daily quota resets (alert on any increase)",
    ["channel"],
)
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


class _QueueDepth:
    def __init__(self, depth: dict[str, int]) -> None:
        self.depth = depth

    def collect(self):
        family = GaugeMetricFamily("job_queue_depth", "Jobs waiting per queue", labels=["queue"])
        for name, count in self.depth.items():
            family.add_metric([name], count)
        yield family


def exposition(queue_depth: dict[str, int]) -> tuple[bytes, str]:
    """The metrics page: this process (or all workers in multiprocess mode) plus queue depth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    queues = CollectorRegistry()
    queues.register(_QueueDepth(queue_depth))
    return generate_latest(registry) + generate_latest(queues), CONTENT_TYPE_LATEST
