"""The control API under /sim/: seeding, records, clock and fault injection (JSON in and out).

Each route maps a JSON object onto the SimState method of the same purpose, so in-process
tests and out-of-process ones drive the simulator the same way:

    POST   /sim/reset                    SimState.reset()
    GET    /sim/requests?path=P          recorded WeChat calls {method, path, query, json, time}
    GET    /sim/stats                    counters: requests by path, token_calls by appid, …
    POST   /sim/faults                   {path|"*", errcode|http_status|delay, times (-1: always)}
    GET    /sim/faults, DELETE /sim/faults
    POST   /sim/tokens/expire|revoke     {appid}: its tokens now answer 42001 / 40001
    POST   /sim/users                    {openid, unionid?, subscribed?, last_interaction?, …}
    GET    /sim/users/<openid>
    POST   /sim/users/activity           {openid, action: subscribe|unsubscribe|interact,
                                          kind?: message|click|scan (interact), …}
    POST   /sim/miniapp/code             {openid, unionid?} → {code}
    POST   /sim/miniapp/phone-code       {phone, country_code?} → {code}
    POST   /sim/subscribe-grants         {openid, template_id, count} → {remaining}
    POST   /sim/clock                    {advance: seconds} → {now}
    GET    /sim/callbacks?wait=S         async events sent to callback_url and their outcome

Bad input answers 400 `{"error": …}`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, request

from .web import sim_state

bp = Blueprint("sim_control", __name__, url_prefix="/sim")


@bp.errorhandler(TypeError)
@bp.errorhandler(ValueError)
def _bad_request(error: Exception) -> tuple[dict[str, str], int]:
    """Missing or unknown fields reach the state methods as TypeError/ValueError."""
    return {"error": str(error)}, 400


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


@bp.post("/reset")
def reset() -> dict[str, Any]:
    sim_state().reset()
    return {"ok": True}


@bp.get("/requests")
def recorded() -> list[dict[str, Any]]:
    return sim_state().recorded(request.args.get("path"))


@bp.get("/stats")
def stats() -> dict[str, dict[str, int]]:
    return sim_state().stats_snapshot()


@bp.post("/faults")
def add_fault() -> dict[str, Any]:
    state = sim_state()
    state.add_fault(**_body())
    return {"faults": state.pending_faults()}


@bp.get("/faults")
def list_faults() -> dict[str, Any]:
    return {"faults": sim_state().pending_faults()}


@bp.delete("/faults")
def clear_faults() -> dict[str, Any]:
    sim_state().clear_faults()
    return {"faults": []}


@bp.post("/tokens/expire")
def expire_tokens() -> dict[str, Any]:
    sim_state().expire_tokens(**_body())
    return {"ok": True}


@bp.post("/tokens/revoke")
def revoke_tokens() -> dict[str, Any]:
    sim_state().revoke_tokens(**_body())
    return {"ok": True}


@bp.post("/users")
def add_user() -> dict[str, Any]:
    state = sim_state()
    user = state.add_user(**_body())
    return state.user(user.openid) or {}


@bp.get("/users/<openid>")
def show_user(openid: str) -> dict[str, Any]:
    return sim_state().user(openid) or abort(404)


@bp.post("/users/activity")
def user_activity() -> dict[str, Any]:
    state = sim_state()
    user = state.user_acted(**_body())
    return state.user(user.openid) or {}


@bp.post("/miniapp/code")
def login_code() -> dict[str, str]:
    return {"code": sim_state().mint_login_code(**_body())}


@bp.post("/miniapp/phone-code")
def phone_code() -> dict[str, str]:
    return {"code": sim_state().mint_phone_code(**_body())}


@bp.post("/subscribe-grants")
def subscribe_grant() -> dict[str, int]:
    return {"remaining": sim_state().grant_subscription(**_body())}


@bp.post("/clock")
def advance_clock() -> dict[str, float]:
    return {"now": sim_state().advance_clock(_body().get("advance", 0))}


@bp.get("/callbacks")
def callbacks() -> dict[str, Any]:
    """Events sent to the backend so far; `?wait=S` first waits up to S s for the queue."""
    state = sim_state()
    idle = state.wait_callbacks(float(request.args.get("wait", 0)))
    return {"idle": idle, "callbacks": state.callbacks()}
