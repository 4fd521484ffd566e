"""Turning a pushed body into a message, safely.

Every XML document that arrives, the whole body in plaintext mode and both the
envelope and the message inside it in safe mode, goes through one parser:
defusedxml, which refuses DTDs, entity declarations and external references
whatever encoding the document declares. A message that passed msg_signature
and decryption is still parsed the same way: the signature proves who sent it,
not that it is harmless.

Then the fields are held to what WeChat sends (``_check``): no field twice at
the top level, identifiers of WeChat's charset and of a length our columns
hold, CreateTime a plausible unix time, and no deeper nesting than a push has.
Whatever is wrong surfaces as ``BadMessage`` (400), never as an error of ours.

The fields become wechatpy's message objects through wechatpy's own type
tables, shaped as its ``parse_message`` shapes them (xmltodict's dicts:
stripped text, nested dicts, lists for repeats). ``parse_message`` itself is
not called: it re-reads the XML with xmltodict's pure-Python callbacks, the
largest single cost of a push (bench/callback.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage

from wechat.crypto import MessageCrypto, signature_matches

# Follows that came through a QR code carry the scene as 'qrscene_' + scene.
_SCENE_PREFIX = "qrscene_"
_PRODUCT_SCAN_PREFIXES = ("scanbarcode|", "scanimage|")

# WeChat's deepest push (a menu event's SendPicsInfo/PicList/item/PicMd5Sum) is four levels
# below <xml>; a deeper document is not a push, and must not reach a recursive reader.
_MAX_DEPTH = 6
# openids, unionids and gh_ ids: WeChat's URL-safe charset; 64 is what our columns hold.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,20}")  # MsgId, MsgID: ASCII digits only, never "١٢" or "²"
_CREATE_TIME = re.compile(r"[0-9]{1,10}")
_CREATE_TIME_MAX = 4_102_444_800  # 2100-01-01 UTC: past it a CreateTime is not a time
# Longest accepted text of the fields that are routed on or stored.
_TEXT_MAX = {"MsgType": 32, "Event": 64, "EventKey": 1024, "Status": 64, "Ticket": 256}
SCENE_MAX = 64  # a QR scene string (QR_LIMIT_STR_SCENE allows 64) and the column keeping it


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

    def listed(self, block: str) -> list[dict[str, Any]]:
        """The entries of a ``<block><List>…</List>…</block>`` (the subscription notices'
        events), one or several alike; entries that are not elements are left out."""
        holder = self.data.get(block)
        entries = holder.get("List") if isinstance(holder, dict) else None
        if not isinstance(entries, list):
            entries = [entries]
        return [entry for entry in entries if isinstance(entry, dict)]

    @property
    def created_at(self) -> datetime:
        """When WeChat says the push happened (CreateTime, checked plausible by ``parse``)."""
        return datetime.fromtimestamp(int(self.data["CreateTime"]), UTC)


def parse(xml: bytes) -> Inbound:
    """Parse a push (a plaintext body, or the message decrypted out of a safe-mode one)."""
    root = _safe_root(xml)
    _check_depth(root)
    data = _fields(root, top=True)
    _check(data)
    msg_type, event = data["MsgType"].lower(), data.get("Event")
    message = _message(data, msg_type, (event or "").lower())
    # After _message: a follow through a QR code is re-tagged 'subscribe_scan'.
    kind = f"event:{(data.get('Event') or '').lower()}" if msg_type == "event" else msg_type
    return Inbound(message=message, kind=kind, dedupe_key=_dedupe_key(data, kind))


def _check_depth(root: Element) -> None:
    """Refuse documents nested deeper than ``_MAX_DEPTH``, without recursing into them."""
    level = [root]
    for _ in range(_MAX_DEPTH):
        level = [child for element in level for child in element]
        if not level:
            return
    raise BadMessage(f"nested deeper than {_MAX_DEPTH} levels")


def _check(data: dict[str, Any]) -> None:
    """Hold the top-level fields to what WeChat sends; refuse anything else."""
    for name in ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "EventKey",
                 "MsgId", "MsgID", "Status", "Ticket"):
        if name in data and not isinstance(data[name], str | None):
            raise BadMessage(f"{name} must be text")
    msg_type = data.get("MsgType")
    if not msg_type:
        raise BadMessage("not a WeChat push: MsgType is required")
    for name in ("FromUserName", "ToUserName"):
        if not _IDENTIFIER.fullmatch(data.get(name) or ""):
            raise BadMessage(f"{name} must be 1-64 of WeChat's id characters")
    created = data.get("CreateTime") or ""
    if not _CREATE_TIME.fullmatch(created) or not 0 < int(created) < _CREATE_TIME_MAX:
        raise BadMessage("CreateTime must be a unix time in seconds")
    for name in ("MsgId", "MsgID"):
        if data.get(name) is not None and not _NUMBER.fullmatch(data[name]):
            raise BadMessage(f"{name} must be a number")
    for name, limit in _TEXT_MAX.items():
        if len(data.get(name) or "") > limit:
            raise BadMessage(f"{name} is longer than {limit} characters")
    event, key = (data.get("Event") or "").lower(), data.get("EventKey") or ""
    scene = key.removeprefix(_SCENE_PREFIX) if event == "subscribe" else key
    if event in ("subscribe", "scan") and len(scene) > SCENE_MAX:
        raise BadMessage(f"a QR scene is at most {SCENE_MAX} characters")


def _fields(element: Element, *, top: bool = False) -> dict[str, Any]:
    """Children as xmltodict shapes them: stripped text, dicts for parents, lists for repeats.

    At the ``top`` level a repeated field is refused: WeChat never sends one, and two
    ``FromUserName`` would mean one thing to the signature check and another to a handler.
    """
    fields: dict[str, Any] = {}
    for child in element:
        value = _fields(child) if len(child) else ((child.text or "").strip() or None)
        if child.tag not in fields:
            fields[child.tag] = value
        elif top:
            raise BadMessage(f"{child.tag} appears more than once")
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


class Forged(Exception):
    """msg_signature does not match the encrypted payload."""


class Opener:
    """Opens a checked push: the one step from a body to the message in it.

    Safe mode: the envelope's Encrypt must carry ``msg_signature`` (``Forged``
    otherwise), is decrypted, and the message must be addressed as its envelope is.
    Either mode: the message is parsed by ``parse`` and must be addressed to
    ``original_id``: a signed push for another account (a token shared by mistake, a
    replayed capture) is not ours to act on. Anything malformed is ``BadMessage`` or
    ``CryptoError`` (both 400).
    """

    def __init__(self, token: str, aes_key: str, app_id: str, original_id: str) -> None:
        self.token = token
        self.original_id = original_id
        self.crypto = MessageCrypto(token, aes_key, app_id)

    def open(self, body: bytes, query: dict[str, str], encrypted: bool) -> Inbound:
        if not encrypted:
            return self._addressed(parse(body))
        envelope = envelope_fields(body)
        ciphertext = envelope.get("Encrypt")
        if not ciphertext:
            raise BadMessage("Encrypt is missing")
        if not signature_matches(query.get("msg_signature", ""), self.token,
                                 query.get("timestamp", ""), query.get("nonce", ""), ciphertext):
            raise Forged
        inbound = parse(self.crypto.decrypt(ciphertext))
        outer = envelope.get("ToUserName")
        if outer is not None and outer != inbound.data.get("ToUserName"):
            raise BadMessage("the envelope and the message name different accounts")
        return self._addressed(inbound)

    def seal(self, reply: bytes, nonce: str) -> bytes:
        """A safe-mode reply: encrypted and signed in its envelope."""
        return self.crypto.envelope(reply, str(int(time.time())), nonce).encode()

    def _addressed(self, inbound: Inbound) -> Inbound:
        if inbound.data.get("ToUserName") != self.original_id:
            raise BadMessage("the push is addressed to another account")
        return inbound
