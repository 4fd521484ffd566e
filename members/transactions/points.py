"""The points ledger: rules, entries per transaction, balance, history.

The ledger is append-only: a point is never edited away, a refund or reversal
adds a negative entry. A holder's balance is ``SUM(points)`` of their entries,
computed when asked, so it cannot drift from the ledger. (txn_id, kind) is
unique, so however often a transaction arrives it earns or takes back once.

The ledger may go below zero, on purpose: a refund takes back the points its
purchase earned even when they were spent meanwhile. Clamping at zero would let
someone buy, redeem the points, refund, and keep both; a negative balance is
owed and repaid by later spending, and redemptions (campaigns/) must check the
balance covers them. All arithmetic is on integers.

Points spent (a benefit bought with points) are a negative entry of kind
``redeem`` naming what they bought in ``reference``; (kind, reference) is
unique, so one redemption spends once however often ``spend`` is called for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import ColumnElement, ScalarSelect, func, select

from config.validation import ConfigError
from core.db import bulk_insert, db, insert_skipping_conflicts
from members.transactions.models import PointEntry, Transaction

EARN = "earn"
TAKE_BACK = "reverse"  # the model's kind for a negative entry of a refund or reversal
SPEND = "redeem"  # points spent on a benefit
_ENTRY_MAX = 2**31 - 1  # point_entry.points is a 32-bit INTEGER
_EXTENSION = "points_rules"


@dataclass(frozen=True)
class Rules:
    """POINTS_RULES, checked: see config/settings.py for what each part means."""

    currency: str
    per_fen: int
    earn: Mapping[str, int]
    take_back: Mapping[str, int]

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], max_amount_fen: int) -> Rules:
        """Parse and check the rules; ConfigError says which part is wrong."""
        if set(raw) != {"currency", "per_fen", "earn", "take_back"}:
            raise ConfigError("POINTS_RULES needs exactly currency, per_fen, earn, take_back")
        per_fen = raw["per_fen"]
        if type(per_fen) is not int or per_fen < 1:
            raise ConfigError("POINTS_RULES.per_fen must be a positive integer")
        if not isinstance(raw["currency"], str) or not re.match(r"^[A-Z]{3}$", raw["currency"]):
            raise ConfigError("POINTS_RULES.currency must be 3 upper-case letters")
        rules = cls(currency=raw["currency"], per_fen=per_fen, earn=_rates("earn", raw["earn"]),
                    take_back=_rates("take_back", raw["take_back"]))
        top_rate = max([*rules.earn.values(), *rules.take_back.values(), 0])
        if max_amount_fen // per_fen * top_rate > _ENTRY_MAX:
            raise ConfigError("POINTS_RULES: TXN_MAX_AMOUNT_FEN at the highest rate overflows "
                              "a ledger entry; lower the rate or the amount cap")
        return rules


def _rates(part: str, raw: Any) -> dict[str, int]:
    if not isinstance(raw, Mapping) or not all(
            isinstance(channel, str) and channel == channel.upper()
            and type(rate) is int and rate >= 0 for channel, rate in raw.items()):
        raise ConfigError(f"POINTS_RULES.{part} must map upper-case channels to integers >= 0")
    return dict(raw)


def init_app(app: Flask) -> None:
    """Check the rules at start, so a bad configuration stops the start, not a feed batch."""
    app.extensions[_EXTENSION] = Rules.from_config(app.config["POINTS_RULES"],
                                                   app.config["TXN_MAX_AMOUNT_FEN"])


def rules_of(app: Flask) -> Rules:
    return app.extensions[_EXTENSION]


@dataclass(frozen=True)
class Movement:
    """What one transaction does to a holder's points."""

    kind: str
    points: int
    reason: str


