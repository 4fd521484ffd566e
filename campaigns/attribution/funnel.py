"""The funnel from scan to redemption, of one channel or of every channel at once (the
ranking), as the contract defines its steps; one SQL statement each, over indexed columns.

Who a channel's people are: the followers whose first scene is its code
(``Follower.first_scene``, kept by the first channel) and the first-time mini-program users
who came through its mini-program code (``MiniappArrival``): the contract's mini-program
login "attributes ... the same way", so both are its ``follows``. One person is counted
once per channel: a follower and a mini-program user of the same unionid who came through
the same channel are one person (``key``). A code counts whether or not a ``Channel`` row
names it.

The steps, for a period ``[start, end)`` (both optional: all time):

- ``scans``: the scans of the code within the period (every scan by anyone, ``QrScan``);
- ``follows``: the people the channel brought within the period (followers by the time of
  their attributing follow, ``first_scene_at``; mini-program users by their first login);
- ``binds``: those of them who bound a card by the period's end, through either app's
  openid or their unionid; a binding counts once made, even if later undone (the channel
  brought a binding; an unbind or a rebind later does not take it back);
- ``transacting``: those of the bound with at least one transaction of the card they bound
  after binding and before the period's end (any transaction the feed accepted: a debit
  or a credit, refunds included, as the contract says "at least one transaction");
- ``redemptions``: the redemptions of the cards they bound, made after binding and before
  the period's end.

So a period's funnel follows the people who arrived in it up to its end: each step is a
subset of the one before (redemptions count rows, not people), and a closed period's
funnel does not change later.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    desc,
    exists,
    func,
    literal,
    select,
    union,
    union_all,
)

from campaigns.attribution.models import Channel, QrScan
from campaigns.benefits.models import Redemption
from core.clock import SHANGHAI
from core.db import db
from members.holders.binding import MINIAPP, OFFICIAL_ACCOUNT
from members.holders.models import Binding, Follower, MiniappArrival
from members.transactions.models import Transaction

STEPS = ("scans", "follows", "binds", "transacting", "redemptions")
RANK_BY = ("binds", "transacting")


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC; None for an open side."""

    start: datetime | None = None
    end: datetime | None = None


ALL_TIME = Period()
_YEARS = range(2000, 2100)


def period_of(first: str | None, last: str | None) -> Period:
    """The period from the Asia/Shanghai day ``first`` to the day ``last``, both included
    (``YYYY-MM-DD``; either may be empty: open on that side). ValueError saying what is
    wrong, for a 400 or the console's message."""
    days = []
    for name, value in (("from", first), ("to", last)):
        if not value:
            days.append(None)
            continue
        try:
            parsed = date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.year not in _YEARS:
            raise ValueError(f"{name} must be a date YYYY-MM-DD")
        days.append(parsed)
    start, end = days
    if start and end and start > end:
        raise ValueError("from must not be after to")

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)

    return Period(start=midnight(start) if start else None,
                  end=midnight(end + timedelta(days=1)) if end else None)


@dataclass(frozen=True)
class Funnel:
    scans: int
    follows: int
    binds: int
    transacting: int
    redemptions: int

    def as_dict(self) -> dict[str, int]:
        return {step: getattr(self, step) for step in STEPS}


@dataclass(frozen=True)
class Ranked:
    """A code's funnel in the ranking; name, kind and branch are its Channel's (None for a
    code no channel names)."""

    code: str
    name: str | None
    kind: str | None
    branch: str | None
    funnel: Funnel


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [condition for condition in (
        column >= period.start if period.start else None,
        column < period.end if period.end else None) if condition is not None]


def _before_end(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column < period.end] if period.end else []


