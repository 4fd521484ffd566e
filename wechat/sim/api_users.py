"""User info, the follower list and tags (§3.7, §3.8)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from .errors import ApiError
from .state import OA
from .users import page_after
from .web import json_body, ok, sim_state, token_required

bp = Blueprint("sim_users", __name__)
MAX_BATCHGET = 100


def _paged(openids: list[str], next_openid: Any, size: int) -> dict[str, Any]:
    """`count`, `data.openid` and `next_openid`; an exhausted list has no `data` at all."""
    page, cursor = page_after(openids, next_openid or "", size)
    answer: dict[str, Any] = {"count": len(page)}
    if page:
        answer["data"] = {"openid": page}
    answer["next_openid"] = cursor
    return answer


def _tag_object(body: dict[str, Any]) -> dict[str, Any]:
    tag = body.get("tag")
    if not isinstance(tag, dict):
        raise ApiError(47001, "tag")
    return tag


@bp.get("/cgi-bin/user/info")
@token_required(OA)
def user_info() -> dict[str, Any]:
    state = sim_state()
    with state.lock:
        return state.followers.get(request.args.get("openid")).info()


@bp.post("/cgi-bin/user/info/batchget")
@token_required(OA)
def user_info_batch() -> dict[str, Any]:
    wanted = json_body().get("user_list")
    if not isinstance(wanted, list) or not 0 < len(wanted) <= MAX_BATCHGET:
        raise ApiError(40032, "user_list")
    state = sim_state()
    with state.lock:
        infos = [
            state.followers.get(item.get("openid") if isinstance(item, dict) else None).info()
            for item in wanted
        ]
    return {"user_info_list": infos}


@bp.get("/cgi-bin/user/get")
@token_required(OA)
def followers() -> dict[str, Any]:
    state = sim_state()
    with state.lock:
        openids = state.followers.subscribed_openids()
        page = _paged(openids, request.args.get("next_openid"), state.limits.follower_page_size)
    return {"total": len(openids), **page}


@bp.post("/cgi-bin/tags/create")
@token_required(OA)
def tag_create() -> dict[str, Any]:
    name = _tag_object(json_body()).get("name")
    state = sim_state()
    with state.lock:
        return {"tag": state.tags.create(name)}


@bp.get("/cgi-bin/tags/get")
@token_required(OA)
def tag_list() -> dict[str, Any]:
    state = sim_state()
    with state.lock:
        return {"tags": state.tags.listing()}


@bp.post("/cgi-bin/tags/update")
@token_required(OA)
def tag_update() -> dict[str, Any]:
    tag = _tag_object(json_body())
    state = sim_state()
    with state.lock:
        state.tags.rename(tag.get("id"), tag.get("name"))
    return ok()


@bp.post("/cgi-bin/tags/delete")
@token_required(OA)
def tag_delete() -> dict[str, Any]:
    tag = _tag_object(json_body())
    state = sim_state()
    with state.lock:
        state.tags.delete(tag.get("id"))
    return ok()


@bp.post("/cgi-bin/tags/members/batchtagging")
@token_required(OA)
def tag_members() -> dict[str, Any]:
    body = json_body()
    state = sim_state()
    with state.lock:
        state.tags.tag(body.get("openid_list"), body.get("tagid"))
    return ok()


@bp.post("/cgi-bin/tags/members/batchuntagging")
@token_required(OA)
def untag_members() -> dict[str, Any]:
    body = json_body()
    state = sim_state()
    with state.lock:
        state.tags.untag(body.get("openid_list"), body.get("tagid"))
    return ok()


@bp.post("/cgi-bin/tags/getidlist")
@token_required(OA)
def user_tags() -> dict[str, Any]:
    openid = json_body().get("openid")
    state = sim_state()
    with state.lock:
        return {"tagid_list": list(state.followers.get(openid).tag_ids)}


@bp.post("/cgi-bin/user/tag/get")
@token_required(OA)
def tag_users() -> dict[str, Any]:
    body = json_body()
    tag_id = body.get("tagid")
    state = sim_state()
    with state.lock:
        if not state.tags.exists(tag_id):
            raise ApiError(45159)
        members = state.followers.tagged(tag_id)
        return _paged(members, body.get("next_openid"), state.limits.follower_page_size)
