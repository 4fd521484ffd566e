"""Mini-program login: code2session, opaque bearer tokens, the optional phone step.

The session key WeChat returns stays on the server, encrypted; the client gets
a random token whose SHA-256 is all the database keeps, so a leaked table
yields no usable token. Tokens expire and can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Row, Select, String, bindparam, exists, insert, select, update

from core.db import UTCDateTime, db, insert_skipping_conflicts, utcnow
from core.errors import ApiError, Refusal
from members.holders.binding import MINIAPP, Actor, bound_holder_id, is_bound
from members.holders.models import MemberSession, MiniappArrival
from members.protection import audit
from members.protection.pii import vault
from wechat import clients
from wechat.errors import (
    CodeRejected,
    RiskyUser,
    UserRateLimited,
    WeChatAPIError,
    WeChatUnavailable,
)

CODE_USED = 40163  # of the CodeRejected errcodes, the one that has its own answer

@dataclass(frozen=True)
class Login:
    token: str
    expires_in: int  # seconds
    bound: bool  # the caller (or its unionid twin) is bound to a card holder


def _hash(token: str) -> str:
    # 256 random bits: a plain hash cannot be brute-forced, no key needed.
    return hashlib.sha256(token.encode()).hexdigest()


def _wechat_refusal(exc: WeChatAPIError) -> Refusal:
    """What WeChat's refusal of a login or phone code means for the caller (a Refusal: the
    audit trail keeps the failed login)."""
    if isinstance(exc, WeChatUnavailable):
        return Refusal(503, "wechat_unavailable", "WeChat did not answer; retry shortly",
                        {"Retry-After": "5"})
    if isinstance(exc, CodeRejected):
        if exc.errcode == CODE_USED:
            return Refusal(400, "code_used", "the code was already used; call wx.login again")
        return Refusal(400, "invalid_code", "the code is invalid or expired; call wx.login again")
    if isinstance(exc, UserRateLimited):
        return Refusal(429, "wechat_rate_limited",
                        "WeChat limits logins for this user; retry shortly", {"Retry-After": "60"})
    if isinstance(exc, RiskyUser):
        return Refusal(403, "risky_user", "WeChat blocked this user as high-risk")
    return Refusal(502, "wechat_error", f"WeChat refused the request ({exc.errcode})")


def login(code: str, ip: str, region: str | None, channel: str | None = None) -> Login:
    """Exchange a wx.login code for a bearer token.

    ``channel``, the scene of the mini-program code that opened the mini-program (already
    checked to be a channel code), makes a first-time user that channel's: recorded only
    if this openid never logged in before, and never replaced (the first channel keeps
    the user).
    """
    try:
        answer = clients.mini_program().wxa.code_to_session(code)
    except WeChatAPIError as exc:
        audit.record("login_failed", ip=ip, region=region, errcode=exc.errcode)
        raise _wechat_refusal(exc) from exc
    openid, unionid = answer["openid"], answer.get("unionid")
    token = secrets.token_urlsafe(32)
    ttl = current_app.config["MEMBER_SESSION_TTL"]
    now = utcnow()
    if channel is not None:
        # Before this login's session exists: a user with any earlier session is not new.
        db.session.execute(_insert_arrival(), {"openid": openid, "unionid": unionid,
                                             "channel": channel, "arrived_at": now})
    session = {
        "token_hash": _hash(token), "openid": openid, "unionid": unionid,
        "session_key": vault().encrypt(answer["session_key"], "member_session.session_key"),
        "created_at": now, "expires_at": now + timedelta(seconds=ttl),
    }
    event = audit.event_params("login", openid=openid, ip=ip, region=region)
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        bound = connection.scalar(_LOGIN, {**session, **event})
    else:
        bound = is_bound(Actor(app=MINIAPP, openid=openid, unionid=unionid))
        connection.execute(_INSERT_SESSION, session)
        audit.record("login", openid=openid, ip=ip, region=region)
    return Login(token=token, expires_in=ttl, bound=bound)


# Built once: logins and every member call run them, and building and cache-keying a
# statement costs about as much as running it.
_SESSIONS = MemberSession.__table__
_INSERT_SESSION = insert(_SESSIONS).values({name: bindparam(name) for name in (
    "token_hash", "openid", "unionid", "session_key", "created_at", "expires_at")})
# A login on PostgreSQL in one round trip: the session and its audit event inserted by
# data-modifying CTEs of the statement that answers whether the user is bound (which sees
# the bindings as they were before, as ``is_bound`` would).
_LOGIN = audit.with_event(
    select(bound_holder_id(MINIAPP, bindparam("openid"), bindparam("unionid")).is_not(None))
    .add_cte(_INSERT_SESSION.cte("new_session")))
# The live session of a token's hash: a revoked or expired one is no row. Core, not the
# ORM, on the connection: every member call runs it. A view that reads more of the caller
# adds its columns to it (``members.holders.api.member_required_with``), correlated to the
# session's, and gets them in the same round trip.
LIVE_SESSION = (
    select(_SESSIONS.c.id, _SESSIONS.c.openid, _SESSIONS.c.unionid)
    .where(_SESSIONS.c.token_hash == bindparam("hash"), _SESSIONS.c.revoked_at.is_(None),
           _SESSIONS.c.expires_at > bindparam("now", type_=UTCDateTime))
)
# The id of the holder the session's user is bound to (``binding.bound_holder_id``), as an
# expression for a column or a join of a statement built on LIVE_SESSION.
CALLER_HOLDER_ID = bound_holder_id(MINIAPP, _SESSIONS.c.openid, _SESSIONS.c.unionid,
                                   correlate=_SESSIONS)
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _insert_arrival() -> Any:
    """One statement, run only for a login that brings a channel: the arrival of an openid
    with no session yet, skipped when it has one or an arrival already (a concurrent first
    login). Built per call: its ON CONFLICT is the database's dialect."""
    return insert_skipping_conflicts(MiniappArrival.__table__, "openid").from_select(
        ["openid", "unionid", "channel", "arrived_at"],
        select(bindparam("openid", type_=String), bindparam("unionid", type_=String),
               bindparam("channel", type_=String), bindparam("arrived_at", type_=UTCDateTime))
        .where(~exists().where(MemberSession.openid == bindparam("openid"))),
    )


