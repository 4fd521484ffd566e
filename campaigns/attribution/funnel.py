"""The funnel from scan to redemption, of one channel or of every channel at once (the
ranking), as the contract defines its steps; read from small tables of facts that
``campaigns.attribution.facts`` keeps up to date (each read refreshes them first, so it
includes everything committed before it).

Who a channel's people are: the followers whose first scene is its code
(``Follower.first_scene``, kept by the first channel) and the first-time mini-program users
who came through its mini-program code (``MiniappArrival``): the contract's mini-program
login "attributes ... the same way", so both are its ``follows``. One person is counted
once per channel: a follower and a mini-program user of the same unionid who came through
the same channel are one person. A code counts whether or not a ``Channel`` row names it.

The steps, for a period of Asia/Shanghai days (``Period``; open sides: all time):

- ``scans``: the scans of the code on the period's days (every scan by anyone, ``QrScan``);
- ``follows``: the people the channel brought on those days (followers by the time of
  their attributing follow, ``first_scene_at``; mini-program users by their first login);
- ``binds``: those of them who have bound a card, through either app's openid or their
  unionid; a binding counts once made, even if later undone (the channel brought a
  binding; an unbind or a rebind later does not take it back);
- ``transacting``: those of the bound with at least one transaction of the card they
  first bound after binding (any transaction the feed accepted: a debit or a credit,
  refunds included, as the contract says "at least one transaction");
- ``redemptions``: the redemptions of that card, made after binding.

So a period's funnel is the cohort of the people who arrived in it and what they have done
*so far*: binds, transacting and redemptions are counted to date, also after the period
ended (a closed period's follows and scans are fixed; its later steps still grow as its
people go on). Each step is a subset of the one before (redemptions count rows, not
people).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Select, desc, func, select, union, union_all

from campaigns.attribution import facts
from campaigns.attribution.models import Channel, ChannelDay, ChannelMonth
from core.db import db
from core.spreadsheet import safe_cell

STEPS = ("scans", "follows", "binds", "transacting", "redemptions")
RANK_BY = ("binds", "transacting")


@dataclass(frozen=True)
class Period:
    """The Asia/Shanghai days ``[start, end)``; None for an open side."""

    start: date | None = None
    end: date | None = None


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
    return Period(start=start, end=end + timedelta(days=1) if end else None)


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


def _parts(period: Period) -> list[tuple[Any, Any, date | None, date | None]]:
    """Where the period's counters are: (table, its date column, from, to) with ``[from,
    to)`` the dates read there. Whole months come from ``channel_month``, the days of a
    partial month at either end from ``channel_day``: a year is a dozen rows per channel."""
    start, end = period.start, period.end
    first = start if start is None or start.day == 1 else _next_month(start)
    last = end.replace(day=1) if end is not None else None
    if first is not None and last is not None and first >= last:
        return [(ChannelDay, ChannelDay.day, start, end)]  # within one month or two
    parts = [(ChannelMonth, ChannelMonth.month, first, last)]
    if start is not None and start != first:
        parts.append((ChannelDay, ChannelDay.day, start, first))
    if end is not None and end != last:
        parts.append((ChannelDay, ChannelDay.day, last, end))
    return parts


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _sums(period: Period, codes: str | Select | None) -> Select:
    """The five steps per code over the period: index ranges of ``channel_month`` and
    ``channel_day`` per code (their keys are the code and the date). ``codes``: one code,
    or a one-column select of codes; None: every code."""
    parts = []
    for model, column, first, last in _parts(period):
        part = select(model.channel.label("code"),
                      *(model.__table__.c[step].label(step) for step in STEPS))
        if isinstance(codes, str):
            part = part.where(model.channel == codes)
        elif codes is not None:
            part = part.where(model.channel.in_(codes))
        if first is not None:
            part = part.where(column >= first)
        if last is not None:
            part = part.where(column < last)
        parts.append(part)
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("counted")
    return (select(rows.c.code, *(func.sum(rows.c[step]).label(step) for step in STEPS))
            .group_by(rows.c.code))


def funnel(code: str, period: Period = ALL_TIME) -> Funnel:
    """The funnel of one channel code (all zeros for a code nothing came through)."""
    facts.refresh()
    row = db.session.execute(_sums(period, code)).first()
    return Funnel(**{step: int(row._mapping[step]) for step in STEPS}) if row else \
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
    facts.refresh()
    counts = _sums(period, chosen if limited else None).cte("counts")
    listed = union(select(counts.c.code), chosen).cte("listed")
    step = {name: func.coalesce(counts.c[name], 0).label(name) for name in STEPS}
    other = RANK_BY[1 - RANK_BY.index(by)]
    query = (select(listed.c.code, Channel.name, Channel.kind, Channel.branch, *step.values())
             .select_from(listed.outerjoin(counts, counts.c.code == listed.c.code)
                          .outerjoin(Channel, Channel.code == listed.c.code))
             .order_by(desc(step[by]), desc(step[other]), desc(step["follows"]),
                       listed.c.code))
    return [Ranked(code, name, kind, branch, Funnel(*map(int, steps)))
            for code, name, kind, branch, *steps in db.session.execute(query)]


def rates(funnel_: Funnel) -> list[tuple[str, str, float | None]]:
    """The conversion between consecutive people steps: (from, to, share 0..1 or None when
    the earlier step is 0). Redemptions are rows, so their rate is per transacting holder."""
    values = funnel_.as_dict()
    return [(a, b, values[b] / values[a] if values[a] else None) for a, b in pairwise(STEPS)]




CSV_HEADER = ("code", "name", "kind", "branch", *STEPS)
def ranking_csv(rows: Sequence[Ranked]) -> str:
    """The ranking as CSV (UTF-8 with a BOM, so that Excel shows the Chinese names), in its
    order; a cell a spreadsheet would take for a formula is prefixed with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        # Names are checked when channels are made, but a scene no channel names is WeChat's text.
        writer.writerow([safe_cell(value) for value in (
            row.code, row.name, row.kind, row.branch, *row.funnel.as_dict().values())])
    return "\ufeff" + buffer.getvalue()
