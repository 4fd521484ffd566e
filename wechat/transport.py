"""HTTP transport for every WeChat call: host redirection, a default timeout, urllib3.

wechatpy hard-codes WeChat's hosts in several places (the token URL, the wxa
API object, OAuth). Rather than chase each one, the clients get a transport
that rewrites the WeChat hosts to the configured bases, so production (no
rewrite) and the simulator run the very same client code.

The transport stands where wechatpy expects a ``requests.Session``
(``request()`` and ``post()``), answers with ``requests.Response`` objects and
raises requests' exceptions, but sends through urllib3's connection pool
directly. requests' per-call machinery (prepared requests, cookie jars, hooks,
environment lookups) cost a third of each call's CPU, and WeChat calls are the
hot path of logins and transaction alerts (bench/login.py, bench/alerts.py).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

WECHAT_HOSTS = {
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECHAT_MP_BASE": "https://mp.weixin.qq.com",
    "WECHAT_OPEN_BASE": "https://open.weixin.qq.com",
}
POOL_SIZE = 64  # connections kept per host: one per concurrent sending thread at least


class WeChatHTTP:
    """A minimal ``requests.Session`` stand-in over one urllib3 pool manager.

    Only what wechatpy's JSON APIs and this project use: ``params`` (dict or
    pairs), ``data`` (bytes, str, or a form dict), ``json``, ``headers`` and
    ``timeout``; anything else (``files`` for media uploads) is a TypeError,
    not silently dropped. No cookies, no redirects, no retries: the client
    retries itself, per WeChat's error codes.
    """

    def __init__(self, rewrites: Mapping[str, str], timeout: float, proxy: str = "") -> None:
        self.rewrites = {src: dst.rstrip("/") for src, dst in rewrites.items() if src != dst}
        self.timeout = timeout
        options: dict[str, Any] = {"maxsize": POOL_SIZE, "retries": False}
        self.pool = urllib3.ProxyManager(proxy, **options) if proxy \
            else urllib3.PoolManager(**options)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def request(self, method: str, url: str, *, params: Any = None, data: Any = None,
                json: Any = None, headers: Mapping[str, str] | None = None,
                timeout: float | None = None) -> requests.Response:
        url = self._rewrite(_with_query(url, params))
        body, body_headers = _body(data, json)
        headers = {**body_headers, **(headers or {})}
        try:
            raw = self.pool.request(method, url, body=body, headers=headers,
                                    timeout=timeout or self.timeout)
        except NewConnectionError as exc:  # a subclass of urllib3's timeout: refused, unreachable
            raise requests.ConnectionError(str(exc)) from exc
        except Urllib3Timeout as exc:
            raise requests.Timeout(str(exc)) from exc
        except Urllib3Error as exc:
            raise requests.ConnectionError(str(exc)) from exc
        return _response(raw, url)

    def _rewrite(self, url: str) -> str:
        for src, dst in self.rewrites.items():
            if url.startswith(src + "/"):
                return dst + url[len(src):]
        return url


def _with_query(url: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> str:
    if not params:
        return url
    pairs = params.items() if isinstance(params, Mapping) else params
    query = urlencode([(key, value) for key, value in pairs if value is not None])
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


def _body(data: Any, json: Any) -> tuple[bytes | None, dict[str, str]]:
    """(body, headers) as requests would send ``data`` or ``json``."""
    if json is not None:
        return jsonlib.dumps(json).encode(), {"Content-Type": "application/json"}
    if isinstance(data, Mapping):
        return (urlencode(list(data.items())).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
    if isinstance(data, str):
        return data.encode(), {}
    return data, {}


def _response(raw: urllib3.BaseHTTPResponse, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = raw.status
    response.reason = raw.reason or ""
    response.headers = CaseInsensitiveDict(raw.headers)
    response._content = raw.data
    response.url = url
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


def build_session(config: Mapping[str, Any]) -> WeChatHTTP:
    """The transport of every WeChat call: configured hosts, the timeout, the egress proxy.

    The proxy is configuration (``WECHAT_HTTP_PROXY``), never whatever the
    process environment holds (``HTTP(S)_PROXY``, ``.netrc``).
    """
    rewrites = {default: config[key] for key, default in WECHAT_HOSTS.items()}
    return WeChatHTTP(rewrites, timeout=config["WECHAT_HTTP_TIMEOUT"],
                      proxy=config["WECHAT_HTTP_PROXY"])


def qr_image_url(config: Mapping[str, Any], ticket: str) -> str:
    """The QR code image of ``ticket``, fetched by browsers, under the configured mp host.

    wechatpy's ``qrcode.get_url`` hard-codes mp.weixin.qq.com, and a browser
    does not go through our transport, so the URL is built here.
    """
    base = config["WECHAT_MP_BASE"].rstrip("/")
    return f"{base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}"
