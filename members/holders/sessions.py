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
from sqlalchemy import String, bindparam, exists, insert, select

from core.db import UTCDateTime, db, insert_skipping_conflicts, utcnow
from core.errors import ApiError, Refusal
from members.holders.binding import MINIAPP, Actor, is_bound
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
    bound = is_bound(Actor(app=MINIAPP, openid=openid, unionid=unionid))
    token = secrets.token_urlsafe(32)
    ttl = current_app.config["MEMBER_SESSION_TTL"]
    now = utcnow()
    if channel is not None:
        # Before this login's session exists: a user with any earlier session is not new.
        db.session.execute(_insert_arrival(), {"openid": openid, "unionid": unionid,
                                             "channel": channel, "arrived_at": now})
    db.session.execute(_INSERT_SESSION, {
        "token_hash": _hash(token), "openid": openid, "unionid": unionid,
        "session_key": vault().encrypt(answer["session_key"], "member_session.session_key"),
        "created_at": now, "expires_at": now + timedelta(seconds=ttl),
    })
    audit.record("login", openid=openid, ip=ip, region=region)
    return Login(token=token, expires_in=ttl, bound=bound)


# Built once: logins and every member call run them, and building and cache-keying a
# statement costs about as much as running it.
_BY_TOKEN_HASH = select(MemberSession).where(MemberSession.token_hash == bindparam("hash"))
_INSERT_SESSION = insert(MemberSession.__table__)


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


def authenticate(token: str) -> MemberSession:
    """The live session of a bearer token; 401 for anything else."""
    session = db.session.scalar(_BY_TOKEN_HASH, {"hash": _hash(token)}) if token else None
    if session is None or session.revoked_at is not None or session.expires_at <= utcnow():
        raise ApiError(401, "invalid_token", "log in again")
    return session


def revoke(session: MemberSession) -> None:
    session.revoked_at = utcnow()


def store_phone(session: MemberSession, phone_code: str) -> str:
    """getuserphonenumber with the button's code; keeps the number encrypted on the session."""
    try:
        answer = clients.mini_program().post(
            "wxa/business/getuserphonenumber", data={"code": phone_code},
            api_base_url=_api_root(),
        )
    except WeChatAPIError as exc:
        raise _wechat_refusal(exc) from exc
    phone = answer["phone_info"]["purePhoneNumber"]
    session.phone = vault().encrypt(phone, "member_session.phone")
    return phone


def _api_root() -> str:
    # wechatpy joins non-cgi-bin paths onto the root; the transport rewrites the host.
    return "https://api.weixin.qq.com/"
