"""Staff's pushes: created, approved by a second person, paused, resumed and cancelled, each
change with its audit entry; and what a push's pages and reports read (progress, the
delivery report, the recipients' CSV).

One layer under both the console's pages (``console_pages``) and its JSON API
(``admin_api``). Services take plain arguments and the acting ``Staff``, and never commit:
the blueprint or command that owns the unit of work does.

Every state change is one conditional ``UPDATE push ... WHERE state IN (legal sources)``:
the sending engine changes a push's state too (sending, done, paused for a quota), and a
read-then-write would let a pause land on a push that has just finished. The one that loses
the race updates nothing and is told 409.

Validation reports every problem at once, by field (``PushProblems.problems``:
``{"message.text": "..."}``), so a form can show each next to its field; the API sends the
same map as ``"fields"``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, literal, select, update

from campaigns.console import audit
from campaigns.console.models import Staff
from campaigns.pushes import audiences, quiet_hours, tasks
from campaigns.pushes.models import (
    CANCELLED,
    CHANNELS,
    CUSTOM,
    DONE,
    MASS,
    PAUSED,
    PENDING_APPROVAL,
    RECIPIENT_CLAIMED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENT,
    RECIPIENT_SKIPPED,
    SCHEDULED,
    SENDING,
    Audience,
    Push,
    PushDelivery,
)
from core.clock import SHANGHAI
from core.db import db, utcnow
from core.errors import ApiError, Refusal
from core.jsonapi import FieldType, object_problems, type_ok, utc_time
from core.spreadsheet import safe_cell
from members.protection import identity
from wechat import messages

TEMPLATE_CHANNEL = "template"
STAFF_PAUSE = "staff"  # Push.pause_reason of a pause staff made (only staff resume it)
CANCELLED_REASON = "cancelled"  # PushDelivery.reason of recipients a cancel left unsent
_NAME_MAX = Push.__table__.c.name.type.length
_TEMPLATE_ID_MAX = 64  # SubscriptionGrant.template_id
_PAGE_MAX = 1024  # a subscription notice's page: a path or URL
_KEYWORDS_MAX = 5  # WeChat's templates have 2-5 keywords (kidList)
_KEYWORD = re.compile(r"[a-z_]{1,32}[0-9]{1,3}")  # thing1, character_string2, amount10
_HH_MM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_ETA_NIGHTS = 31
_CSV_CHUNK = 2000  # recipients fetched per round trip while the CSV streams
CSV_HEADER = ("openid", "state", "reason", "sent_at")

_TEXT_APIS = {MASS: messages.MASS_BY_OPENIDS, CUSTOM: messages.CUSTOM}
_BODY_FIELDS: dict[str, FieldType] = {
    "name": str, "audience_id": int, "channel": str, "message": dict,
    "send_at": (str, type(None)), "rate_per_s": int, "quiet_hours": (dict, type(None)),
}
_BODY_OPTIONAL = frozenset({"send_at", "rate_per_s", "quiet_hours"})
_TEXT_FIELDS: dict[str, FieldType] = {"text": str}
_SUBSCRIBE_FIELDS: dict[str, FieldType] = {"template_id": str, "data": dict, "page": str}
_QUIET_FIELDS: dict[str, FieldType] = {"from": str, "to": str}

# Legal sources of each staff transition.
_PAUSABLE = (SCHEDULED, SENDING)
_CANCELLABLE = (PENDING_APPROVAL, SCHEDULED, SENDING, PAUSED)
FINISHED = (DONE, CANCELLED)


class PushProblems(ApiError):
    """The push cannot be created as given: every problem, by field (400 ``invalid_push``)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        message = "; ".join(f"{field}: {reason}" if field else reason
                            for field, reason in self.problems.items())
        super().__init__(400, "invalid_push", message, extra={"fields": self.problems})


