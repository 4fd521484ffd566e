"""The core-banking transaction feed: verify, validate, store, hand alerts to the sender.

Order of trust: the body's size is capped before it is read, its HMAC is
checked before it is parsed, and every item of a batch is validated before
anything is written, so a batch is stored whole or not at all.

Storing is one database transaction of a handful of set-based statements,
whatever the batch size: transactions are inserted with ``ON CONFLICT (txn_id)
DO NOTHING ... RETURNING``, so only rows this request really inserted earn
points and get sending. A concurrent request carrying the same txn_id waits on
the first one's uncommitted row and then inserts nothing, so no race can count
a transaction twice. Rows are inserted in txn_id order so that two overlapping
batches take their row locks in the same order and cannot deadlock.

Alerts are outbox rows (``Delivery``, state "queued") written in the same
transaction; after the commit their ids go to ``members.alerts``, which sends
them. The request never waits for WeChat.

The card number lives only as long as validation: what is stored is its blind
index and last four digits, and no error or log line repeats it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import select

from core.db import bulk_insert, db
from core.errors import ApiError
from core.jobs import call_after_commit
from core.jsonapi import FieldType, object_problems, parse_json, utc_time
from members.holders.binding import MINIAPP, OFFICIAL_ACCOUNT
from members.holders.models import Binding, CardHolder
from members.protection import identity
from members.protection.pii import vault
from members.transactions import points
from members.transactions.alerts import sending
from members.transactions.alerts.models import Delivery
from members.transactions.models import Transaction

log = logging.getLogger(__name__)

TEMPLATE = "template"  # official-account template message
SUBSCRIBE = "subscribe"  # mini-program subscribe message (no official account bound)

# -- signature ---------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def verify_signature(secret: str, timestamp: str | None, signature: str | None, body: bytes,
                     *, window: int, now: float | None = None) -> None:
    """Accept only hex HMAC-SHA256(secret, timestamp + "." + body) within ``window`` s of now.

    Raises 401. Stale or future timestamps are refused before any HMAC is computed.
    """
    if not timestamp or not signature:
        raise _unauthorized("missing_signature", "X-Timestamp and X-Signature are required")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _unauthorized("invalid_timestamp", "X-Timestamp must be unix seconds")
    if abs((time.time() if now is None else now) - int(timestamp)) > window:
        raise _unauthorized("stale_timestamp", f"X-Timestamp is more than {window} s off")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise _unauthorized("invalid_signature", "X-Signature does not match the body")


# -- validation --------------------------------------------------------------------------------

_FIELDS: dict[str, FieldType] = {
    "txn_id": str, "card_no": str, "amount_fen": int, "currency": str, "direction": str,
    "merchant": str, "channel": str, "occurred_at": str, "balance_fen": (int, type(None)),
}
# A cash withdrawal or a transfer has no merchant; a balance may be unknown to the sender.
_OPTIONAL = frozenset({"merchant", "balance_fen"})
DIRECTIONS = frozenset({"debit", "credit"})
# fullmatch throughout: "$" would let a trailing newline through.
TXN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CHANNEL = re.compile(r"[A-Za-z0-9_-]+")
_MERCHANT_MAX = Transaction.__table__.c.merchant.type.length
_CHANNEL_MAX = Transaction.__table__.c.channel.type.length
_BIGINT_MAX = 2**63 - 1  # balance_fen's column; a larger balance is not a balance
_SHOWN_PROBLEMS = 10  # a 400 lists this many problems, then counts the rest


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One valid transaction, as stored: the card only by blind index and last four digits."""

    txn_id: str
    card_index: str
    card_last4: str
    amount_fen: int
    currency: str
    direction: str
    merchant: str
    channel: str
    occurred_at: datetime
    balance_fen: int | None


@dataclass(frozen=True)
class ItemProblem:
    index: int
    field: str
    reason: str
    code: str = "invalid_value"

    def __str__(self) -> str:
        return f"item {self.index}: {self.field}: {self.reason}" if self.field \
            else f"item {self.index}: {self.reason}"


class _Invalid(ValueError):
    """One field's value is wrong; the reason names the rule, never the value."""


def _txn_id(value: str) -> str:
    if not TXN_ID.fullmatch(value):
        raise _Invalid("must be 1-64 of letters, digits, '.', '_', ':', '-'")
    return value


