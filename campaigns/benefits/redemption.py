"""Redemption exactly once: each code to one holder, each request_id of a holder once.

One database transaction, the caller's, in this order (the same statements on
PostgreSQL and SQLite):

1. The holder's turn. PostgreSQL locks the holder's row (``FOR NO KEY UPDATE``, which
   leaves the feed's foreign-key checks on that row alone); SQLite, which has no row
   locks, takes its one write lock with a write that changes nothing. From here to the
   commit one holder's redemptions take turns, so that two concurrent requests cannot
   both pass the per-holder limit or both spend the same points, and a request reusing
   a request_id finds the first one's redemption once that has committed.
2. A redemption of this (holder, request_id) already stored: the same answer again
   (its balance as first shown), nothing redeemed. UNIQUE (holder_id, request_id)
   backs this up: a second row for one request_id cannot be stored whatever happens.
3. The checks, none of which writes: campaign and option open (404), eligibility
   (403 with the reason), per-holder limit (409), points (409).
4. The claim, last, so that nothing refuses after it: one UPDATE sets ``claimed_at`` of
   the option's first code in stock, found by a subquery ``... FOR UPDATE SKIP LOCKED``
   (PostgreSQL): a code another holder's claim has locked is skipped, not waited for,
   so claims run side by side and each locks a different code; the stock condition is
   checked again on the locked row. SQLite renders no FOR UPDATE: its single writer
   (taken in step 1) runs one claim at a time. No code found: 409 out_of_stock.
5. The redemption (``code_id`` is UNIQUE: a code belongs to one redemption at most)
   and its ledger entry (``members.transactions.points.spend``).

A refusal raises before anything but the turn is taken; the caller rolls back, so it
changes nothing. Codes are decrypted only into the answer: never into a log line or
an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, bindparam, func, select, update

from campaigns.benefits import eligibility, offers
from campaigns.benefits.catalogue import CODE_CONTEXT, find_option
from campaigns.benefits.models import Campaign, CampaignOption, Redemption, VoucherCode
from core.db import db, utcnow
from core.errors import ApiError
from members.holders.models import CardHolder
from members.protection.pii import vault
from members.transactions import points

# Any printable ASCII but spaces: UUIDs, ULIDs, timestamps with a counter.
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,64}")

_WHY = {
    eligibility.NOT_BOUND: "bind your card first",
    eligibility.TIER: "the campaign is for other card tiers",
    eligibility.MIN_SPEND: "the campaign needs more card spend since it started",
}

_CODES = VoucherCode.__table__
_IN_STOCK = _CODES.alias("in_stock")  # the subquery's own name: no correlation to the UPDATE
_CLAIM = (
    update(_CODES)
    .where(_CODES.c.id == select(_IN_STOCK.c.id)
           .where(_IN_STOCK.c.option_id == bindparam("of_option"),
                  _IN_STOCK.c.claimed_at.is_(None))
           .order_by(_IN_STOCK.c.id).limit(1)
           .with_for_update(skip_locked=True).scalar_subquery(),
           _CODES.c.claimed_at.is_(None))
    .values(claimed_at=bindparam("claimed"))
    .returning(_CODES.c.id, _CODES.c.code)
)
_HOLDERS = CardHolder.__table__


@dataclass(frozen=True)
class Redeemed:
    redemption_id: int
    option: str  # its key
    code: str
    points_spent: int
    points_balance: int
    replayed: bool  # the answer of an earlier request with the same request_id


def redeem(holder: CardHolder | None, slug: str, option_key: str, request_id: str,
           *, now: datetime | None = None) -> Redeemed:
    """Give ``holder`` (None: the caller is bound to no card) one code of the option."""
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(400, "invalid_request_id",
                       "request_id must be 1-64 printable ASCII characters, no spaces")
    now = now or utcnow()
    if holder is not None:
        _take_turn(holder.id)
        earlier = _earlier(holder.id, request_id)
        if earlier is not None:
            return _replay(earlier, slug, option_key)
    campaign = offers.open_campaign(slug, now)
    option = find_option(campaign, option_key)
    verdict = eligibility.of(campaign, holder, now=now)
    if not verdict.eligible:
        raise ApiError(403, "not_eligible", _WHY[verdict.reason],
                       extra={"reason": verdict.reason})
    assert holder is not None  # only bound holders are ever eligible
    if option.limit_per_holder is not None and \
            _redeemed(holder.id, option.id) >= option.limit_per_holder:
        raise ApiError(409, "limit_reached",
                       f"this option is limited to {option.limit_per_holder} per card holder")
    balance = points.balance(holder.id)
    # A free option stays free for a holder whose refunds took the balance below zero.
    if option.points and option.points > balance:
        raise ApiError(409, "insufficient_points",
                       f"this option costs {option.points} points; the balance is {balance}")
    claimed = db.session.execute(_CLAIM, {"of_option": option.id, "claimed": now}).first()
    if claimed is None:
        raise ApiError(409, "out_of_stock", "no codes of this option are left")
    return _record(holder.id, campaign, option, claimed, request_id, balance, now)


def _take_turn(holder_id: int) -> None:
    """Serialise the holder's redemptions until the commit (step 1 of the module's doc)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(_HOLDERS.c.id).where(_HOLDERS.c.id == holder_id)
                           .with_for_update(key_share=True))
    else:
        # The write lock is taken by the first write of a transaction, and reads before it
        # would see what another writer is about to change: the write comes first.
        db.session.execute(update(_HOLDERS).where(_HOLDERS.c.id == holder_id)
                           .values(updated_at=_HOLDERS.c.updated_at))


