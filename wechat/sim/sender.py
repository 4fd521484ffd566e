"""WeChat's side of the callback protocol (§1): sign, encrypt, deliver, retry, judge the reply.

Encryption is wechatpy's own `PrpCrypto`, so the backend's separate implementation is checked
against an independent one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import xmltodict
from wechatpy.crypto import PrpCrypto

from .config import CALLBACK_MODES
from .pushes import PushFactory, cdata, render

# Reply MsgTypes WeChat renders, and the element each one cannot do without.
REPLY_BODIES: dict[str, str | None] = {
    "text": "Content",
    "image": "Image",
    "voice": "Voice",
    "video": "Video",
    "music": "Music",
    "news": "Articles",
    "transfer_customer_service": None,
}
ENVELOPE_FIELDS = ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")
NO_REPLY = (b"", b"success")


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and joined, lowercase hex."""
    digest = hashlib.sha1("".join(sorted(parts)).encode(), usedforsecurity=False)  # WeChat's choice
    return digest.hexdigest()


class ReplyError(ValueError):
    """A reply WeChat would not show to the user ("该公众号暂时无法提供服务")."""


@dataclass(frozen=True)
class Addressing:
    user: str  # the push's FromUserName: the user's openid
    account: str  # its ToUserName: the account's gh_ id


@dataclass(frozen=True)
class Delivery:
    status: int | None  # None: no answer (timeout or connection failure)
    body: bytes = b""
    error: str | None = None


@dataclass
class SendResult:
    deliveries: list[Delivery] = field(default_factory=list)
    accepted: bool = False  # WeChat took one answer; no more deliveries follow
    reply: dict[str, Any] | None = None  # the decrypted, parsed reply; None for success/empty
    reply_xml: str | None = None
    encrypted: bool = False  # the accepted reply came as a safe-mode envelope
    problem: str | None = None  # why the last answer was refused

    @property
    def statuses(self) -> list[int | None]:
        return [d.status for d in self.deliveries]

    @property
    def status(self) -> int | None:
        return self.deliveries[-1].status if self.deliveries else None

    @property
    def body(self) -> bytes:
        return self.deliveries[-1].body if self.deliveries else b""


@dataclass(frozen=True)
class VerifyResult:
    status: int | None
    body: bytes
    echostr: str

    @property
    def ok(self) -> bool:
        """The console saves the URL only when the body is the echostr, byte for byte."""
        return self.status == 200 and self.body == self.echostr.encode()