def _card(value: str) -> str:
    try:
        return identity.normalize_card(value)
    except identity.InvalidField as exc:
        raise _Invalid(exc.reason) from None


def _amount(value: int, cap: int) -> int:
    if not 0 < value <= cap:
        raise _Invalid(f"must be between 1 and {cap} (fen)")
    return value


def _balance(value: int | None) -> int | None:
    # A debit card cannot be overdrawn: a negative balance is a fault upstream.
    if value is not None and not 0 <= value <= _BIGINT_MAX:
        raise _Invalid("must be an integer from 0 (fen)")
    return value


def _currency(value: str) -> str:
    # Any ISO 4217 code: a purchase abroad is stored and alerted in its own currency.
    if not _CURRENCY.fullmatch(value):
        raise _Invalid("must be an ISO 4217 code of 3 upper-case letters")
    return value


def _direction(value: str) -> str:
    if value not in DIRECTIONS:
        raise _Invalid("must be debit or credit")
    return value


def _merchant(value: str | None) -> str:
    if value is None or not value.strip():
        return ""
    try:
        return identity.normalize_label("merchant", value, _MERCHANT_MAX)
    except identity.InvalidField as exc:
        raise _Invalid(exc.reason) from None


def _channel(value: str) -> str:
    try:
        value = identity.normalize_label("channel", value, _CHANNEL_MAX)
    except identity.InvalidField as exc:
        raise _Invalid(exc.reason) from None
    if not _CHANNEL.fullmatch(value):
        raise _Invalid("must be letters, digits, '_' or '-'")
    # Channel codes are identifiers; one spelling keeps POINTS_RULES lookups exact.
    return value.upper()


