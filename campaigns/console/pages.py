"""The console for people: login, logout, home and the audit trail; and ``console(bp)``,
the shell every console page blueprint is registered through.

``console(bp)`` gives a blueprint the console's security headers (a strict CSP: no inline
script or style, nothing from another origin; no framing; no caching), the CSRF check of
every POST (Flask-WTF's ``validate_csrf`` against the session's token, as the H5 pages do;
a form sends it as ``csrf_token``), and the template helpers ``console/base.html`` needs.
A page of another package::

    bp = console(Blueprint("campaign_pages", __name__, url_prefix="/admin/campaigns",
                           template_folder="templates"))

    @bp.get("/")
    @staff_page("viewer")
    def campaigns() -> str:
        return render_template("campaigns/console_list.html", ...)

and its template extends ``console/base.html`` (blocks ``title`` and ``content``), with the
classes documented at the top of ``static/console/console.css``. Times are shown in
Asia/Shanghai with the ``local_time`` filter (``{{ entry.at|local_time }}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf

from campaigns.console import audit, roles, sessions, staff
from campaigns.console.auth import SESSION_KEY, console_staff, safe_next, staff_page
from campaigns.console.models import Staff
from core import pages
from core.client_ip import request_client_ip
from core.clock import SHANGHAI
from core.db import db
from core.errors import ApiError, finish_refused
from members.protection import limits, regions

# The console's own policy, not the H5 shell's (members.holders.h5): the two change for
# different reasons (WeChat's browser and JS-SDK on one side, charts and uploads here).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# The navigation of console/base.html: (label, path); a page under a path is its section's.
# /admin/campaigns is served by the campaigns' own console pages.
NAV = (("首页", "/admin/"), ("权益活动", "/admin/campaigns"), ("人群", "/admin/audiences"),
       ("推送", "/admin/pushes"), ("渠道与海报", "/admin/channels"), ("转化漏斗", "/admin/funnel"),
       ("审计日志", "/admin/audit"))
ROLE_NAMES = {
    roles.VIEWER: "只读", roles.MARKETER: "营销", roles.APPROVER: "审批",
    roles.ADMIN: "管理员", roles.MANAGER: "客户经理",
}
ROLE_DUTIES = {
    roles.VIEWER: "查看报表与活动数据。",
    roles.MARKETER: "管理权益活动、人群、推送与渠道。",
    roles.APPROVER: "营销的全部权限，另可审批推送、发布活动。",
    roles.ADMIN: "全部权限，另可管理员工账号。",
    roles.MANAGER: "本人名下渠道的二维码、海报与转化数据。",
}
# What the trail's actions mean to a reader; others are shown by their code.
ACTION_NAMES = {
    "login": "登录", "login_failed": "登录失败", "login_locked": "登录被锁定",
    "logout": "退出登录", "forbidden": "越权访问被拒绝",
    "staff.create": "创建员工账号", "staff.token": "签发 API 令牌", "staff.revoke": "吊销令牌",
    "audience.create": "创建人群",
    "channel.create": "创建渠道", "channel.import": "批量导入渠道",
    "channel.deactivate": "停用渠道",
    "campaign.poster_background": "上传海报背景", "poster_batch.start": "生成网点海报包",
    "push.create": "创建推送", "push.approve": "审批推送", "push.pause": "暂停推送",
    "push.resume": "恢复推送", "push.cancel": "取消推送",
}
WRONG_CREDENTIALS = "用户名或密码错误。"
# Sections other packages add to the home page: each is called with the staff member and
# answers (a template to include, the ``panel`` values it reads), or None to show nothing
# (campaigns.attribution shows a customer manager their own channels).
HOME_PANELS: list[Callable[[Staff], tuple[str, dict[str, Any]] | None]] = []


# -- the shell ----------------------------------------------------------------------------------

def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": generate_csrf, "nav": NAV, "role_names": ROLE_NAMES,
            "staff": g.get("staff")}


def local_time(moment: datetime | None) -> str:
    """``2026-12-01 10:00:00`` in Asia/Shanghai; empty for None."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def console(bp: Blueprint) -> Blueprint:
    """Register ``bp`` as console pages: headers, CSRF on every POST, template helpers."""
    bp.after_request(pages.security_headers(SECURITY_HEADERS))
    # The session's token dies with each login and logout (a new session); a form may stay
    # open as long as a login lasts.
    bp.before_request(pages.csrf_check("CONSOLE_MAX_AGE", _expired))
    bp.context_processor(_template_helpers)
    return bp


