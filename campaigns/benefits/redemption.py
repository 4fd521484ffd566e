"""Redemption exactly once: each code to one holder, each request_id of a holder once.

One database transaction, the caller's, in this order (the same steps on PostgreSQL and
SQLite):

1. The holder's turn. PostgreSQL locks the holder's row (``FOR NO KEY UPDATE``, which
   leaves the feed's foreign-key checks on that row alone); SQLite, which has no row
   locks, takes its one write lock with a write that changes nothing. From here to the
   commit one holder's redemptions take turns, so that two concurrent requests cannot
   both pass the per-holder limit or both spend the same points, and a request reusing
   a request_id finds the first one's redemption once that has committed. The API finds
   the caller's bearer session, the holder bound to it and that holder's lock in one
   statement (``CALLER_TURN``, then ``redeem_in_turn``).
2. What the checks need, in one statement read after the lock (so that it sees what an
   earlier turn committed): a redemption of this (holder, request_id) already stored,
   the campaign of the slug and its option of the key, the holder's tier, redemptions of
   that option and points balance.
3. That earlier redemption: the same answer again (its balance as first shown), nothing
   redeemed. UNIQUE (holder_id, request_id) backs this up: a second row for one
   request_id cannot be stored whatever happens.
4. The checks, none of which writes: campaign and option open (404), eligibility
   (403 with the reason), per-holder limit (409), points (409).
5. The claim, last, so that nothing refuses after it: one UPDATE sets ``claimed_at`` of
   the option's first code in stock, found by a subquery ``... FOR UPDATE SKIP LOCKED``
   (PostgreSQL): a code another holder's claim has locked is skipped, not waited for,
   so claims run side by side and each locks a different code; the stock condition is
   checked again on the locked row. SQLite renders no FOR UPDATE: its single writer
   (taken in step 1) runs one claim at a time. No code found: 409 out_of_stock.
6. The redemption (``code_id`` is UNIQUE: a code belongs to one redemption at most)
   and, for an option priced in points, its ledger entry
   (``members.transactions.points.spend``). On PostgreSQL the claim and the redemption
   are one statement (the claim's UPDATE a data-modifying CTE the INSERT reads: no code
   claimed, no redemption); SQLite, which has no such CTEs, runs them one after the other.

A refusal raises before anything but the turn is taken; the caller rolls back, so it
changes nothing. Codes are decrypted only into the answer: never into a log line or
an error message.

Every statement is built once, here, and run as Core: a flash sale runs this hundreds of
times a second, and building an ORM statement, loading objects into the session and
flushing them cost more CPU than PostgreSQL spends running the statements
(bench/redeem.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, true, update

from campaigns.benefits import eligibility, offers
from campaigns.benefits.catalogue import CODE_CONTEXT, OPTION_KEY, SLUG, find_option
from campaigns.benefits.models import Campaign, CampaignOption, Redemption, VoucherCode
from core.db import db, utcnow
from core.errors import ApiError
from members.holders import sessions
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

_HOLDERS = CardHolder.__table__
_CAMPAIGNS = Campaign.__table__
_OPTIONS = CampaignOption.__table__
_REDEMPTIONS = Redemption.__table__
_CODES = VoucherCode.__table__

# Step 1 for the API, in the statement that finds the caller's bearer session
# (``member_required_with``): the id of the holder bound to the caller
# (``sessions.CALLER_HOLDER_ID``: its own binding, else its unionid twin's), its row locked
# on PostgreSQL; NULL for a caller bound to no card.
CALLER_TURN = sessions.LIVE_SESSION.add_columns(
    select(_HOLDERS.c.id).where(_HOLDERS.c.id == sessions.CALLER_HOLDER_ID)
    .with_for_update(of=_HOLDERS, key_share=True).scalar_subquery().label("holder_id"))
_LOCK_HOLDER = (select(_HOLDERS.c.id).where(_HOLDERS.c.id == bindparam("holder"))
                .with_for_update(key_share=True))
# SQLite: the write lock is taken by the first write of a transaction, and reads before it
# would see what another writer is about to change: the write comes first.
_WRITE_HOLDER = (update(_HOLDERS).where(_HOLDERS.c.id == bindparam("holder"))
                 .values(updated_at=_HOLDERS.c.updated_at))

# Step 2: one row whatever the slug and key (the holder's own), with NULLs for a campaign
# or option that is not there. Its holder ``id`` and ``tier`` make it the eligibility's
# ``Member`` as well as its ``Rules``.
_MINE = _REDEMPTIONS.alias("mine")
_EARLIER = _REDEMPTIONS.alias("earlier")
_FACTS = (
    select(
        _HOLDERS.c.id, _HOLDERS.c.tier,
        select(_EARLIER.c.id)
        .where(_EARLIER.c.holder_id == _HOLDERS.c.id,
               _EARLIER.c.request_id == bindparam("request_id"))
        .scalar_subquery().label("earlier_id"),
        _CAMPAIGNS.c.id.label("campaign_id"), _CAMPAIGNS.c.state, _CAMPAIGNS.c.starts_at,
        _CAMPAIGNS.c.ends_at, _CAMPAIGNS.c.eligibility,
        _OPTIONS.c.id.label("option_id"), _OPTIONS.c.points, _OPTIONS.c.limit_per_holder,
        select(func.count()).select_from(_MINE)
        .where(_MINE.c.holder_id == _HOLDERS.c.id, _MINE.c.option_id == _OPTIONS.c.id)
        .scalar_subquery().label("redeemed"),
        points.balance_of(_HOLDERS.c.id).label("balance"),
    )
    .select_from(
        _HOLDERS.outerjoin(_CAMPAIGNS, _CAMPAIGNS.c.slug == bindparam("slug"))
        .outerjoin(_OPTIONS, and_(_OPTIONS.c.campaign_id == _CAMPAIGNS.c.id,
                                  _OPTIONS.c.key == bindparam("option_key"))))
    .where(_HOLDERS.c.id == bindparam("holder"))
)

_EARLIER_ANSWER = (
    select(_REDEMPTIONS.c.id, _REDEMPTIONS.c.points_spent, _REDEMPTIONS.c.points_balance,
           _CAMPAIGNS.c.slug, _OPTIONS.c.key, _CODES.c.code)
    .join(_CAMPAIGNS, _CAMPAIGNS.c.id == _REDEMPTIONS.c.campaign_id)
    .join(_OPTIONS, _OPTIONS.c.id == _REDEMPTIONS.c.option_id)
    .join(_CODES, _CODES.c.id == _REDEMPTIONS.c.code_id)
    .where(_REDEMPTIONS.c.id == bindparam("redemption"))
)

# Step 5: the claim. No parameter is named after a column of voucher_code: an UPDATE's
# parameters of a column's name would be added to what it SETs.
_IN_STOCK = _CODES.alias("in_stock")  # the subquery's own name: no correlation to the UPDATE
_CLAIM = (
    update(_CODES)
    .where(_CODES.c.id == select(_IN_STOCK.c.id)
           .where(_IN_STOCK.c.option_id == bindparam("option"),
                  _IN_STOCK.c.claimed_at.is_(None))
           .order_by(_IN_STOCK.c.id).limit(1)
           .with_for_update(skip_locked=True).scalar_subquery(),
           _CODES.c.claimed_at.is_(None))
    .values(claimed_at=bindparam("now"))
    .returning(_CODES.c.id, _CODES.c.code)
)
# Step 6: the redemption of the code claimed; every column given, none left to a default.
_REDEMPTION_VALUES = {
    "holder_id": bindparam("holder"), "campaign_id": bindparam("campaign"),
    "option_id": bindparam("option"), "points_spent": bindparam("points_spent"),
    "points_balance": bindparam("points_balance"), "request_id": bindparam("request_id"),
    "redeemed_at": bindparam("now", type_=_REDEMPTIONS.c.redeemed_at.type),
}
_INSERT_REDEMPTION = (insert(_REDEMPTIONS)
                      .values(code_id=bindparam("code_id"), **_REDEMPTION_VALUES)
                      .returning(_REDEMPTIONS.c.id))
_CLAIMED = _CLAIM.cte("claimed")
_REDEEMED = (
    insert(_REDEMPTIONS)
    .from_select([*_REDEMPTION_VALUES, "code_id"],
                 select(*(value.label(name) for name, value in _REDEMPTION_VALUES.items()),
                        _CLAIMED.c.id))
    .returning(_REDEMPTIONS.c.id)
    .cte("redeemed")
)
_CLAIM_AND_REDEEM = (select(_REDEEMED.c.id, _CLAIMED.c.code)
                     .select_from(_CLAIMED.join(_REDEEMED, true())))


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
    _check(request_id)
    connection = db.session.connection()
    if holder is not None and _on_postgres(connection):
        connection.execute(_LOCK_HOLDER, {"holder": holder.id})  # step 1: the holder's turn
    return _redeem(connection, holder.id if holder is not None else None, slug, option_key,
                   request_id, now or utcnow())


def redeem_in_turn(holder_id: int | None, slug: str, option_key: str, request_id: str,
                   *, now: datetime | None = None) -> Redeemed:
    """``redeem`` for the API's caller: ``holder_id`` is the ``holder_id`` of its
    ``CALLER_TURN`` row, which on PostgreSQL took the holder's turn already."""
    _check(request_id)
    return _redeem(db.session.connection(), holder_id, slug, option_key, request_id,
                   now or utcnow())


