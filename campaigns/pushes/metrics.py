"""Metrics of marketing pushes: outcomes per channel, the rate held, quota pauses, recovery.

Per channel, never per push (a label per push would grow without bound); the push's
own counts are in its delivery rows (``plans.progress``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PUSH_SENT = Counter(
    "push_sent_total", "Push recipients WeChat accepted a message for, by channel",
    ["channel"],
)
PUSH_SKIPPED = Counter(
    "push_skipped_total",
    "Push recipients skipped, by channel and reason (unsubscribed, not_following, "
    "monthly_cap, outside_48h, window_used_up, no_grant, mass_needs_two)",
    ["channel", "reason"],
)
PUSH_FAILED = Counter(
    "push_failed_total",
    "Push recipients failed, by channel and WeChat's answer (errcode, http_N, network, "
    "interrupted)", ["channel", "errcode"],
)
PUSH_RATE_TOKENS = Counter(
    "push_rate_tokens_total",
    "Tokens taken from the pushes' shared buckets, one per recipient (rate() of it is the "
    "rate held), by channel; mass_calls is the account's mass-call bucket, one per call",
    ["channel"],
)
PUSH_RATE_WAIT = Histogram(
    "push_rate_wait_seconds", "How long a send waited for its tokens",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
PUSH_QUOTA_PAUSES = Counter(
    "push_quota_pauses_total",
    "Pushes paused by WeChat's quota (45009, 45028) or our quota guard, by channel and "
    "reason (quota_daily, quota_monthly)", ["channel", "reason"],
)
PUSH_RECOVERED = Counter(
    "push_recovered_total",
    "What the push sweep did: resumed (quota pause over), started (lost start job), "
    "chains (restarted), interrupted, released (claimed, never called), resubmitted "
    "(mass job asked again), finished", ["kind"],
)
