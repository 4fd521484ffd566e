"""Passive replies: what a handler returns, rendered as WeChat expects."""

from __future__ import annotations

from typing import Any

from wechatpy.replies import BaseReply, TextReply

from wechat.inbound import Inbound

Reply = str | BaseReply | None

_CDATA_END = "]]>"
# Ends the CDATA section before '>' and opens a new one: the text survives intact
# and cannot close the element (wechatpy puts values in CDATA without escaping).
_CDATA_SPLIT = "]]]]><![CDATA[>"


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
        reply = TextReply(content=reply, message=inbound.message)
    reply._data = _defuse(reply._data)
    return reply.render().encode()