class _Problems(dict[str, str]):
    """Problems by field; the first reason of a field is kept."""

    def add(self, field: str, reason: str) -> None:
        self.setdefault(field, reason)

    def shape(self, body: Any, fields: Mapping[str, FieldType], optional: frozenset[str],
              prefix: str = "") -> set[str]:
        """Add the shape problems of one object; the names of its fields fit to check further."""
        for problem in object_problems(body, fields, optional):
            self.add(".".join(part for part in (prefix, problem.field) if part), problem.reason)
        if not isinstance(body, dict):
            return set()
        return {name for name, kind in fields.items()
                if name in body and type_ok(body[name], kind)}


# -- creating ----------------------------------------------------------------------------------

def create_push(actor: Staff, body: Any, *, now: datetime | None = None) -> Push:
    """A new push of the contract's push body, waiting for approval; PushProblems (400) for
    a body that breaks the rules, 400 ``channel_not_allowed`` for the template channel."""
    now = now or utcnow()
    if isinstance(body, dict) and body.get("channel") == TEMPLATE_CHANNEL:
        # Template messages are for service notices only: marketing in them is refused by
        # WeChat (40249) and earns the account stepwise bans (wechat-platform.md 8.5).
        raise ApiError(400, "channel_not_allowed",
                       "template messages are for service notices only; use mass, custom or "
                       "subscribe")
    problems = _Problems()
    fit = problems.shape(body, _BODY_FIELDS, _BODY_OPTIONAL)
    if not isinstance(body, dict):
        raise PushProblems(problems)
    name = _name(problems, body["name"]) if "name" in fit else ""
    if "audience_id" in fit and db.session.get(Audience, body["audience_id"]) is None:
        problems.add("audience_id", "is no audience")
    channel = body["channel"] if "channel" in fit else ""
    if "channel" in fit and channel not in CHANNELS:
        problems.add("channel", f"must be one of {', '.join(CHANNELS)}")
    message = _message(problems, channel, body["message"]) \
        if "message" in fit and channel in CHANNELS else {}
    send_at = _send_at(problems, body.get("send_at"), now) if "send_at" in fit else None
    rate = _rate(problems, body["rate_per_s"]) if "rate_per_s" in fit \
        else current_app.config["PUSH_DEFAULT_RATE_PER_S"]
    quiet = _quiet_hours(problems, body.get("quiet_hours")) if "quiet_hours" in fit else None
    if problems:
        raise PushProblems(problems)
    push = Push(name=name, audience_id=body["audience_id"], channel=channel, message=message,
                send_at=send_at, rate_per_s=rate, quiet_from=quiet[0] if quiet else None,
                quiet_to=quiet[1] if quiet else None, state=PENDING_APPROVAL,
                created_by=actor.username, total=0, created_at=now, updated_at=now)
    db.session.add(push)
    db.session.flush()  # its id, for the audit entry's target
    audit.record(actor, "push.create", target(push), before=None, after=describe(push))
    return push


def _name(problems: _Problems, value: str) -> str:
    try:
        return identity.normalize_label("name", value, _NAME_MAX)
    except identity.InvalidField as exc:
        problems.add("name", exc.reason)
        return ""


def _message(problems: _Problems, channel: str, body: dict[str, Any]) -> dict[str, Any]:
    if channel in (MASS, CUSTOM):
        if "text" not in problems.shape(body, _TEXT_FIELDS, frozenset(), "message"):
            return {}
        text = body["text"].strip()
        problem = "is required" if not text else messages.text_problem(_TEXT_APIS[channel], text)
        if problem:
            problems.add("message.text", problem)
        return {"text": text}
    fit = problems.shape(body, _SUBSCRIBE_FIELDS, frozenset({"page"}), "message")
    message: dict[str, Any] = {}
    if "template_id" in fit:
        template_id = body["template_id"].strip()
        if not template_id or len(template_id) > _TEMPLATE_ID_MAX or not template_id.isprintable():
            problems.add("message.template_id",
                         f"must be 1-{_TEMPLATE_ID_MAX} printable characters")
        message["template_id"] = template_id
    if "data" in fit:
        message["data"] = _keywords(problems, body["data"])
    if "page" in fit:
        page = body["page"].strip()
        if len(page) > _PAGE_MAX or not page.isprintable():
            problems.add("message.page", f"must be at most {_PAGE_MAX} printable characters")
        if page:
            message["page"] = page
    return message


