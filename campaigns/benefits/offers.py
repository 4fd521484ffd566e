"""What a holder is offered: the published campaigns open now, each with the holder's
eligibility, its options' stock left and what the holder redeemed of them.

The mini-program's ``GET /api/campaigns`` and the official account's H5 pages show
the same offers. Counting is a few grouped queries for all campaigns at once; only
a min_spend rule costs one spend sum per campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from campaigns.benefits import eligibility
from campaigns.benefits.catalogue import SLUG, stock_of
from campaigns.benefits.models import PUBLISHED, Campaign, CampaignOption, Redemption
from core.db import db
from core.errors import ApiError
from members.holders.models import CardHolder


@dataclass(frozen=True)
class OptionOffer:
    key: str
    title: str
    points: int
    remaining: int  # codes left in stock
    redeemed_by_me: int


@dataclass(frozen=True)
class Offer:
    campaign: Campaign
    eligibility: eligibility.Eligibility
    options: list[OptionOffer]


class Schedule(Protocol):
    """What "open" reads of a campaign: a ``Campaign``, or a row of its columns."""

    @property
    def state(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...


def is_open(campaign: Schedule | Campaign, now: datetime) -> bool:
    """Published, and now within [starts_at, ends_at]: the contract's "open"."""
    return campaign.state == PUBLISHED and campaign.starts_at <= now <= campaign.ends_at


def open_campaigns(now: datetime) -> list[Campaign]:
    """The published campaigns open at ``now``, soonest to end first."""
    return list(db.session.scalars(
        select(Campaign)
        .where(Campaign.state == PUBLISHED, Campaign.starts_at <= now, Campaign.ends_at >= now)
        .order_by(Campaign.ends_at, Campaign.id)
        .options(selectinload(Campaign.options))))


def open_campaign(slug: str, now: datetime) -> Campaign:
    """The open campaign of ``slug``; 404 for an unknown, unpublished or closed one."""
    # A slug that cannot exist is not looked up: PostgreSQL refuses some text (a NUL) outright.
    campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug)) \
        if SLUG.fullmatch(slug) else None
    if campaign is None or not is_open(campaign, now):
        raise ApiError(404, "unknown_campaign", "no open campaign has this slug")
    return campaign


def offers(holder: CardHolder | None, *, now: datetime) -> list[Offer]:
    """The open campaigns as ``holder`` (None: not bound) sees them."""
    return _offers(open_campaigns(now), holder, now)


def offer(slug: str, holder: CardHolder | None, *, now: datetime) -> Offer:
    """One open campaign as ``holder`` sees it; 404 as ``open_campaign``."""
    return _offers([open_campaign(slug, now)], holder, now)[0]


def _offers(campaigns: list[Campaign], holder: CardHolder | None, now: datetime) -> list[Offer]:
    options = [option for campaign in campaigns for option in campaign.options]
    ids = [option.id for option in options]
    stock = stock_of(ids)
    mine = _redeemed_by(holder.id, ids) if holder is not None else {}
    return [Offer(campaign, eligibility.of(campaign, holder, now=now),
                  [_option_offer(option, stock, mine) for option in campaign.options])
            for campaign in campaigns]


def _option_offer(option: CampaignOption, stock: dict[int, int],
                  mine: dict[int, int]) -> OptionOffer:
    return OptionOffer(key=option.key, title=option.title, points=option.points,
                       remaining=stock.get(option.id, 0), redeemed_by_me=mine.get(option.id, 0))


def _redeemed_by(holder_id: int, option_ids: list[int]) -> dict[int, int]:
    if not option_ids:
        return {}
    return dict(db.session.execute(
        select(Redemption.option_id, func.count())
        .where(Redemption.holder_id == holder_id, Redemption.option_id.in_(option_ids))
        .group_by(Redemption.option_id)).tuples().all())
