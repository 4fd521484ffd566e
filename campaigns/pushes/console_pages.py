"""The console's pages for pushes (``/admin/pushes``): the list, the composer with its preview
of the message as WeChat shows it, the approval queue, a push's page with its live progress
bar and ETA, and the delivery report with its chart and CSV.

Thin, as ``admin_api`` is: read the form, call ``plans`` (the same audited changes as the
JSON API), commit, show. Roles as the API's: viewers read, marketers compose, pause, resume
and cancel, approvers approve (never their own push); a button a role may not use is not
offered, and the route refuses it anyway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict

from campaigns.console import roles
from campaigns.console.auth import staff_page
from campaigns.console.pages import console, error_page
from campaigns.pushes import admin_api, audiences, chart, plans, wording
from campaigns.pushes.models import (
    CHANNELS,
    MASS,
    PAUSED,
    PENDING_APPROVAL,
    SCHEDULED,
    SENDING,
    SUBSCRIBE,
    Audience,
    Push,
)
from core.clock import SHANGHAI
from core.db import db
from core.errors import ApiError, finish_refused

bp = console(Blueprint("push_pages", __name__, url_prefix="/admin/pushes",
                       template_folder="templates", static_folder="static/console",
                       static_url_path="/_static"))

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">, Asia/Shanghai
_AUDIENCES_SHOWN = 100
# The form's fields by the names plans gives its problems.
_FIELD_OF = {"message.text": "text", "message.template_id": "template_id",
             "message.page": "page", "quiet_hours.from": "quiet_hours",
             "quiet_hours.to": "quiet_hours", "quiet_hours": "quiet_hours"}
ACTIONS = {"approve": "推送已审批，将按计划发送。", "pause": "推送已暂停。",
           "resume": "推送已恢复，将继续发送。", "cancel": "推送已取消，未发送的粉丝计为跳过。"}
REFUSALS = {"own_push": "推送须由创建人以外的审批人审批。",
            "invalid_state": "推送当前的状态不能执行此操作，请刷新页面查看最新状态。"}


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> Any:
    if exc.code == "unknown_push":
        db.session.rollback()
        return error_page(404, "未找到", "没有这个推送。")
    # A refusal that keeps its audit entry (a creator's approval) commits it; others roll back.
    finish_refused(exc)
    return error_page(exc.status, "无法完成操作",
                      REFUSALS.get(exc.code, "请返回上一页检查后重试。"))


def _may(role: str) -> bool:
    return roles.allows(g.staff.role, role)


def _helpers() -> dict[str, Any]:
    return {"states": wording.STATES, "channel_names": wording.CHANNELS,
            "channel_rules": wording.CHANNEL_RULES, "reason": wording.reason,
            "errcode": wording.errcode, "duration": wording.duration,
            "pause_reason": wording.pause_reason}


bp.context_processor(_helpers)


# -- the list and the queue ---------------------------------------------------------------------

@bp.get("")
@staff_page(roles.VIEWER)
def index() -> str:
    rows = plans.pushes()
    return render_template("console/pushes/list.html", pushes=rows,
                           progress={push.id: plans.progress(push) for push in rows},
                           may_write=_may(roles.MARKETER))


@bp.get("/approvals")
@staff_page(roles.MARKETER)
def approvals() -> str:
    waiting = plans.pushes(state=PENDING_APPROVAL)
    names = _audience_names(push.audience_id for push in waiting)
    return render_template("console/pushes/approvals.html", pushes=waiting,
                           audience_names=names,
                           sizes={push.id: _audience_size(push.audience_id) for push in waiting},
                           may_approve=_may(roles.APPROVER))


def _audience_names(ids: Any) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    return dict(db.session.execute(
        db.select(Audience.id, Audience.name).where(Audience.id.in_(wanted))).tuples().all())


def _audience_size(audience_id: int) -> int:
    audience = db.session.get_one(Audience, audience_id)
    return audiences.count(audience.filter)


# -- the composer -------------------------------------------------------------------------------

def _composer(form: MultiDict[str, str], problems: dict[str, str] | None = None,
              status: int = 200) -> tuple[str, int]:
    listed = list(db.session.scalars(
        db.select(Audience).order_by(Audience.id.desc()).limit(_AUDIENCES_SHOWN)))
    sizes = {audience.id: audiences.count(audience.filter) for audience in listed}
    shown = {field: wording.problem(reason) for field, reason in (problems or {}).items()}
    return render_template(
        "console/pushes/new.html", form=form, audiences=listed, sizes=sizes, problems=shown,
        channels=CHANNELS, channel=form.get("channel") or MASS,
        text_limits={channel: wording.text_limit(channel) for channel in CHANNELS},
        default_rate=current_app.config["PUSH_DEFAULT_RATE_PER_S"],
        max_rate=current_app.config["PUSH_MAX_RATE_PER_S"]), status


@bp.get("/new")
@staff_page(roles.MARKETER)
def new() -> tuple[str, int]:
    form = MultiDict({"audience_id": request.args.get("audience", "")})
    return _composer(form)


@bp.post("/new")
@staff_page(roles.MARKETER)
def create() -> Any:
    body, problems = _body(request.form)
    if not problems:
        try:
            push = plans.create_push(g.staff, body)
        except plans.PushProblems as exc:
            db.session.rollback()
            # Several problems may land on one form field (quiet hours' two ends): reversed,
            # the first one plans found is the one kept.
            problems = {_FIELD_OF.get(field, _data_field(field)): reason
                        for field, reason in reversed(exc.problems.items())}
        else:
            db.session.commit()
            flash("推送已创建，等待另一位审批人审批。")
            return redirect(url_for(".push", push_id=push.id), 303)
    return _composer(request.form, problems, 400)


def _data_field(field: str) -> str:
    return "data" if field.startswith("message.data") else field


def _body(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The push body of the composer's form, and the problems only the form can have (a
    number or time that is none); plans checks the rest."""
    problems: dict[str, str] = {}
    channel = form.get("channel", "")
    body: dict[str, Any] = {"name": form.get("name", ""), "channel": channel}
    audience = form.get("audience_id", "")
    if audience.isdecimal():
        body["audience_id"] = int(audience)
    else:
        problems["audience_id"] = "请选择一个人群"
    if channel == SUBSCRIBE:
        body["message"] = {"template_id": form.get("template_id", ""),
                           "data": _keyword_lines(form.get("data", ""), problems)}
        if form.get("page", "").strip():
            body["message"]["page"] = form["page"]
    else:
        # A browser posts a textarea's line breaks as CRLF; WeChat's text takes "\n".
        body["message"] = {"text": form.get("text", "").replace("\r\n", "\n")}
    send_at = form.get("send_at", "").strip()
    if send_at:
        try:
            body["send_at"] = datetime.strptime(send_at, LOCAL_INPUT).replace(
                tzinfo=SHANGHAI).isoformat()
        except ValueError:
            problems["send_at"] = "请按“年-月-日 时:分”填写"
    rate = form.get("rate_per_s", "").strip()
    if rate:
        if rate.isdecimal() and len(rate) < 10:
            body["rate_per_s"] = int(rate)
        else:
            problems["rate_per_s"] = "须为整数"
    quiet_from, quiet_to = form.get("quiet_from", ""), form.get("quiet_to", "")
    if quiet_from or quiet_to:
        body["quiet_hours"] = {"from": quiet_from, "to": quiet_to}
    return body, problems