def _earlier(holder_id: int, request_id: str) -> Row | None:
    return db.session.execute(
        select(Redemption.id, Redemption.points_spent, Redemption.points_balance,
               Campaign.slug, CampaignOption.key, VoucherCode.code)
        .join(Campaign, Campaign.id == Redemption.campaign_id)
        .join(CampaignOption, CampaignOption.id == Redemption.option_id)
        .join(VoucherCode, VoucherCode.id == Redemption.code_id)
        .where(Redemption.holder_id == holder_id, Redemption.request_id == request_id)
    ).first()


def _replay(earlier: Row, slug: str, option_key: str) -> Redeemed:
    if (earlier.slug, earlier.key) != (slug, option_key):
        raise ApiError(409, "request_id_reused",
                       "this request_id was used for another campaign or option")
    return Redeemed(earlier.id, earlier.key, vault().decrypt(earlier.code, CODE_CONTEXT),
                    earlier.points_spent, earlier.points_balance, replayed=True)


def _redeemed(holder_id: int, option_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Redemption)
        .where(Redemption.holder_id == holder_id, Redemption.option_id == option_id))


def _record(holder_id: int, campaign: Campaign, option: CampaignOption, claimed: Row,
            request_id: str, balance: int, now: datetime) -> Redeemed:
    redemption = Redemption(holder_id=holder_id, campaign_id=campaign.id, option_id=option.id,
                            code_id=claimed.id, points_spent=option.points,
                            points_balance=balance - option.points, request_id=request_id,
                            redeemed_at=now)
    db.session.add(redemption)
    db.session.flush()
    if option.points:
        points.spend(holder_id, option.points, f"redeem:{campaign.slug}/{option.key}",
                     reference=f"redemption:{redemption.id}")
    return Redeemed(redemption.id, option.key, vault().decrypt(claimed.code, CODE_CONTEXT),
                    option.points, redemption.points_balance, replayed=False)


@dataclass(frozen=True)
class PastRedemption:
    redemption_id: int
    campaign: str  # slug
    option: str  # key
    code: str
    redeemed_at: datetime
    campaign_title: str  # what the holders' pages show
    option_title: str


def history(holder_id: int) -> list[PastRedemption]:
    """The holder's redemptions, newest first, with their codes."""
    rows = db.session.execute(
        select(Redemption.id, Campaign.slug, CampaignOption.key, VoucherCode.code,
               Redemption.redeemed_at, Campaign.title,
               CampaignOption.title.label("option_title"))
        .join(Campaign, Campaign.id == Redemption.campaign_id)
        .join(CampaignOption, CampaignOption.id == Redemption.option_id)
        .join(VoucherCode, VoucherCode.id == Redemption.code_id)
        .where(Redemption.holder_id == holder_id)
        .order_by(Redemption.id.desc()))
    crypt = vault()
    return [PastRedemption(row.id, row.slug, row.key, crypt.decrypt(row.code, CODE_CONTEXT),
                           row.redeemed_at, row.title, row.option_title) for row in rows]
