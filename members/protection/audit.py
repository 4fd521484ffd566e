"""The security audit trail: append-only ``SecurityEvent`` rows with hashed identifiers.

``record`` adds an event to the caller's transaction: it is kept when the
caller commits, like the change it describes (a binding, a login). An event
that describes a refusal (a failed code, a flood, a refused region) is kept by
raising ``core.errors.Refusal``, whose handler commits what the refused request
recorded.

Identifiers go in the named arguments and are stored as blind indexes
(``members.pii``): ``openid``, the card (``card_no``, or its ``card_index``
when that is what the caller has), the client ``ip``. ``detail`` is free-form
JSON for everything else and must hold no personal data: keys that name
personal data (``phone``, ``card_no``...) and values that look like it (runs of
11+ digits: phones, card and ID numbers; e-mail and IPv4 addresses) are refused
with ValueError outside production, so tests catch the mistake, and in
production replaced by ``"[redacted]"`` with a warning naming the key, so the
event itself is never lost to a formatting slip.

``audit_command`` is the ``audit`` CLI: it queries by kind, card, openid and
time and prints JSON lines that carry only the hashes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import Select, bindparam, insert, select

from core.db import db, utcnow
from members.protection.models import SecurityEvent
from members.protection.pii import vault

log = logging.getLogger(__name__)

KINDS = frozenset({
    "login", "login_failed", "bind_started", "bind", "unbind", "rebind",
    "code_failed", "card_locked", "region_refused", "rate_limited",
})
REDACTED = "[redacted]"

# Detail keys that name personal data; such values belong in the hashed arguments or nowhere.
_PII_KEYS = frozenset({
    "card", "card_no", "card_number", "pan", "phone", "phone_no", "phone_number", "mobile",
    "id_no", "id_number", "id_card", "name", "full_name", "email", "address",
    "openid", "unionid", "ip", "ip_address", "session_key", "token", "password", "otp", "code",
    "sms_code",
})
_NOT_ALNUM_BEFORE, _NOT_ALNUM_AFTER = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_PII_VALUES = (
    # 11 or more digits, spaces or dashes between allowed: mobile, bank card, resident ID.
    # ASCII boundaries, so "卡号6217..." is caught and a hex id's digit runs are not.
    re.compile(_NOT_ALNUM_BEFORE + r"\d(?:[ -]?\d){10,}(?:[Xx])?" + _NOT_ALNUM_AFTER),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail
    re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"),  # IPv4
)


def _hash(kind: str, value: str | None) -> str | None:
    return vault().blind_index(kind, value) if value else None


def _strict() -> bool:
    return current_app.config["APP_ENV"] != "production"


def _pii_reason(key: str, value: Any) -> str | None:
    """Why ``key: value`` must not be stored, or None."""
    if key.lower() in _PII_KEYS:
        return "its key names personal data"
    # Numbers too: a card number sent as a JSON number is still a card number.
    scalar = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if scalar and any(pattern.search(str(value)) for pattern in _PII_VALUES):
        return "its value looks like personal data"
    return None


def _clean(key: str, value: Any, path: str) -> Any:
    """``value`` with personal data refused or redacted; TypeError for what JSON cannot hold."""
    reason = _pii_reason(key, value)
    if reason is not None:
        if _strict():
            raise ValueError(f"audit {path}: {reason}")
        log.warning("audit %s redacted: %s", path, reason)
        return REDACTED
    if isinstance(value, Mapping):
        if not all(isinstance(name, str) for name in value):
            raise TypeError(f"audit {path}: keys must be strings")
        return {name: _clean(name, item, f"{path}.{name}") for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean("", item, f"{path}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"audit {path}: {type(value).__name__} is not JSON")


def _event(kind: str, openid: str | None, card_no: str | None, card_index: str | None,
           ip: str | None, region: str | None, detail: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}; expected one of {sorted(KINDS)}")
    if card_no and card_index:
        raise TypeError("pass card_no or card_index, not both")
    return {"kind": kind, "openid_hash": _hash("openid", openid),
            "card_hash": card_index or _hash("card", card_no), "ip_hash": _hash("ip", ip),
            "region": region, "detail": _clean("", dict(detail), "detail"),
            "created_at": utcnow()}


_EVENTS = SecurityEvent.__table__
# Built once: an event is written on every login and binding step, where building and
# cache-keying the statement costs as much as running it. Its parameters are named
# ``event_<column>`` (``event_params``), so that another statement can carry the insert
# as a CTE (``with_event``) without its parameters meeting the other's.
_INSERT = insert(_EVENTS).values({column.name: bindparam(f"event_{column.name}", type_=column.type)
                                  for column in _EVENTS.columns if not column.primary_key})


def event_params(kind: str, *, openid: str | None = None, card_no: str | None = None,
                 card_index: str | None = None, ip: str | None = None,
                 region: str | None = None, **detail: Any) -> dict[str, Any]:
    """The parameters of the event ``record`` would write, for a statement of ``with_event``."""
    event = _event(kind, openid, card_no, card_index, ip, region, detail)
    return {f"event_{name}": value for name, value in event.items()}


def record(kind: str, **fields: Any) -> None:
    """Write an event in the current transaction (the caller commits); ``fields`` are
    ``event_params``' (the identifiers, then the detail)."""
    db.session.execute(_INSERT, event_params(kind, **fields))


def with_event(statement: Select) -> Select:
    """``statement`` writing an event as well, in the same round trip (PostgreSQL only: the
    insert is a data-modifying CTE of it). Run it with ``event_params`` among its parameters;
    the event is kept with the caller's transaction, as ``record``'s."""
    return statement.add_cte(_INSERT.cte("audit_event"))


# -- CLI ----------------------------------------------------------------------------------------

def parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _identifier(value: str | None) -> str | None:
    """The option's value; ``-`` reads one line of stdin, keeping it out of shell history."""
    if value == "-":
        return sys.stdin.readline().strip() or None
    return value


@click.command("audit")
@click.option("--kind", type=click.Choice(sorted(KINDS)), help="Only events of this kind.")
@click.option("--card", "card_no", metavar="CARD_NO",
              help="Only events of this card (hashed before querying); - reads it from stdin.")
@click.option("--openid", metavar="OPENID",
              help="Only events of this openid (hashed before querying); - reads it from stdin.")
@click.option("--since", callback=parse_since, metavar="ISO",
              help="Only events at or after this time (UTC unless it carries an offset).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000),
              help="At most this many events, newest first.")
@with_appcontext
def audit_command(kind: str | None, card_no: str | None, openid: str | None,
                  since: datetime | None, limit: int) -> None:
    """Print security events as JSON lines, newest first; identifiers only as their hashes."""
    query = select(SecurityEvent)
    if kind:
        query = query.where(SecurityEvent.kind == kind)
    if card_no := _identifier(card_no):
        query = query.where(SecurityEvent.card_hash == _hash("card", card_no))
    if openid := _identifier(openid):
        query = query.where(SecurityEvent.openid_hash == _hash("openid", openid))
    if since:
        query = query.where(SecurityEvent.created_at >= since)
    query = query.order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc()).limit(limit)
    for row in db.session.scalars(query):
        click.echo(json.dumps({
            "id": row.id, "at": row.created_at.isoformat(), "kind": row.kind,
            "openid_hash": row.openid_hash, "card_hash": row.card_hash, "ip_hash": row.ip_hash,
            "region": row.region, "detail": row.detail,
        }, ensure_ascii=False))
