"""Mini-program server APIs: code2Session, phone number, unlimited wxacode (§3.12)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, g, request

from .data_rules import check_page
from .errors import ApiError
from .png import code_image
from .state import MP, new_session_key
from .web import json_body, ok, sim_state, token_required

bp = Blueprint("sim_miniapp", __name__)
SCENE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}")
ENV_VERSIONS = ("release", "trial", "develop")
WIDTH_RANGE = (280, 1280)
DEFAULT_WIDTH = 430


@bp.get("/sns/jscode2session")
def code_to_session() -> dict[str, Any]:
    """A single-use wx.login code → openid and a fresh session_key. An extra access_token
    (wechatpy sends one) is ignored, as WeChat does."""
    args = request.args
    state = sim_state()
    with state.lock:
        state.stats.count("code2session_calls", str(args.get("appid") or ""))
        state.authenticate(args.get("appid"), args.get("secret"), (MP,))
        if args.get("grant_type") != "authorization_code":
            raise ApiError(40002)
        openid = state.login_codes.redeem(args.get("js_code"))
        user = state.miniapp_users[openid]
        user.session_key = new_session_key()  # every login rotates it
        answer = {"session_key": user.session_key, "openid": openid}
        if user.unionid:
            answer["unionid"] = user.unionid
        return answer  # success carries no errcode at all


@bp.post("/wxa/business/getuserphonenumber")
@token_required(MP)
def phone_number() -> dict[str, Any]:
    code = json_body().get("code")
    state = sim_state()
    with state.lock:
        phone = state.phone_codes.redeem(code)
        watermark = {"timestamp": int(state.clock.now()), "appid": g.appid}
    return ok(
        phone_info={
            "phoneNumber": phone.full,
            "purePhoneNumber": phone.pure,
            "countryCode": int(phone.country_code),
            "watermark": watermark,
        }
    )


@bp.post("/wxa/getwxacodeunlimit")
@token_required(MP)
def wxacode_unlimited() -> Response:
    """Raw PNG bytes on success; errors stay JSON with HTTP 200."""
    body = json_body()
    scene = body.get("scene")
    if not isinstance(scene, str) or not SCENE.fullmatch(scene):
        raise ApiError(40097, "scene")
    if body.get("env_version", "release") not in ENV_VERSIONS:
        raise ApiError(40097, "env_version")
    width = body.get("width", DEFAULT_WIDTH)
    low, high = WIDTH_RANGE
    if not isinstance(width, int) or isinstance(width, bool) or not low <= width <= high:
        raise ApiError(40097, "width")
    page = body.get("page")
    if page is not None:
        released = sim_state().config.miniapp_pages if body.get("check_path", True) else None
        check_page(page, released, strict=True)
    return Response(code_image(f"{page or ''}?{scene}", width), mimetype="image/png")
