"""The console's pages for campaigns (``/admin/campaigns``): the list, the form to create and
edit one, publishing, voucher-code uploads, and a campaign's figures with its chart.

Thin, as ``admin_api`` is: read the form, call ``operations`` (the same audited changes as
the JSON API) or the catalogue's figures, commit, show. Roles as the API's: viewers read,
marketers write, approvers publish; a button a role may not use is not offered, and the
route refuses it anyway (``staff_page``). Segments starting with "_" are the console's own
(``_new``, ``_static``): never a slug, which starts with a letter or digit.
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
from werkzeug.exceptions import RequestEntityTooLarge

from campaigns.benefits import campaign_form, catalogue, chart, operations, reasons, wording
from campaigns.benefits.campaign_form import CampaignForm, OptionRow
from campaigns.benefits.models import PUBLISHED, Campaign
from campaigns.console import roles
from campaigns.console.auth import staff_page
from campaigns.console.pages import console, error_page
from core.db import db, utcnow
from core.errors import ApiError

bp = console(Blueprint("campaign_pages", __name__, url_prefix="/admin/campaigns",
                       template_folder="templates", static_folder="static/console",
                       static_url_path="/_static"))

NOT_FOUND = {"unknown_campaign": "没有这个活动。", "unknown_option": "该活动没有这个权益选项。"}
CODES_TYPE = "text/plain"


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> Any:
    db.session.rollback()
    if exc.code in NOT_FOUND:
        return error_page(404, "未找到", NOT_FOUND[exc.code])
    return error_page(exc.status, "无法完成操作", "请返回上一页检查后重试。")


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_: RequestEntityTooLarge) -> Any:
    limit = _megabytes(current_app.config["MAX_CONTENT_LENGTH"])
    return error_page(413, "文件过大", f"一次最多上传 {limit}，请把券码分成几个文件上传。")


def _may(role: str) -> bool:
    return roles.allows(g.staff.role, role)


# -- the list -----------------------------------------------------------------------------------

@bp.get("")
@staff_page(roles.VIEWER)
def campaigns() -> str:
    rows = catalogue.campaigns()
    ids = [option.id for campaign in rows for option in campaign.options]
    stock, redeemed = catalogue.stock_of(ids), catalogue.redeemed_of(ids)
    totals = {campaign.id: (sum(stock.get(option.id, 0) for option in campaign.options),
                            sum(redeemed.get(option.id, 0) for option in campaign.options))
              for campaign in rows}
    return render_template("console/campaigns/list.html", campaigns=rows, totals=totals,
                           status=wording.status, period=wording.period,
                           may_write=_may(roles.MARKETER), now=utcnow())


# -- the form -----------------------------------------------------------------------------------

def _form_page(form: CampaignForm, campaign: Campaign | None,
               problems: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    """The form, with the problems next to their fields, and a blank row to add an option
    (a draft's options may change; a published campaign keeps them)."""
    fixed = campaign is not None and campaign.state == PUBLISHED
    rows = form.options if fixed else [*form.options, OptionRow()]
    tiers = [*wording.TIER_NAMES, *(tier for tier in form.tiers
                                    if tier not in wording.TIER_NAMES)]
    shown = {name: reasons.problem(reason) for name, reason in (problems or {}).items()}
    places = campaign_form.places(len(rows))
    return render_template(
        "console/campaigns/form.html", form=form, campaign=campaign, fixed=fixed, rows=rows,
        tiers=tiers, tier_names=wording.TIER_NAMES, problems=shown,
        eligibility_problems=[message for name, message in shown.items()
                              if campaign_form.about_eligibility(name)],
        others={name: message for name, message in shown.items()
                if name not in places and not campaign_form.about_eligibility(name)}), status


def _saved(form: CampaignForm, slug: str, campaign: Campaign | None) -> Any:
    """Save the form (create when ``campaign`` is None); the campaign page, or the form again
    with what is wrong."""
    try:
        saved = operations.put(g.staff, form.spec(slug), create_only=campaign is None)
    except catalogue.CampaignProblems as exc:
        db.session.rollback()
        return _form_page(form, campaign, exc.problems, exc.status)
    db.session.commit()
    flash("活动已创建，当前为草稿。" if saved.created else "活动已保存。")
    return redirect(url_for(".campaign", slug=slug), 303)


@bp.get("/_new")
@staff_page(roles.MARKETER)
def new() -> tuple[str, int]:
    return _form_page(CampaignForm(), None)


@bp.post("/_new")
@staff_page(roles.MARKETER)
def create() -> Any:
    form = CampaignForm.from_request(request.form)
    return _saved(form, form.slug, None)


@bp.get("/<slug>/edit")
@staff_page(roles.MARKETER)
def edit(slug: str) -> tuple[str, int]:
    campaign = catalogue.find(slug)
    return _form_page(CampaignForm.from_campaign(campaign), campaign)


@bp.post("/<slug>/edit")
@staff_page(roles.MARKETER)
def update(slug: str) -> Any:
    campaign = catalogue.find(slug)
    form = CampaignForm.from_request(request.form)
    form.slug = campaign.slug  # the path's: the slug of a campaign never changes
    return _saved(form, slug, campaign)


# -- one campaign -------------------------------------------------------------------------------

def _campaign_page(campaign: Campaign, *, upload_error: str | None = None,
                   status: int = 200) -> tuple[str, int]:
    figures = catalogue.figures(campaign)
    now = utcnow()
    days = chart.days(campaign, figures.per_day, now=now)
    return render_template(
        "console/campaigns/campaign.html", campaign=campaign, figures=figures, days=days,
        options=list(zip(campaign.options, figures.options, strict=True)),
        stock=sum(option.stock for option in figures.options),
        redeemed=sum(option.redeemed for option in figures.options),
        status=wording.status(campaign, now), period=wording.period(campaign),
        conditions=wording.conditions(campaign), chart_size=(chart.WIDTH, chart.HEIGHT),
        may_write=_may(roles.MARKETER), may_publish=_may(roles.APPROVER),
        upload_error=upload_error, codes_max=_megabytes(_codes_max_bytes())), status


def _codes_max_bytes() -> int:
    return current_app.config["BENEFIT_CODES_MAX_BYTES"]


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


@bp.get("/<slug>")
@staff_page(roles.VIEWER)
def campaign(slug: str) -> tuple[str, int]:
    return _campaign_page(catalogue.find(slug))


@bp.get("/<slug>/chart.svg")
@staff_page(roles.VIEWER)
def chart_svg(slug: str) -> Response:
    campaign = catalogue.find(slug)
    days = chart.days(campaign, catalogue.figures(campaign).per_day, now=utcnow())
    return Response(chart.svg(days), mimetype="image/svg+xml")


@bp.post("/<slug>/publish")
@staff_page(roles.APPROVER)
def publish(slug: str) -> Any:
    operations.publish(g.staff, slug)
    db.session.commit()
    flash("活动已发布，持卡人在活动时间内即可领取。")
    return redirect(url_for(".campaign", slug=slug), 303)


@bp.post("/<slug>/codes")
@staff_page(roles.MARKETER)
def upload_codes(slug: str) -> Any:
    campaign = catalogue.find(slug)
    option = catalogue.find_option(campaign, request.form.get("option", ""))
    upload = request.files.get("codes")
    if upload is None or not upload.filename:
        return _campaign_page(campaign, upload_error="请选择要上传的券码文件。", status=400)
    if upload.mimetype != CODES_TYPE:
        return _campaign_page(campaign, status=415,
                              upload_error="请上传纯文本文件（.txt），每行一个券码。")
    raw = upload.stream.read(_codes_max_bytes() + 1)
    if len(raw) > _codes_max_bytes():
        return _campaign_page(campaign, status=413, upload_error=(
            f"文件超过 {_megabytes(_codes_max_bytes())}，请分成几个文件上传。"))
    try:
        result = operations.add_codes(g.staff, slug, option.key, raw)
    except ApiError as exc:
        db.session.rollback()
        return _campaign_page(campaign, upload_error=reasons.codes_refusal(exc.message),
                              status=exc.status)
    db.session.commit()
    flash(f"“{option.title}”新增券码 {result.added} 个，重复 {result.duplicates} 个，"
          f"当前库存 {result.stock} 个。")
    return redirect(url_for(".campaign", slug=slug), 303)