def _keywords(problems: _Problems, data: dict[str, Any]) -> dict[str, str]:
    """A subscription notice's keyword → value, each within its type's limit: WeChat refuses
    a longer value (47003), and ``messages.typed_value`` would cut it with an ellipsis;
    staff should rather see the rule than a message other than the one they wrote."""
    if not 1 <= len(data) <= _KEYWORDS_MAX:
        problems.add("message.data", f"must hold 1-{_KEYWORDS_MAX} keywords")
    values: dict[str, str] = {}
    for keyword, value in data.items():
        field = f"message.data.{keyword}"
        if not _KEYWORD.fullmatch(keyword):
            problems.add("message.data", "keywords are a type and a number, e.g. thing1")
            continue
        if not isinstance(value, str):
            problems.add(field, "must be a string")
            continue
        text = value.strip()
        if not text:
            problems.add(field, "is required")
        elif messages.typed_value(keyword, text) != text:
            limit = messages.TYPED_LIMITS.get(keyword.rstrip("0123456789"))
            problems.add(field, "must hold no control character or line break" if limit is None
                         or len(text) <= limit else f"must be at most {limit} characters")
        values[keyword] = text
    return values


def _send_at(problems: _Problems, value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        moment = utc_time(value)
    except ValueError as exc:
        problems.add("send_at", str(exc))
        return None
    if moment < now:
        problems.add("send_at", "must not be in the past (leave it out to send once approved)")
    return moment


def _rate(problems: _Problems, value: int) -> int:
    top = current_app.config["PUSH_MAX_RATE_PER_S"]
    if not 1 <= value <= top:
        problems.add("rate_per_s", f"must be 1-{top} messages a second")
    return value


def _quiet_hours(problems: _Problems, value: dict[str, Any] | None) -> tuple[str, str] | None:
    if value is None:
        return None
    fit = problems.shape(value, _QUIET_FIELDS, frozenset(), "quiet_hours")
    for name in fit:
        if not _HH_MM.fullmatch(value[name]):
            problems.add(f"quiet_hours.{name}", "must be a time HH:MM (00:00-23:59)")
    if len(fit) == 2 and value["from"] == value["to"]:
        problems.add("quiet_hours.to", "must differ from quiet_hours.from")
    return (value["from"], value["to"]) if len(fit) == 2 else None


# -- approving and controlling ------------------------------------------------------------------

def approve(actor: Staff, push: Push, *, now: datetime | None = None) -> None:
    """Approve ``push`` (the caller checked the approver role): freeze its recipients and
    schedule it. 403 ``own_push`` for its creator (kept in the audit trail), 409
    ``invalid_state`` unless it waits for approval."""
    now = now or utcnow()
    if actor.username == push.created_by:
        audit.record(actor, "forbidden", target(push),
                     after={"action": "push.approve", "reason": "own_push"})
        raise Refusal(403, "own_push", "a push is approved by someone other than its creator")
    before = describe(push)
    _move(push, (PENDING_APPROVAL,), state=SCHEDULED, approved_by=actor.username,
          approved_at=now)
    push.total = freeze(push)
    audit.record(actor, "push.approve", target(push), before=before, after=describe(push))
    tasks.schedule_start(push)


def freeze(push: Push) -> int:
    """Resolve the push's audience into its frozen recipient list, in one set-based
    ``INSERT INTO push_delivery ... SELECT`` (never a row per statement); how many."""
    audience = db.session.get_one(Audience, push.audience_id)
    found = audiences.recipients(audience.filter).subquery()
    rows = select(literal(push.id), found.c.openid, literal(RECIPIENT_PENDING))
    # SQLAlchemy keeps an INSERT's rowcount only when asked to (preserve_rowcount).
    result = db.session.execute(
        insert(PushDelivery).from_select(["push_id", "openid", "state"], rows)
        .execution_options(preserve_rowcount=True))
    return result.rowcount


def pause(actor: Staff, push: Push) -> None:
    """Pause a scheduled or sending push (409 otherwise); the engine reads the state again
    between sends, so the pause holds within a second."""
    before = describe(push)
    _move(push, _PAUSABLE, state=PAUSED, pause_reason=STAFF_PAUSE, paused_until=None)
    audit.record(actor, "push.pause", target(push), before=before, after=describe(push))


def resume(actor: Staff, push: Push) -> None:
    """Resume a paused push, whatever paused it (409 otherwise): scheduled again, and the
    engine starts it at once (or at its send_at, if that is still to come)."""
    before = describe(push)
    _move(push, (PAUSED,), state=SCHEDULED, pause_reason=None, paused_until=None)
    audit.record(actor, "push.resume", target(push), before=before, after=describe(push))
    tasks.schedule_start(push)


def cancel(actor: Staff, push: Push) -> int:
    """Cancel a push that has not ended (409 otherwise); how many recipients it left unsent.

    Its pending recipients become ``skipped`` / ``cancelled`` in one UPDATE: they will never
    be sent, so the report says so, and the push's counts add up to its total rather than
    leaving recipients "pending" for ever. Claimed ones are left alone: their send is in
    flight, and the engine (or recovery) ends each as it really went.
    """
    before = describe(push)
    _move(push, _CANCELLABLE, state=CANCELLED, finished_at=utcnow())
    result = db.session.execute(
        update(PushDelivery)
        .where(PushDelivery.push_id == push.id, PushDelivery.state == RECIPIENT_PENDING)
        .values(state=RECIPIENT_SKIPPED, reason=CANCELLED_REASON)
        .execution_options(synchronize_session=False))
    audit.record(actor, "push.cancel", target(push), before=before,
                 after={**describe(push), "recipients_unsent": result.rowcount})
    return result.rowcount


def _move(push: Push, sources: tuple[str, ...], **values: Any) -> None:
    """Set ``values`` on ``push`` if its state (in the database, now) is one of ``sources``;
    409 ``invalid_state`` if it is not."""
    result = db.session.execute(
        update(Push).where(Push.id == push.id, Push.state.in_(sources))
        .values(**values, updated_at=utcnow()).execution_options(synchronize_session=False))
    db.session.refresh(push)
    if result.rowcount != 1:
        raise ApiError(409, "invalid_state", f"a {push.state} push cannot do this",
                       extra={"state": push.state})


# -- reading -----------------------------------------------------------------------------------

def find(push_id: int) -> Push:
    push = db.session.get(Push, push_id)
    if push is None:
        raise ApiError(404, "unknown_push", "there is no such push")
    return push


def pushes(*, state: str | None = None, limit: int = 200) -> list[Push]:
    """The newest pushes first, of one state if given."""
    query = select(Push).order_by(Push.id.desc()).limit(limit)
    if state is not None:
        query = query.where(Push.state == state)
    return list(db.session.scalars(query))


def target(push: Push) -> str:
    return f"push:{push.id}"


def describe(push: Push) -> dict[str, Any]:
    """The push's fields as the audit trail and the API show them."""
    return {
        "id": push.id, "name": push.name, "audience_id": push.audience_id,
        "channel": push.channel, "message": push.message,
        "send_at": push.send_at.isoformat() if push.send_at else None,
        "rate_per_s": push.rate_per_s,
        "quiet_hours": {"from": push.quiet_from, "to": push.quiet_to}
        if push.quiet_from else None,
        "state": push.state, "pause_reason": push.pause_reason, "total": push.total,
        "created_by": push.created_by, "approved_by": push.approved_by,
    }


@dataclass(frozen=True)
class Progress:
    total: int
    sent: int
    skipped: int
    failed: int
    pending: int  # claimed (in flight) included
    eta_seconds: int | None  # None: nothing left to send, or the push will not send it

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "sent": self.sent, "skipped": self.skipped,
                "failed": self.failed, "pending": self.pending}


