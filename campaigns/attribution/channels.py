"""Channels: the branches, customer managers and campaigns that hand out QR codes; created
one by one or a branch's whole staff list at once from CSV, listed, deactivated (never
deleted: followers and scans refer to their code for ever). Every change is audited; the
caller commits.

``channel_for(actor, code)`` is the one ownership check of everything about one channel
(its codes, posters, funnel): 404 ``unknown_channel``; a ``manager`` reads only the
channels whose ``staff`` they are, anyone else's is 403 ``forbidden``, kept in the audit
trail (a ``Refusal``, as the role check of ``staff_api`` / ``staff_page``); the ladder's
roles read every channel (what they may do with it is their decorator's business).

A deactivated channel stays readable, and the codes already issued for it stay served:
they are printed on posters that keep working, and whoever follows through them is still
attributed to it. It gets no new code (``codes``: 409 ``channel_inactive``).

The rules of a channel (the contract's body) are checked in full, every problem by field,
so one answer or one CSV report names everything to fix:

- ``code``: 1 to 32 ASCII letters, digits and ``_`` (the QR scene string, and a valid
  mini-program scene); unique (409 ``code_taken``);
- ``kind``: ``branch``, ``manager`` or ``campaign``;
- ``name``: 1 to 64 characters, no control characters, not starting with ``= + - @``
  (a spreadsheet's formula: names end up in CSV exports and the branch's ZIP);
- ``branch``: a branch code (as staff accounts'), required for branches and managers;
- ``staff``: the username of a ``manager`` account, exactly for managers' channels, and
  that manager's own branch.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from campaigns.attribution.models import BRANCH, CHANNEL_KINDS, MANAGER, Channel
from campaigns.console import audit, roles
from campaigns.console import staff as staff_accounts
from campaigns.console.auth import _record_forbidden
from campaigns.console.models import Staff
from core.clock import SHANGHAI
from core.db import bulk_insert, db, insert_skipping_conflicts, utcnow
from core.errors import ApiError, Refusal
from core.spreadsheet import FORMULA_START

CODE = re.compile(r"[A-Za-z0-9_]{1,32}")
_CODE_CHARS = re.compile(r"[A-Za-z0-9_]+")
CODE_MAX = 32
NAME_MAX = 64
CSV_COLUMNS = ("code", "kind", "name", "branch", "staff")
FIELDS = CSV_COLUMNS
PAGE_SIZE = 50
PAGE_MAX = 500
ROWS_REPORTED = 100  # row problems listed in one answer; the count says how many more
_IN_CHUNK = 1000  # codes per IN (...) when looking for existing ones

# Why a field is refused: (the API's English, the console's Chinese).
PROBLEMS: dict[str, tuple[str, str]] = {
    "required": ("is required", "必填"),
    "not_text": ("must be a string", "须为文字"),
    "code_format": ("must be 1 to 32 of A-Z, a-z, 0-9 and '_'",
                    "须为 1 至 32 位英文字母、数字或下划线"),
    "code_too_long": ("is longer than 32 characters", "超过 32 位"),
    "code_taken": ("another channel has this code", "已有渠道使用此编码"),
    "code_repeated": ("appears on an earlier row of the file", "与文件中前面的行重复"),
    "kind_unknown": ("must be branch, manager or campaign", "须为 branch、manager 或 campaign"),
    "name_length": ("must be 1 to 64 characters", "须为 1 至 64 个字"),
    "name_control": ("must not hold control characters", "不能包含控制字符"),
    "name_formula": ("must not start with = + - or @", "不能以 = + - @ 开头"),
    "branch_format": ("must be 1 to 32 of A-Z, a-z, 0-9 and '_'",
                      "须为 1 至 32 位英文字母、数字或下划线"),
    "branch_required": ("is required for branches and managers", "网点和客户经理渠道必填"),
    "staff_required": ("a manager's channel names its manager's username",
                       "客户经理渠道须填写客户经理的用户名"),
    "staff_not_allowed": ("only a manager's channel names a staff account",
                          "只有客户经理渠道填写员工账号"),
    "staff_unknown": ("is no staff account", "没有这个员工账号"),
    "staff_not_manager": ("is not a manager's account", "不是客户经理账号"),
    "staff_branch": ("must equal the manager's branch", "须与客户经理所属网点一致"),
    "unknown_field": ("is not a known field", "不是可用的字段"),
    "row_cells": ("the row must have the header's 5 cells", "应有 5 列，与表头一致"),
}


class ChannelProblems(ApiError):
    """The channel cannot be created as given: every problem, by field (``reasons``: the
    problem codes of ``PROBLEMS``, for the console's words). 409 ``code_taken`` when the
    only problem is a code in use."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        fields = {name: PROBLEMS[reason][0] for name, reason in self.reasons.items()}
        taken = self.reasons == {"code": "code_taken"}
        super().__init__(409 if taken else 400, "code_taken" if taken else "invalid_channel",
                         "; ".join(f"{name}: {text}" for name, text in fields.items()),
                         extra={"fields": fields})


@dataclass(frozen=True)
class RowProblem:
    row: int  # the line of the file, the header being line 1
    field: str
    reason: str  # a code of PROBLEMS


class ImportProblems(ApiError):
    """A CSV import refused as a whole: the file's own problem (``csv_problem``), or every
    bad row's (``rows``; the first ``ROWS_REPORTED`` listed, ``more`` counts the rest)."""

    def __init__(self, message: str, words: str, rows: Sequence[RowProblem] = (), *,
                 status: int = 400, code: str = "invalid_csv") -> None:
        self.rows = list(rows)
        self.words = words  # the console's Chinese for ``message``
        listed = [{"row": p.row, "field": p.field, "reason": PROBLEMS[p.reason][0]}
                  for p in self.rows[:ROWS_REPORTED]]
        super().__init__(status, code, message,
                         extra={"rows": listed, "more": max(0, len(self.rows) - ROWS_REPORTED)})


@dataclass(frozen=True)
class ChannelSpec:
    """A channel's fields, checked."""

    code: str
    kind: str
    name: str
    branch: str | None
    staff: Staff | None


@dataclass(frozen=True)
class Imported:
    created: int
    branches: list[str]


@dataclass(frozen=True)
class ChannelPage:
    channels: list[Channel]  # by code
    next: str | None  # the ``after`` of the next page, None on the last one


# -- reading -----------------------------------------------------------------------------------

def describe(channel: Channel) -> dict[str, Any]:
    """The channel as the API shows it."""
    return {"code": channel.code, "kind": channel.kind, "name": channel.name,
            "branch": channel.branch,
            "staff": channel.staff.username if channel.staff else None,
            "active": channel.active,
            "created_at": channel.created_at.astimezone(SHANGHAI).isoformat(),
            "deactivated_at": channel.deactivated_at.astimezone(SHANGHAI).isoformat()
            if channel.deactivated_at else None}


def find(code: str) -> Channel:
    """The channel of ``code``; 404 ``unknown_channel``. No ownership check: staff views go
    through ``channel_for``."""
    channel = db.session.scalar(select(Channel).where(Channel.code == code)) \
        if isinstance(code, str) and CODE.fullmatch(code) else None
    if channel is None:
        raise ApiError(404, "unknown_channel", "there is no channel with this code")
    return channel


def may_read(actor: Staff, channel: Channel) -> bool:
    """A manager reads its own channels; the ladder's roles read all."""
    if actor.role == roles.MANAGER:
        return channel.staff_id == actor.id
    return roles.allows(actor.role, roles.VIEWER)


def channel_for(actor: Staff, code: str) -> Channel:
    """The channel ``actor`` may read: 404 for an unknown code, 403 (audited) for another
    manager's. Called in a request: the audit entry names its path."""
    channel = find(code)
    if not may_read(actor, channel):
        _record_forbidden(actor, roles.MARKETER, (roles.MANAGER,))
        raise Refusal(403, "forbidden", "this channel is another manager's")
    return channel


def list_channels(actor: Staff, *, branch: str | None = None, kind: str | None = None,
                  active: bool | None = None, after: str | None = None,
                  limit: int = PAGE_SIZE) -> ChannelPage:
    """The channels ``actor`` may read, by code, ``limit`` from the code after ``after``;
    filtered by branch, kind, active. A manager's are only its own."""
    size = max(1, min(limit, PAGE_MAX))
    query = select(Channel).order_by(Channel.code).limit(size + 1)
    if actor.role == roles.MANAGER:
        query = query.where(Channel.staff_id == actor.id)
    if branch is not None:
        query = query.where(Channel.branch == branch)
    if kind is not None:
        query = query.where(Channel.kind == kind)
    if active is not None:
        query = query.where(Channel.active.is_(active))
    if after is not None:
        query = query.where(Channel.code > after)
    rows = list(db.session.scalars(query))
    return ChannelPage(channels=rows[:size], next=rows[size - 1].code if len(rows) > size else None)


def count_channels(actor: Staff) -> int:
    """How many channels ``actor`` may read."""
    query = select(func.count()).select_from(Channel)
    if actor.role == roles.MANAGER:
        query = query.where(Channel.staff_id == actor.id)
    return db.session.scalar(query) or 0


# -- checking -----------------------------------------------------------------------------------

def _text(body: Mapping[str, Any], name: str, reasons: dict[str, str]) -> str | None:
    """The field as text, None when absent or blank; a non-text value is a problem.
    Spaces around a value are dropped, except around the code: an identifier is exact."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        reasons[name] = "not_text"
        return None
    if name == "code":
        return value or None
    return value.strip() or None


def _name_problem(name: str) -> str | None:
    if not 0 < len(name) <= NAME_MAX:
        return "name_length"
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in name):
        return "name_control"
    if name.startswith(FORMULA_START):  # a name goes into CSV exports: never a formula
        return "name_formula"
    return None


def _fields(body: Mapping[str, Any], managers: Mapping[str, Staff | None]
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """The body's fields and every problem with them, the staff accounts looked up in
    ``managers`` (username → the account, None for none)."""
    reasons = {name: "unknown_field" for name in body if name not in FIELDS}
    code, kind, name, branch, username = (_text(body, field, reasons) for field in FIELDS)
    if code is None:
        reasons.setdefault("code", "required")
    elif not CODE.fullmatch(code):
        # "too long" alone when that is all that is wrong: the likeliest mistake.
        too_long = len(code) > CODE_MAX and _CODE_CHARS.fullmatch(code)
        reasons["code"] = "code_too_long" if too_long else "code_format"
    if kind is None:
        reasons.setdefault("kind", "required")
    elif kind not in CHANNEL_KINDS:
        reasons["kind"] = "kind_unknown"
    if name is None:
        reasons.setdefault("name", "required")
    elif problem := _name_problem(name):
        reasons["name"] = problem
    if branch is not None and not staff_accounts.BRANCH.fullmatch(branch):
        reasons["branch"] = "branch_format"
    elif branch is None and kind in (BRANCH, MANAGER):
        reasons.setdefault("branch", "branch_required")
    account = None
    if kind == MANAGER and username is None:
        reasons.setdefault("staff", "staff_required")
    elif kind in CHANNEL_KINDS and kind != MANAGER and username is not None:
        reasons["staff"] = "staff_not_allowed"
    elif username is not None:
        account = managers.get(staff_accounts.canonical_username(username))
        if account is None:
            reasons["staff"] = "staff_unknown"
        elif account.role != roles.MANAGER:
            reasons["staff"] = "staff_not_manager"
        elif branch is not None and "branch" not in reasons and account.branch != branch:
            reasons["staff"] = "staff_branch"
    return ({"code": code, "kind": kind, "name": name, "branch": branch, "staff": account},
            reasons)


def _accounts(usernames: Iterable[str | None]) -> dict[str, Staff | None]:
    """The staff accounts of ``usernames``, in one query (None for an unknown name)."""
    names = {staff_accounts.canonical_username(name) for name in usernames
             if isinstance(name, str) and name.strip()}
    found = {account.username: account for account in db.session.scalars(
        select(Staff).where(Staff.username.in_(names)))} if names else {}
    return {name: found.get(name) for name in names}


def _taken(codes: Sequence[str]) -> set[str]:
    """Which of ``codes`` are channels' already."""
    taken: set[str] = set()
    for start in range(0, len(codes), _IN_CHUNK):
        chunk = codes[start:start + _IN_CHUNK]
        taken.update(db.session.scalars(select(Channel.code).where(Channel.code.in_(chunk))))
    return taken


def check(body: Any) -> ChannelSpec:
    """The channel of a JSON body, or ``ChannelProblems`` naming every problem."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    username = body.get("staff") if isinstance(body.get("staff"), str) else None
    fields, reasons = _fields(body, _accounts([username]))
    if "code" not in reasons and _taken([fields["code"]]):
        reasons["code"] = "code_taken"
    if reasons:
        raise ChannelProblems(reasons)
    return ChannelSpec(**fields)


# -- changing -----------------------------------------------------------------------------------

def target(code: str) -> str:
    return f"channel:{code}"


def _row(spec: ChannelSpec, actor: Staff, now: Any) -> dict[str, Any]:
    return {"code": spec.code, "kind": spec.kind, "name": spec.name, "branch": spec.branch,
            "staff_id": spec.staff.id if spec.staff else None, "active": True,
            "created_by": actor.username, "created_at": now}


def create_channel(actor: Staff, body: Any) -> Channel:
    """A new channel of the contract's JSON body (400 naming every problem, 409 for a code
    in use, also when another request takes it meanwhile)."""
    spec = check(body)
    inserted = db.session.execute(
        insert_skipping_conflicts(Channel.__table__, "code")
        .values(**_row(spec, actor, utcnow())).returning(Channel.id)).scalar()
    if inserted is None:  # created by a request that committed after our check
        raise ChannelProblems({"code": "code_taken"})
    channel = db.session.get(Channel, inserted)
    audit.record(actor, "channel.create", target(spec.code), after=describe(channel))
    return channel


def deactivate(actor: Staff, code: str) -> Channel:
    """The channel deactivated: kept, with its codes and history, but issued no new code.
    Deactivating an inactive channel changes (and audits) nothing."""
    channel = find(code)
    if channel.active:
        before = describe(channel)
        channel.active = False
        channel.deactivated_at = utcnow()
        audit.record(actor, "channel.deactivate", target(code), before=before,
                     after=describe(channel))
    return channel


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError:
        raise ImportProblems("the file is not UTF-8 text",
                             "文件不是 UTF-8 文本，请在 Excel 中另存为“CSV UTF-8”。") from None


def import_csv(actor: Staff, text: str | bytes, *, max_rows: int) -> Imported:
    """Every channel of a CSV file (header ``code,kind,name,branch,staff``, any column
    order), created together in one statement, or none: any bad row → 400 listing every
    bad row (its line and field, never its value) and nothing is created.

    Rows are checked as ``create_channel``'s bodies are, plus codes repeated in the file;
    the staff accounts and the codes in use are looked up once for the whole file. A code
    another request takes between the check and the insert refuses the file (409).
    """
    if isinstance(text, bytes):
        text = _decode(text)
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        records: list[tuple[int, list[str]]] = []
        line = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):  # blank lines are no rows
                records.append((line, record))
                if len(records) > max_rows:
                    raise ImportProblems(f"the file has more than {max_rows} rows; split it",
                                         f"文件超过 {max_rows} 行，请分成几个文件导入。",
                                         status=413, code="too_many_rows")
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportProblems(f"the file is not valid CSV (line {reader.line_num})",
                             f"第 {reader.line_num} 行不是有效的 CSV（引号未闭合？）。") from exc
    columns = [name.strip().lower() for name in header or ()]
    if sorted(columns) != sorted(CSV_COLUMNS) or len(set(columns)) != len(columns):
        header_line = ",".join(CSV_COLUMNS)
        raise ImportProblems(f"the first line must be the header {header_line}",
                             f"第一行须为表头 {header_line}。")
    if not records:
        raise ImportProblems("the file has no rows", "文件中没有渠道。")

    problems: list[RowProblem] = []
    bodies: list[tuple[int, dict[str, str]]] = []
    for line, record in records:
        if len(record) != len(columns):
            problems.append(RowProblem(line, "", "row_cells"))
            continue
        bodies.append((line, dict(zip(columns, record, strict=True))))
    managers = _accounts(body.get("staff") for _, body in bodies)
    seen: set[str] = set()
    specs: list[tuple[int, dict[str, Any]]] = []
    for line, body in bodies:
        fields, reasons = _fields(body, managers)
        code = fields["code"]
        if "code" not in reasons:
            if code in seen:
                reasons["code"] = "code_repeated"
            seen.add(code)
        problems.extend(RowProblem(line, name, reason) for name, reason in reasons.items())
        specs.append((line, fields))
    taken = _taken([fields["code"] for _, fields in specs if fields["code"] in seen])
    problems.extend(RowProblem(line, "code", "code_taken") for line, fields in specs
                    if fields["code"] in taken)
    if problems:
        problems.sort(key=lambda problem: problem.row)
        bad = len({problem.row for problem in problems})
        raise ImportProblems(f"{bad} rows have problems; nothing was imported",
                             f"有 {bad} 行需要修改，整个文件均未导入。", problems)

    now = utcnow()
    rows = [_row(ChannelSpec(**fields), actor, now) for _, fields in specs]
    created = bulk_insert(Channel.__table__, rows, skip_conflicts_on=("code",),
                          returning=("code",))
    if len(created) != len(rows):
        raise ImportProblems("another request created some of these channels meanwhile; "
                             "nothing was imported",
                             "导入期间其他人创建了其中部分渠道，整个文件均未导入，请重试。",
                             status=409, code="code_taken")
    branches = sorted({row["branch"] for row in rows if row["branch"]})
    kinds = {kind: sum(row["kind"] == kind for row in rows) for kind in CHANNEL_KINDS}
    audit.record(actor, "channel.import", f"branches:{','.join(branches)}"[:audit.TARGET_MAX],
                 after={"created": len(rows), "kinds": kinds, "branches": branches})
    return Imported(created=len(rows), branches=branches)
