"""What the holders' H5 pages show of an offer (``offers.Offer``): display strings and whether
each option can be redeemed now, nothing of the card but what the holder may read.

Each option's redeem form carries a fresh ``request_id`` made here, on the server: a
double tap, or the form sent again, repeats that request and redeems nothing more
(``redemption.redeem`` answers it with the first redemption).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from campaigns.benefits import eligibility, offers, wording


@dataclass(frozen=True)
class OptionView:
    key: str
    title: str
    points: int  # its price; 0: free
    remaining: int
    limit: int | None
    mine: int  # redeemed by this holder
    # Why the holder cannot redeem it now, in words, or None: it can be redeemed.
    blocked: str | None
    request_id: str


@dataclass(frozen=True)
class CampaignView:
    slug: str
    title: str
    starts: str  # Asia/Shanghai, to the minute
    ends: str
    conditions: str
    eligible: bool
    reason: str | None  # why not, in words ("本月再消费 ¥230.00 即可领取")
    needs_binding: bool
    points: int | None  # the holder's balance; None when no card is bound
    options: list[OptionView]


def _blocked(verdict: eligibility.Eligibility, option: offers.OptionOffer, limit: int | None,
             points: int | None) -> str | None:
    if not verdict.eligible:
        return "暂不符合领取条件"
    if option.remaining <= 0:
        return "已领完"
    if limit is not None and option.redeemed_by_me >= limit:
        return "已达每人限领次数"
    if option.points and (points or 0) < option.points:
        return "积分不足"
    return None


def campaign(offer: offers.Offer, points: int | None) -> CampaignView:
    """``offer`` as its page shows it to a holder whose balance is ``points`` (None: not
    bound)."""
    verdict, shown = offer.eligibility, offer.campaign
    limits = {option.key: option.limit_per_holder for option in shown.options}
    return CampaignView(
        slug=shown.slug, title=shown.title, starts=wording.local_time(shown.starts_at),
        ends=wording.local_time(shown.ends_at),
        conditions=wording.conditions(shown), eligible=verdict.eligible,
        reason=None if verdict.eligible else wording.not_eligible(shown, verdict),
        needs_binding=verdict.reason == eligibility.NOT_BOUND, points=points,
        options=[OptionView(
            key=option.key, title=option.title,
            points=option.points,
            remaining=option.remaining, limit=limits[option.key], mine=option.redeemed_by_me,
            blocked=_blocked(verdict, option, limits[option.key], points),
            request_id=secrets.token_urlsafe(16))
            for option in offer.options])
