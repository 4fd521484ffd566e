"""Peer of bench/login.py: the least a Flask mini-program login can do with wechatpy.

``POST /api/miniapp/login {"code"}`` exchanges the code at code2session through
wechatpy's own client (its default ``requests`` session, its in-memory token)
and inserts one session row; ``GET /api/members/me`` reads that row back by its
bearer token. Nothing else: no rate limit, no region policy, no audit event, no
encryption of the session key, no hashing of the token, no binding lookup.

The same environment as the project's app: DATABASE_URL, MINIAPP_APP_ID and
MINIAPP_APP_SECRET, and WECHAT_API_BASE, the host that stands for
api.weixin.qq.com (the simulator). The bench creates the table
(:func:`create_schema`) before the workers start, so that they do not race to.
Serve with ``gunicorn 'bench.peers.wechatpy_login:create()'``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import requests
from flask import Flask, Response, abort, jsonify, request
from sqlalchemy import Engine, create_engine, text
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

WECHAT_HOST = "https://api.weixin.qq.com"
SCHEMA = """CREATE TABLE IF NOT EXISTS peer_session (
    token text PRIMARY KEY,
    openid text NOT NULL,
    unionid text,
    session_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)"""
INSERT = text("INSERT INTO peer_session (token, openid, unionid, session_key) "
              "VALUES (:token, :openid, :unionid, :session_key)")
SELECT = text("SELECT openid, unionid FROM peer_session WHERE token = :token")


class _HostRewrite(requests.Session):
    """requests' session with WeChat's host replaced: wechatpy hard-codes it."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        return super().request(method, str(url).replace(WECHAT_HOST, self.base, 1),
                               *args, **kwargs)


def create_schema(database_url: str) -> None:
    """The peer's one table, in the bench database."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(SCHEMA))
    finally:
        engine.dispose()


def create() -> Flask:
    """The peer app, configured from the environment."""
    engine = create_engine(os.environ["DATABASE_URL"])
    client = WeChatClient(os.environ["MINIAPP_APP_ID"], os.environ["MINIAPP_APP_SECRET"])
    client._http = _HostRewrite(os.environ.get("WECHAT_API_BASE", WECHAT_HOST))
    app = Flask(__name__)
    app.add_url_rule("/api/miniapp/login", view_func=lambda: login(client, engine),
                     methods=["POST"], endpoint="login")
    app.add_url_rule("/api/members/me", view_func=lambda: me(engine), endpoint="me")
    return app


def login(client: WeChatClient, engine: Engine) -> Response:
    code = (request.get_json(silent=True) or {}).get("code")
    if not isinstance(code, str) or not code:
        abort(400)
    try:
        answer = client.wxa.code_to_session(code)
    except WeChatClientException:
        abort(400)
    token = secrets.token_urlsafe(32)
    with engine.begin() as connection:
        connection.execute(INSERT, {"token": token, "openid": answer["openid"],
                                    "unionid": answer.get("unionid"),
                                    "session_key": answer["session_key"]})
    return jsonify(token=token)


def me(engine: Engine) -> Response:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        abort(401)
    with engine.connect() as connection:
        row = connection.execute(SELECT, {"token": token}).first()
    if row is None:
        abort(401)
    return jsonify(openid=row.openid, unionid=row.unionid)
