"""Parametric QR codes: create on api.weixin.qq.com, show on mp.weixin.qq.com (§3.9).

Both hosts are this one server: the backend points WECHAT_API_BASE and WECHAT_MP_BASE here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, request

from .png import code_image
from .qrcodes import check_scene
from .state import OA
from .web import json_body, sim_state, token_required

bp = Blueprint("sim_qrcode", __name__)
SHOW_SIZE = 430


@bp.post("/cgi-bin/qrcode/create")
@token_required(OA)
def create() -> dict[str, Any]:
    body = json_body()
    action_name = body.get("action_name")
    scene = check_scene(action_name, body.get("action_info"))
    state = sim_state()
    with state.lock:
        qr = state.qrcodes.create(action_name, scene, body.get("expire_seconds"))
        now = state.clock.now()
    answer: dict[str, Any] = {"ticket": qr.ticket}
    if qr.expires_at is not None:
        answer["expire_seconds"] = round(qr.expires_at - now)
    answer["url"] = qr.url
    return answer


@bp.get("/cgi-bin/showqrcode")
def show() -> Response:
    """The code's image; no token needed. Unknown or expired tickets are a plain 404."""
    state = sim_state()
    with state.lock:
        qr = state.qrcodes.find(request.args.get("ticket", ""))
    if qr is None:
        abort(404)
    return Response(code_image(qr.url, SHOW_SIZE), mimetype="image/png")
