"""Metrics of the WeChat side: callbacks, server API calls, token refreshes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
QUOTA_PAUSES = Counter(
    "wechat_quota_paused_total",
    "WeChat APIs paused until their quota resets (45009, 45028): alert on any increase",
    ["api"],
)
QUOTA_REFUSED = Counter(
    "wechat_quota_refused_total",
    "Sends held back to keep a quota's reserved share (marketing) or at the quota (alerts)",
    ["api", "priority"],
)