def _check(request_id: str) -> None:
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(400, "invalid_request_id",
                       "request_id must be 1-64 printable ASCII characters, no spaces")


def _on_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _redeem(connection: Connection, holder_id: int | None, slug: str, option_key: str,
            request_id: str, now: datetime) -> Redeemed:
    """Steps 2 to 6 of the module's doc, the holder's turn taken on PostgreSQL (SQLite's is
    taken here).

    Run on the session's connection (its transaction), as Core: nothing here needs the
    ORM's identity map, and its execution layer costs as much as a statement's round trip.
    """
    if holder_id is None:  # nobody's turn to take, nothing to replay: only the refusals
        find_option(offers.open_campaign(slug, now), option_key)
        raise _not_eligible(eligibility.NOT_BOUND)
    if not _on_postgres(connection):
        connection.execute(_WRITE_HOLDER, {"holder": holder_id})  # step 1 on SQLite
    # A slug or key that cannot exist is not looked up: PostgreSQL refuses some text (a
    # NUL) outright. NULL matches nothing.
    facts = connection.execute(_FACTS, {
        "holder": holder_id, "request_id": request_id,
        "slug": slug if SLUG.fullmatch(slug) else None,
        "option_key": option_key if OPTION_KEY.fullmatch(option_key) else None}).one()
    if facts.earlier_id is not None:
        return _replay(connection, facts.earlier_id, slug, option_key)
    if facts.campaign_id is None or not offers.is_open(facts, now):
        raise ApiError(404, "unknown_campaign", "no open campaign has this slug")
    if facts.option_id is None:
        raise ApiError(404, "unknown_option", "the campaign has no option with this key")
    verdict = eligibility.of(facts, facts, now=now)
    if not verdict.eligible:
        raise _not_eligible(verdict.reason)
    if facts.limit_per_holder is not None and facts.redeemed >= facts.limit_per_holder:
        raise ApiError(409, "limit_reached",
                       f"this option is limited to {facts.limit_per_holder} per card holder")
    price, balance = facts.points, int(facts.balance)
    # A free option stays free for a holder whose refunds took the balance below zero.
    if price and price > balance:
        raise ApiError(409, "insufficient_points",
                       f"this option costs {price} points; the balance is {balance}")
    values = {"holder": holder_id, "campaign": facts.campaign_id, "option": facts.option_id,
              "points_spent": price, "points_balance": balance - price,
              "request_id": request_id, "now": now}
    redemption_id, code = _claim_and_record(connection, values)
    if price:
        points.spend(holder_id, price, f"redeem:{slug}/{option_key}",
                     reference=f"redemption:{redemption_id}")
    return Redeemed(redemption_id, option_key, vault().decrypt(code, CODE_CONTEXT), price,
                    balance - price, replayed=False)


