"""The audit trail of staff: every change made through the console, its API or the ``staff``
commands, as append-only ``StaffAction`` rows.

``record(actor, action, target, before=None, after=None)`` adds an entry to the caller's
unit of work: it is kept when the caller commits, with the change it describes. An entry
that describes a refusal (a wrong password, a lockout, a forbidden call) is kept by raising
``core.errors.Refusal``, or by committing in the view that shows the refusal.

- ``actor``: the ``Staff`` who acted, or ``CLI`` ("cli") for the ``staff`` commands, or
  ``ANONYMOUS`` for a login attempt on no known account.
- ``action``: ``<thing>.<verb>`` for changes (``staff.create``, ``campaign.publish``),
  a bare word for the session's events (``login``, ``login_failed``, ``login_locked``,
  ``logout``, ``forbidden``).
- ``target``: ``<kind>:<id>`` of what was acted on (``campaign:video-2026-12``,
  ``staff:alice``), or None.
- ``before`` / ``after``: JSON of the thing's fields before and after the change (None for
  a creation's ``before``). They must hold no voucher code, password, token or customer's
  personal data: fields named in ``SECRET_FIELDS`` are dropped here, at any depth, whatever
  the caller passed, and ``without_secrets(values, "other", ...)`` drops more for a caller
  that knows of others. Counts stand in for secrets (``{"codes_added": 500}``). Datetimes
  become ISO 8601 strings; any other value JSON cannot hold is a TypeError.
- ``ip``: the client's address; by default the current request's (none outside a request).
  Staff addresses are the bank's network, not customers' data, and are kept in clear.

``history(viewer, ...)`` reads the trail for the console's page: approvers and admins see
everyone's entries, every other role only its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import has_request_context
from sqlalchemy import select

from campaigns.console import roles
from campaigns.console.models import Staff, StaffAction
from core.client_ip import request_client_ip
from core.db import db

CLI = "cli"
ANONYMOUS = "anonymous"
Actor = Staff | str  # a Staff row, CLI or ANONYMOUS

# Field names whose values never enter the trail: secrets, voucher codes, customers' data.
SECRET_FIELDS = frozenset({
    "password", "password_hash", "token", "token_hash", "secret", "session_key",
    "codes", "voucher_code", "voucher_codes", "redemption_code",
    "card_no", "card_number", "phone", "id_no", "openid", "unionid",
})
PAGE_SIZE = 50
TARGET_MAX = 200  # StaffAction.target
IP_MAX = 45  # StaffAction.ip: the longest IPv6 text


def without_secrets(values: Any, *extra: str) -> Any:
    """``values`` with every field of ``SECRET_FIELDS`` or ``extra`` dropped, at any depth;
    datetimes as ISO 8601 text. TypeError for what JSON cannot hold."""
    dropped = SECRET_FIELDS.union(name.lower() for name in extra)
    if isinstance(values, Mapping):
        if not all(isinstance(name, str) for name in values):
            raise TypeError("audit values: keys must be strings")
        return {name: without_secrets(value, *extra) for name, value in values.items()
                if name.lower() not in dropped}
    if isinstance(values, (list, tuple)):
        return [without_secrets(value, *extra) for value in values]
    if isinstance(values, datetime):
        return values.isoformat()
    if values is None or isinstance(values, (str, int, float, bool)):
        return values
    raise TypeError(f"audit values: {type(values).__name__} is not JSON")


def record(actor: Actor, action: str, target: str | None, before: Any = None,
           after: Any = None, ip: str | None = None) -> StaffAction:
    """Add an entry to the current unit of work (the caller commits)."""
    if isinstance(actor, Staff):
        staff_id, username = actor.id, actor.username
    elif actor in (CLI, ANONYMOUS):
        staff_id, username = None, actor
    else:
        raise TypeError(f"actor must be a Staff, {CLI!r} or {ANONYMOUS!r}, not {actor!r}")
    if ip is None and has_request_context():
        ip = request_client_ip()
    entry = StaffAction(staff_id=staff_id, username=username, action=action, target=target,
                        before=without_secrets(before), after=without_secrets(after),
                        # Cut to the column: a Unix-socket peer is no address, and must not
                        # cost the entry.
                        ip=ip[:IP_MAX] if ip else None)
    db.session.add(entry)
    return entry


@dataclass(frozen=True)
class HistoryPage:
    entries: list[StaffAction]  # newest first
    older: int | None  # the ``before`` of the next (older) page, None on the last one
    everyone: bool  # the viewer sees every staff member's entries, not only its own


def sees_everyone(viewer: Staff) -> bool:
    """Approvers and admins read the whole trail; others what they did themselves."""
    return roles.allows(viewer.role, roles.APPROVER)


def history(viewer: Staff, *, before: int | None = None,
            limit: int = PAGE_SIZE) -> HistoryPage:
    """The entries ``viewer`` may read, newest first, older than entry id ``before``."""
    query = select(StaffAction).order_by(StaffAction.id.desc()).limit(limit + 1)
    everyone = sees_everyone(viewer)
    if not everyone:
        query = query.where(StaffAction.staff_id == viewer.id)
    if before is not None:
        query = query.where(StaffAction.id < before)
    entries = list(db.session.scalars(query))
    older = entries[limit - 1].id if len(entries) > limit else None
    return HistoryPage(entries=entries[:limit], older=older, everyone=everyone)

