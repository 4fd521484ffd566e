"""The mini-program's benefits API. Thin: parse, call a service, commit, shape the answer.

The caller is the bearer token's (``members.holders.api.member_required``), and the
holder the one bound to it: no id in a path or a body can name someone else.
Times are shown in Asia/Shanghai; ids as strings, like the member API's.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from campaigns.benefits import offers, redemption
from campaigns.benefits.catalogue import shown_time
from campaigns.benefits.metrics import REDEMPTIONS
from core.db import db, utcnow
from core.errors import ApiError
from core.jsonapi import json_body
from members.holders import binding
from members.holders.api import member_required, member_required_with

bp = Blueprint("benefits_api", __name__, url_prefix="/api")


@bp.get("/campaigns")
@member_required
def campaigns() -> Response:
    holder = binding.holder_of(g.actor)
    return jsonify(campaigns=[_offer(offer) for offer in offers.offers(holder, now=utcnow())])


def _offer(offer: offers.Offer) -> dict[str, Any]:
    campaign = offer.campaign
    return {"slug": campaign.slug, "title": campaign.title,
            "starts_at": shown_time(campaign.starts_at), "ends_at": shown_time(campaign.ends_at),
            "eligible": offer.eligibility.eligible, "reason": offer.eligibility.reason,
            "options": [{"key": option.key, "title": option.title, "points": option.points,
                         "remaining": option.remaining, "redeemed_by_me": option.redeemed_by_me}
                        for option in offer.options]}


@bp.post("/campaigns/<slug>/redeem")
@member_required_with(redemption.CALLER_TURN)  # the caller's holder, locked: its turn
def redeem(slug: str) -> Response:
    body = json_body({"option": str, "request_id": str})
    try:
        result = redemption.redeem_in_turn(g.session.holder_id, slug, body["option"],
                                           body["request_id"])
    except ApiError as exc:
        REDEMPTIONS.labels(exc.code).inc()
        raise
    db.session.commit()
    REDEMPTIONS.labels("replayed" if result.replayed else "redeemed").inc()
    return _uncached(jsonify(redemption_id=str(result.redemption_id), option=result.option,
                             code=result.code, points_spent=result.points_spent,
                             points_balance=result.points_balance))


@bp.get("/members/redemptions")
@member_required
def my_redemptions() -> Response:
    holder = binding.holder_of(g.actor)
    past = redemption.history(holder.id) if holder is not None else []
    return _uncached(jsonify(redemptions=[
        {"redemption_id": str(item.redemption_id), "campaign": item.campaign,
         "option": item.option, "code": item.code, "redeemed_at": shown_time(item.redeemed_at)}
        for item in past]))


def _uncached(response: Response) -> Response:
    # Voucher codes are as good as money: no proxy or client cache keeps a copy.
    response.headers["Cache-Control"] = "no-store"
    return response
