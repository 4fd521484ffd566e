"""The mini-program's member API. Thin: parse, call a service, shape the answer.

Every member call takes the actor from the bearer token, never from the
request: there is no id in any path or body that could name someone else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import Select

from core.client_ip import request_client_ip
from core.db import db
from core.errors import ApiError, Refusal
from core.jsonapi import json_body
from members.holders import binding, sessions
from members.holders.binding import MINIAPP, Actor, Origin
from members.holders.models import CardHolder, MemberSession
from members.protection import audit, limits, regions
from members.protection.masking import mask_phone
from members.protection.pii import vault
from members.transactions import points

bp = Blueprint("members_api", __name__, url_prefix="/api")

# wx.login and phone-button codes are short URL-safe strings; anything else is refused
# before WeChat is asked (an empty code is the caller's fault, not WeChat's: 400, not 502).
_WX_CODE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A channel's code, as the contract defines it (the QR and mini-program codes' scene).
_CHANNEL_CODE = re.compile(r"[A-Za-z0-9_]{1,32}")
POINTS_PAGE_DEFAULT = 20
POINTS_PAGE_MAX = 100


def request_origin() -> Origin:
    """Client IP (through trusted proxies only) and its region; refused if policy says so."""
    ip = request_client_ip()
    region = regions.classify(ip)
    try:
        regions.enforce_policy(region)
    except ApiError as exc:
        audit.record("region_refused", ip=ip, region=region.name, path=request.path)
        raise Refusal(exc.status, exc.code, exc.message, exc.headers) from None
    return Origin(ip=ip, region=region.name, local=region.local)


View = Callable[..., Any]


def member_required_with(statement: Select, *, alone: bool = False) -> Callable[[View], View]:
    """``member_required`` whose token lookup is ``statement``: ``sessions.LIVE_SESSION`` with
    the columns the view reads next, which it finds in ``g.session`` (one round trip for
    the caller and what the view needs of it).

    ``alone``: the view runs no other statement, so this one runs outside a transaction
    (``sessions.authenticate``): one round trip for the whole request instead of three.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "missing_token", "send Authorization: Bearer <token>")
            g.session = sessions.authenticate(token.strip(), statement, alone=alone)
            g.actor = Actor(app=MINIAPP, openid=g.session.openid, unionid=g.session.unionid)
            return view(*args, **kwargs)

        return wrapper

    return decorate


# Resolve the bearer token to the caller's session row and actor (g.session, g.actor).
member_required = member_required_with(sessions.LIVE_SESSION)


def _wx_code(body: dict[str, Any] | None = None) -> str:
    code = (json_body({"code": str}) if body is None else body)["code"]
    if not _WX_CODE.fullmatch(code):
        raise ApiError(400, "invalid_code", "code must be the code from wx.login")
    return code


def _channel(value: str | None) -> str | None:
    """The login's optional channel (the mini-program code's scene) if it is a channel code.

    Anything else is ignored, not refused: the contract makes the field optional, and a
    scene mangled on its way through the mini-program must not keep its user out.
    """
    return value if value is not None and _CHANNEL_CODE.fullmatch(value) else None


@bp.post("/miniapp/login")
def login() -> Response:
    body = json_body({"code": str, "channel": (str, type(None))}, frozenset({"channel"}))
    code, channel = _wx_code(body), _channel(body.get("channel"))
    origin = request_origin()
    limits.enforce("login", {"ip": origin.ip}, local=origin.local)
    result = sessions.login(code, origin.ip, origin.region, channel)
    db.session.commit()
    return jsonify(token=result.token, bound=result.bound, expires_in=result.expires_in)


@bp.post("/miniapp/logout")
@member_required
def logout() -> Response:
    sessions.revoke(g.session.id)
    db.session.commit()
    return jsonify(logged_out=True)


@bp.post("/miniapp/phone")
@member_required
def phone() -> Response:
    number = sessions.store_phone(g.session.id, _wx_code())
    db.session.commit()
    return jsonify(phone=mask_phone(number))


@bp.post("/members/bind/start")
@member_required
def bind_start() -> Response:
    body = json_body({"card_no": str, "phone": str})
    challenge_id = binding.start(g.actor, request_origin(), body["card_no"], body["phone"])
    db.session.commit()
    return jsonify(challenge_id=challenge_id)


@bp.post("/members/bind/confirm")
@member_required
def bind_confirm() -> Response:
    body = json_body({"challenge_id": str, "otp": str})
    holder = binding.confirm(g.actor, request_origin(), body["challenge_id"], body["otp"])
    db.session.commit()
    return jsonify(bound=True, card_last4=holder.card_last4)


# The caller's session, bound holder and balance in one round trip (every mini-program page
# asks); the holder's columns are NULL for a caller bound to no card.
_ME = (sessions.LIVE_SESSION
       .add_columns(CardHolder.id.label("holder_id"), CardHolder.card_last4, CardHolder.phone,
                    CardHolder.tier, points.balance_of(CardHolder.id).label("points"))
       .outerjoin_from(MemberSession, CardHolder, CardHolder.id == sessions.CALLER_HOLDER_ID))


@bp.get("/members/me")
@member_required_with(_ME, alone=True)
def me() -> Response:
    row = g.session
    if row.holder_id is None:
        return jsonify(bound=False)
    phone_number = vault().decrypt(row.phone, "card_holder.phone")
    return jsonify(bound=True, card_last4=row.card_last4, phone=mask_phone(phone_number),
                   tier=row.tier, points=int(row.points))


@bp.get("/members/points")
@member_required
def points_history() -> Response:
    """The caller's points ledger, newest first: ``?limit=`` (1-100) and ``?cursor=``.

    ``next_cursor`` is null on the last page. Unbound callers have no entries.
    """
    limit = _query_int("limit", default=POINTS_PAGE_DEFAULT, low=1, high=POINTS_PAGE_MAX)
    cursor = _query_int("cursor", default=None, low=1, high=2**63 - 1)
    holder = binding.holder_of(g.actor)
    if holder is None:
        return jsonify(entries=[], next_cursor=None)
    page = points.history(holder.id, before=cursor, limit=limit)
    return jsonify(entries=[_point_entry(entry) for entry in page.entries],
                   next_cursor=str(page.next_cursor) if page.next_cursor else None)


def _query_int(name: str, *, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _point_entry(entry: points.HistoryEntry) -> dict[str, Any]:
    """One ledger line for the member: the card only as its last four digits."""
    txn = None
    if entry.occurred_at is not None:
        txn = {"merchant": entry.merchant, "amount_fen": entry.amount_fen,
               "currency": entry.currency, "occurred_at": _iso(entry.occurred_at),
               "card_last4": entry.card_last4}
    return {"id": str(entry.id), "kind": entry.kind, "points": entry.points,
            "reason": entry.reason, "created_at": _iso(entry.created_at), "transaction": txn}


@bp.delete("/members/binding")
@member_required
def unbind() -> Response:
    binding.unbind(g.actor, request_origin())
    db.session.commit()
    return jsonify(bound=False)
