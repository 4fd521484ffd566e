"""The official account's H5 pages for binding a card, inside WeChat's browser.

``/m/bind`` binds a card with the same flow as the mini-program's JSON API
(``binding``), as server-rendered forms in the H5 shell (``h5``: headers, CSRF);
``/m/oauth/callback`` ends the WeChat web OAuth login (``oa_login``) of every H5
page and returns to the page it began on. Card and phone numbers are never
written back into a page (only masked) nor logged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from core.db import db
from core.errors import ApiError, finish_refused
from members.holders import binding, h5, oa_login
from members.holders.api import request_origin
from members.holders.models import CardHolder
from members.protection.masking import mask_card, mask_phone
from wechat.errors import WeChatAPIError, WeChatUnavailable
from wechat.oauth import OAuthCodeRejected

log = logging.getLogger(__name__)

bp = h5.protect(Blueprint("member_pages", __name__, url_prefix="/m",
                          template_folder="templates", static_folder="static",
                          static_url_path="/static"))

# The pending challenge lives in the signed session, so the form cannot name another one.
_CHALLENGE = "bind_challenge"
_CHALLENGE_PHONE = "bind_phone_masked"
_OTP = re.compile(r"[0-9]{6}")

# What the services' refusals mean to the customer.
MESSAGES = {
    "invalid_card_no": "卡号有误，请核对后重新输入。",
    "invalid_phone": "请输入银行预留的 11 位手机号码。",
    "invalid_code": "验证码不正确，请重新输入。",
    "too_many_requests": "操作过于频繁，请稍后再试。",
    "region_refused": "您所在的地区暂不支持此项服务。",
}
# Refusals after which the challenge is spent: back to the form for a new code.
CHALLENGE_SPENT = frozenset(
    {"invalid_challenge", "challenge_used", "challenge_expired", "too_many_attempts"})
CHALLENGE_SPENT_MESSAGE = "验证码已失效，请重新获取。"
FALLBACK_MESSAGE = "服务暂时不可用，请稍后再试。"



# -- login ------------------------------------------------------------------------------------

@bp.get("/bind")
def bind_page() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return redirect(oa_login.begin(), 302)
    holder = binding.holder_of(actor)
    if holder is not None:
        return render_template("members/bound.html", card=mask_card(holder.card_last4))
    return render_template("members/bind_form.html")


@bp.get("/oauth/callback")
def oauth_callback() -> Any:
    try:
        login = oa_login.finish(request.args.get("state"), request.args.get("code"))
    except oa_login.StateMismatch:
        log.info("oauth state mismatch")
        return h5.error_page(400, "授权已失效", "请重新打开页面。")
    except OAuthCodeRejected as exc:
        log.info("oauth code refused", extra={"errcode": exc.errcode})
        return h5.error_page(400, "授权已失效", "请重新打开页面。")
    except WeChatUnavailable:
        return h5.error_page(503, "微信服务繁忙", "请稍后重试。", {"Retry-After": "5"})
    except WeChatAPIError as exc:
        log.warning("oauth code exchange failed", extra={"errcode": exc.errcode})
        return h5.error_page(502, "暂时无法完成微信授权", "请稍后重试。")
    if login.user.snapshot:
        return h5.error_page(403, "请使用完整服务",
                           "请点击页面底部的“使用完整服务”后再绑定银行卡。")
    # The page the login began on, checked by oa_login to be one of ours under /m/.
    return redirect(login.return_to or url_for(".bind_page"), 302)


# -- binding ----------------------------------------------------------------------------------

@bp.post("/bind/start")
def bind_start() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return h5.login_expired()
    card_no, phone = request.form.get("card_no", ""), request.form.get("phone", "")
    try:
        challenge_id = binding.start(actor, request_origin(), card_no, phone)
    except ApiError as exc:
        hint = mask_card(card_no) if card_no.strip() else None
        return _refused(exc, "members/bind_form.html", card_hint=hint)
    db.session.commit()
    session[_CHALLENGE] = challenge_id
    session[_CHALLENGE_PHONE] = mask_phone(phone)
    return redirect(url_for(".verify_page"), 303)


@bp.get("/bind/verify")
def verify_page() -> Any:
    if oa_login.current_actor() is None or _CHALLENGE not in session:
        return redirect(url_for(".bind_page"), 302)
    return render_template("members/bind_verify.html", phone=session.get(_CHALLENGE_PHONE))


@bp.post("/bind/confirm")
def bind_confirm() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return h5.login_expired()
    challenge_id = session.get(_CHALLENGE)
    if not challenge_id:
        return redirect(url_for(".bind_page"), 303)
    code = request.form.get("code", "").strip()
    if not _OTP.fullmatch(code):  # a typo costs no attempt
        return _verify_again("请输入短信中的 6 位数字验证码。", 400)
    try:
        binding.confirm(actor, request_origin(), challenge_id, code)
    except ApiError as exc:
        if exc.code in CHALLENGE_SPENT:
            _forget_challenge()
            return _refused(exc, "members/bind_form.html", message=CHALLENGE_SPENT_MESSAGE)
        return _refused(exc, "members/bind_verify.html", phone=session.get(_CHALLENGE_PHONE))
    db.session.commit()
    _forget_challenge()
    return redirect(url_for(".bind_done"), 303)


@bp.get("/bind/done")
def bind_done() -> Any:
    holder = _holder()
    if holder is None:
        return redirect(url_for(".bind_page"), 302)
    return render_template("members/bind_done.html", card=mask_card(holder.card_last4))


@bp.post("/unbind")
def unbind() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return h5.login_expired()
    try:
        binding.unbind(actor, request_origin())
    except ApiError as exc:
        finish_refused(exc)
        return h5.error_page(exc.status, "解除绑定失败", _message(exc), exc.headers)
    db.session.commit()
    flash("已解除绑定。")
    return redirect(url_for(".bind_page"), 303)


# -- helpers ----------------------------------------------------------------------------------

def _holder() -> CardHolder | None:
    actor = oa_login.current_actor()
    return binding.holder_of(actor) if actor is not None else None


def _forget_challenge() -> None:
    session.pop(_CHALLENGE, None)
    session.pop(_CHALLENGE_PHONE, None)


def _message(exc: ApiError) -> str:
    return MESSAGES.get(exc.code, FALLBACK_MESSAGE)


def _refused(exc: ApiError, template: str, message: str | None = None, **context: Any) -> h5.Page:
    """The form again, with what went wrong, under the refusal's status (and Retry-After)."""
    finish_refused(exc)  # keep nothing of the refused attempt but what a Refusal records
    log.info("bind page refusal", extra={"error": exc.code, "status": exc.status})
    page = render_template(template, error=message or _message(exc), **context)
    return page, exc.status, exc.headers


def _verify_again(message: str, status: int) -> h5.Page:
    page = render_template("members/bind_verify.html", error=message,
                           phone=session.get(_CHALLENGE_PHONE))
    return page, status, {}
