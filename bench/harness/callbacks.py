"""Safe-mode (AES) callbacks as WeChat sends them, and decoding of the replies.

Every generated request is a text message with its own MsgId, nonce and a
fresh timestamp, signed twice as WeChat does: ``signature`` over
(token, timestamp, nonce) in the query string and ``msg_signature`` over
(token, timestamp, nonce, Encrypt) for the encrypted body.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.messages import BaseMessage

from bench.harness.backend import Credentials

CALLBACK_PATH = "/wechat/callback"
USERS = 1000  # distinct openids the messages cycle through
CONTENT = "你好，请问我的积分是多少？"
_CHUNK = 5000  # requests per generation task


def openid(n: int) -> str:
    """A 28-character openid for user number ``n``."""
    return f"oBench{n % USERS:022d}"


def sign(*parts: str) -> str:
    """SHA-1 of the parts sorted and concatenated, as WeChat signs callbacks."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _plain_text_message(creds: Credentials, msg_id: int, user: str, created: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{creds.original_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{CONTENT}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def signed_request(
    creds: Credentials, msg_id: int, user: str, timestamp: int | None = None
) -> tuple[str, str]:
    """One encrypted text callback: ``(path with query string, body)``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    ts, nonce = str(timestamp), secrets.token_hex(5)
    key = base64.b64decode(creds.aes_key + "=")
    plain = _plain_text_message(creds, msg_id, user, timestamp)
    encrypt = PrpCrypto(key).encrypt(plain, creds.app_id).decode()
    query = urlencode(
        {
            "signature": sign(creds.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": user,
            "encrypt_type": "aes",
            "msg_signature": sign(creds.token, ts, nonce, encrypt),
        }
    )
    body = (
        f"<xml><ToUserName><![CDATA[{creds.original_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    return f"{CALLBACK_PATH}?{query}", body


def _request_lines(creds: Credentials, first_msg_id: int, count: int) -> str:
    timestamp = int(time.time())
    lines = []
    for msg_id in range(first_msg_id, first_msg_id + count):
        path, body = signed_request(creds, msg_id, openid(msg_id), timestamp)
        lines.append(f"{path}\t{body}\n")
    return "".join(lines)


def write_requests(path: Path, creds: Credentials, first_msg_id: int, count: int) -> None:
    """Write ``count`` distinct signed callbacks to ``path``, one ``path<TAB>body`` a line.

    MsgIds run from ``first_msg_id``; the work is spread over the machine's cores.
    """
    starts = range(first_msg_id, first_msg_id + count, _CHUNK)
    sizes = [min(_CHUNK, first_msg_id + count - start) for start in starts]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, path.open("w") as out:
        for chunk in pool.map(_request_lines, [creds] * len(sizes), starts, sizes):
            out.write(chunk)


def decrypt_reply(creds: Credentials, body: str) -> BaseMessage:
    """Verify and decrypt an encrypted passive reply; return it parsed."""
    crypto = WeChatCrypto(creds.token, creds.aes_key, creds.app_id)
    fields = xmltodict.parse(body)["xml"]
    xml = crypto.decrypt_message(body, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"])
    return parse_message(xml)
