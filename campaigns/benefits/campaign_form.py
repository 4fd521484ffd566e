"""The console's campaign form: what staff type, turned into the campaign JSON the catalogue
checks, and a campaign turned back into what the form shows.

The form speaks as people do: times are Asia/Shanghai ``datetime-local`` values without an
offset, the minimum spend is in yuan, an empty limit is "no limit", and rows left blank are
no option. What cannot even be read as such (a spend of "abc") is this module's problem, in
Chinese, under the catalogue's own field name; everything else is the catalogue's
(``catalogue.parse``), so the console checks exactly what the API checks. Every problem is
reported at once, by the catalogue's field names (``options[1].key``): the form's rows are
the campaign's options in order, so each message lands next to its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from werkzeug.datastructures import MultiDict

from campaigns.benefits import catalogue
from campaigns.benefits.models import Campaign

_LOCAL_TIME = "%Y-%m-%dT%H:%M:%S"  # a datetime-local value with step="1"
_YUAN = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")
_WHOLE = re.compile(r"[0-9]{1,10}")
_OPTION_FIELDS = ("key", "title", "points", "limit")


@dataclass
class OptionRow:
    """One option as typed: strings, as the inputs hold them."""

    key: str = ""
    title: str = ""
    points: str = "0"
    limit: str = ""

    def blank(self) -> bool:
        return not (self.key or self.title or self.limit) and self.points in ("", "0")


@dataclass
class CampaignForm:
    """The form's values as typed (strings), to show again with the problems next to them."""

    slug: str = ""
    title: str = ""
    starts_at: str = ""
    ends_at: str = ""
    tiers: list[str] = field(default_factory=list)
    min_spend_yuan: str = ""
    options: list[OptionRow] = field(default_factory=list)

    @classmethod
    def from_request(cls, form: MultiDict[str, str]) -> CampaignForm:
        columns = [form.getlist(f"option_{name}") for name in _OPTION_FIELDS]
        rows = [OptionRow(*(value.strip() for value in values))
                for values in zip(*columns, strict=False)]
        return cls(slug=form.get("slug", "").strip(), title=form.get("title", ""),
                   starts_at=form.get("starts_at", "").strip(),
                   ends_at=form.get("ends_at", "").strip(),
                   tiers=form.getlist("tiers"),
                   min_spend_yuan=form.get("min_spend_yuan", "").strip(),
                   options=[row for row in rows if not row.blank()])

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> CampaignForm:
        rules = campaign.eligibility
        spend = rules.get("min_spend_fen")
        return cls(
            slug=campaign.slug, title=campaign.title,
            starts_at=_local_input(campaign.starts_at), ends_at=_local_input(campaign.ends_at),
            tiers=list(rules.get("tiers", [])),
            min_spend_yuan="" if spend is None else str(Decimal(spend) / 100),
            options=[OptionRow(option.key, option.title, str(option.points),
                               "" if option.limit_per_holder is None
                               else str(option.limit_per_holder))
                     for option in campaign.options])

    def spec(self, slug: str) -> catalogue.CampaignSpec:
        """The campaign the form describes, checked by the catalogue; ``CampaignProblems``
        with every problem (the form's own and the catalogue's) if it is not valid."""
        body, own = self._body()
        try:
            spec = catalogue.parse(body, slug)
        except catalogue.CampaignProblems as exc:
            raise catalogue.CampaignProblems({**exc.problems, **own}) from None
        if own:
            raise catalogue.CampaignProblems(own)
        return spec

    def _body(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The campaign JSON, and the problems of values this form could not read. An
        unreadable value goes into the JSON as typed, so that the catalogue refuses that
        field too and checks all the others."""
        own: dict[str, str] = {}
        body: dict[str, Any] = {"title": self.title}
        for name in ("starts_at", "ends_at"):
            body[name] = _offset_time(getattr(self, name))
            if body[name] is None:
                own[name] = "请选择日期和时间（北京时间）" if not getattr(self, name) \
                    else "请按“年-月-日 时:分”填写"
                body[name] = getattr(self, name)
        eligibility: dict[str, Any] = {}
        if self.tiers:
            eligibility["tiers"] = self.tiers
        if self.min_spend_yuan:
            spend = self.min_spend_yuan.replace(",", "")
            if _YUAN.fullmatch(spend):
                eligibility["min_spend_fen"] = int(Decimal(spend) * 100)
            else:
                own["eligibility.min_spend_fen"] = "请输入金额（元），如 1000 或 1000.50"
                eligibility["min_spend_fen"] = self.min_spend_yuan
        body["eligibility"] = eligibility
        body["options"] = [self._option(index, row, own)
                           for index, row in enumerate(self.options)]
        return body, own

    @staticmethod
    def _option(index: int, row: OptionRow, own: dict[str, str]) -> dict[str, Any]:
        option: dict[str, Any] = {"key": row.key, "title": row.title}
        if _WHOLE.fullmatch(row.points):
            option["points"] = int(row.points)
        else:
            own[f"options[{index}].points"] = "请输入整数积分（0 表示免费）"
            option["points"] = row.points
        if row.limit:
            if _WHOLE.fullmatch(row.limit):
                option["limit_per_holder"] = int(row.limit)
            else:
                own[f"options[{index}].limit_per_holder"] = "请输入整数次数，不限则留空"
                option["limit_per_holder"] = row.limit
        return option


def places(rows: int) -> set[str]:
    """The catalogue's field names the form shows a message next to, with ``rows`` option
    rows; ``about_eligibility`` names the others shown by the eligibility's fields. The
    form's banner lists any problem of neither kind."""
    return {"slug", "title", "starts_at", "ends_at", "eligibility.min_spend_fen", "options",
            *(f"options[{index}].{name}" for index in range(rows)
              for name in ("key", "title", "points", "limit_per_holder"))}


def about_eligibility(name: str) -> bool:
    """Whether a problem belongs to the tiers' checkboxes: the tiers, or the eligibility as a
    whole (a published campaign keeps it)."""
    return name == "eligibility" or name.startswith("eligibility.tiers")


def _local_input(moment: datetime) -> str:
    return moment.astimezone(catalogue.SHANGHAI).strftime(_LOCAL_TIME)


def _offset_time(value: str) -> str | None:
    """A datetime-local value (Asia/Shanghai, seconds optional) as ISO-8601 with +08:00;
    None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None or "T" not in value:
        return None
    return moment.replace(tzinfo=catalogue.SHANGHAI).isoformat()