def _occurred_at(value: str) -> datetime:
    try:
        return utc_time(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _item(body: dict[str, Any], max_amount_fen: int) -> tuple[FeedItem | None, list[tuple]]:
    """The item, or None and every (field, reason) it fails. Types are already checked."""
    rules = {"txn_id": _txn_id, "card_no": _card,
             "amount_fen": lambda value: _amount(value, max_amount_fen),
             "currency": _currency, "direction": _direction, "merchant": _merchant,
             "channel": _channel, "occurred_at": _occurred_at, "balance_fen": _balance}
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for field, rule in rules.items():
        try:
            values[field] = rule(body.get(field))  # absent optional fields arrive as None
        except _Invalid as exc:
            problems.append((field, str(exc)))
    if problems:
        return None, problems
    card_no = values.pop("card_no")  # from here on, only its blind index and last four digits
    return FeedItem(card_index=vault().blind_index("card", card_no), card_last4=card_no[-4:],
                    **values), []


def parse_batch(raw: bytes, *, max_items: int, max_amount_fen: int) -> list[FeedItem]:
    """Every item of the body (one object or a list), or ApiError listing what is wrong.

    400 when any item is invalid or a txn_id repeats within the batch (nothing is
    stored); 413 for more than ``max_items`` items.
    """
    body = parse_json(raw)
    batch = body if isinstance(body, list) else [body]
    if len(batch) > max_items:
        raise ApiError(413, "too_many_items", f"a batch holds at most {max_items} items")
    items: list[FeedItem] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    for index, element in enumerate(batch):
        shape = object_problems(element, _FIELDS, _OPTIONAL)
        if shape:
            problems += [ItemProblem(index, p.field, p.reason, p.code) for p in shape]
            continue
        item, wrong = _item(element, max_amount_fen)
        problems += [ItemProblem(index, field, reason) for field, reason in wrong]
        if item is None:
            continue
        if item.txn_id in seen:
            problems.append(ItemProblem(index, "txn_id", "repeats an earlier item of this batch",
                                        "duplicate_txn_id"))
        seen.add(item.txn_id)
        items.append(item)
    if problems:
        raise _rejection(problems, len(batch))
    return items


def _rejection(problems: list[ItemProblem], size: int) -> ApiError:
    shown = "; ".join(str(p) for p in problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    rest = f"; and {more} more" if more > 0 else ""
    return ApiError(400, problems[0].code,
                    f"nothing of the {size} item(s) was stored: {shown}{rest}")


# -- storing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedResult:
    accepted: int  # newly stored (unknown cards included)
    duplicate: int  # txn_id stored before: nothing done again
    unknown_card: int  # newly stored, card not in the registry: no points, no alert
    delivery_ids: list[int]  # alerts queued, handed to members.alerts after the commit


def store(items: Sequence[FeedItem], rules: points.Rules) -> FeedResult:
    """Store new transactions, their points and their alerts; the caller commits."""
    if not items:
        return FeedResult(0, 0, 0, [])
    holders = _holders_by_card({item.card_index for item in items})
    # txn_id order: overlapping concurrent batches lock their rows in one order, no deadlock.
    rows = [{
        "txn_id": item.txn_id, "card_index": item.card_index, "card_last4": item.card_last4,
        "holder_id": holders.get(item.card_index), "amount_fen": item.amount_fen,
        "currency": item.currency, "direction": item.direction, "merchant": item.merchant,
        "channel": item.channel, "occurred_at": item.occurred_at,
        "balance_fen": item.balance_fen,
    } for item in sorted(items, key=attrgetter("txn_id"))]
    inserted = bulk_insert(Transaction.__table__, rows, skip_conflicts_on=["txn_id"],
                           returning=["id", "txn_id"])
    new_ids = {txn_id: row_id for row_id, txn_id in inserted}
    new = [row for row in rows if row["txn_id"] in new_ids]
    known = [row for row in new if row["holder_id"] is not None]
    points.record(rules, known)
    delivery_ids = _queue_alerts(known, new_ids)
    if delivery_ids:
        call_after_commit(_hand_to_sender, delivery_ids)
    return FeedResult(accepted=len(new), duplicate=len(rows) - len(new),
                      unknown_card=len(new) - len(known), delivery_ids=delivery_ids)


def _holders_by_card(card_indexes: set[str]) -> dict[str, int]:
    found = db.session.execute(select(CardHolder.card_index, CardHolder.id)
                               .where(CardHolder.card_index.in_(card_indexes)))
    return dict(found.tuples().all())


def alert_targets(holder_ids: set[int]) -> dict[int, list[tuple[str, str]]]:
    """Where each holder's alerts go: ``[(channel, openid)]``.

    Every active official-account binding gets a template message (the
    contract's promise). A holder bound only in the mini-program gets a
    subscribe message there instead; whether they granted one is decided at
    send time (members.alerts). Holders bound nowhere are absent.
    """
    if not holder_ids:
        return {}
    bindings = db.session.execute(
        select(Binding.holder_id, Binding.app, Binding.openid)
        .where(Binding.holder_id.in_(holder_ids), Binding.unbound_at.is_(None))
        .order_by(Binding.id))
    by_app: dict[int, dict[str, list[str]]] = {}
    for holder_id, app, openid in bindings:
        by_app.setdefault(holder_id, {}).setdefault(app, []).append(openid)
    targets: dict[int, list[tuple[str, str]]] = {}
    for holder_id, apps in by_app.items():
        if apps.get(OFFICIAL_ACCOUNT):
            targets[holder_id] = [(TEMPLATE, openid) for openid in apps[OFFICIAL_ACCOUNT]]
        elif apps.get(MINIAPP):
            targets[holder_id] = [(SUBSCRIBE, openid) for openid in apps[MINIAPP]]
    return targets


def _queue_alerts(known: list[Mapping[str, Any]], new_ids: Mapping[str, int]) -> list[int]:
    """One queued Delivery per new transaction and target, in one statement; their ids."""
    targets = alert_targets({row["holder_id"] for row in known})
    deliveries = [
        {"transaction_id": new_ids[row["txn_id"]], "holder_id": row["holder_id"],
         "openid": openid, "channel": channel, "state": "queued"}
        for row in known for channel, openid in targets.get(row["holder_id"], [])
    ]
    return [row_id for (row_id,) in bulk_insert(Delivery.__table__, deliveries,
                                                returning=["id"])]


def _hand_to_sender(delivery_ids: list[int]) -> None:
    """After the commit: give the queued deliveries to the sender.

    A failure here (the queue unreachable) must not turn a stored batch into an
    error: core banking would resend it, find only duplicates, and nothing would
    enqueue these rows again. They stay "queued" in the database, where the
    sender's sweep of queued deliveries finds them.
    """
    try:
        sending.enqueue_deliveries(delivery_ids)
    except Exception:
        log.exception("alerts not enqueued; left queued for the sweep",
                      extra={"deliveries": len(delivery_ids)})
