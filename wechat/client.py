"""wechatpy's client, made safe to run in many processes against one account.

- Tokens come from the stable-token API through the shared TokenStore; the
  client never calls ``/cgi-bin/token`` and never sends ``force_refresh``.
- A token errcode (40001, 40014, 41001, 42001) refreshes the token once per
  token generation and retries once; wechatpy alone would recurse and burn the
  daily token quota.
- -1, HTTP 5xx, timeouts and connection errors retry with exponential backoff
  and full jitter; every other errcode raises ``WeChatAPIError``.
- Every call is logged and counted by endpoint and errcode, never with the
  token or secret (they travel in the query string, which is not logged).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from redis import Redis
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from wechat.errors import (
    TOKEN_ERRCODES,
    TRANSIENT_ERRCODES,
    WeChatAPIError,
    WeChatUnavailable,
    api_error,
    outcome_label,
)
from wechat.metrics import WECHAT_CALL_SECONDS, WECHAT_CALLS
from wechat.token_store import TokenStore
from wechat.transport import WeChatHTTP

log = logging.getLogger(__name__)
T = TypeVar("T")

STABLE_TOKEN_URL = "https://api.weixin.qq.com/cgi-bin/stable_token"  # noqa: S105 - a URL
# Calls authenticated by appid + secret (or a web token) take no global access token.
_NO_ACCESS_TOKEN = ("sns/",)


class _Transient(Exception):
    """A failure worth retrying: -1, HTTP 5xx, timeout, connection error."""

    def __init__(self, error: WeChatAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class WeChatAPIClient(WeChatClient):
    """A wechatpy ``WeChatClient`` with shared tokens, bounded retries and metrics."""

    def __init__(self, appid: str, secret: str, *, redis: Redis, http: WeChatHTTP,
                 config: dict[str, Any]) -> None:
        super().__init__(appid, secret, timeout=config["WECHAT_HTTP_TIMEOUT"], auto_retry=False)
        self._http = http
        self.retry_attempts = config["WECHAT_RETRY_ATTEMPTS"]
        self.retry_base_delay = config["WECHAT_RETRY_BASE_DELAY"]
        self.tokens = TokenStore(
            redis, appid, self._fetch_stable_token,
            margin=config["WECHAT_TOKEN_MARGIN"],
            lock_timeout=config["WECHAT_TOKEN_LOCK_TIMEOUT"],
        )

    # -- tokens ---------------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        return self.tokens.get()

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's hook; here it only ever goes through the shared store."""
        return {"access_token": self.tokens.get()}

    def _fetch_stable_token(self) -> tuple[str, int]:
        body = {"grant_type": "client_credential", "appid": self.appid,
                "secret": self.secret, "force_refresh": False}

        def post() -> Any:
            response = self._http.post(STABLE_TOKEN_URL, json=body, timeout=self.timeout)
            return self._check(response, "cgi-bin/stable_token")

        result = self._with_retries("cgi-bin/stable_token", post)
        return result["access_token"], int(result.get("expires_in", 7200))

    # -- requests -------------------------------------------------------------------------

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        endpoint = _endpoint_name(url_or_endpoint, kwargs.get("api_base_url", self.API_BASE_URL))
        needs_token = not endpoint.startswith(_NO_ACCESS_TOKEN)
        refreshed = False
        while True:
            params = dict(kwargs.get("params") or {})
            token = self.tokens.get() if needs_token else None
            if token:
                params["access_token"] = token
            # wechatpy adds a token to any dict of params without one; a list of pairs it leaves be.
            call = {**kwargs, "params": params if token else list(params.items())}
            try:
                return self._with_retries(
                    endpoint, lambda call=call: self._send(method, url_or_endpoint, call, endpoint)
                )
            except WeChatAPIError as exc:
                if exc.errcode in TOKEN_ERRCODES and token and not refreshed:
                    refreshed = True
                    self.tokens.replace(token)
                    continue
                raise

    def _send(self, method: str, url_or_endpoint: str, call: dict[str, Any],
              endpoint: str) -> Any:
        try:
            return super()._request(method, url_or_endpoint, **call)
        except WeChatClientException as exc:
            status = exc.response.status_code if exc.response is not None else None
            raise _classify(api_error(exc.errcode, exc.errmsg, endpoint, status)) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Transient(WeChatAPIError(None, type(exc).__name__, endpoint)) from exc

    def _check(self, response: requests.Response, endpoint: str) -> dict[str, Any]:
        """Decode a response the way wechatpy does, raising our typed errors."""
        if response.status_code >= 400:
            raise _classify(WeChatAPIError(None, response.reason, endpoint, response.status_code))
        result = response.json()
        errcode = int(result.get("errcode", 0))
        if errcode:
            raise _classify(api_error(errcode, result.get("errmsg"), endpoint))
        return result

    def _with_retries(self, endpoint: str, attempt: Callable[[], T]) -> T:
        for number in range(1, self.retry_attempts + 1):
            started = time.perf_counter()
            try:
                result = attempt()
            except _Transient as transient:
                _observe(endpoint, transient.error, started)
                if number == self.retry_attempts:
                    error = transient.error
                    raise WeChatUnavailable(
                        error.errcode, error.errmsg, endpoint, error.http_status
                    ) from transient
                # Full jitter: spread retries of many workers instead of synchronising them.
                time.sleep(random.uniform(0, self.retry_base_delay * 2 ** (number - 1)))
                continue
            except WeChatAPIError as error:
                _observe(endpoint, error, started)
                raise
            _observe(endpoint, None, started)
            return result
        raise AssertionError("unreachable: retry_attempts must be at least 1")


def _classify(error: WeChatAPIError) -> Exception:
    transient = error.errcode in TRANSIENT_ERRCODES or (
        error.errcode is None and (error.http_status is None or error.http_status >= 500)
    )
    return _Transient(error) if transient else error


def _endpoint_name(url_or_endpoint: str, base: str) -> str:
    """The URL path WeChat serves, e.g. 'cgi-bin/message/template/send', for logs and metrics."""
    if not url_or_endpoint.startswith(("http://", "https://")):
        url_or_endpoint = base + url_or_endpoint
    return urlsplit(url_or_endpoint).path.lstrip("/")


def _observe(endpoint: str, error: WeChatAPIError | None, started: float) -> None:
    elapsed = time.perf_counter() - started
    code = outcome_label(error)
    WECHAT_CALLS.labels(endpoint=endpoint, errcode=code).inc()
    WECHAT_CALL_SECONDS.labels(endpoint=endpoint).observe(elapsed)
    log.info(
        "wechat call",
        extra={"endpoint": endpoint, "errcode": code, "duration_ms": round(elapsed * 1000, 1)},
    )
