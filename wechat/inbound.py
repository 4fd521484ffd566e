"""Turning a pushed body into a message, safely.

Whatever arrives over the wire is parsed first by defusedxml, which refuses
DTDs, entity declarations and external references: the whole body in
plaintext mode, the envelope in safe mode. The message inside a safe-mode
envelope passed msg_signature and decryption, so it is not parsed twice; it
still must be UTF-8 without any DTD (so no entity can be declared), and
ElementTree reads it. Whatever is wrong surfaces as ``BadMessage``.

The fields become wechatpy's message objects through wechatpy's own type
tables, shaped as its ``parse_message`` shapes them (xmltodict's dicts:
stripped text, nested dicts, lists for repeats). ``parse_message`` itself is
not called: it re-reads the XML with xmltodict's pure-Python callbacks, the
largest single cost of a push (bench/callback.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import fromstring as parse_dtd_free

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage

# Follows that came through a QR code carry the scene as 'qrscene_' + scene.
_SCENE_PREFIX = "qrscene_"
_PRODUCT_SCAN_PREFIXES = ("scanbarcode|", "scanimage|")


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
    root = None if authenticated else _safe_root(xml)
    try:
        text = xml.decode("utf-8")  # WeChat sends UTF-8; other encodings could hide a DTD
    except UnicodeDecodeError as exc:
        raise BadMessage("body is not UTF-8") from exc
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise BadMessage("DTDs are not accepted")
    if root is None:
        try:
            root = parse_dtd_free(text)  # noqa: S314 - checked DTD-free above: no entities
        except ParseError as exc:
            raise BadMessage(f"unsafe or malformed XML: {type(exc).__name__}") from exc
    data = _fields(root)
    msg_type, event = data.get("MsgType"), data.get("Event")
    if not isinstance(msg_type, str) or not (event is None or isinstance(event, str)):
        raise BadMessage("not a WeChat push: MsgType (and Event) must be text")
    if not data.get("FromUserName") or not data.get("CreateTime"):
        raise BadMessage("FromUserName and CreateTime are required")
    msg_type = msg_type.lower()
    message = _message(data, msg_type, (event or "").lower())
    # After _message: a follow through a QR code is re-tagged 'subscribe_scan'.
    kind = f"event:{(data.get('Event') or '').lower()}" if msg_type == "event" else msg_type
    return Inbound(message=message, kind=kind, dedupe_key=_dedupe_key(data, kind))


def _fields(element: Element) -> dict[str, Any]:
    """Children as xmltodict shapes them: stripped text, dicts for parents, lists for repeats."""
    fields: dict[str, Any] = {}
    for child in element:
        value = _fields(child) if len(child) else ((child.text or "").strip() or None)
        if child.tag not in fields:
            fields[child.tag] = value
        elif isinstance(fields[child.tag], list):
            fields[child.tag].append(value)
        else:
            fields[child.tag] = [fields[child.tag], value]
    return fields


def _message(data: dict[str, Any], msg_type: str, event: str) -> BaseMessage:
    """wechatpy's message object for the fields (its parse_message's choice of class)."""
    if msg_type.startswith("device_"):
        event = f"device_{event}" if event else msg_type
    elif msg_type != "event":
        return MESSAGE_TYPES.get(msg_type, UnknownMessage)(data)
    key = data.get("EventKey")
    if event == "subscribe" and isinstance(key, str):
        if key.startswith(_PRODUCT_SCAN_PREFIXES):
            event = data["Event"] = "subscribe_scan_product"
        elif key.startswith(_SCENE_PREFIX):
            event = data["Event"] = "subscribe_scan"
            data["EventKey"] = key.removeprefix(_SCENE_PREFIX)
    return EVENT_TYPES.get(event, UnknownMessage)(data)


def _dedupe_key(data: dict[str, Any], kind: str) -> str:
    """MsgId for user messages; sender + time + event (+ key or job id) for events."""
    if data.get("MsgId"):
        return f"msg:{data['MsgId']}"
    detail = data.get("EventKey") or data.get("MsgID") or ""
    return f"evt:{data['FromUserName']}:{data['CreateTime']}:{kind}:{detail}"
