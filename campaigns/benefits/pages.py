"""The holders' H5 pages of benefit campaigns, inside the official account's browser:
``/m/campaigns`` (the open campaigns), ``/m/campaigns/<slug>`` (one, with the holder's
eligibility in words and a one-tap redeem per option) and ``/m/benefits`` (我的权益: what
the holder redeemed, with the codes).

In the H5 shell (``h5.protect``: headers, CSRF) behind the same WeChat web OAuth as
``/m/bind``, returning to the page it began on. Who redeems is the login's holder, never
a form field. A redemption's page is the answer to its POST itself: sent again (a reload,
a second tap), the form's server-made ``request_id`` repeats the first answer. Voucher
codes are shown to their holder and written into no log; card numbers appear nowhere.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from campaigns.benefits import catalogue, offers, redemption, view, wording
from campaigns.benefits.metrics import REDEMPTIONS
from core.db import db, utcnow
from core.errors import ApiError
from members.holders import binding, h5, oa_login
from members.holders.binding import Actor
from members.holders.models import CardHolder
from members.transactions import points

bp = h5.protect(Blueprint("benefit_pages", __name__, url_prefix="/m",
                          template_folder="templates", static_folder="static/h5",
                          static_url_path="/campaigns/_static"))

# A refused redemption, as the holder reads it above the campaign's page.
REFUSALS = {
    "not_eligible": "暂不符合领取条件。",
    "out_of_stock": "手慢了，该权益已领完。",
    "limit_reached": "您已达到该权益的每人限领次数。",
    "insufficient_points": "积分不足，暂时无法兑换。",
    "unknown_option": "该权益不存在，请刷新页面。",
}
RETRY = "页面已过期，请刷新后重试。"


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> h5.Page:
    db.session.rollback()
    if exc.code == "unknown_campaign":
        return _not_found()
    return h5.error_page(exc.status, "暂时无法完成", RETRY)


def _not_found() -> h5.Page:
    return h5.error_page(404, "活动不存在或已结束", "请返回活动列表查看正在进行的活动。")


def _holder(actor: Actor) -> tuple[CardHolder | None, int | None]:
    """The actor's holder (None: no card bound) and its points balance."""
    holder = binding.holder_of(actor)
    return holder, points.balance(holder.id) if holder is not None else None


@bp.get("/campaigns")
def campaigns() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return redirect(oa_login.begin(url_for(".campaigns")), 302)
    holder, balance = _holder(actor)
    shown = [view.campaign(offer, balance) for offer in offers.offers(holder, now=utcnow())]
    return render_template("benefits/list.html", campaigns=shown, points=balance)


def _campaign_page(actor: Actor, slug: str, *, error: str | None = None,
                   status: int = 200) -> h5.Page:
    holder, balance = _holder(actor)
    shown = view.campaign(offers.offer(slug, holder, now=utcnow()), balance)
    return render_template("benefits/campaign.html", campaign=shown, error=error), status, {}


@bp.get("/campaigns/<slug>")
def campaign(slug: str) -> Any:
    if not catalogue.SLUG.fullmatch(slug):
        return _not_found()
    actor = oa_login.current_actor()
    if actor is None:
        return redirect(oa_login.begin(url_for(".campaign", slug=slug)), 302)
    return _campaign_page(actor, slug)


@bp.post("/campaigns/<slug>/redeem")
def redeem(slug: str) -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return h5.login_expired()
    if not catalogue.SLUG.fullmatch(slug):
        return _not_found()
    key = request.form.get("option", "")
    try:
        result = redemption.redeem(binding.holder_of(actor), slug, key,
                                   request.form.get("request_id", ""))
    except ApiError as exc:
        db.session.rollback()  # a refusal changes nothing
        REDEMPTIONS.labels(exc.code).inc()
        if exc.code == "unknown_campaign":
            return _not_found()
        return _campaign_page(actor, slug, error=REFUSALS.get(exc.code, RETRY),
                              status=exc.status)
    db.session.commit()
    REDEMPTIONS.labels("replayed" if result.replayed else "redeemed").inc()
    campaign = catalogue.find(slug)
    return render_template("benefits/redeemed.html", result=result, campaign=campaign,
                           option=catalogue.find_option(campaign, result.option))


@bp.get("/benefits")
def mine() -> Any:
    actor = oa_login.current_actor()
    if actor is None:
        return redirect(oa_login.begin(url_for(".mine")), 302)
    holder, balance = _holder(actor)
    past = redemption.history(holder.id) if holder is not None else []
    return render_template("benefits/mine.html", bound=holder is not None, past=past,
                           points=balance, local_time=wording.local_time)
