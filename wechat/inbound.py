"""Turning a pushed body into a message, safely.

Every body is first parsed by defusedxml, which refuses DTDs, entity
declarations and external references, and only then handed to wechatpy's
parser. Whatever is wrong with the XML surfaces as ``BadMessage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy import parse_message
from wechatpy.messages import BaseMessage


class BadMessage(ValueError):
    """The body is not a well-formed, DTD-free WeChat push."""


def _safe_root(body: bytes) -> Element:
    try:
        root = fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise BadMessage(f"unsafe or malformed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise BadMessage("root element is not <xml>")
    return root


def envelope_fields(body: bytes) -> dict[str, str]:
    """Top-level text fields of a push (e.g. ToUserName, Encrypt)."""
    return {child.tag: child.text or "" for child in _safe_root(body)}


@dataclass(frozen=True)
class Inbound:
    """A parsed push: wechatpy's message object plus what routing and dedupe need."""

    message: BaseMessage
    kind: str  # dispatch key: 'text', 'image', ..., or 'event:subscribe', 'event:click', ...
    dedupe_key: str

    @property
    def data(self) -> dict[str, Any]:
        """The raw fields, including ones wechatpy has no attribute for."""
        return self.message._data

    @property
    def openid(self) -> str:
        return self.data.get("FromUserName") or ""


def parse(xml: bytes) -> Inbound:
    """Parse a decrypted push; raises BadMessage on anything malformed."""
    _safe_root(xml)
    try:
        message = parse_message(xml)
        data = message._data
        msg_type = data["MsgType"].lower()
        event = (data.get("Event") or "").lower()
    except (ExpatError, KeyError, AttributeError, TypeError, ValueError) as exc:
        raise BadMessage(f"not a WeChat push: {type(exc).__name__}") from exc
    if not data.get("FromUserName") or not data.get("CreateTime"):
        raise BadMessage("FromUserName and CreateTime are required")
    kind = f"event:{event}" if msg_type == "event" else msg_type
    return Inbound(message=message, kind=kind, dedupe_key=_dedupe_key(data, kind))


def _dedupe_key(data: dict[str, Any], kind: str) -> str:
    """MsgId for user messages; sender + time + event (+ key or job id) for events."""
    if data.get("MsgId"):
        return f"msg:{data['MsgId']}"
    detail = data.get("EventKey") or data.get("MsgID") or ""
    return f"evt:{data['FromUserName']}:{data['CreateTime']}:{kind}:{detail}"
