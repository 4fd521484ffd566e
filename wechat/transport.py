"""HTTP transport for every WeChat call: host redirection and a default timeout.

wechatpy hard-codes WeChat's hosts in several places (the token URL, the wxa
API object, OAuth). Rather than chase each one, the client's requests session
gets an adapter that rewrites the WeChat hosts to the configured bases, so
production (no rewrite) and the simulator run the very same client code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

WECHAT_HOSTS = {
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECHAT_MP_BASE": "https://mp.weixin.qq.com",
    "WECHAT_OPEN_BASE": "https://open.weixin.qq.com",
}


class WeChatAdapter(HTTPAdapter):
    """Rewrites ``https://<wechat host>`` to a configured base and enforces a timeout."""

    def __init__(self, rewrites: Mapping[str, str], timeout: float, pool_size: int = 64) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_size)
        self.rewrites = {src: dst.rstrip("/") for src, dst in rewrites.items() if src != dst}
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        for src, dst in self.rewrites.items():
            if request.url and request.url.startswith(src + "/"):
                request.url = dst + request.url[len(src):]
                break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def build_session(config: Mapping[str, Any]) -> requests.Session:
    """A session whose WeChat calls go to the configured hosts, all with a timeout."""
    rewrites = {default: config[key] for key, default in WECHAT_HOSTS.items()}
    adapter = WeChatAdapter(rewrites, timeout=config["WECHAT_HTTP_TIMEOUT"])
    session = requests.Session()
    # Every https and http call through this session gets the timeout; WeChat hosts are rewritten.
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # The egress proxy is configuration, not whatever the process environment holds; reading
    # the environment on every call was also 4% of a login's CPU (bench/login.py).
    session.trust_env = False
    if config["WECHAT_HTTP_PROXY"]:
        session.proxies = {"http": config["WECHAT_HTTP_PROXY"],
                           "https": config["WECHAT_HTTP_PROXY"]}
    return session


def qr_image_url(config: Mapping[str, Any], ticket: str) -> str:
    """The QR code image of ``ticket``, fetched by browsers, under the configured mp host.

    wechatpy's ``qrcode.get_url`` hard-codes mp.weixin.qq.com, and a browser
    does not go through our transport, so the URL is built here.
    """
    base = config["WECHAT_MP_BASE"].rstrip("/")
    return f"{base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}"