def _counts(codes: str | Select | None, period: Period) -> Select:
    """The five steps per code, one row per code with anything to count, as one statement
    of CTEs. ``codes``: one code, or a one-column select of codes; None: every code.

    Each CTE reads the big tables only through their indexes on the code and time columns
    (follower's first scene, arrivals' channel, scans' scene), and the bound people's
    bindings, transactions and redemptions through their holder's indexes.
    """
    def of_codes(column: Any) -> list[ColumnElement[bool]]:
        if codes is None:
            return [column.is_not(None)]
        return [column == codes] if isinstance(codes, str) else [column.in_(codes)]

    people = union_all(
        select(Follower.first_scene.label("code"),
               func.coalesce(Follower.unionid,
                             literal("oa:") + Follower.openid).label("key"),
               literal(OFFICIAL_ACCOUNT).label("app"), Follower.openid, Follower.unionid)
        .where(*of_codes(Follower.first_scene), *_within(Follower.first_scene_at, period)),
        select(MiniappArrival.channel,
               func.coalesce(MiniappArrival.unionid, literal("mp:") + MiniappArrival.openid),
               literal(MINIAPP), MiniappArrival.openid, MiniappArrival.unionid)
        .where(*of_codes(MiniappArrival.channel), *_within(MiniappArrival.arrived_at, period)),
    ).cte("people")
    # Every binding of a person: of its own openid in its app, or of its unionid (the
    # other app's, or its own before its openid's unionid was known).
    bound = union_all(
        select(people.c.code, people.c.key, Binding.holder_id,
               Binding.created_at.label("bound_at"))
        .join(Binding, and_(Binding.app == people.c.app, Binding.openid == people.c.openid))
        .where(*_before_end(Binding.created_at, period)),
        select(people.c.code, people.c.key, Binding.holder_id, Binding.created_at)
        .join(Binding, Binding.unionid == people.c.unionid)
        .where(*_before_end(Binding.created_at, period)),
    ).cte("bound")
    spent = exists().where(Transaction.holder_id == bound.c.holder_id,
                           Transaction.occurred_at > bound.c.bound_at,
                           *_before_end(Transaction.occurred_at, period))

    scans = (select(QrScan.scene.label("code"), func.count().label("n"))
             .where(*of_codes(QrScan.scene), *_within(QrScan.scanned_at, period))
             .group_by(QrScan.scene).cte("scans"))
    follows = (select(people.c.code, func.count(people.c.key.distinct()).label("n"))
               .group_by(people.c.code).cte("follows"))
    binds = (select(bound.c.code, func.count(bound.c.key.distinct()).label("n"))
             .group_by(bound.c.code).cte("binds"))
    transacting = (select(bound.c.code, func.count(bound.c.key.distinct()).label("n"))
                   .where(spent).group_by(bound.c.code).cte("transacting"))
    redemptions = (select(bound.c.code, func.count(Redemption.id.distinct()).label("n"))
                   .join(Redemption, and_(Redemption.holder_id == bound.c.holder_id,
                                          Redemption.redeemed_at >= bound.c.bound_at,
                                          *_before_end(Redemption.redeemed_at, period)))
                   .group_by(bound.c.code).cte("redemptions"))

    every = union(select(scans.c.code), select(follows.c.code)).cte("every_code")
    steps = (scans, follows, binds, transacting, redemptions)
    query = select(every.c.code, *(func.coalesce(step.c.n, 0).label(name)
                                   for name, step in zip(STEPS, steps, strict=True)))
    joined = every
    for step in steps:
        joined = joined.outerjoin(step, step.c.code == every.c.code)
    return query.select_from(joined)


def funnel(code: str, period: Period = ALL_TIME) -> Funnel:
    """The funnel of one channel code (all zeros for a code nothing came through)."""
    row = db.session.execute(_counts(code, period)).first()
    return Funnel(**{step: row._mapping[step] for step in STEPS}) if row else \
        Funnel(0, 0, 0, 0, 0)


def ranking(period: Period = ALL_TIME, *, by: str = "binds", branch: str | None = None,
            codes: Sequence[str] | None = None) -> list[Ranked]:
    """Every channel's funnel, in one grouped statement: best first by ``by`` (binds or
    transacting; then the other, then follows, then code).

    Every ``Channel`` appears, with zeros if nothing came through it yet, and so does every
    code something came through without a channel (by code alone). ``branch``: the
    channels of that branch only; ``codes``: only those (a manager's own).
    """
    if by not in RANK_BY:
        raise ValueError(f"by must be one of {RANK_BY}")
    chosen = select(Channel.code)
    if branch is not None:
        chosen = chosen.where(Channel.branch == branch)
    if codes is not None:
        chosen = chosen.where(Channel.code.in_(codes))
    limited = branch is not None or codes is not None
    counts = _counts(chosen if limited else None, period).cte("counts")
    listed = union(select(counts.c.code), chosen).cte("listed")
    step = {name: func.coalesce(counts.c[name], 0).label(name) for name in STEPS}
    other = RANK_BY[1 - RANK_BY.index(by)]
    query = (select(listed.c.code, Channel.name, Channel.kind, Channel.branch, *step.values())
             .select_from(listed.outerjoin(counts, counts.c.code == listed.c.code)
                          .outerjoin(Channel, Channel.code == listed.c.code))
             .order_by(desc(step[by]), desc(step[other]), desc(step["follows"]),
                       listed.c.code))
    return [Ranked(code=row.code, name=row.name, kind=row.kind, branch=row.branch,
                   funnel=Funnel(**{name: row._mapping[name] for name in STEPS}))
            for row in db.session.execute(query)]


def rates(funnel_: Funnel) -> list[tuple[str, str, float | None]]:
    """The conversion between consecutive people steps: (from, to, share 0..1 or None when
    the earlier step is 0). Redemptions are rows, so their rate is per transacting holder."""
    values = funnel_.as_dict()
    return [(a, b, values[b] / values[a] if values[a] else None) for a, b in pairwise(STEPS)]




CSV_HEADER = ("code", "name", "kind", "branch", *STEPS)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP):
# names are checked when channels are made, but a scene no channel names is WeChat's text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def ranking_csv(rows: Sequence[Ranked]) -> str:
    """The ranking as CSV (UTF-8 with a BOM, so that Excel shows the Chinese names), in its
    order; a cell a spreadsheet would take for a formula is prefixed with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow([_cell(value) for value in (
            row.code, row.name, row.kind, row.branch, *row.funnel.as_dict().values())])
    return "\ufeff" + buffer.getvalue()