def _keyword_lines(text: str, problems: dict[str, str]) -> dict[str, str]:
    """``thing1: 内容`` lines (a full-width colon too) as keyword → value."""
    data: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        keyword, colon, value = line.replace("：", ":").partition(":")
        if not colon:
            problems["data"] = "每行一个“关键词: 内容”，关键词如 thing1、time2"
            continue
        data[keyword.strip()] = value.strip()
    return data


# -- one push -----------------------------------------------------------------------------------

@bp.get("/<int:push_id>")
@staff_page(roles.VIEWER)
def push(push_id: int) -> str:
    shown = plans.find(push_id)
    audience = db.session.get_one(Audience, shown.audience_id)
    return render_template(
        "console/pushes/push.html", push=shown, audience=audience,
        progress=plans.progress(shown), may_write=_may(roles.MARKETER),
        may_approve=_may(roles.APPROVER) and g.staff.username != shown.created_by,
        own=g.staff.username == shown.created_by, pausable=shown.state in (SCHEDULED, SENDING),
        paused=shown.state == PAUSED, finished=shown.state in plans.FINISHED)


@bp.get("/<int:push_id>/progress.json")
@staff_page(roles.VIEWER)
def progress_json(push_id: int) -> Response:
    shown = plans.find(push_id)
    figures = plans.progress(shown)
    return jsonify(state=shown.state, state_name=wording.STATES[shown.state],
                   eta=wording.duration(figures.eta_seconds), **figures.as_dict())


def _act(push_id: int, action: str) -> Any:
    shown = plans.find(push_id)
    getattr(plans, action)(g.staff, shown)
    db.session.commit()
    flash(ACTIONS[action])
    return redirect(url_for(".push", push_id=push_id), 303)


@bp.post("/<int:push_id>/approve")
@staff_page(roles.APPROVER)
def approve(push_id: int) -> Any:
    return _act(push_id, "approve")


@bp.post("/<int:push_id>/pause")
@staff_page(roles.MARKETER)
def pause(push_id: int) -> Any:
    return _act(push_id, "pause")


@bp.post("/<int:push_id>/resume")
@staff_page(roles.MARKETER)
def resume(push_id: int) -> Any:
    return _act(push_id, "resume")


@bp.post("/<int:push_id>/cancel")
@staff_page(roles.MARKETER)
def cancel(push_id: int) -> Any:
    return _act(push_id, "cancel")


# -- the report ---------------------------------------------------------------------------------

@bp.get("/<int:push_id>/report")
@staff_page(roles.VIEWER)
def report(push_id: int) -> str:
    shown: Push = plans.find(push_id)
    figures = plans.report(shown)
    return render_template("console/pushes/report.html", push=shown, report=figures,
                           chart_size=(chart.WIDTH, chart.height(figures)))


@bp.get("/<int:push_id>/report.svg")
@staff_page(roles.VIEWER)
def report_svg(push_id: int) -> Response:
    return Response(chart.svg(plans.report(plans.find(push_id))), mimetype="image/svg+xml")


@bp.get("/<int:push_id>/deliveries.csv")
@staff_page(roles.VIEWER)
def deliveries(push_id: int) -> Response:
    return admin_api.deliveries_response(plans.find(push_id))