def progress(push: Push, *, now: datetime | None = None) -> Progress:
    """The push's recipients by state: one grouped count over
    ix_push_delivery_push_id_state_id (an index-only scan on PostgreSQL)."""
    counts = dict(db.session.execute(
        select(PushDelivery.state, func.count()).where(PushDelivery.push_id == push.id)
        .group_by(PushDelivery.state)).tuples().all())
    pending = counts.get(RECIPIENT_PENDING, 0) + counts.get(RECIPIENT_CLAIMED, 0)
    return Progress(total=sum(counts.values()), sent=counts.get(RECIPIENT_SENT, 0),
                    skipped=counts.get(RECIPIENT_SKIPPED, 0),
                    failed=counts.get(RECIPIENT_FAILED, 0), pending=pending,
                    eta_seconds=_eta(push, pending, now or utcnow()))


def _eta(push: Push, pending: int, now: datetime) -> int | None:
    """Seconds until the last pending recipient is sent at the push's rate, from its start
    (send_at, if still to come), nothing being sent in its quiet hours. Rough: skipped
    recipients cost no send; a paused push has none (None)."""
    if not pending or push.state not in (SCHEDULED, SENDING):
        return None
    moment = max(push.send_at or now, now)
    left = timedelta(seconds=math.ceil(pending / push.rate_per_s))
    if push.quiet_from and push.quiet_to:
        # Send until the next quiet span opens, wait until it ends, and again; a push of
        # more than a month's nights is no rough estimate's: the rest is added unbroken.
        for _ in range(_ETA_NIGHTS * 2):
            if left <= timedelta():
                break
            until = quiet_hours.quiet_until(push.quiet_from, push.quiet_to, moment)
            if until is not None:
                moment = until
                continue
            run = min(left, _next_quiet(push.quiet_from, moment) - moment)
            moment, left = moment + run, left - run
    return math.ceil((moment + left - now).total_seconds())


