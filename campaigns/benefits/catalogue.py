"""The campaign catalogue: the campaign JSON checked, campaigns saved and published, voucher
stock added, and the figures staff look at.

One layer for the console's JSON API and its HTML forms. Validation reports every
problem at once, by field (``CampaignProblems.problems``: ``{"options[1].key": "..."}``),
so that a form can show each next to its field; the API sends the same map as
``"fields"``. Nothing here commits.

The slug lives in the path: ``PUT /admin/api/campaigns/<slug>`` names the campaign it
writes. The body may repeat it (the contract's JSON carries it) and must then say the
same; a body without one is taken as the path's.

Times are ISO-8601 with an offset, stored in UTC and shown in Asia/Shanghai. Once
published, a campaign keeps its start, its eligibility and its options (keys and
prices): holders may have redeemed under them. Its end, titles and limits may change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, cast, func, literal_column, select
from sqlalchemy.orm import selectinload

from campaigns.benefits.models import (
    DRAFT,
    PUBLISHED,
    Campaign,
    CampaignOption,
    Redemption,
    VoucherCode,
)
from core.clock import SHANGHAI
from core.db import bulk_insert, db, insert_skipping_conflicts, utcnow
from core.errors import ApiError
from core.jsonapi import FieldType, object_problems, type_ok, utc_time
from members.holders.models import CardHolder
from members.protection import identity
from members.protection.pii import column_context, vault

CODE_CONTEXT = column_context(VoucherCode, "code")

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
OPTION_KEY = re.compile(r"[a-z0-9_]{1,32}")
_TITLE_MAX = Campaign.__table__.c.title.type.length
_TIER_MAX = CardHolder.__table__.c.tier.type.length
_INT_MAX = 2**31 - 1  # points and limits are INTEGER columns
_BIGINT_MAX = 2**63 - 1
_OPTIONS_MAX = 50
_SHOWN_LINES = 10  # a refused codes file names this many lines, then counts the rest

_CAMPAIGN_FIELDS: dict[str, FieldType] = {
    "slug": str, "title": str, "starts_at": str, "ends_at": str, "eligibility": dict,
    "options": list,
}
_ELIGIBILITY_FIELDS: dict[str, FieldType] = {"tiers": list, "min_spend_fen": int}
_OPTION_FIELDS: dict[str, FieldType] = {
    "key": str, "title": str, "points": int, "limit_per_holder": int,
}


class CampaignProblems(ApiError):
    """The campaign cannot be written as given: every problem, by field.

    400 ``invalid_campaign`` for a body that breaks the rules; 409 for a change the
    campaign's state forbids (``option_keys_fixed``, ``published_fields_fixed``,
    ``option_has_codes``).
    """

    def __init__(self, problems: Mapping[str, str], *, status: int = 400,
                 code: str = "invalid_campaign") -> None:
        self.problems = dict(problems)
        message = "; ".join(f"{field}: {reason}" if field else reason
                            for field, reason in self.problems.items())
        super().__init__(status, code, message, extra={"fields": self.problems})


@dataclass(frozen=True)
class OptionSpec:
    key: str
    title: str
    points: int
    limit_per_holder: int | None


@dataclass(frozen=True)
class CampaignSpec:
    """A valid campaign, as written: times in UTC, eligibility with only its given parts."""

    slug: str
    title: str
    starts_at: datetime
    ends_at: datetime
    eligibility: dict[str, Any]
    options: tuple[OptionSpec, ...]


# -- the campaign JSON ---------------------------------------------------------------------------

class _Problems:
    """Problems gathered by field; the first reason of a field is kept."""

    def __init__(self) -> None:
        self.by_field: dict[str, str] = {}

    def add(self, field: str, reason: str) -> None:
        self.by_field.setdefault(field, reason)

    def shape(self, body: Any, fields: Mapping[str, FieldType], optional: frozenset[str],
              prefix: str) -> set[str]:
        """Add the shape problems of one object; the names of its fields fit to check further."""
        for problem in object_problems(body, fields, optional):
            name = f"{prefix}.{problem.field}" if prefix and problem.field else \
                prefix or problem.field
            self.add(name, problem.reason)
        if not isinstance(body, dict):
            return set()
        return {name for name, kind in fields.items()
                if name in body and type_ok(body[name], kind)}


def parse(body: Any, slug: str) -> CampaignSpec:
    """The campaign JSON of ``PUT .../campaigns/<slug>``, checked; CampaignProblems if not."""
    problems = _Problems()
    if not SLUG.fullmatch(slug):
        problems.add("slug", "must be 1-64 of a-z, 0-9 and '-', starting with a letter or digit")
    fit = problems.shape(body, _CAMPAIGN_FIELDS, frozenset({"slug", "eligibility"}), "")
    if not isinstance(body, dict):
        raise CampaignProblems(problems.by_field)
    if "slug" in fit and body["slug"] != slug:
        problems.add("slug", "must equal the slug in the path")
    title = _title(problems, "title", body["title"]) if "title" in fit else ""
    starts_at = _time(problems, "starts_at", body["starts_at"]) if "starts_at" in fit else None
    ends_at = _time(problems, "ends_at", body["ends_at"]) if "ends_at" in fit else None
    if starts_at and ends_at and starts_at >= ends_at:
        problems.add("ends_at", "must be after starts_at")
    eligibility = _eligibility(problems, body["eligibility"]) if "eligibility" in fit else {}
    options = _options(problems, body["options"]) if "options" in fit else ()
    if problems.by_field:
        raise CampaignProblems(problems.by_field)
    assert starts_at is not None and ends_at is not None  # no problems: both parsed
    return CampaignSpec(slug=slug, title=title, starts_at=starts_at, ends_at=ends_at,
                        eligibility=eligibility, options=options)


def _title(problems: _Problems, field: str, value: str) -> str:
    try:
        return identity.normalize_label(field, value, _TITLE_MAX)
    except identity.InvalidField as exc:
        problems.add(field, exc.reason)
        return ""


def _time(problems: _Problems, field: str, value: str) -> datetime | None:
    try:
        return utc_time(value)
    except ValueError as exc:
        problems.add(field, str(exc))
        return None


def _eligibility(problems: _Problems, body: dict[str, Any]) -> dict[str, Any]:
    fit = problems.shape(body, _ELIGIBILITY_FIELDS, frozenset(_ELIGIBILITY_FIELDS),
                         "eligibility")
    eligibility: dict[str, Any] = {}
    if "tiers" in fit:
        tiers = body["tiers"]
        if not tiers:
            problems.add("eligibility.tiers", "must list at least one tier (or be left out)")
        for index, tier in enumerate(tiers):
            field = f"eligibility.tiers[{index}]"
            if not isinstance(tier, str):
                problems.add(field, "must be a string")
                continue
            try:
                identity.normalize_label(field, tier, _TIER_MAX)
            except identity.InvalidField as exc:
                problems.add(field, exc.reason)
                continue
            if tier != tier.strip():
                problems.add(field, "must not begin or end with spaces")
            elif tiers.index(tier) != index:
                problems.add(field, "repeats an earlier tier")
        eligibility["tiers"] = list(tiers)
    if "min_spend_fen" in fit:
        if not 0 <= body["min_spend_fen"] <= _BIGINT_MAX:
            problems.add("eligibility.min_spend_fen", "must be an integer from 0 (fen)")
        eligibility["min_spend_fen"] = body["min_spend_fen"]
    return eligibility


def _options(problems: _Problems, body: list[Any]) -> tuple[OptionSpec, ...]:
    if not body:
        problems.add("options", "must list at least one option")
    elif len(body) > _OPTIONS_MAX:
        problems.add("options", f"must list at most {_OPTIONS_MAX} options")
    options: list[OptionSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(body[:_OPTIONS_MAX]):
        prefix = f"options[{index}]"
        fit = problems.shape(item, _OPTION_FIELDS, frozenset({"limit_per_holder"}), prefix)
        key = item["key"] if "key" in fit else ""
        if "key" in fit:
            if not OPTION_KEY.fullmatch(key):
                problems.add(f"{prefix}.key", "must be 1-32 of a-z, 0-9 and '_'")
            elif key in seen:
                problems.add(f"{prefix}.key", "repeats the key of an earlier option")
            seen.add(key)
        title = _title(problems, f"{prefix}.title", item["title"]) if "title" in fit else ""
        points = item["points"] if "points" in fit else 0
        if not 0 <= points <= _INT_MAX:
            problems.add(f"{prefix}.points", "must be an integer from 0")
        limit = item["limit_per_holder"] if "limit_per_holder" in fit else None
        if limit is not None and not 1 <= limit <= _INT_MAX:
            problems.add(f"{prefix}.limit_per_holder", "must be an integer from 1 (or left out)")
        options.append(OptionSpec(key=key, title=title, points=points, limit_per_holder=limit))
    return tuple(options)


def shown_time(moment: datetime) -> str:
    """ISO-8601 in Asia/Shanghai, the time holders and staff read."""
    return moment.astimezone(SHANGHAI).isoformat()


def describe(campaign: Campaign) -> dict[str, Any]:
    """The campaign JSON, as the contract writes it (times in Asia/Shanghai)."""
    return {
        "slug": campaign.slug, "title": campaign.title,
        "starts_at": shown_time(campaign.starts_at), "ends_at": shown_time(campaign.ends_at),
        "eligibility": dict(campaign.eligibility),
        "options": [_describe_option(option) for option in campaign.options],
    }


def _describe_option(option: CampaignOption) -> dict[str, Any]:
    shown: dict[str, Any] = {"key": option.key, "title": option.title, "points": option.points}
    if option.limit_per_holder is not None:
        shown["limit_per_holder"] = option.limit_per_holder
    return shown


# -- writing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Saved:
    campaign: Campaign
    created: bool
    before: dict[str, Any] | None  # the campaign JSON before this write; None when created


def find(slug: str, *, for_update: bool = False) -> Campaign:
    """The campaign of ``slug``; 404 ``unknown_campaign`` when there is none."""
    query = select(Campaign).where(Campaign.slug == slug)
    if for_update:
        # Concurrent edits of one campaign take turns, so that neither overwrites the other's
        # options half-way (SQLite, one writer at a time, renders no FOR UPDATE); the row
        # as it is once locked, not as this session may have loaded it before.
        query = query.with_for_update().execution_options(populate_existing=True)
    campaign = db.session.scalar(query) if SLUG.fullmatch(slug) else None
    if campaign is None:
        raise ApiError(404, "unknown_campaign", "no campaign has this slug")
    return campaign


def campaigns() -> list[Campaign]:
    """Every campaign, the newest start first (the console's list)."""
    return list(db.session.scalars(
        select(Campaign).order_by(Campaign.starts_at.desc(), Campaign.id.desc())
        .options(selectinload(Campaign.options))))  # the list sums each campaign's options


def save(spec: CampaignSpec, *, actor: str) -> Saved:
    """Create the campaign (a draft) or rewrite it, by ``actor`` (a staff username)."""
    # Insert-if-absent, so that two first PUTs of one slug make one campaign (the second
    # waits for the first's commit and then finds it).
    now = utcnow()
    created = db.session.execute(
        insert_skipping_conflicts(Campaign.__table__, "slug")
        .values(slug=spec.slug, title=spec.title, starts_at=spec.starts_at,
                ends_at=spec.ends_at, eligibility=spec.eligibility, state=DRAFT,
                created_by=actor, updated_by=actor, created_at=now, updated_at=now)
        .returning(Campaign.__table__.c.id)).first() is not None
    campaign = find(spec.slug, for_update=True)
    before = None if created else describe(campaign)
    if campaign.state == PUBLISHED:
        _check_published_change(campaign, spec)
    _write(campaign, spec, actor)
    return Saved(campaign, created, before)


def _check_published_change(campaign: Campaign, spec: CampaignSpec) -> None:
    current = {option.key: option for option in campaign.options}
    if set(current) != {option.key for option in spec.options}:
        raise CampaignProblems(
            {"options": "a published campaign keeps its options' keys: "
                        f"{', '.join(current)}"}, status=409, code="option_keys_fixed")
    fixed: dict[str, str] = {}
    if spec.starts_at != campaign.starts_at:
        fixed["starts_at"] = "a published campaign keeps its start"
    if spec.eligibility != campaign.eligibility:
        fixed["eligibility"] = "a published campaign keeps its eligibility"
    for index, option in enumerate(spec.options):
        if option.points != current[option.key].points:
            fixed[f"options[{index}].points"] = "a published campaign keeps its prices"
    if fixed:
        raise CampaignProblems(fixed, status=409, code="published_fields_fixed")


def _write(campaign: Campaign, spec: CampaignSpec, actor: str) -> None:
    current = {option.key: option for option in campaign.options}
    wanted = {option.key for option in spec.options}
    removed = [option for key, option in current.items() if key not in wanted]
    with_codes = _with_codes([option.id for option in removed])
    if with_codes:
        raise CampaignProblems(
            {"options": "these options hold voucher codes and stay: "
                        + ", ".join(option.key for option in removed if option.id in with_codes)},
            status=409, code="option_has_codes")
    for option in removed:
        campaign.options.remove(option)  # deleted with it: the relationship's delete-orphan
    for position, option_spec in enumerate(spec.options):
        option = current.get(option_spec.key)
        if option is None:
            option = CampaignOption(key=option_spec.key)
            campaign.options.append(option)
        option.title = option_spec.title
        option.points = option_spec.points
        option.limit_per_holder = option_spec.limit_per_holder
        option.position = position
    campaign.options.sort(key=lambda option: option.position)
    campaign.title = spec.title
    campaign.starts_at = spec.starts_at
    campaign.ends_at = spec.ends_at
    campaign.eligibility = spec.eligibility
    campaign.updated_by = actor
    db.session.flush()


def _with_codes(option_ids: list[int]) -> set[int]:
    if not option_ids:
        return set()
    return set(db.session.scalars(select(VoucherCode.option_id).distinct()
                                  .where(VoucherCode.option_id.in_(option_ids))))


def publish(slug: str, *, actor: str) -> str:
    """Publish a draft (a published campaign stays so); the state it had before."""
    campaign = find(slug, for_update=True)
    before = campaign.state
    if before != PUBLISHED:
        campaign.state = PUBLISHED
        campaign.published_at = utcnow()
        campaign.updated_by = actor
    return before


# -- voucher stock -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CodesAdded:
    added: int
    duplicates: int  # repeated within the file, or already in the option's stock
    stock: int  # codes left in stock now
    stock_before: int


def find_option(campaign: Campaign, key: str) -> CampaignOption:
    """The campaign's option of ``key``; 404 ``unknown_option`` when there is none."""
    for option in campaign.options:
        if option.key == key:
            return option
    raise ApiError(404, "unknown_option", "the campaign has no option with this key")


def parse_codes(raw: bytes, *, max_chars: int) -> list[str]:
    """The codes of a text/plain upload, one a line, stripped; blank lines skipped.

    400 ``invalid_codes`` naming the line numbers of codes that are too long or hold a
    control or invisible character (nothing of the file is stored), never their content.
    """
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark from a Windows editor is no code
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_codes", "the codes file must be UTF-8 text") from None
    codes: list[str] = []
    wrong: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        code = line.strip()
        if not code:
            continue
        if len(code) > max_chars:
            wrong.append(f"line {number}: longer than {max_chars} characters")
        elif not code.isprintable():
            wrong.append(f"line {number}: holds a control or invisible character")
        else:
            codes.append(code)
    if wrong:
        more = len(wrong) - _SHOWN_LINES
        rest = f"; and {more} more" if more > 0 else ""
        raise ApiError(400, "invalid_codes", "nothing of the file was stored: "
                       + "; ".join(wrong[:_SHOWN_LINES]) + rest)
    return codes


def add_codes(option: CampaignOption, codes: list[str]) -> CodesAdded:
    """Add ``codes`` to the option's stock, encrypted; codes it holds already are duplicates.

    Rows go in blind-index order, so two overlapping uploads take their locks in one
    order and cannot deadlock; conflicts on (option_id, code_index) are skipped, so a
    concurrent upload of the same code stores it once.
    """
    stock_before = stock_of([option.id]).get(option.id, 0)
    crypt = vault()
    rows = {crypt.blind_index("voucher", code): code for code in codes}
    inserted = bulk_insert(
        VoucherCode.__table__,
        [{"option_id": option.id, "code_index": index,
          "code": crypt.encrypt(rows[index], CODE_CONTEXT)} for index in sorted(rows)],
        skip_conflicts_on=["option_id", "code_index"], returning=["id"])
    return CodesAdded(added=len(inserted), duplicates=len(codes) - len(inserted),
                      stock=stock_of([option.id]).get(option.id, 0), stock_before=stock_before)


def stock_of(option_ids: Iterable[int]) -> dict[int, int]:
    """Codes left in stock per option (the partial index of codes in stock)."""
    ids = list(option_ids)
    if not ids:
        return {}
    return dict(db.session.execute(
        select(VoucherCode.option_id, func.count())
        .where(VoucherCode.option_id.in_(ids), VoucherCode.claimed_at.is_(None))
        .group_by(VoucherCode.option_id)).tuples().all())


def redeemed_of(option_ids: Iterable[int]) -> dict[int, int]:
    """Redemptions per option."""
    ids = list(option_ids)
    if not ids:
        return {}
    return dict(db.session.execute(
        select(Redemption.option_id, func.count())
        .where(Redemption.option_id.in_(ids))
        .group_by(Redemption.option_id)).tuples().all())


# -- figures -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionFigures:
    key: str
    title: str
    stock: int
    redeemed: int


@dataclass(frozen=True)
class Figures:
    options: list[OptionFigures]
    per_day: list[tuple[date, int]]  # redemptions per Asia/Shanghai day, oldest first


def describe_with_stock(campaign: Campaign) -> dict[str, Any]:
    """The campaign JSON plus its state, and each option's stock and redeemed count."""
    shown = describe(campaign)
    ids = [option.id for option in campaign.options]
    stock, redeemed = stock_of(ids), redeemed_of(ids)
    for entry, option in zip(shown["options"], campaign.options, strict=True):
        entry["stock"] = stock.get(option.id, 0)
        entry["redeemed"] = redeemed.get(option.id, 0)
    return {**shown, "state": campaign.state}


def figures(campaign: Campaign) -> Figures:
    """Stock and redemptions per option, and redemptions per day for the chart."""
    ids = [option.id for option in campaign.options]
    stock, redeemed = stock_of(ids), redeemed_of(ids)
    options = [OptionFigures(option.key, option.title, stock.get(option.id, 0),
                             redeemed.get(option.id, 0)) for option in campaign.options]
    day = _shanghai_day(Redemption.redeemed_at)
    rows = db.session.execute(
        select(day, func.count()).where(Redemption.campaign_id == campaign.id)
        .group_by(day).order_by(day)).all()
    return Figures(options, [(_as_date(value), count) for value, count in rows])


def _shanghai_day(column: Any) -> Any:
    """The Asia/Shanghai calendar day of a UTC timestamp column, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("Asia/Shanghai", column), Date)
    # SQLite keeps UTC as text; China has had no daylight saving time since 1991.
    return func.date(column, literal_column("'+8 hours'"))


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
