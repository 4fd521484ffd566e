"""Message-sending APIs: template, subscription notices, customer service, mass (§3.2–§3.6)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .data_rules import check_data, check_page
from .errors import ApiError
from .state import MP, OA, SimState
from .users import Follower
from .web import json_body, ok, sim_state, token_required

bp = Blueprint("sim_messages", __name__)

CUSTOM_TYPES = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "mpnewsarticle",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
    }
)
MASS_TYPES = frozenset({"mpnews", "text", "voice", "image", "mpvideo", "wxcard"})
MINIAPP_STATES = ("developer", "trial", "formal")
MASS_BATCH = (2, 10_000)  # openids per mass/send call
# MASSSENDJOBFINISH comes from the account's admin, not from a follower.
MASS_EVENT_SENDER = "oSIMmassSendAdmin00000000000"


def _typed_content(body: dict[str, Any], allowed: frozenset[str]) -> str:
    """The msgtype, checked against ``allowed`` (40008) with its content object present."""
    msgtype = body.get("msgtype")
    if msgtype not in allowed:
        raise ApiError(40008)
    if not isinstance(body.get(msgtype), dict):
        raise ApiError(47001, msgtype)
    return msgtype


def _subscribe_template(state: SimState, body: dict[str, Any]) -> str:
    template_id = body.get("template_id")
    if template_id not in state.outbox.subscribe_templates:
        raise ApiError(40037)
    return template_id


def _follower(state: SimState, openid: Any) -> Follower:
    """A current follower: 40003 for an unknown openid, 43004 for one who left."""
    user = state.followers.get(openid)
    if not user.subscribed:
        raise ApiError(43004)
    return user


@bp.post("/cgi-bin/message/template/send")
@token_required(OA)
def template_send() -> dict[str, Any]:
    body = json_body()
    state = sim_state()
    with state.lock:
        if body.get("template_id") not in state.config.template_ids:
            raise ApiError(40037)
        check_data(body.get("data"))  # `first`/`remark` pass and are ignored, as since 2023
        user = _follower(state, body.get("touser"))
        client_msg_id = body.get("client_msg_id")
        replayed = state.outbox.template_replay(user.openid, client_msg_id)
        if replayed is not None:
            return ok(msgid=replayed)  # same (openid, client_msg_id): one message only
        state.outbox.take_template_quota()
        msgid = state.outbox.next_msgid()
        state.outbox.remember_template(user.openid, client_msg_id, msgid)
        status = "failed:user block" if user.blocks_templates else "success"
        xml = state.pushes.template_send_job_finish(user.openid, msgid, status)
        state.stats.count("sent", "template")
    state.events.submit(
        xml, event="TEMPLATESENDJOBFINISH", openid=user.openid, msg_id=msgid, status=status
    )
    return ok(msgid=msgid)


@bp.post("/cgi-bin/message/subscribe/bizsend")
@token_required(OA)
def oa_subscribe_send() -> dict[str, Any]:
    """OA subscription notice: one send per accepted popup (43101 once used up)."""
    body = json_body()
    state = sim_state()
    with state.lock:
        template_id = _subscribe_template(state, body)
        check_data(body.get("data"))
        user = state.followers.get(body.get("touser"))
        state.outbox.consume_grant(user.openid, template_id)
        msgid = state.outbox.next_msgid()
        xml = state.pushes.subscribe_msg_sent(user.openid, template_id, msgid)
        state.stats.count("sent", "bizsend")
    state.events.submit(xml, event="subscribe_msg_sent_event", openid=user.openid, msg_id=msgid)
    return ok()


@bp.post("/cgi-bin/message/subscribe/send")
@token_required(MP)
def miniapp_subscribe_send() -> dict[str, Any]:
    """Mini-program subscribe message: one send per tap of "allow" (43101 once used up)."""
    body = json_body()
    state = sim_state()
    with state.lock:
        template_id = _subscribe_template(state, body)
        check_data(body.get("data"))
        if "page" in body:
            check_page(body["page"], state.config.miniapp_pages, strict=False)
        if body.get("miniprogram_state", "formal") not in MINIAPP_STATES:
            raise ApiError(47003, "miniprogram_state")
        openid = body.get("touser")
        if not state.miniapp_user_known(openid):
            raise ApiError(40003)
        state.outbox.consume_grant(openid, template_id)
        state.stats.count("sent", "subscribe")
        return ok(msgid=state.outbox.next_msgid())


@bp.post("/cgi-bin/message/custom/send")
@token_required(OA)
def custom_send() -> dict[str, Any]:
    """Customer-service message (§8.1): 5 within 48 h of the user's last message, 3 within
    a minute of their last follow, QR scan or menu click; 45015 outside, 45047 used up."""
    body = json_body()
    state = sim_state()
    with state.lock:
        _typed_content(body, CUSTOM_TYPES)
        user = state.followers.get(body.get("touser"))
        user.take_service_message(state.clock.now(), state.limits)
        state.stats.count("sent", "custom")
    return ok()


@bp.post("/cgi-bin/message/mass/sendall")
@token_required(OA)
def mass_send_all() -> dict[str, Any]:
    """To everyone (is_to_all, 4 a month) or to one tag."""
    body = json_body()
    state = sim_state()
    with state.lock:
        _typed_content(body, MASS_TYPES)
        audience = body.get("filter")
        if not isinstance(audience, dict):
            raise ApiError(47001, "filter")
        to_all = audience.get("is_to_all") is True
        if to_all:
            audience_openids = state.followers.subscribed_openids()
        else:
            tag_id = audience.get("tag_id")
            if not state.tags.exists(tag_id):
                raise ApiError(45159)
            audience_openids = state.followers.tagged(tag_id)
        return _submit_mass(state, body, audience_openids, to_all)


@bp.post("/cgi-bin/message/mass/send")
@token_required(OA)
def mass_send() -> dict[str, Any]:
    """To a list of openids (2 to 10 000)."""
    body = json_body()
    state = sim_state()
    with state.lock:
        _typed_content(body, MASS_TYPES)
        openids = body.get("touser")
        low, high = MASS_BATCH
        if not isinstance(openids, list) or not low <= len(openids) <= high:
            raise ApiError(40130)
        return _submit_mass(state, body, openids, to_all=False)


def _submit_mass(
    state: SimState, body: dict[str, Any], targets: list[str], to_all: bool
) -> dict[str, Any]:
    """Accept the job and report per-user results later in MASSSENDJOBFINISH: followers past
    their monthly 4 count as errors, non-followers are filtered out."""
    clientmsgid = body.get("clientmsgid")
    state.outbox.check_clientmsgid(clientmsgid)
    state.outbox.take_mass_call(to_all)
    reachable = [o for o in targets if (u := state.followers.find(o)) and u.subscribed]
    delivered = state.outbox.deliverable(reachable)
    msg_id = state.outbox.next_msgid()
    state.outbox.record_mass(msg_id, clientmsgid)
    status = "send success" if delivered or not reachable else "send fail"
    xml = state.pushes.mass_send_job_finish(
        MASS_EVENT_SENDER,
        msg_id,
        total=len(targets),
        filtered=len(reachable),
        sent=len(delivered),
        errors=len(reachable) - len(delivered),
        status=status,
    )
    state.events.submit(xml, event="MASSSENDJOBFINISH", msg_id=msg_id, sent=len(delivered))
    state.stats.count("sent", "mass")
    answer = ok(errmsg="send job submission success", msg_id=msg_id)
    if body["msgtype"] == "mpnews":
        answer["msg_data_id"] = msg_id  # article sends also name the article's data id
    return answer


@bp.post("/cgi-bin/message/mass/preview")
@token_required(OA)
def mass_preview() -> dict[str, Any]:
    """Preview to one follower (by openid or WeChat id); no quota is used."""
    body = json_body()
    state = sim_state()
    with state.lock:
        _typed_content(body, MASS_TYPES)
        if "towxname" not in body:
            _follower(state, body.get("touser"))
        return ok(errmsg="preview success", msg_id=state.outbox.next_msgid())


@bp.post("/cgi-bin/message/mass/get")
@token_required(OA)
def mass_get() -> dict[str, Any]:
    body = json_body()
    try:
        msg_id = int(body.get("msg_id"))
    except (TypeError, ValueError):
        raise ApiError(47001, "msg_id") from None
    state = sim_state()
    with state.lock:
        status = state.outbox.mass_status(msg_id)
    if status is None:
        raise ApiError(47003, "msg_id")
    return {"msg_id": msg_id, "msg_status": status}