def _next_quiet(quiet_from: str, moment: datetime) -> datetime:
    """The next time after ``moment`` the daily quiet hours open (at ``quiet_from``)."""
    local = moment.astimezone(SHANGHAI)
    opens = datetime.combine(local.date(), datetime.strptime(quiet_from, "%H:%M").time(),
                             SHANGHAI)
    return opens if opens > local else opens + timedelta(days=1)


@dataclass(frozen=True)
class Report:
    progress: Progress
    skipped_by_reason: list[tuple[str, int]]  # most first
    failed_by_errcode: list[tuple[int | None, int]]  # most first; None: no errcode (a crash)


def report(push: Push) -> Report:
    """The delivery report's figures: the progress, skipped recipients by reason and failed
    ones by WeChat's errcode (each a grouped count within the push's state range of the
    index)."""
    def grouped(column: Any, state: str) -> list[Any]:
        rows = db.session.execute(
            select(column, func.count()).where(PushDelivery.push_id == push.id,
                                               PushDelivery.state == state)
            .group_by(column)).tuples().all()
        return sorted(rows, key=lambda row: (-row[1], str(row[0])))

    return Report(progress=progress(push),
                  skipped_by_reason=grouped(PushDelivery.reason, RECIPIENT_SKIPPED),
                  failed_by_errcode=grouped(PushDelivery.errcode, RECIPIENT_FAILED))


def deliveries_csv(push: Push) -> Iterator[str]:
    """The push's recipients as CSV lines: ``openid,state,reason,sent_at``, one row each in
    the order they were frozen, fetched ``_CSV_CHUNK`` at a time (a server-side cursor on
    PostgreSQL), never all in memory.

    ``claimed`` shows as ``pending`` (the contract's four states); ``sent_at`` is ISO 8601
    in Asia/Shanghai with its offset (``2026-12-01T10:00:03+08:00``): the time staff read
    everywhere in the console, and unambiguous to a program. Cells that a spreadsheet would
    take for a formula are prefixed with ``'``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: tuple[Any, ...]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(cell) for cell in cells])
        return buffer.getvalue()

    yield line(CSV_HEADER)
    rows = db.session.execute(
        select(PushDelivery.openid, PushDelivery.state, PushDelivery.reason,
               PushDelivery.sent_at)
        .where(PushDelivery.push_id == push.id).order_by(PushDelivery.id)
        .execution_options(yield_per=_CSV_CHUNK))
    for openid, state, reason, sent_at in rows:
        shown = RECIPIENT_PENDING if state == RECIPIENT_CLAIMED else state
        yield line((openid, shown, reason or "",
                    sent_at.astimezone(SHANGHAI).isoformat() if sent_at else ""))
