"""Typed errors for WeChat's server API, and which errcodes mean what."""

from __future__ import annotations

from wechatpy.exceptions import WeChatClientException

# The token is stale or wrong: refresh once per token generation, then retry once.
TOKEN_ERRCODES = frozenset({40001, 40014, 41001, 42001})
# Transient on WeChat's side: retry with backoff and jitter.
TRANSIENT_ERRCODES = frozenset({-1})


class WeChatAPIError(WeChatClientException):
    """WeChat answered ``errcode`` (or failed at the HTTP level, errcode None)."""

    def __init__(self, errcode: int | None, errmsg: str | None, endpoint: str,
                 http_status: int | None = None) -> None:
        super().__init__(errcode, errmsg)
        self.endpoint = endpoint
        self.http_status = http_status

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.errcode is None else f"errcode {self.errcode}"
        return f"WeChat {self.endpoint}: {where}: {self.errmsg}"


def outcome_label(error: WeChatAPIError | None) -> str:
    """A metric label for an answer: "0", the errcode, "http_<status>" or "network"."""
    if error is None:
        return "0"
    if error.errcode is not None:
        return str(error.errcode)
    return f"http_{error.http_status}" if error.http_status else "network"


class WeChatUnavailable(WeChatAPIError):
    """Retries exhausted on -1, HTTP 5xx or timeouts; the call may be retried later."""