def authenticate(token: str, statement: Select = LIVE_SESSION, *, alone: bool = False) -> Row:
    """The live session of a bearer token: the row of ``statement`` (LIVE_SESSION, or it with
    more columns: ``id``, ``openid``, ``unionid`` first); 401 for anything else.

    ``alone``: the request runs no other statement, so it needs no transaction of its own
    (one statement reads one snapshot whatever its transaction): it runs in autocommit,
    which spares the round trips of BEGIN and of the ROLLBACK that ends the request. Only
    at the start of the request's unit of work, before anything else touched the database.
    """
    if not token:
        raise ApiError(401, "invalid_token", "log in again")
    connection = db.session.connection(execution_options=_AUTOCOMMIT if alone else None)
    row = connection.execute(statement, {"hash": _hash(token), "now": utcnow()}).first()
    if row is None:
        raise ApiError(401, "invalid_token", "log in again")
    return row


def revoke(session_id: int) -> None:
    db.session.execute(update(_SESSIONS).where(_SESSIONS.c.id == session_id)
                       .values(revoked_at=utcnow()))


def store_phone(session_id: int, phone_code: str) -> str:
    """getuserphonenumber with the button's code; keeps the number encrypted on the session."""
    try:
        answer = clients.mini_program().post(
            "wxa/business/getuserphonenumber", data={"code": phone_code},
            api_base_url=_api_root(),
        )
    except WeChatAPIError as exc:
        raise _wechat_refusal(exc) from exc
    phone = answer["phone_info"]["purePhoneNumber"]
    db.session.execute(update(_SESSIONS).where(_SESSIONS.c.id == session_id)
                       .values(phone=vault().encrypt(phone, "member_session.phone")))
    return phone


def _api_root() -> str:
    # wechatpy joins non-cgi-bin paths onto the root; the transport rewrites the host.
    return "https://api.weixin.qq.com/"
