"""The console's pages for channels (``/admin/channels``): the list with its filters, the
permanent-code budget (a warning banner from 80 %), the form to create one with messages
next to its fields, the CSV import with every bad row listed, deactivation; and a
channel's page with its QR code, its mini-program code and their downloads. The poster
(``console/posters/_channel_poster.html``) and the funnel link
(``console/funnel/_channel_link.html``) are included on that page when their packages
provide them.

Thin, as ``admin_api`` is: the same audited services, the same roles. Viewers read;
marketers create, import, deactivate and get the codes; a manager sees only its own
channels (one channel: the list opens it) and their codes, another's page is the 403 page,
audited. Segments starting with "_" are the pages' own (``_import``, ``_static``).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from campaigns.attribution import admin_api, channels, codes
from campaigns.attribution.models import MINIAPP, OA_PERMANENT, Channel, ChannelCode
from campaigns.console import roles
from campaigns.console.auth import forbidden_page, staff_page
from campaigns.console.pages import console, error_page
from core.db import db
from core.errors import ApiError, finish_refused

bp = console(Blueprint("channel_pages", __name__, url_prefix="/admin/channels",
                       template_folder="templates", static_folder="static/channels",
                       static_url_path="/_static"))

KIND_NAMES = {"branch": "网点", "manager": "客户经理", "campaign": "活动"}
FIELD_NAMES = {"code": "渠道编码", "kind": "类型", "name": "名称", "branch": "网点编码",
               "staff": "客户经理账号", "": "整行"}
CSV_TYPES = ("text/csv", "application/csv", "application/vnd.ms-excel", "text/plain")
# The forms post to their own anchor (#create, #import: a refused form shows where it is);
# a browser keeps that fragment through the redirect unless the redirect names another.
_TOP = "top"
_REFUSALS = {
    "unknown_channel": (404, "未找到", "没有这个渠道。"),
    "qr_budget_exhausted": (409, "永久二维码已用完", "公众号的永久二维码额度已用完，"
                            "请改用临时二维码或小程序码。"),
    "channel_inactive": (409, "渠道已停用", "已停用的渠道不再生成新的二维码。"),
    "wechat_unavailable": (503, "微信暂时无法访问", "请稍后重试。"),
    "wechat_error": (502, "微信拒绝了请求", "请稍后重试；如持续出现，请联系技术支持。"),
}


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> Any:
    finish_refused(exc)  # keeps the audit entry of a forbidden channel
    if exc.status == 403:
        return forbidden_page()
    status, title, message = _REFUSALS.get(exc.code, (exc.status, "无法完成操作",
                                                      "请返回上一页检查后重试。"))
    return error_page(status, title, message)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_: RequestEntityTooLarge) -> Any:
    return _list_page(import_error=f"文件过大：一次最多导入 {_megabytes()}，请分成几个文件。",
                      status=413)


def _megabytes() -> str:
    return f"{current_app.config['CHANNEL_IMPORT_MAX_BYTES'] / (1024 * 1024):g} MB"


def _may(role: str) -> bool:
    return roles.allows(g.staff.role, role)


def _may_get_codes() -> bool:
    return g.staff.role == roles.MANAGER or _may(roles.MARKETER)


# -- the list -----------------------------------------------------------------------------------

def _list_page(*, form: dict[str, str] | None = None, problems: dict[str, str] | None = None,
               import_error: str | None = None, import_rows: list[dict[str, Any]] | None = None,
               import_more: int = 0, status: int = 200) -> tuple[str, int]:
    try:
        filters = admin_api.list_filters(request.args)
    except ApiError:
        filters = {}
        flash("筛选条件无效，已显示全部渠道。")
    page = channels.list_channels(g.staff, **filters)
    staff_view = g.staff.role != roles.MANAGER
    return render_template(
        "console/channels/list.html", page=page, filters=filters, kind_names=KIND_NAMES,
        total=channels.count_channels(g.staff), may_write=_may(roles.MARKETER),
        budget=codes.budget() if staff_view else None, staff_view=staff_view,
        warning_share=current_app.config["WECHAT_PERMANENT_QR_WARNING"],
        form=form or {}, problems=problems or {}, field_names=FIELD_NAMES,
        import_error=import_error, import_rows=import_rows or [], import_more=import_more,
        import_max=_megabytes(), import_rows_max=current_app.config["CHANNEL_IMPORT_MAX_ROWS"],
        next_args={**request.args.to_dict(), "after": page.next} if page.next else None,
    ), status


@bp.get("")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def channel_list() -> Any:
    if g.staff.role == roles.MANAGER:
        own = channels.list_channels(g.staff, limit=2).channels
        if len(own) == 1:  # a customer manager's one code: straight to it
            return redirect(url_for(".channel", code=own[0].code), 303)
    return _list_page()


@bp.post("")
@staff_page(roles.MARKETER)
def create() -> Any:
    form = {name: request.form.get(name, "") for name in channels.FIELDS}
    body = {name: value for name, value in form.items() if value.strip()}
    try:
        channel = channels.create_channel(g.staff, body)
    except channels.ChannelProblems as exc:
        db.session.rollback()
        shown = {name: channels.PROBLEMS[reason][1] for name, reason in exc.reasons.items()}
        return _list_page(form=form, problems=shown, status=exc.status)
    db.session.commit()
    flash(f"渠道“{channel.name}”已创建。")
    return redirect(url_for(".channel", code=channel.code, _anchor=_TOP), 303)


@bp.post("/_import")
@staff_page(roles.MARKETER)
def import_csv() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _list_page(import_error="请选择要导入的 CSV 文件。", status=400)
    if upload.mimetype not in CSV_TYPES and not upload.filename.lower().endswith(".csv"):
        return _list_page(import_error="请上传 CSV 文件（.csv）。", status=415)
    limit = current_app.config["CHANNEL_IMPORT_MAX_BYTES"]
    raw = upload.stream.read(limit + 1)
    if len(raw) > limit:
        return _list_page(import_error=f"文件超过 {_megabytes()}，请分成几个文件导入。",
                          status=413)
    try:
        result = channels.import_csv(g.staff, raw,
                                     max_rows=current_app.config["CHANNEL_IMPORT_MAX_ROWS"])
    except channels.ImportProblems as exc:
        db.session.rollback()
        rows = [{"row": problem.row, "field": FIELD_NAMES.get(problem.field, problem.field),
                 "reason": channels.PROBLEMS[problem.reason][1]}
                for problem in exc.rows[:channels.ROWS_REPORTED]]
        return _list_page(import_error=exc.words, import_rows=rows,
                          import_more=max(0, len(exc.rows) - channels.ROWS_REPORTED),
                          status=exc.status)
    db.session.commit()
    flash(f"已导入 {result.created} 个渠道。")
    return redirect(url_for(".channel_list", _anchor=_TOP), 303)


# -- one channel --------------------------------------------------------------------------------

def _stored_kinds(channel: Channel) -> set[str]:
    return set(db.session.scalars(select(ChannelCode.kind).where(
        ChannelCode.channel_id == channel.id, ChannelCode.kind.in_((OA_PERMANENT, MINIAPP)))))


@bp.get("/<code>")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def channel(code: str) -> str:
    shown = channels.channel_for(g.staff, code)
    stored = _stored_kinds(shown)
    budget = codes.budget()
    return render_template(
        "console/channels/channel.html", channel=shown, kind_names=KIND_NAMES,
        may_codes=_may_get_codes(), may_write=_may(roles.MARKETER),
        has_qr=OA_PERMANENT in stored, has_miniapp=MINIAPP in stored,
        budget_left=budget["used"] < budget["limit"])


def _download(response: Response, code: str, what: str) -> Response:
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f'attachment; filename="{code}-{what}.png"'
    return response


@bp.get("/<code>/qrcode.png")
@staff_page(roles.MARKETER, also=(roles.MANAGER,))
def qrcode_png(code: str) -> Response:
    stored = codes.permanent_code(channels.channel_for(g.staff, code))
    db.session.commit()
    return _download(Response(codes.qr_png(stored.url), mimetype="image/png"), code, "qrcode")


@bp.get("/<code>/miniapp-code.png")
@staff_page(roles.MARKETER, also=(roles.MANAGER,))
def miniapp_code_png(code: str) -> Response:
    image = codes.miniapp_code(channels.channel_for(g.staff, code))
    db.session.commit()
    return _download(Response(image, mimetype="image/png"), code, "miniapp")


@bp.post("/<code>/deactivate")
@staff_page(roles.MARKETER)
def deactivate(code: str) -> Any:
    shown = channels.deactivate(g.staff, code)
    db.session.commit()
    flash(f"渠道“{shown.name}”已停用：已发放的二维码仍然有效，历史数据保留。")
    return redirect(url_for(".channel", code=code), 303)
