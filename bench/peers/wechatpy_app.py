"""Peer (a): the least a Flask callback can do with wechatpy.

Verify the URL signature, verify and decrypt the body, parse it, reply with
text, encrypt the reply. No storage, no dedupe, no logging per request.
Serve with ``gunicorn 'bench.peers.wechatpy_app:app'``; credentials come from
WECHAT_TOKEN, WECHAT_AES_KEY and WECHAT_APP_ID.
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

TOKEN = os.environ["WECHAT_TOKEN"]
crypto = WeChatCrypto(TOKEN, os.environ["WECHAT_AES_KEY"], os.environ["WECHAT_APP_ID"])
app = Flask(__name__)


@app.post("/wechat/callback")
def callback() -> Response:
    args = request.args
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    try:
        check_signature(TOKEN, args.get("signature", ""), timestamp, nonce)
        xml = crypto.decrypt_message(
            request.get_data(), args.get("msg_signature", ""), timestamp, nonce
        )
    except InvalidSignatureException:
        abort(403)
    message = parse_message(xml)
    text = f"收到：{message.content}" if message.type == "text" else "收到"
    reply = create_reply(text, message).render()
    return Response(crypto.encrypt_message(reply, nonce, timestamp), mimetype="application/xml")
