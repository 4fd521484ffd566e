"""access_token and JS-SDK ticket endpoints (§3.1, §3.11)."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, g, request

from .errors import ApiError
from .state import MP, OA
from .tokens import Credential
from .web import json_body, ok, sim_state, token_required

bp = Blueprint("sim_tokens", __name__)
TICKET_TYPES = ("jsapi", "wx_card")


def _authenticate_token_call(appid: Any, secret: Any, grant_type: Any, calls: str) -> None:
    state = sim_state()
    with state.lock:
        state.stats.count(calls, str(appid or ""))  # failed calls count too: they burn quota
        if grant_type != "client_credential":
            raise ApiError(40002)
        state.authenticate(appid, secret, (OA, MP), token_call=True)


@bp.get("/cgi-bin/token")
def token() -> dict[str, Any]:
    """Every call issues a new token; the previous one keeps working for the grace period."""
    args = request.args
    appid = args.get("appid")
    _authenticate_token_call(appid, args.get("secret"), args.get("grant_type"), "token_calls")
    state = sim_state()
    with state.lock:
        issued = state.tokens.issue_basic(appid)
    return {"access_token": issued.value, "expires_in": state.limits.token_ttl}


@bp.post("/cgi-bin/stable_token")
def stable_token() -> dict[str, Any]:
    """Idempotent in normal mode; `force_refresh: true` replaces the token at once."""
    body = json_body()
    appid = body.get("appid")
    _authenticate_token_call(
        appid, body.get("secret"), body.get("grant_type"), "stable_token_calls"
    )
    state = sim_state()
    with state.lock:
        issued, expires_in = state.tokens.issue_stable(appid, body.get("force_refresh") is True)
    return {"access_token": issued.value, "expires_in": expires_in}


@bp.get("/cgi-bin/ticket/getticket")
@token_required(OA, MP)
def ticket() -> dict[str, Any]:
    """The app's current JS-SDK (or card) ticket, renewed once it has expired."""
    kind = request.args.get("type", "jsapi")
    if kind not in TICKET_TYPES:
        raise ApiError(40097, "type")
    state = sim_state()
    with state.lock:
        now = state.clock.now()
        current = state.jsapi_tickets.get((g.appid, kind))
        if current is None or not current.usable(now):
            value = secrets.token_urlsafe(64)
            current = Credential(value, g.appid, now + state.limits.token_ttl)
            state.jsapi_tickets[(g.appid, kind)] = current
        state.stats.count("ticket_calls", g.appid)
        return ok(ticket=current.value, expires_in=round(current.expires_at - now))
