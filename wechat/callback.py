"""``/wechat/callback``: URL verification and pushes from WeChat's servers.

A push goes top to bottom, cheapest and most decisive checks first: check
(body size, timestamp window, signature, mode), open (``wechat.inbound.Opener``:
envelope, msg_signature, decrypt, parse, addressee), dedupe, dispatch, reply. A
bad signature is 403; malformed or hostile input is 400 and touches nothing.
The callback owns the unit of work of the handlers it dispatches to: it commits
once they all ran. Our own failure rolls back, releases the dedupe claim and
answers 503, so WeChat's retry redoes the work rather than losing it.

The endpoint is plain WSGI in front of the Flask app rather than a Flask view.
Pushes are the account's hottest path and use none of Flask's request
machinery (routing, request and response objects, cookie sessions, hooks);
skipping it takes about a third off each push's CPU (bench/callback.py). What
the handlers need is kept: an app context (configuration, the database
session), the request id on every log line and in ``X-Request-Id``, metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from redis.exceptions import RedisError
from werkzeug.http import HTTP_STATUS_CODES

from core import logs
from core.db import db
from wechat import dispatch
from wechat.crypto import CryptoError, signature_matches
from wechat.dedupe import ReplyCache
from wechat.inbound import BadMessage, Forged, Inbound, Opener
from wechat.metrics import CALLBACKS
from wechat.replies import render

log = logging.getLogger(__name__)

PATH = "/wechat/callback"
_TEXT = "text/plain; charset=utf-8"
_XML = "application/xml; charset=utf-8"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = _TEXT


def _text(text: str, status: int = 200) -> _Answer:
    return _Answer(status, text.encode())


def _refuse(status: int, outcome: str, reason: str) -> _Answer:
    CALLBACKS.labels(type="unknown", outcome=outcome).inc()
    log.warning("callback refused", extra={"outcome": outcome, "reason": reason})
    return _text(reason, status)


def _ascii_int(text: str) -> int | None:
    """``text`` as an integer when it is 1-12 ASCII digits, else None.

    ``str.isdigit`` also accepts "١٢٣" and "²" (the second then fails ``int``): anything
    a client sends is checked against ASCII digits before it is converted.
    """
    return int(text) if 0 < len(text) <= 12 and text.isascii() and text.isdigit() else None


def _query(environ: Environ) -> dict[str, str]:
    """The query string's parameters; the first of repeated ones wins."""
    args: dict[str, str] = {}
    for key, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        args.setdefault(key, value)
    return args


