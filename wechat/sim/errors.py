"""WeChat error codes and the body shape every failing API call answers with."""

from __future__ import annotations

import secrets
import time
from typing import Any

# errmsg texts as WeChat writes them (wechat-platform.md §4); the rid suffix is added per answer.
ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40032: "invalid openid list size",
    40037: "invalid template_id",
    40052: "invalid action name",
    40053: "invalid action info, please check document",
    40097: "invalid args",
    40125: "invalid appsecret",
    40130: "invalid openid list size, at least two openid",
    40163: "code been used",
    40164: "invalid ip, not in whitelist",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    42002: "refresh_token expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    45029: "qrcode count out of limit",
    45047: "out of response count limit",
    45056: "too many tags now, no need to add new",
    45058: "can't modify sys tag",
    45059: "too many tags for this user",
    45065: "clientmsgid exist",
    45067: "clientmsgid size out of limit",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
    50001: "user unauthorized",
    89503: "此次调用需要管理员确认，请耐心等候",
}


class ApiError(Exception):
    """Raised by a handler to answer with WeChat's HTTP-200 error body."""

    def __init__(self, errcode: int, hint: str = "", **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.hint = hint
        self.extra = extra  # e.g. msg_id on 45065, which WeChat returns with the error


def new_rid() -> str:
    """A request id shaped like WeChat's (`6582a1b2-2b3c4d5e-6f708192`)."""
    return f"{int(time.time()):08x}-{secrets.randbits(32):08x}-{secrets.randbits(32):08x}"


def error_body(errcode: int, hint: str = "", **extra: Any) -> dict[str, Any]:
    """`{"errcode", "errmsg"}` with the errmsg ending in ` rid: …` like every WeChat answer."""
    text = ERRMSG.get(errcode, "sim injected error")
    if hint:
        text = f"{text} hint: [{hint}]"
    return {"errcode": errcode, "errmsg": f"{text} rid: {new_rid()}", **extra}
