"""Helpers shared by tests: talking to the simulator's control API."""

from __future__ import annotations

import hashlib
import time
from itertools import count
from typing import TYPE_CHECKING, Any

import requests
import xmltodict
from flask.testing import FlaskClient
from wechatpy.crypto import WeChatCrypto
from werkzeug.test import TestResponse

if TYPE_CHECKING:
    from wechat.sim.server import SimServer



def sim_calls(sim: SimServer, path: str) -> list[dict]:
    """What the simulator received on ``path``."""
    response = requests.get(f"{sim.url}/sim/requests", params={"path": path}, timeout=5)
    response.raise_for_status()
    body = response.json()
    return body["requests"] if isinstance(body, dict) else body


def sim_fault(sim: SimServer, **fault: Any) -> None:
    """Make the simulator fail as described (errcode / http_status / delay, ``times``)."""
    requests.post(f"{sim.url}/sim/faults", json=fault, timeout=5).raise_for_status()


def sim_post(sim: SimServer, path: str, **body: Any) -> dict:
    response = requests.post(f"{sim.url}{path}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


_msg_ids = count(7_000_000_000_000_000_000)


def push_message(msg_type: str, openid: str, **fields: Any) -> dict[str, Any]:
    """The fields of a push from ``openid``: a user message with a fresh MsgId, or an event."""
    base = {"ToUserName": "gh_test00000001", "FromUserName": openid,
            "CreateTime": int(time.time()), "MsgType": msg_type}
    if msg_type != "event":
        fields.setdefault("MsgId", next(_msg_ids))
    return {**base, **fields}


def wechat_xml(fields: dict[str, Any]) -> bytes:
    """WeChat's push XML: strings in CDATA, numbers bare, nested dicts as elements."""

    def render(value: Any) -> str:
        if isinstance(value, dict):
            return "".join(f"<{key}>{render(item)}</{key}>" for key, item in value.items())
        if isinstance(value, (int, float)):
            return str(value)
        return f"<![CDATA[{value}]]>"

    return f"<xml>{render(fields)}</xml>".encode()



def _sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class Pusher:
    """Plays WeChat towards the app's test client.

    Encryption and reply decryption use wechatpy's implementation, not the
    app's, so the two are checked against each other.
    """

    def __init__(self, client: FlaskClient, config: dict[str, Any]) -> None:
        self.client = client
        self.token = config["WECHAT_TOKEN"]
        self.crypto = WeChatCrypto(self.token, config["WECHAT_AES_KEY"], config["WECHAT_APP_ID"])
        self.original_id = config["WECHAT_ORIGINAL_ID"]

    def query(self, timestamp: str | None = None, nonce: str = "4242") -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        return {"signature": _sha1_signature(self.token, timestamp, nonce),
                "timestamp": timestamp, "nonce": nonce}

    def post(self, message: dict[str, Any] | bytes, mode: str = "safe",
             query: dict[str, str] | None = None, nonce: str = "4242",
             headers: dict[str, str] | None = None) -> TestResponse:
        """Sign (and encrypt) like WeChat; ``query`` entries then override what was signed."""
        xml = message if isinstance(message, bytes) else wechat_xml(message)
        signed = self.query(nonce=nonce)
        body = xml
        if mode in ("safe", "compat"):
            envelope = xmltodict.parse(
                self.crypto.encrypt_message(xml.decode(), signed["nonce"], signed["timestamp"])
            )["xml"]
            signed.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
            encrypted = {"Encrypt": envelope["Encrypt"]}
            fields = encrypted if mode == "safe" else {**xmltodict.parse(xml)["xml"], **encrypted}
            body = wechat_xml({"ToUserName": self.original_id, **fields})
        return self.client.post("/wechat/callback", query_string={**signed, **(query or {})},
                                data=body, content_type="text/xml", headers=headers)

    def reply(self, response: TestResponse) -> dict[str, Any] | None:
        """The reply's fields (decrypted and signature-checked when encrypted); None for success."""
        body = response.get_data()
        if body in (b"", b"success"):
            return None
        fields = xmltodict.parse(body)["xml"]
        if "Encrypt" in fields:
            body = self.crypto.decrypt_message(
                body, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
            )
            fields = xmltodict.parse(body)["xml"]
        return fields