def _not_eligible(reason: str | None) -> ApiError:
    return ApiError(403, "not_eligible", _WHY[reason], extra={"reason": reason})


def _claim_and_record(connection: Connection, values: dict[str, Any]) -> tuple[int, str]:
    """Steps 5 and 6: (redemption id, the code's ciphertext); 409 out_of_stock."""
    if _on_postgres(connection):
        row = connection.execute(_CLAIM_AND_REDEEM, values).first()
        if row is None:
            raise _out_of_stock()
        return row.id, row.code
    claimed = connection.execute(_CLAIM, values).first()
    if claimed is None:
        raise _out_of_stock()
    redemption_id = connection.scalar(_INSERT_REDEMPTION, {**values, "code_id": claimed.id})
    return redemption_id, claimed.code


def _out_of_stock() -> ApiError:
    return ApiError(409, "out_of_stock", "no codes of this option are left")


def _replay(connection: Connection, redemption_id: int, slug: str,
            option_key: str) -> Redeemed:
    earlier = connection.execute(_EARLIER_ANSWER, {"redemption": redemption_id}).one()
    if (earlier.slug, earlier.key) != (slug, option_key):
        raise ApiError(409, "request_id_reused",
                       "this request_id was used for another campaign or option")
    return Redeemed(earlier.id, earlier.key, vault().decrypt(earlier.code, CODE_CONTEXT),
                    earlier.points_spent, earlier.points_balance, replayed=True)


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
