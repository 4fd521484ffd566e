"""Passive replies: what a handler returns, rendered as WeChat expects."""

from __future__ import annotations

import time
from typing import Any

from wechatpy.replies import BaseReply

from wechat.inbound import Inbound

Reply = str | BaseReply | None

_CDATA_END = "]]>"
# Ends the CDATA section before '>' and opens a new one: the text survives intact
# and cannot close the element (wechatpy puts values in CDATA without escaping).
_CDATA_SPLIT = "]]]]><![CDATA[>"
# Text, the common reply, is composed directly: wechatpy's TextReply builds and walks field
# objects for the same XML, a tenth of a push's CPU (bench/callback.py).
_TEXT_REPLY = (
    "<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
    "<FromUserName><![CDATA[{source}]]></FromUserName><CreateTime>{time}</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content></xml>"
)


def _defuse(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_CDATA_END, _CDATA_SPLIT)
    if isinstance(value, dict):
        return {key: _defuse(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_defuse(item) for item in value]
    return value


def render(reply: Reply, inbound: Inbound) -> bytes | None:
    """Reply XML addressed back to the sender, or None for 'success'."""
    if reply is None:
        return None
    if isinstance(reply, str):
        fields = {"to": inbound.data.get("FromUserName") or "",
                  "source": inbound.data.get("ToUserName") or "", "content": reply}
        return _TEXT_REPLY.format(time=int(time.time()), **_defuse(fields)).encode()
    reply._data = _defuse(reply._data)
    return reply.render().encode()