class CallbackEndpoint:
    """WSGI middleware answering ``PATH`` itself and passing every other path to ``downstream``."""

    def __init__(self, app: Flask, downstream: WSGIApp) -> None:
        config = app.config
        self.app = app
        self.downstream = downstream
        self.token: str = config["WECHAT_TOKEN"]
        self.plaintext_allowed: bool = config["CALLBACK_PLAINTEXT_ALLOWED"]
        self.max_bytes: int = config["CALLBACK_MAX_BYTES"]
        self.window: int = config["CALLBACK_TIMESTAMP_WINDOW"]
        self.retry_wait: float = config["CALLBACK_RETRY_WAIT"]
        self.opener = Opener(config["WECHAT_TOKEN"], config["WECHAT_AES_KEY"],
                             config["WECHAT_APP_ID"], config["WECHAT_ORIGINAL_ID"])
        self.replies = ReplyCache(app.extensions["redis"], config["CALLBACK_DEDUPE_TTL"])
        self.dispatcher = dispatch.get_dispatcher(app)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.downstream(environ, start_response)
        request_id = logs.begin_request(environ.get("HTTP_X_REQUEST_ID", ""))
        try:
            with self.app.app_context():
                answer = self._route(environ)
        except Exception:
            log.exception("callback failed")
            answer = _text("internal error", 500)
        finally:
            logs.end_request()
        headers = [("Content-Type", answer.content_type),
                   ("Content-Length", str(len(answer.body))), ("X-Request-Id", request_id)]
        if answer.status == 405:
            headers.append(("Allow", "GET, HEAD, POST"))
        start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status]}", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]

    def _route(self, environ: Environ) -> _Answer:
        method = environ.get("REQUEST_METHOD", "")
        if method in ("GET", "HEAD"):
            return self._verify_url(_query(environ))
        if method == "POST":
            return self._receive(environ)
        return _text("method not allowed", 405)

    # -- checks ---------------------------------------------------------------------------------

    def _signed(self, args: dict[str, str]) -> bool:
        return signature_matches(args.get("signature", ""), self.token,
                                 args.get("timestamp", ""), args.get("nonce", ""))

    def _fresh(self, timestamp: str) -> bool:
        moment = _ascii_int(timestamp)
        return moment is not None and abs(time.time() - moment) <= self.window

    def _body(self, environ: Environ) -> bytes | None:
        """The request body, or None when it exceeds the limit."""
        length = _ascii_int(environ.get("CONTENT_LENGTH") or "")
        if length is not None and length > self.max_bytes:
            return None
        if length is None and not environ.get("wsgi.input_terminated"):
            return b""  # no length and a stream that may not end: read nothing, as Werkzeug does
        body = environ["wsgi.input"].read(self.max_bytes + 1 if length is None else length)
        return None if len(body) > self.max_bytes else body

    # -- the two requests -----------------------------------------------------------------------

    def _verify_url(self, args: dict[str, str]) -> _Answer:
        """WeChat's console check: echo ``echostr`` when the signature is ours."""
        if not self._signed(args):
            return _refuse(403, "bad_signature", "invalid signature")
        return _text(args.get("echostr", ""))

    def _receive(self, environ: Environ) -> _Answer:
        """A push, top to bottom: check, open, answer once (dedupe, dispatch), reply."""
        body = self._body(environ)
        if body is None:
            return _refuse(413, "too_large", "body too large")
        args = _query(environ)
        refused = self._check(args)
        if refused:
            return refused
        encrypted = args.get("encrypt_type") == "aes"
        try:
            inbound = self.opener.open(body, args, encrypted)
        except Forged:
            return _refuse(403, "bad_signature", "invalid msg_signature")
        except (BadMessage, CryptoError) as exc:
            return _refuse(400, "bad_request", str(exc))
        reply = self._reply(inbound)
        if reply is None:
            return _text("server busy", 503)
        if not reply:
            return _text("success")
        return _Answer(200, self.opener.seal(reply, args.get("nonce", "")) if encrypted
                       else reply, _XML)

    def _check(self, args: dict[str, str]) -> _Answer | None:
        """The query's timestamp, signature and mode; the refusal, or None when they pass."""
        if not self._fresh(args.get("timestamp", "")):
            return _refuse(403, "stale", "timestamp outside the accepted window")
        if not self._signed(args):
            return _refuse(403, "bad_signature", "invalid signature")
        if args.get("encrypt_type") != "aes" and not self.plaintext_allowed:
            # WeChat's plaintext signature covers timestamp and nonce, not the body: a
            # captured query string would carry any body for the timestamp window.
            return _refuse(403, "plaintext_refused", "plaintext pushes are not accepted")
        return None

    # -- answering once -------------------------------------------------------------------------

    def _reply(self, inbound: Inbound) -> bytes | None:
        """The reply (b'' for 'success'), once per push; None when we failed and want a retry."""
        if self.dispatcher.is_pure(inbound.kind):
            # Reply-only pushes are idempotent: a retry composes the same reply and has no
            # effect to repeat, so they need no claim in Redis.
            reply = render(self.dispatcher.dispatch(inbound, every=False), inbound) or b""
            self._note(inbound)
            return _counted(inbound, reply)
        try:
            claimed = self.replies.claim(inbound.dedupe_key)
        except RedisError:
            # Without the claim a retry could repeat the effects: WeChat retries a 503.
            CALLBACKS.labels(type=inbound.kind, outcome="unavailable").inc()
            log.warning("callback deferred: Redis is unavailable", extra={"kind": inbound.kind})
            return None
        if not claimed:
            return self._stored(inbound)
        try:
            reply = render(self.dispatcher.dispatch(inbound), inbound) or b""
            db.session.commit()
        except Exception:
            db.session.rollback()
            self._release(inbound)
            CALLBACKS.labels(type=inbound.kind, outcome="error").inc()
            log.exception("callback handler failed", extra={"kind": inbound.kind})
            return None
        try:
            self.replies.store(inbound.dedupe_key, reply)
        except RedisError:  # done and committed: a retry finds the claim or redoes idempotently
            log.warning("callback reply not cached: Redis is unavailable")
        return _counted(inbound, reply)

    def _note(self, inbound: Inbound) -> None:
        """A reply-only push's ``on_every`` handlers (the follower's last interaction), in
        their own unit of work: idempotent, so unclaimed; without the database the reply
        still goes, and only the note is lost."""
        try:
            self.dispatcher.note(inbound)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.warning("callback notes not kept", extra={"kind": inbound.kind}, exc_info=True)

    def _release(self, inbound: Inbound) -> None:
        try:
            self.replies.release(inbound.dedupe_key)
        except RedisError:  # the claim expires with its TTL, or went with Redis
            log.warning("dedupe claim not released: Redis is unavailable")

    def _stored(self, inbound: Inbound) -> bytes:
        """A retry: the first delivery's reply, or 'success' if it is still running."""
        CALLBACKS.labels(type=inbound.kind, outcome="duplicate").inc()
        try:
            stored = self.replies.wait(inbound.dedupe_key, self.retry_wait)
        except RedisError:
            stored = None
        return b"" if stored is None else stored


def _counted(inbound: Inbound, reply: bytes) -> bytes:
    CALLBACKS.labels(type=inbound.kind, outcome="replied" if reply else "success").inc()
    return reply


def init_app(app: Flask) -> None:
    """Put the endpoint in front of the app; handlers register on the dispatcher later."""
    dispatch.init_app(app)
    app.wsgi_app = CallbackEndpoint(app, app.wsgi_app)
