"""``/wechat/callback``: URL verification and pushes from WeChat's servers.

Order of checks for a push, cheapest and most decisive first: body size,
timestamp window, signature, (safe mode) envelope + msg_signature + decrypt,
safe parse, dedupe, dispatch. A bad signature is 403; malformed or hostile
input is 400 and touches nothing. Our own failure releases the dedupe claim
and answers 503, so WeChat's retry redoes the work rather than losing it.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, request

from core.db import db
from core.metrics import CALLBACKS
from wechat import dispatch
from wechat.crypto import CryptoError, MessageCrypto, signature_matches
from wechat.dedupe import ReplyCache
from wechat.inbound import BadMessage, Inbound, envelope_fields, parse
from wechat.replies import render

log = logging.getLogger(__name__)
bp = Blueprint("wechat_callback", __name__)


def _plain(body: str | bytes, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


def _refuse(status: int, outcome: str, reason: str) -> Response:
    CALLBACKS.labels(type="unknown", outcome=outcome).inc()
    log.warning("callback refused", extra={"outcome": outcome, "reason": reason})
    return _plain(reason, status)


def _signed(args: dict[str, str]) -> bool:
    return signature_matches(
        args.get("signature", ""), current_app.config["WECHAT_TOKEN"],
        args.get("timestamp", ""), args.get("nonce", ""),
    )


def _fresh(timestamp: str) -> bool:
    window = current_app.config["CALLBACK_TIMESTAMP_WINDOW"]
    return timestamp.isdigit() and abs(time.time() - int(timestamp)) <= window


@bp.get("/wechat/callback")
def verify_url() -> Response:
    """WeChat's console check: echo ``echostr`` when the signature is ours."""
    if not _signed(request.args):
        return _refuse(403, "bad_signature", "invalid signature")
    return _plain(request.args.get("echostr", ""))


@bp.post("/wechat/callback")
def receive() -> Response:
    limit = current_app.config["CALLBACK_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        return _refuse(413, "too_large", "body too large")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _refuse(413, "too_large", "body too large")

    args = request.args
    if not _fresh(args.get("timestamp", "")):
        return _refuse(403, "stale", "timestamp outside the accepted window")
    if not _signed(args):
        return _refuse(403, "bad_signature", "invalid signature")
    encrypted = args.get("encrypt_type") == "aes"
    try:
        inbound = parse(_open(body, args), authenticated=True) if encrypted else parse(body)
    except _Forged:
        return _refuse(403, "bad_signature", "invalid msg_signature")
    except (BadMessage, CryptoError) as exc:
        return _refuse(400, "bad_request", str(exc))

    reply = _answer(inbound)
    if reply is None:
        return _plain("server busy", 503)
    if not reply:
        return _plain("success")
    if encrypted:
        crypto: MessageCrypto = current_app.extensions["wechat.crypto"]
        reply = crypto.envelope(reply, str(int(time.time())), args.get("nonce", "")).encode()
    return Response(reply, content_type="application/xml; charset=utf-8")


class _Forged(Exception):
    """msg_signature does not match the encrypted payload."""


def _open(body: bytes, args: dict[str, str]) -> bytes:
    """Check msg_signature over the envelope's Encrypt and decrypt it."""
    encrypted = envelope_fields(body).get("Encrypt")
    if not encrypted:
        raise BadMessage("Encrypt is missing")
    config = current_app.config
    if not signature_matches(args.get("msg_signature", ""), config["WECHAT_TOKEN"],
                             args.get("timestamp", ""), args.get("nonce", ""), encrypted):
        raise _Forged
    return current_app.extensions["wechat.crypto"].decrypt(encrypted)


def _answer(inbound: Inbound) -> bytes | None:
    """The reply (b'' for 'success'), once per push; None when we failed and want a retry."""
    dispatcher = dispatch.get_dispatcher()
    if dispatcher.is_pure(inbound.kind):
        # Reply-only pushes are idempotent: a retry composes the same reply and has no
        # effect to repeat, so they need no claim in Redis.
        return _counted(inbound, render(dispatcher.dispatch(inbound), inbound) or b"")
    cache: ReplyCache = current_app.extensions["wechat.replies"]
    if not cache.claim(inbound.dedupe_key):
        return _stored(cache, inbound)
    try:
        reply = render(dispatcher.dispatch(inbound), inbound) or b""
        db.session.commit()
    except Exception:
        db.session.rollback()
        cache.release(inbound.dedupe_key)
        CALLBACKS.labels(type=inbound.kind, outcome="error").inc()
        log.exception("callback handler failed", extra={"kind": inbound.kind})
        return None
    cache.store(inbound.dedupe_key, reply)
    return _counted(inbound, reply)


def _stored(cache: ReplyCache, inbound: Inbound) -> bytes:
    """A retry: the first delivery's reply, or 'success' if it is still running."""
    CALLBACKS.labels(type=inbound.kind, outcome="duplicate").inc()
    stored = cache.wait(inbound.dedupe_key, current_app.config["CALLBACK_RETRY_WAIT"])
    return b"" if stored is None else stored


def _counted(inbound: Inbound, reply: bytes) -> bytes:
    CALLBACKS.labels(type=inbound.kind, outcome="replied" if reply else "success").inc()
    return reply


def init_app(app: Flask) -> None:
    config = app.config
    app.extensions["wechat.crypto"] = MessageCrypto(
        config["WECHAT_TOKEN"], config["WECHAT_AES_KEY"], config["WECHAT_APP_ID"]
    )
    app.extensions["wechat.replies"] = ReplyCache(
        app.extensions["redis"], config["CALLBACK_DEDUPE_TTL"]
    )
    dispatch.init_app(app)
    app.register_blueprint(bp)
