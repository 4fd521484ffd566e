"""Turning a pushed body into a message, safely.

Whatever arrives over the wire is parsed first by defusedxml, which refuses
DTDs, entity declarations and external references: the whole body in
plaintext mode, the envelope in safe mode. The message inside a safe-mode
envelope passed msg_signature and decryption, so it is not parsed twice; it
still must be UTF-8 without any DTD, and wechatpy's parser (xmltodict, pinned
at a version that fails closed on entities) reads it. Whatever is wrong
surfaces as ``BadMessage``.
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


def parse(xml: bytes, *, authenticated: bool = False) -> Inbound:
    """Parse a push; ``authenticated`` when it came out of a verified safe-mode envelope."""
    if not authenticated:
        _safe_root(xml)
    try:
        text = xml.decode("utf-8")  # WeChat sends UTF-8; other encodings could hide a DTD
    except UnicodeDecodeError as exc:
        raise BadMessage("body is not UTF-8") from exc
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise BadMessage("DTDs are not accepted")
    try:
        message = parse_message(text)
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