class CallbackSender:
    """Delivers pushes to one server URL the way WeChat does for one official account."""

    def __init__(
        self, url: str, token: str, aes_key: str, appid: str, original_id: str, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.token = token
        self.appid = appid
        self.timeout = timeout
        self.pushes = PushFactory(original_id)
        self._crypto = PrpCrypto(base64.b64decode(aes_key + "="))
        self._http = requests.Session()
        self._http.headers["User-Agent"] = "Mozilla/4.0"
        # WeChat reaches the server directly; and reading proxy settings from the environment
        # on every request costs more than the rest of a local delivery.
        self._http.trust_env = False

    def close(self) -> None:
        self._http.close()

    def seal(self, xml: str, mode: str, timestamp: str, nonce: str) -> tuple[dict[str, str], bytes]:
        """The query string and body WeChat would POST for ``xml`` in ``mode``."""
        return self._seal(xml, _addressing(xml), mode, timestamp, nonce)

    def _seal(
        self, xml: str, addressing: Addressing, mode: str, timestamp: str, nonce: str
    ) -> tuple[dict[str, str], bytes]:
        if mode not in CALLBACK_MODES:
            raise ValueError(f"mode must be one of {CALLBACK_MODES}")
        params = {
            "signature": sha1_signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": addressing.user,
        }
        if mode == "plain":
            return params, xml.encode()
        encrypt = self._crypto.encrypt(xml, self.appid).decode()
        if mode == "safe":
            body = render([("ToUserName", addressing.account), ("Encrypt", encrypt)])
        else:  # compat: the plaintext fields plus the encrypted copy
            body = xml.removesuffix("</xml>") + f"<Encrypt>{cdata(encrypt)}</Encrypt>\n</xml>"
        params["encrypt_type"] = "aes"
        params["msg_signature"] = sha1_signature(self.token, timestamp, nonce, encrypt)
        return params, body.encode()

    def send(self, xml: str, mode: str = "safe", deliveries: int = 1) -> SendResult:
        """POST ``xml`` up to ``deliveries`` times, identical each time, until an answer passes."""
        addressing = _addressing(xml)
        params, body = self._seal(xml, addressing, mode, str(int(time.time())), _nonce())
        result = SendResult()
        for _ in range(max(1, deliveries)):
            delivery = self._post(params, body)
            result.deliveries.append(delivery)
            try:
                result.reply_xml, result.encrypted = self._read_reply(delivery, mode)
                result.reply = _check_reply(result.reply_xml, addressing)
            except ReplyError as refused:
                result.problem = str(refused)
                continue
            result.accepted, result.problem = True, None
            break
        return result

    def verify_url(self, echostr: str | None = None) -> VerifyResult:
        """The GET the MP console sends when the admin saves the server URL (§1.1)."""
        echostr = echostr or str(secrets.randbits(63))
        timestamp, nonce = str(int(time.time())), _nonce()
        params = {
            "signature": sha1_signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        try:
            answer = self._http.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException:
            return VerifyResult(None, b"", echostr)
        return VerifyResult(answer.status_code, answer.content, echostr)

    def _post(self, params: dict[str, str], body: bytes) -> Delivery:
        try:
            answer = self._http.post(
                self.url,
                params=params,
                data=body,
                timeout=self.timeout,
                headers={"Content-Type": "text/xml"},
            )
        except requests.RequestException as failure:
            return Delivery(None, b"", type(failure).__name__)
        return Delivery(answer.status_code, answer.content)

    def _read_reply(self, delivery: Delivery, mode: str) -> tuple[str | None, bool]:
        """(reply XML or None for "no reply", whether it was encrypted); ReplyError if refused."""
        if delivery.status != 200:
            raise ReplyError(f"HTTP {delivery.status}" if delivery.status else "no answer")
        if delivery.body.strip() in NO_REPLY:
            return None, False
        outer = _parse_xml(delivery.body)
        if "Encrypt" not in outer:
            return delivery.body.decode(errors="replace"), False
        if mode == "plain":
            raise ReplyError("encrypted reply to a plaintext-mode push")
        return self._open_envelope(outer), True

    def _open_envelope(self, outer: dict[str, Any]) -> str:
        missing = [name for name in ENVELOPE_FIELDS if not outer.get(name)]
        if missing:
            raise ReplyError(f"envelope lacks {', '.join(missing)}")
        expected = sha1_signature(self.token, outer["TimeStamp"], outer["Nonce"], outer["Encrypt"])
        if outer["MsgSignature"] != expected:
            raise ReplyError("MsgSignature does not match")
        try:
            return self._crypto.decrypt(outer["Encrypt"], self.appid)
        except Exception as failure:  # wechatpy raises anything from ValueError to struct.error
            raise ReplyError(f"cannot decrypt the reply: {type(failure).__name__}") from failure


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


def _parse_xml(raw: bytes | str) -> dict[str, Any]:
    """The `<xml>` element as a dict; ReplyError for anything else or any DTD."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ReplyError("reply carries a DTD")
    try:
        root = xmltodict.parse(text)
    except Exception as failure:  # expat errors, entity refusals, empty documents
        raise ReplyError("reply is neither success nor XML") from failure
    if not isinstance(root, dict) or not isinstance(root.get("xml"), dict):
        raise ReplyError("reply has no <xml> root")
    return root["xml"]


def _addressing(xml: str) -> Addressing:
    push = xmltodict.parse(xml)["xml"]
    return Addressing(user=push["FromUserName"], account=push["ToUserName"])


def _check_reply(reply_xml: str | None, push: Addressing) -> dict[str, Any] | None:
    """The parsed reply if WeChat would render it: addressed back to the sender, known type."""
    if reply_xml is None:
        return None
    reply = _parse_xml(reply_xml)
    if reply.get("ToUserName") != push.user:
        raise ReplyError("ToUserName is not the user who wrote")
    if reply.get("FromUserName") != push.account:
        raise ReplyError("FromUserName is not the account's original id")
    if not str(reply.get("CreateTime", "")).isdigit():
        raise ReplyError("CreateTime missing or not a number")
    msg_type = reply.get("MsgType")
    if msg_type not in REPLY_BODIES:
        raise ReplyError(f"unknown reply MsgType {msg_type!r}")
    body = REPLY_BODIES[msg_type]
    if body is not None and reply.get(body) is None:
        raise ReplyError(f"{msg_type} reply lacks {body}")
    return reply