def movement(rules: Rules, *, direction: str, channel: str, currency: str,
             amount_fen: int) -> Movement | None:
    """The points one transaction earns (positive) or takes back (negative); None for none."""
    if currency != rules.currency:
        return None
    units = amount_fen // rules.per_fen
    if direction == "debit" and rules.earn.get(channel, 0):
        points = units * rules.earn[channel]
        kind = EARN
    elif direction == "credit" and rules.take_back.get(channel, 0):
        points = -units * rules.take_back[channel]
        kind = TAKE_BACK
    else:
        return None
    # Zero-point entries (a 9.99 yuan purchase) would only clutter the history.
    return Movement(kind, points, f"{direction}:{channel}") if points else None


def record(rules: Rules, transactions: Iterable[Mapping[str, Any]]) -> int:
    """Ledger entries for newly stored transactions of known holders; returns how many.

    Each mapping has holder_id, txn_id, direction, channel, currency, amount_fen.
    One statement for the lot; (txn_id, kind) conflicts are skipped, so a
    transaction that somehow comes round again never counts twice.
    """
    rows = []
    for txn in transactions:
        move = movement(rules, direction=txn["direction"], channel=txn["channel"],
                        currency=txn["currency"], amount_fen=txn["amount_fen"])
        if move is not None:
            rows.append({"holder_id": txn["holder_id"], "txn_id": txn["txn_id"],
                         "kind": move.kind, "points": move.points, "reason": move.reason})
    bulk_insert(PointEntry.__table__, rows, skip_conflicts_on=["txn_id", "kind"])
    return len(rows)


def spend(holder_id: int, points: int, reason: str, *, reference: str) -> bool:
    """Take ``points`` (> 0) off the holder's balance for ``reference``; False if done before.

    The caller checks the balance covers it, under whatever serialises that holder's
    spending (a redemption locks the holder row), and commits.
    """
    if type(points) is not int or points <= 0:
        raise ValueError("points spent must be a positive integer")
    inserted = db.session.execute(
        insert_skipping_conflicts(PointEntry.__table__, "kind", "reference")
        .values(holder_id=holder_id, kind=SPEND, points=-points, reason=reason,
                reference=reference)
        .returning(PointEntry.__table__.c.id))
    return inserted.first() is not None


def balance_of(holder_id: ColumnElement[int] | int) -> ScalarSelect[int]:
    """The balance as a SQL expression: the sum of the ledger (index (holder_id, id)), for a
    holder id or a holder column of an enclosing query."""
    return (select(func.coalesce(func.sum(PointEntry.points), 0))
            .where(PointEntry.holder_id == holder_id).scalar_subquery())


def balance(holder_id: int) -> int:
    """The holder's points: the sum of their ledger."""
    return int(db.session.scalar(select(balance_of(holder_id))))


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    kind: str
    points: int
    reason: str
    created_at: datetime
    # Of the transaction behind the entry, when there is one: nothing that identifies the card
    # beyond its last four digits.
    merchant: str | None
    amount_fen: int | None
    currency: str | None
    occurred_at: datetime | None
    card_last4: str | None


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: int | None  # pass as ``before`` for the next (older) page; None at the end


def history(holder_id: int, *, before: int | None, limit: int) -> HistoryPage:
    """The holder's entries, newest first, ``limit`` at a time (keyset on id, no OFFSET)."""
    query = (
        select(PointEntry.id, PointEntry.kind, PointEntry.points, PointEntry.reason,
               PointEntry.created_at, Transaction.merchant, Transaction.amount_fen,
               Transaction.currency, Transaction.occurred_at, Transaction.card_last4)
        .outerjoin(Transaction, Transaction.txn_id == PointEntry.txn_id)
        .where(PointEntry.holder_id == holder_id)
        .order_by(PointEntry.id.desc())
        .limit(limit + 1)  # one more than shown tells whether another page exists
    )
    if before is not None:
        query = query.where(PointEntry.id < before)
    rows = db.session.execute(query).all()
    entries = [HistoryEntry(*row) for row in rows[:limit]]
    more = len(rows) > limit
    return HistoryPage(entries, entries[-1].id if more else None)
