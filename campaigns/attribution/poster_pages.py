"""The console's poster pages: a branch's channels with their posters
(``/admin/branches/<branch>/posters``), the button that builds the branch's ZIP in the
background and its progress bar, and the poster images the console's pages show
(``/admin/posters/<code>.png``: the channel page's preview and download link too).

Thin, as ``poster_api`` is, over the same services; the console's login instead of a
bearer token. Marketers use the branch page; a manager gets its own channels' posters
only (``channels.channel_for``: another's is the 403 page, audited).
"""

from __future__ import annotations

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

from campaigns.attribution import (
    channel_posters,
    channels,
    poster_api,
    poster_batches,
    posters,
)
from campaigns.attribution.models import PosterBatch
from campaigns.benefits import catalogue
from campaigns.console import roles
from campaigns.console.auth import forbidden_page, staff_page
from campaigns.console.pages import console, error_page
from core.db import db
from core.errors import ApiError

bp = console(Blueprint("poster_pages", __name__, url_prefix="/admin",
                       template_folder="templates", static_folder="static/posters",
                       static_url_path="/posters/_static"))

PAGE_SIZE = 48
RECENT_BATCHES = 5
NOT_FOUND = {"unknown_campaign": "没有这个活动。", "unknown_channel": "没有这个渠道。",
             "unknown_branch": "该网点没有有效渠道，无法生成海报。",
             "unknown_batch": "没有这个海报任务。"}
STATES = {"queued": "排队中", "building": "正在生成", "ready": "已完成", "failed": "生成失败"}


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> Any:
    if exc.code == "forbidden":
        db.session.commit()  # keeps the audit entry of channel_for's refusal
        return forbidden_page()
    db.session.rollback()
    if exc.code in NOT_FOUND:
        return error_page(404, "未找到", NOT_FOUND[exc.code])
    if exc.code == "poster_font_missing":
        return error_page(503, "海报字体缺失", "服务器未安装海报所需的中文字体"
                          "（Debian 软件包 fonts-noto-cjk），请联系管理员。")
    if exc.code == "batch_not_ready":
        return error_page(409, "尚未完成", "海报包还在生成中，请稍后再下载。")
    return error_page(exc.status, "无法完成操作", "请返回上一页检查后重试。")


def _campaign() -> str | None:
    slug = poster_api.campaign_arg()
    if slug is not None:
        catalogue.find(slug)  # 404 page for an unknown one
    return slug


@bp.get("/branches/<branch>/posters")
@staff_page(roles.MARKETER)
def branch(branch: str) -> str:
    chosen = _campaign()
    page = channels.list_channels(g.staff, branch=branch, active=True,
                                  after=request.args.get("after") or None, limit=PAGE_SIZE)
    # The thumbnails' codes asked of WeChat here, once, rather than by each thumbnail's
    # request at the same moment (one writer at a time on SQLite).
    channel_posters.urls_for(page.channels)
    db.session.commit()
    batch_id = request.args.get("batch", type=int)
    batch = db.session.get(PosterBatch, batch_id) if batch_id else None
    if batch is not None and batch.branch != branch:
        batch = None
    recent = list(db.session.scalars(
        db.select(PosterBatch).where(PosterBatch.branch == branch)
        .order_by(PosterBatch.id.desc()).limit(RECENT_BATCHES)))
    return render_template(
        "console/posters/branch.html", branch=branch, page=page, chosen=chosen,
        campaigns=catalogue.campaigns(), batch=batch, recent=recent, states=STATES,
        describe=poster_batches.describe, download_url=_download_url,
        default_headline=current_app.config["POSTER_DEFAULT_HEADLINE"],
        total=len(channel_posters.branch_channels(branch)))


def _download_url(batch: PosterBatch) -> str:
    return url_for(".batch_download", batch_id=batch.id)


@bp.post("/branches/<branch>/posters/batches")
@staff_page(roles.MARKETER)
def start_batch(branch: str) -> Any:
    slug = request.form.get("campaign", "").strip() or None
    batch = poster_batches.start(g.staff, branch, slug, current_app.config["POSTER_BATCH_CHUNK"])
    db.session.commit()
    flash("已开始生成海报包，完成后可在下方下载。")
    return redirect(url_for(".branch", branch=branch, campaign=slug, batch=batch.id), 303)


@bp.get("/posters/batches/<int:batch_id>")
@staff_page(roles.MARKETER)
def batch_progress(batch_id: int) -> Response:
    batch = poster_batches.find(batch_id)
    return jsonify(poster_batches.describe(batch, _download_url(batch)))


@bp.get("/posters/batches/<int:batch_id>/posters.zip")
@staff_page(roles.MARKETER)
def batch_download(batch_id: int) -> Response:
    return poster_api.batch_zip(batch_id)


@bp.get("/posters/<code>.png")
@staff_page(roles.MARKETER, also=(roles.MANAGER,))
def poster(code: str) -> Response:
    channel = channels.channel_for(g.staff, code)
    spec = channel_posters.channel_spec(channel, channel_posters.content_of(_campaign()))
    db.session.commit()  # a permanent code asked of WeChat just now
    return poster_api.poster_response(posters.ensure(spec), channel.code)
