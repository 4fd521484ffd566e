"""The console's pages for audiences (``/admin/audiences``): the list, with each audience's
size now, and the builder: a form of the filter's parts, its live count and a masked
sample as the form changes, and saving (audited, as the JSON API's).

Thin, as ``audiences_api`` is: read the form into a filter, call ``audiences``, commit,
show. The live count is ``POST /admin/audiences/_preview``: the builder's own form (its
CSRF token included, as every console POST), answered in JSON for the page's script.
Segments starting with "_" are the console's own; an audience is ``/<id>`` (digits).
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict

from campaigns.benefits import wording
from campaigns.console import roles
from campaigns.console.auth import staff_page
from campaigns.console.pages import console
from campaigns.console.reasons import Reasons
from campaigns.pushes import audiences
from core.db import db

bp = console(Blueprint("audience_pages", __name__, url_prefix="/admin/audiences",
                       template_folder="templates", static_folder="static/console",
                       static_url_path="/_static"))

# Commas (either width), the enumeration comma, semicolons or white space separate values.
_SEPARATORS = re.compile(r"[,，、;；\s]+")
_TEXT_PARTS = ("channels", "cities", "branches")
SAMPLE_SIZE = 10

# One field's problem in Chinese.
problem = Reasons((
    (r"is required", "请填写人群名称"),
    (r"must be at most (\d+) characters", "不能超过 {0} 个字"),
    (r"contains control characters", "不能包含控制字符"),
    (r"must list channel codes: .*", "渠道代码须为 1–32 位字母、数字或“_”"),
    (r"must list at most (\d+) values", "最多填写 {0} 个"),
    (r"must be a whole number of hours", "请填写整数小时数"),
    (r"must be from 1 to (\d+)", "须为 1–{0} 之间的整数"),
))


def _field(name: str) -> str:
    """The form field a problem belongs to: "filter.tiers" → "tiers"."""
    return name.removeprefix(f"{audiences.FILTER}.")


def filter_of(form: MultiDict[str, str]) -> dict[str, Any]:
    """The filter the builder's form says: only the parts filled in. Values the form cannot
    hold whole (hours that are no number) go to the service as they are, to be refused
    with its reasons."""
    spec: dict[str, Any] = {}
    for name in _TEXT_PARTS:
        values = [value for value in _SEPARATORS.split(form.get(name, "")) if value]
        if values:
            spec[name] = values
    tiers = form.getlist("tiers")
    if tiers:
        spec["tiers"] = tiers
    for name in ("subscribed", "bound"):
        if form.get(name) == "yes":
            spec[name] = True
    hours = form.get("active_within_hours", "").strip()
    if hours:
        spec["active_within_hours"] = int(hours) if hours.isascii() and hours.isdigit() \
            else hours
    return spec


def summary(spec: dict[str, Any]) -> str:
    """A filter as a reader says it: "当前关注 · 卡等级：金卡 · 近 48 小时活跃"."""
    parts = []
    if "subscribed" in spec:
        parts.append("当前关注" if spec["subscribed"] else "已取消关注")
    if "bound" in spec:
        parts.append("已绑卡" if spec["bound"] else "未绑卡")
    for name, label in (("channels", "渠道"), ("cities", "城市"), ("branches", "网点")):
        if name in spec:
            parts.append(f"{label}：{'、'.join(spec[name])}")
    if "tiers" in spec:
        parts.append(f"卡等级：{wording.tier_names(spec['tiers'])}")
    if "active_within_hours" in spec:
        parts.append(f"近 {spec['active_within_hours']} 小时活跃")
    return " · ".join(parts) or "全部粉丝"


def _builder(form: MultiDict[str, str], problems: dict[str, str] | None = None,
             status: int = 200) -> tuple[str, int]:
    shown = {_field(name): problem(reason) for name, reason in (problems or {}).items()}
    return render_template("console/audiences/new.html", form=form, problems=shown,
                           tier_names=wording.TIER_NAMES,
                           subscribed=form.get("subscribed", "yes" if not form else "")), status


@bp.get("")
@staff_page(roles.VIEWER)
def index() -> str:
    rows = [(audience, audiences.count(audience.filter)) for audience in audiences.audiences()]
    return render_template("console/audiences/list.html", rows=rows, summary=summary,
                           may_write=roles.allows(g.staff.role, roles.MARKETER))


@bp.get("/new")
@staff_page(roles.MARKETER)
def new() -> tuple[str, int]:
    return _builder(MultiDict())


@bp.post("/new")
@staff_page(roles.MARKETER)
def create() -> Any:
    try:
        audience = audiences.create_audience(g.staff, request.form.get("name", ""),
                                             filter_of(request.form))
    except audiences.FilterProblems as exc:
        db.session.rollback()
        return _builder(request.form, exc.problems, 400)
    size = audiences.count(audience.filter)
    db.session.commit()
    flash(f"人群“{audience.name}”已保存，当前 {size:,} 人。")
    return redirect(url_for(".index"), 303)


@bp.post("/_preview")
@staff_page(roles.MARKETER)
def preview() -> Response:
    """The builder's live count and masked sample; or, for a filter half typed, its problems
    by field (``size`` null): an answer the page shows, not a failed request."""
    try:
        spec = audiences.validate_filter(filter_of(request.form))
    except audiences.FilterProblems as exc:
        return jsonify(size=None, sample=[], problems={
            _field(name): problem(reason) for name, reason in exc.problems.items()})
    return jsonify(size=audiences.count(spec), sample=audiences.sample(spec, SAMPLE_SIZE),
                   problems={})
