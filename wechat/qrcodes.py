"""Parametric QR codes of the official account and mini-program codes (wechat-platform.md
3.9, 3.12, 8.6, 8.7): the requests WeChat takes, their rules checked before any call, and
WeChat's answers as values or typed errors (``wechat.errors``).

- ``permanent_qr(client, scene)``: ``QR_LIMIT_STR_SCENE``. Each counts against the
  account's 100,000 permanent codes for ever (45029 → ``CodeLimitReached``), so the
  caller asks once per scene and keeps the answer.
- ``temporary_qr(client, scene, expire_seconds)``: ``QR_STR_SCENE``, 1 s to 30 days.
- ``wxacode_unlimited(client, scene, page=...)``: ``getwxacodeunlimit``; unlimited in
  number, the scene ≤ 32 characters of WeChat's charset. It answers raw image bytes on
  success and a JSON ``{errcode, errmsg}`` with HTTP 200 on failure: told apart by the
  Content-Type and a leading ``{``, never by trying to decode an image.

A scene that breaks WeChat's rules is a ``ValueError`` here, before the call: a request
WeChat would refuse costs no quota and no round trip. ``url`` of a QR code's answer is what
the code encodes (``http://weixin.qq.com/q/...``); WeChat lets developers render the image
themselves from it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import requests

from wechat.client import WeChatAPIClient
from wechat.errors import WeChatAPIError, api_error

QR_ENDPOINT = "qrcode/create"  # under cgi-bin/
WXACODE_ENDPOINT = "wxa/getwxacodeunlimit"
_API_ROOT = "https://api.weixin.qq.com/"  # wechatpy joins non-cgi-bin paths onto it

QR_SCENE_MAX = 64  # scene_str of QR_STR_SCENE and QR_LIMIT_STR_SCENE
QR_EXPIRE_MAX = 2_592_000  # 30 days, the longest a temporary code lives
WXA_SCENE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}")
WXA_WIDTH = range(280, 1281)
WXA_ENV_VERSIONS = ("release", "trial", "develop")
# A page is a released path: no leading "/", no query string.
WXA_PAGE = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-.]+)*")


@dataclass(frozen=True)
class QrTicket:
    """WeChat's answer to a QR code: its ``ticket`` (for showqrcode), the ``url`` it encodes,
    and for a temporary code the seconds it lives (``None``: permanent)."""

    ticket: str
    url: str
    expire_seconds: int | None


def check_qr_scene(scene: str) -> str:
    """``scene`` if WeChat takes it as a string scene (1-64 characters); ValueError otherwise."""
    if not isinstance(scene, str) or not 0 < len(scene) <= QR_SCENE_MAX:
        raise ValueError(f"a QR scene string has 1 to {QR_SCENE_MAX} characters")
    return scene


def check_wxa_scene(scene: str) -> str:
    """``scene`` if getwxacodeunlimit takes it (≤ 32 visible characters of WeChat's charset:
    letters, digits and ``!#$&'()*+,/:;=?@-._~``; no ``%``, so nothing URL-encoded)."""
    if not isinstance(scene, str) or not WXA_SCENE.fullmatch(scene):
        raise ValueError("a mini-program code's scene has 1 to 32 characters of "
                         "0-9 A-Z a-z !#$&'()*+,/:;=?@-._~")
    return scene


def permanent_qr(client: WeChatAPIClient, scene: str) -> QrTicket:
    """A permanent string-scene QR code (``QR_LIMIT_STR_SCENE``): uses one of the account's
    100,000 for good; ``CodeLimitReached`` once they are gone."""
    body = {"action_name": "QR_LIMIT_STR_SCENE",
            "action_info": {"scene": {"scene_str": check_qr_scene(scene)}}}
    return _ticket(client.post(QR_ENDPOINT, data=body))


def temporary_qr(client: WeChatAPIClient, scene: str, expire_seconds: int) -> QrTicket:
    """A temporary string-scene QR code (``QR_STR_SCENE``) living ``expire_seconds`` (1 s to
    30 days: WeChat would cap a longer one silently, so it is refused here)."""
    if isinstance(expire_seconds, bool) or not isinstance(expire_seconds, int) \
            or not 0 < expire_seconds <= QR_EXPIRE_MAX:
        raise ValueError(f"a temporary QR code lives 1 to {QR_EXPIRE_MAX} seconds")
    body = {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": check_qr_scene(scene)}}}
    return _ticket(client.post(QR_ENDPOINT, data=body))


def _ticket(answer: dict[str, Any]) -> QrTicket:
    expire = answer.get("expire_seconds")
    return QrTicket(ticket=str(answer["ticket"]), url=str(answer["url"]),
                    expire_seconds=None if expire is None else int(expire))


def wxacode_unlimited(client: WeChatAPIClient, scene: str, *, page: str | None = None,
                      width: int = 430, check_path: bool = True,
                      env_version: str = "release") -> bytes:
    """The mini-program code (an image, PNG or JPEG) opening ``page`` with ``scene``.

    Through ``client.post`` rather than wechatpy's ``wxa.get_wxa_code_unlimited``, which
    takes neither ``check_path`` nor ``env_version`` and hands back a ``Response`` on
    success only because decoding it as JSON failed.
    """
    body: dict[str, Any] = {"scene": check_wxa_scene(scene), "width": width,
                            "check_path": check_path, "env_version": env_version}
    if width not in WXA_WIDTH:
        raise ValueError(f"width must be {WXA_WIDTH.start} to {WXA_WIDTH.stop - 1}")
    if env_version not in WXA_ENV_VERSIONS:
        raise ValueError(f"env_version must be one of {WXA_ENV_VERSIONS}")
    if page is not None:
        if not WXA_PAGE.fullmatch(page):
            raise ValueError("page is a released page's path: no leading '/', no query")
        body["page"] = page
    answer = client.post(WXACODE_ENDPOINT, data=body, api_base_url=_API_ROOT)
    return _image(answer)


def _image(answer: Any) -> bytes:
    """The image bytes of a getwxacodeunlimit answer, or WeChat's error as a typed one."""
    if isinstance(answer, requests.Response):
        content = answer.content
        kind = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind.startswith("image/") and not content.lstrip().startswith(b"{"):
            return content
        answer = _json_or_none(content)
    # wechatpy has raised already for a JSON error with an errcode; what is left is an answer
    # that is neither an image nor an error WeChat documents.
    errcode = int(answer.get("errcode", 0)) if isinstance(answer, dict) else 0
    if errcode:
        raise api_error(errcode, answer.get("errmsg"), WXACODE_ENDPOINT)
    raise WeChatAPIError(None, "the answer is not an image", WXACODE_ENDPOINT)


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