def _expired() -> tuple[str, int, dict[str, str]]:
    return error_page(400, "页面已过期", "页面已过期或来源不明，请刷新页面后重试。")


def error_page(status: int, title: str, message: str,
               headers: dict[str, str] | None = None) -> tuple[str, int, dict[str, str]]:
    return render_template("console/error.html", title=title, message=message), status, \
        headers or {}


bp = console(Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
                       static_folder="static", static_url_path="/static"))
bp.add_app_template_filter(local_time, "local_time")


# -- login and logout ---------------------------------------------------------------------------

def _login_form(status: int = 200, error: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[str, int, dict[str, str]]:
    next_ = safe_next(request.values.get("next"))
    # The name typed is kept for another try, whether or not such an account exists.
    username = request.form.get("username", "")[:64]
    return render_template("console/login.html", error=error, next=next_,
                           username=username), status, headers or {}


def _wait(seconds: int) -> str:
    """``seconds`` as a reader counts them: "15 分钟", "3 小时"."""
    if seconds <= 90 * 60:
        return f"{max(1, math.ceil(seconds / 60))} 分钟"
    return f"{math.ceil(seconds / 3600)} 小时"


@bp.get("/login")
def login() -> Any:
    if console_staff() is not None:
        return redirect(safe_next(request.args.get("next")) or url_for(".home"), 303)
    return _login_form()


@bp.post("/login")
def login_submit() -> Any:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username.strip() or not password:
        return _login_form(400, "请输入用户名和密码。")
    ip = request_client_ip()
    try:
        account = staff.log_in(username, password, ip=ip, local=regions.classify(ip).local)
    except limits.RateLimited as exc:
        finish_refused(exc)  # keeps the audit entries
        wait = _wait(exc.retry_after)
        return _login_form(429, f"登录失败次数过多，已暂时锁定，请 {wait}后再试。", exc.headers)
    except ApiError as exc:
        finish_refused(exc)  # keeps the failure, counted and audited
        return _login_form(200, WRONG_CREDENTIALS)
    db.session.commit()
    # A new session, not the old one amended: nothing set before the login survives it
    # (a planted cookie, its CSRF token, an H5 login of the same browser). Not permanent
    # either: the cookie goes with the browser, and the login's clocks are the server's.
    session.clear()
    session[SESSION_KEY] = sessions.open_login(account.id)
    return redirect(safe_next(request.form.get("next")) or url_for(".home"), 303)


@bp.post("/logout")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def logout() -> Any:
    audit.record(g.staff, "logout", f"staff:{g.staff.username}")
    db.session.commit()
    sessions.close(session[SESSION_KEY])
    session.clear()
    flash("您已安全退出。")
    return redirect(url_for(".login"), 303)


# -- pages --------------------------------------------------------------------------------------

@bp.get("/")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def home() -> str:
    return render_template("console/home.html", duties=ROLE_DUTIES[g.staff.role],
                           tokens=staff.live_tokens(g.staff),
                           sees_everyone=audit.sees_everyone(g.staff),
                           panels=[shown for panel in HOME_PANELS
                                   if (shown := panel(g.staff)) is not None])


def _json(values: Any) -> str:
    return "" if values is None else json.dumps(values, ensure_ascii=False, sort_keys=True)


@bp.get("/audit")
@staff_page(roles.VIEWER, also=(roles.MANAGER,))
def audit_page() -> str:
    before = request.args.get("before", type=int)
    page = audit.history(g.staff, before=before)
    return render_template("console/audit.html", page=page, before=before,
                           action_names=ACTION_NAMES, as_json=_json)
