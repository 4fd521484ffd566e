"""Web OAuth2 for H5 pages (§3.10): the browser's authorize page and the server-side calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request

from .errors import ApiError
from .oauth import SCOPES, WebGrant
from .state import OA, SimState
from .web import ok, sim_state

bp = Blueprint("sim_oauth", __name__)
# Since late 2021 sns/userinfo returns these placeholders instead of the real profile.
ANONYMOUS_PROFILE = {
    "nickname": "微信用户",
    "sex": 0,
    "province": "",
    "city": "",
    "country": "",
    "headimgurl": "https://thirdwx.qlogo.cn/mmopen/vi_32/sim/132",
    "privilege": [],
}


def _refusal(reason: str) -> Response:
    """WeChat shows the user an error page rather than redirecting."""
    return Response(
        f"<html><body><h2>{reason}</h2></body></html>", status=400, mimetype="text/html"
    )


def _with_unionid(state: SimState, answer: dict[str, Any]) -> dict[str, Any]:
    """Add the user's unionid when the account is bound to an open platform (seeded one)."""
    user = state.followers.find(answer["openid"])
    if user is not None and user.unionid:
        answer["unionid"] = user.unionid
    return answer


def _grant_answer(state: SimState, grant: WebGrant) -> dict[str, Any]:
    access = grant.access
    return _with_unionid(
        state,
        {
            "access_token": access.value,
            "expires_in": state.limits.token_ttl,
            "refresh_token": grant.refresh.value,
            "openid": access.owner,
            "scope": access.scope,
        },
    )


@bp.get("/connect/oauth2/authorize")
def authorize() -> Response:
    """Who the user is comes from `sim_openid` (or the configured default user)."""
    args = request.args
    state = sim_state()
    if state.role_of(args.get("appid", "")) != OA:
        return _refusal("appid 参数错误")
    if not args.get("redirect_uri"):
        return _refusal("redirect_uri 参数错误")
    if args.get("response_type") != "code" or args.get("scope") not in SCOPES:
        return _refusal("scope 参数错误或没有 scope 权限")
    openid = args.get("sim_openid") or state.config.default_oauth_openid
    with state.lock:
        if state.followers.find(openid) is None:
            state.followers.upsert(openid, subscribed=False)  # OAuth works for non-followers
        code = state.web.authorize(openid, args["scope"])
    target = args["redirect_uri"]
    query = urlencode({"code": code, "state": args.get("state", "")})
    return redirect(f"{target}{'&' if '?' in target else '?'}{query}")


@bp.get("/sns/oauth2/access_token")
def exchange_code() -> dict[str, Any]:
    args = request.args
    state = sim_state()
    with state.lock:
        state.authenticate(args.get("appid"), args.get("secret"), (OA,))
        if args.get("grant_type") != "authorization_code":
            raise ApiError(40002)
        return _grant_answer(state, state.web.exchange(args.get("code")))


@bp.get("/sns/oauth2/refresh_token")
def refresh() -> dict[str, Any]:
    args = request.args
    state = sim_state()
    if state.role_of(args.get("appid", "")) != OA:
        raise ApiError(40013)
    if args.get("grant_type") != "refresh_token":
        raise ApiError(40002)
    with state.lock:
        return _grant_answer(state, state.web.refresh(args.get("refresh_token")))


def _web_user(state: SimState) -> tuple[str, str]:
    """(openid, scope) of the web token, which must belong to the `openid` asked about."""
    token = state.web.resolve(request.args.get("access_token"))
    if request.args.get("openid") != token.owner:
        raise ApiError(40003)
    return token.owner, token.scope


@bp.get("/sns/userinfo")
def user_info() -> dict[str, Any]:
    state = sim_state()
    with state.lock:
        openid, scope = _web_user(state)
        if scope != "snsapi_userinfo":
            raise ApiError(48001)
        return _with_unionid(state, {"openid": openid, **ANONYMOUS_PROFILE})


@bp.get("/sns/auth")
def check_token() -> dict[str, Any]:
    state = sim_state()
    with state.lock:
        _web_user(state)
    return ok()
