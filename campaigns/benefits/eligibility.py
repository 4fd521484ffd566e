"""Who may redeem a campaign's benefits, as the contract defines it.

Only bound holders are ever eligible (reason ``not_bound``). Then every part the
campaign gives must hold: ``tiers`` (the holder's tier from the registry, reason
``tier``) and ``min_spend_fen`` (reason ``min_spend``), checked in that order.

Spend is the holder's purchases net of refunds and reversals, from the campaign's
start until now, in the points ledger's currency (CNY), read from the transactions
already stored. POINTS_RULES says which channels are which: a debit on a channel of
``earn`` is a purchase (ATM withdrawals and transfers out, which earn nothing, are no
spend either), a credit on a channel of ``take_back`` (REFUND, REVERSAL) undoes one.
Other credits (salary, transfers in) change nothing. The sum reads one holder's
transactions over the campaign's time range through the index on (holder_id,
occurred_at), however many millions the table holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import case, func, select

from campaigns.benefits.models import Campaign
from core.db import db
from members.holders.models import CardHolder
from members.transactions import points
from members.transactions.models import Transaction

NOT_BOUND = "not_bound"
TIER = "tier"
MIN_SPEND = "min_spend"


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str | None  # None when eligible; else not_bound | tier | min_spend
    # How much more spend (fen) would make the holder eligible, when that is all that is
    # missing: pages say "本月再消费 ¥230.00 即可领取". 0 otherwise.
    missing_fen: int = 0


ELIGIBLE = Eligibility(True, None)


class Rules(Protocol):
    """What eligibility reads of a campaign: a ``Campaign``, or a row of its columns (the
    redemption reads them in the statement that reads the rest)."""

    @property
    def eligibility(self) -> dict[str, Any]: ...
    @property
    def starts_at(self) -> datetime: ...


class Member(Protocol):
    """What eligibility reads of a holder: a ``CardHolder``, or a row of its columns."""

    @property
    def id(self) -> int: ...
    @property
    def tier(self) -> str: ...


def of(campaign: Rules | Campaign, holder: Member | CardHolder | None, *,
       now: datetime) -> Eligibility:
    """Whether ``holder`` (None: the caller is bound to no card) may redeem ``campaign`` now."""
    if holder is None:
        return Eligibility(False, NOT_BOUND)
    rules = campaign.eligibility
    if "tiers" in rules and holder.tier not in rules["tiers"]:
        return Eligibility(False, TIER)
    if "min_spend_fen" in rules:
        spent = spend_fen(holder.id, since=campaign.starts_at, until=now)
        if spent < rules["min_spend_fen"]:
            return Eligibility(False, MIN_SPEND, rules["min_spend_fen"] - spent)
    return ELIGIBLE


def spend_fen(holder_id: int, *, since: datetime, until: datetime) -> int:
    """The holder's purchases less refunds and reversals between the two times, in fen.

    May be negative: a refund within the range of a purchase made before it.
    """
    rules = points.rules_of(current_app)
    signed = case(
        ((Transaction.direction == "debit") & Transaction.channel.in_(list(rules.earn)),
         Transaction.amount_fen),
        ((Transaction.direction == "credit") & Transaction.channel.in_(list(rules.take_back)),
         -Transaction.amount_fen),
        else_=0)
    total = db.session.scalar(
        select(func.coalesce(func.sum(signed), 0))
        .where(Transaction.holder_id == holder_id, Transaction.currency == rules.currency,
               Transaction.occurred_at >= since, Transaction.occurred_at <= until))
    return int(total)
