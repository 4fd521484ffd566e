"""The console's funnel pages (``/admin/funnel``): the ranking of channels by binds or by
transacting holders, by branch and period, with its CSV export (viewers); a channel's funnel
chart with the conversion between steps (viewers; a manager only its own channels': anyone
else's is the 403 page, audited, through ``channels.channel_for``); and a manager's own
channels on the console's home page (``campaigns.console.pages.HOME_PANELS``).

Thin, as ``funnel_api`` is, whose checks of the period, the filters and the code these
pages share. Segments starting with "_" are the pages' own (``_export.csv``, ``_static``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from sqlalchemy import select

from campaigns.attribution import channels, funnel, funnel_api, funnel_chart
from campaigns.attribution.models import Channel
from campaigns.console import roles
from campaigns.console.auth import staff_page
from campaigns.console.models import Staff
from campaigns.console.pages import HOME_PANELS, console, error_page
from core.db import db
from core.errors import ApiError, finish_refused

bp = console(Blueprint("funnel_pages", __name__, url_prefix="/admin/funnel",
                       template_folder="templates", static_folder="static/funnel",
                       static_url_path="/_static"))

BY_NAMES = {"binds": "绑卡人数", "transacting": "用卡交易人数"}
KIND_NAMES = {"branch": "网点", "manager": "客户经理", "campaign": "活动"}
_MESSAGES = {
    "invalid_period": "日期须为 年-月-日（如 2026-11-01），且开始日期不晚于结束日期。",
    "invalid_filter": "筛选条件无效：排序只能按绑卡或交易人数，网点编码为字母、数字或下划线。",
}


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> Any:
    finish_refused(exc)  # a manager's try at another's channel stays in the audit trail
    if exc.status == 404:
        return error_page(404, "未找到", "没有这个渠道。")
    if exc.status == 403:
        return error_page(403, "没有权限", "这是其他客户经理的渠道，您只能查看本人名下渠道的数据。")
    return error_page(exc.status, "无法显示", "请返回上一页检查后重试。")


@bp.get("/")
@staff_page(roles.VIEWER)
def ranking() -> Any:
    args = request.args
    form = {"by": args.get("by", "binds"), "branch": args.get("branch", "").strip(),
            "from": args.get("from", "").strip(), "to": args.get("to", "").strip()}
    try:
        period = funnel_api.period_arg(args)
        filters = funnel_api.ranking_args(args)
    except ApiError as exc:
        return render_template("console/funnel/ranking.html", rows=None, form=form,
                               error=_MESSAGES[exc.code], by_names=BY_NAMES,
                               kind_names=KIND_NAMES), 400
    rows = funnel.ranking(period, **filters)
    return render_template("console/funnel/ranking.html", rows=rows, form=form, error=None,
                           by_names=BY_NAMES, kind_names=KIND_NAMES,
                           export={k: v for k, v in form.items() if v},
                           period={k: form[k] for k in ("from", "to") if form[k]})


@bp.get("/_export.csv")
@staff_page(roles.VIEWER)
def export() -> Response:
    rows = funnel.ranking(funnel_api.period_arg(request.args),
                          **funnel_api.ranking_args(request.args))
    return funnel_api.csv_response(funnel.ranking_csv(rows), "funnel-ranking.csv")


@bp.get("/<code>")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def channel_funnel(code: str) -> Any:
    code = funnel_api.checked_code(g.staff, code)
    form = {"from": request.args.get("from", "").strip(),
            "to": request.args.get("to", "").strip()}
    try:
        period = funnel_api.period_arg(request.args)
    except ApiError as exc:
        period, error = funnel.ALL_TIME, _MESSAGES[exc.code]
    else:
        error = None
    found = funnel.funnel(code, period)
    named = db.session.scalar(select(Channel).where(Channel.code == code))
    return render_template(
        "console/funnel/channel.html", code=code, channel=named, funnel=found,
        steps=[(funnel_chart.STEP_NAMES[step], value) for step, value in found.as_dict().items()],
        rates=[(funnel_chart.STEP_NAMES[a], funnel_chart.STEP_NAMES[b], share)
               for a, b, share in funnel.rates(found)],
        chart_size=(funnel_chart.WIDTH, funnel_chart.HEIGHT), form=form, error=error,
        query={k: v for k, v in form.items() if v} if error is None else {},
        kind_names=KIND_NAMES, has_posters=_has_posters()), 400 if error else 200


@bp.get("/<code>/chart.svg")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def chart_svg(code: str) -> Response:
    code = funnel_api.checked_code(g.staff, code)
    found = funnel.funnel(code, funnel_api.period_arg(request.args))
    return Response(funnel_chart.svg(found), mimetype="image/svg+xml")


def _has_posters() -> bool:
    """Whether the poster pages are part of this app (their own package's blueprint)."""
    return "poster_pages.poster" in current_app.view_functions


def manager_panel(account: Staff) -> tuple[str, dict[str, Any]] | None:
    """A manager's own channels for the home page (code, poster, funnel figures): the
    partial's template and its ``panel`` values; None for the ladder's roles."""
    if account.role != roles.MANAGER:
        return None
    mine = channels.list_channels(account).channels
    rows = funnel.ranking(codes=[channel.code for channel in mine]) if mine else []
    return "console/funnel/_my_channels.html", {"rows": rows, "has_posters": _has_posters()}


HOME_PANELS.append(manager_panel)
