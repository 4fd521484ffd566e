"""The console's campaign pages (/admin/campaigns): roles, the form and its messages next to
the fields, publishing, codes uploads, figures and the chart; each change audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from sqlalchemy import select

from campaigns.benefits import catalogue, wording
from campaigns.benefits.models import DRAFT, PUBLISHED, Campaign
from campaigns.console.models import StaffAction
from core.db import db
from tests.fixtures.benefits import SHANGHAI, SLUG, campaign_json, make_campaign, voucher_codes
from tests.fixtures.pages import text
from tests.fixtures.staff import csrf_token, log_in

LIST = "/admin/campaigns"
NEW = "/admin/campaigns/_new"
PAGE = f"/admin/campaigns/{SLUG}"


def logged_in(client, make_staff, role, username=None):
    account = make_staff(role, username)
    assert log_in(client, account.username).status_code == 303
    return account


def form(slug="tv-2026-12", **fields):
    """What a marketer types into the new-campaign form: Asia/Shanghai times, yuan."""
    values = {
        "slug": slug, "title": "腾讯视频VIP月卡 12月",
        "starts_at": "2026-12-01T00:00", "ends_at": "2026-12-31T23:59:59",
        "tiers": ["gold", "platinum"], "min_spend_yuan": "1000",
        "option_key": ["video_month", "music_month", ""],
        "option_title": ["腾讯视频VIP月卡", "QQ音乐绿钻月卡", ""],
        "option_points": ["0", "500", "0"], "option_limit": ["1", "", ""],
    }
    values.update(fields)
    return values


def post(client, path, data, page=None):
    """Post a console form with the CSRF token of ``page`` (the form's own page by default)."""
    token = csrf_token(text(client.get(page or path)))
    return client.post(path, data={**data, "csrf_token": token})


def field_error(html, input_id):
    """The message shown right after the input ``input_id`` (inside its field), or None."""
    found = re.search(rf'<input id="{re.escape(input_id)}"[^>]*>\s*<p class="error" '
                      rf'id="{re.escape(input_id)}-error">([^<]*)</p>', html)
    return found.group(1) if found else None


def campaign_actions(app):
    with app.app_context():
        return [(row.username, row.action, row.target, row.before, row.after)
                for row in db.session.scalars(select(StaffAction).where(
                    StaffAction.action.like("campaign.%")).order_by(StaffAction.id))]


# -- roles -------------------------------------------------------------------------------------

def test_the_pages_need_a_console_login(client, app):
    make_campaign(app, publish=False)
    for path in (LIST, NEW, PAGE, f"{PAGE}/edit", f"{PAGE}/chart.svg"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.parametrize("role", ["viewer", "marketer", "approver", "admin"])
def test_every_ladder_role_reads_the_list_and_the_campaign(client, app, make_staff, role):
    make_campaign(app, codes={"video_month": voucher_codes("video", 3)})
    logged_in(client, make_staff, role)
    listed = client.get(LIST)
    assert listed.status_code == 200
    html = text(listed)
    assert "腾讯视频VIP月卡 12月" in html and "进行中" in html
    assert listed.headers["Content-Security-Policy"].startswith("default-src 'self'")
    page = client.get(PAGE)
    assert page.status_code == 200 and "剩余库存" in text(page)
    writes = role != "viewer"
    assert ("新建活动" in html) is writes
    assert (f'href="{PAGE}/edit"' in text(page)) is writes


def test_a_viewer_may_not_open_or_post_the_forms(client, app, make_staff):
    make_campaign(app, publish=False)
    logged_in(client, make_staff, "viewer", "vera")
    token = csrf_token(text(client.get(LIST)))
    assert client.get(NEW).status_code == 403
    assert client.get(f"{PAGE}/edit").status_code == 403
    for path in (NEW, f"{PAGE}/edit", f"{PAGE}/publish", f"{PAGE}/codes"):
        assert client.post(path, data={**form(), "csrf_token": token}).status_code == 403, path
    with app.app_context():
        assert db.session.scalar(select(Campaign.state)) == DRAFT
        assert db.session.scalar(select(Campaign.title)) == "腾讯视频VIP月卡 12月"


def test_a_manager_sees_no_campaign_page(client, app, make_staff):
    make_campaign(app)
    logged_in(client, make_staff, "manager")
    assert client.get(LIST).status_code == 403
    assert client.get(PAGE).status_code == 403


def test_an_unknown_campaign_is_a_console_404(client, app, make_staff):
    logged_in(client, make_staff, "marketer")
    for path in ("/admin/campaigns/no-such", "/admin/campaigns/no-such/edit",
                 "/admin/campaigns/BAD%00slug"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "没有这个活动" in text(response)


# -- the form ----------------------------------------------------------------------------------

def test_a_marketer_creates_a_draft_through_the_form(client, app, make_staff):
    logged_in(client, make_staff, "marketer", "mia")
    blank = text(client.get(NEW))
    assert 'type="datetime-local"' in blank and "北京时间" in blank
    response = post(client, NEW, form())
    assert (response.status_code, response.headers["Location"]) == (
        303, "/admin/campaigns/tv-2026-12")
    page = text(client.get(response.headers["Location"]))
    assert "活动已创建，当前为草稿" in page and "草稿" in page
    assert "2026-12-01 00:00 至 2026-12-31 23:59" in page
    assert "金卡、白金卡持卡人，本月消费满 ¥1,000.00" in page
    with app.app_context():
        described = catalogue.describe(catalogue.find("tv-2026-12"))
    assert described == {
        "slug": "tv-2026-12", "title": "腾讯视频VIP月卡 12月",
        "starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-12-31T23:59:59+08:00",
        "eligibility": {"tiers": ["gold", "platinum"], "min_spend_fen": 100000},
        "options": [
            {"key": "video_month", "title": "腾讯视频VIP月卡", "points": 0, "limit_per_holder": 1},
            {"key": "music_month", "title": "QQ音乐绿钻月卡", "points": 500}]}
    assert campaign_actions(app) == [
        ("mia", "campaign.create", "campaign:tv-2026-12", None, described)]


def test_every_problem_is_shown_next_to_its_field_in_chinese(client, app, make_staff):
    logged_in(client, make_staff, "marketer")
    response = post(client, NEW, form(
        slug="Bad Slug", title=" ", starts_at="2026-12-31T00:00", ends_at="2026-12-01T00:00",
        min_spend_yuan="一千",
        option_key=["video_month", "video_month", "Bad-Key"],
        option_title=["腾讯视频VIP月卡", "", "第三个"],
        option_points=["0", "-5", "abc"], option_limit=["0", "", "x"]))
    assert response.status_code == 400
    html = text(response)
    assert field_error(html, "slug") == "须为 1–64 位小写字母、数字或“-”，以字母或数字开头"
    assert field_error(html, "title") == "必填"
    assert field_error(html, "ends_at") == "须晚于开始时间"
    assert field_error(html, "starts_at") is None
    assert field_error(html, "min_spend_yuan") == "请输入金额（元），如 1000 或 1000.50"
    assert field_error(html, "option-0-limit") == "须为不小于 1 的整数，不限则留空"
    assert field_error(html, "option-1-key") == "与上面的选项重复"
    assert field_error(html, "option-1-title") == "必填"
    assert field_error(html, "option-1-points") == "请输入整数积分（0 表示免费）"
    assert field_error(html, "option-2-key") == "须为 1–32 位小写字母、数字或“_”"
    assert field_error(html, "option-2-points") == "请输入整数积分（0 表示免费）"
    assert field_error(html, "option-2-limit") == "请输入整数次数，不限则留空"
    assert "有 11 处需要修改" in html
    # What was typed comes back, to be corrected rather than retyped.
    assert 'value="Bad Slug"' in html and 'value="第三个"' in html and 'value="一千"' in html
    assert 'aria-invalid="true" aria-describedby="slug-error"' in html
    with app.app_context():
        assert catalogue.campaigns() == []
    assert campaign_actions(app) == []


def test_times_and_lists_the_form_cannot_read(client, app, make_staff):
    logged_in(client, make_staff, "marketer")
    html = text(post(client, NEW, form(starts_at="", ends_at="tomorrow", option_key=[""],
                                       option_title=[""], option_points=["0"],
                                       option_limit=[""])))
    assert field_error(html, "starts_at") == "请选择日期和时间（北京时间）"
    assert field_error(html, "ends_at") == "请按“年-月-日 时:分”填写"
    assert '<p class="error" id="options-error">请至少填写一个权益选项</p>' in html
    html = text(post(client, NEW, form(starts_at="1999-12-01T00:00")))
    assert field_error(html, "starts_at") == "年份须在 2000–2099 之间"


def test_a_slug_taken_by_another_campaign_is_refused_not_overwritten(client, app, make_staff):
    make_campaign(app)
    logged_in(client, make_staff, "marketer")
    response = post(client, NEW, form(slug=SLUG, title="另一个活动"))
    assert response.status_code == 409
    assert field_error(text(response), "slug") == "已有活动使用该标识，请换一个"
    with app.app_context():
        assert catalogue.find(SLUG).title == "腾讯视频VIP月卡 12月"
    assert campaign_actions(app) == []


def test_editing_a_draft_keeps_its_values_and_audits_the_change(client, app, make_staff):
    make_campaign(app, publish=False)
    logged_in(client, make_staff, "marketer", "mia")
    edit = text(client.get(f"{PAGE}/edit"))
    assert "readonly" not in edit and "data-add-row" in edit
    with app.app_context():
        before = catalogue.describe(catalogue.find(SLUG))
    shown = dict(re.findall(r'<input id="(\w+)" name="\w+" type="[\w-]+" step="1" '
                            r'value="([^"]*)"', edit))
    starts = datetime.fromisoformat(before["starts_at"]).astimezone(SHANGHAI)
    assert shown["starts_at"] == starts.strftime("%Y-%m-%dT%H:%M:%S")
    response = post(client, f"{PAGE}/edit", form(
        slug="ignored", title="腾讯视频VIP月卡 12月（加量）", starts_at=shown["starts_at"],
        ends_at=shown["ends_at"], min_spend_yuan="800.50",
        option_key=["video_month"], option_title=["腾讯视频VIP月卡"], option_points=["0"],
        option_limit=["2"]))
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    with app.app_context():
        after = catalogue.describe(catalogue.find(SLUG))
    assert after["title"] == "腾讯视频VIP月卡 12月（加量）"
    assert after["eligibility"] == {"tiers": ["gold", "platinum"], "min_spend_fen": 80050}
    assert after["options"] == [{"key": "video_month", "title": "腾讯视频VIP月卡",
                                 "points": 0, "limit_per_holder": 2}]
    assert after["starts_at"] == before["starts_at"]
    assert campaign_actions(app) == [("mia", "campaign.update", f"campaign:{SLUG}", before, after)]


def test_a_published_campaign_offers_only_what_may_change(client, app, make_staff):
    make_campaign(app, codes={"video_month": voucher_codes("video", 2)})
    logged_in(client, make_staff, "marketer")
    edit = text(client.get(f"{PAGE}/edit"))
    assert "活动已发布" in edit and "data-add-row" not in edit
    assert re.search(r'name="starts_at"[^>]* readonly', edit)
    assert re.search(r'name="option_points"[^>]* readonly', edit)
    assert '<input type="hidden" name="tiers" value="gold">' in edit
    # A start changed anyway (the field is read-only, a request is not): refused next to it.
    with app.app_context():
        campaign = catalogue.find(SLUG)
        values = {"starts_at": (campaign.starts_at - timedelta(days=1)).astimezone(SHANGHAI)
                  .strftime("%Y-%m-%dT%H:%M:%S"),
                  "ends_at": campaign.ends_at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")}
    response = post(client, f"{PAGE}/edit", form(
        **values, option_key=["video_month", "music_month"],
        option_title=["腾讯视频VIP月卡", "QQ音乐绿钻月卡"], option_points=["0", "500"],
        option_limit=["1", "2"]))
    assert response.status_code == 409
    assert field_error(text(response), "starts_at") == "活动已发布，开始时间不能修改"


# -- publishing --------------------------------------------------------------------------------

def test_a_marketer_sees_no_publish_button_and_is_refused(client, app, make_staff):
    make_campaign(app, publish=False)
    logged_in(client, make_staff, "marketer", "mia")
    page = text(client.get(PAGE))
    assert re.search(r'<button class="button primary" type="button" disabled[^>]*>发布活动', page)
    assert f'action="{PAGE}/publish"' not in page
    assert "尚无领取记录" in page and "chart.svg" not in page  # open, nothing redeemed yet
    refused = client.post(f"{PAGE}/publish", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 403 and "没有权限" in text(refused)
    with app.app_context():
        assert catalogue.find(SLUG).state == DRAFT
        forbidden = db.session.scalars(select(StaffAction.target).where(
            StaffAction.action == "forbidden")).all()
    assert forbidden == [f"path:{PAGE}/publish"]


def test_an_approver_publishes(client, app, make_staff):
    make_campaign(app, publish=False)
    logged_in(client, make_staff, "approver", "adam")
    response = post(client, f"{PAGE}/publish", {}, page=PAGE)
    assert (response.status_code, response.headers["Location"]) == (303, PAGE)
    page = text(client.get(PAGE))
    assert "活动已发布" in page and "进行中" in page and "发布活动" not in page
    with app.app_context():
        assert catalogue.find(SLUG).state == PUBLISHED
    assert campaign_actions(app) == [("adam", "campaign.publish", f"campaign:{SLUG}",
                                      {"state": DRAFT}, {"state": PUBLISHED})]


def test_a_form_without_its_csrf_token_changes_nothing(client, app, make_staff):
    make_campaign(app, publish=False)
    logged_in(client, make_staff, "approver")
    response = client.post(f"{PAGE}/publish")
    assert response.status_code == 400 and "页面已过期" in text(response)
    with app.app_context():
        assert catalogue.find(SLUG).state == DRAFT


# -- codes -------------------------------------------------------------------------------------

def upload(client, body: bytes, *, option="video_month", filename="codes.txt",
           content_type="text/plain"):
    token = csrf_token(text(client.get(PAGE)))
    return client.post(f"{PAGE}/codes", content_type="multipart/form-data", data={
        "csrf_token": token, "option": option,
        "codes": (BytesIO(body), filename, content_type)})


def test_an_upload_says_what_was_added_and_audits_only_counts(client, app, make_staff):
    make_campaign(app, codes={"video_month": ["VIDEO-OLD-1"]})
    logged_in(client, make_staff, "marketer", "mia")
    response = upload(client, b"VIDEO-NEW-1\r\n\r\nVIDEO-NEW-2\nVIDEO-OLD-1\nVIDEO-NEW-1\n  \n")
    assert (response.status_code, response.headers["Location"]) == (303, PAGE)
    page = text(client.get(PAGE))
    assert "“腾讯视频VIP月卡”新增券码 2 个，重复 2 个，当前库存 3 个。" in page
    assert "VIDEO-NEW-1" not in page and "VIDEO-OLD-1" not in page
    assert campaign_actions(app) == [
        ("mia", "campaign.codes_add", f"campaign:{SLUG}/option:video_month",
         {"stock": 1}, {"stock": 3, "added": 2, "duplicates": 2})]


@pytest.mark.parametrize(("body", "filename", "content_type", "status", "message"), [
    (b"A-1\n" + b"X" * 129 + b"\nA-3\x07\n", "codes.txt", "text/plain", 400,
     "文件未导入任何券码：第 2 行超过 128 个字符；第 3 行含有控制字符或不可见字符"),
    (b"A-1\n" + b"Y" * 1_000_000 + b"\n", "codes.txt", "text/plain", 400,
     "文件未导入任何券码：第 2 行超过 128 个字符"),
    (b"\xff\xfe\x00A", "codes.txt", "text/plain", 400, "文件须为 UTF-8 编码的纯文本。"),
    (b"A-1,A-2", "codes.csv", "text/csv", 415, "请上传纯文本文件（.txt），每行一个券码。"),
    (b"", "", "text/plain", 400, "请选择要上传的券码文件。"),
])
def test_a_refused_upload_is_explained_next_to_the_file_input(client, app, make_staff, body,
                                                                filename, content_type,
                                                                status, message):
    make_campaign(app)
    logged_in(client, make_staff, "marketer")
    response = upload(client, body, filename=filename, content_type=content_type)
    assert response.status_code == status
    assert re.search(r'<input id="codes-file"[^>]*aria-invalid="true"[^>]*>\s*'
                     rf'<p class="error" id="codes-error" role="alert">{re.escape(message)}</p>',
                     text(response))
    with app.app_context():
        assert catalogue.stock_of([o.id for o in catalogue.find(SLUG).options]) == {}
    assert campaign_actions(app) == []


def test_a_file_over_the_limit_is_refused(client, app, make_staff):
    app.config["BENEFIT_CODES_MAX_BYTES"], limit = 64, app.config["BENEFIT_CODES_MAX_BYTES"]
    try:
        make_campaign(app)
        logged_in(client, make_staff, "marketer")
        response = upload(client, b"CODE-0001\n" * 10)
    finally:
        app.config["BENEFIT_CODES_MAX_BYTES"] = limit
    assert response.status_code == 413 and "文件超过" in text(response)


def test_a_request_over_the_apps_limit_is_a_console_page(client, app, make_staff):
    make_campaign(app)
    logged_in(client, make_staff, "marketer")
    response = upload(client, b"CODE\n" * (app.config["MAX_CONTENT_LENGTH"] // 5 + 1))
    assert response.status_code == 413
    assert "文件过大" in text(response) and "一次最多上传 2 MB" in text(response)


def test_an_upload_to_an_unknown_option_is_a_404(client, app, make_staff):
    make_campaign(app)
    logged_in(client, make_staff, "marketer")
    response = upload(client, b"A-1\n", option="nope")
    assert response.status_code == 404 and "该活动没有这个权益选项" in text(response)


# -- figures and the chart ---------------------------------------------------------------------

def test_the_campaign_page_shows_stock_redemptions_and_the_chart(client, app, make_staff,
                                                                  shopper):
    make_campaign(app, codes={"video_month": voucher_codes("video", 4),
                              "music_month": voucher_codes("music", 2)})
    answer = shopper.call("post", f"/api/campaigns/{SLUG}/redeem",
                          {"option": "video_month", "request_id": "r-1"})
    assert answer.status_code == 200, answer.json
    logged_in(client, make_staff, "viewer")
    page = text(client.get(PAGE))
    figures = dict(re.findall(r'<span class="figure-value">([^<]+)</span>'
                              r'<span class="figure-label">([^<]+)</span>', page))
    assert figures == {"5": "剩余库存（券码）", "1": "已领取", "2": "权益选项"}
    assert '<progress max="4" value="1"' in page
    assert f'<img src="{PAGE}/chart.svg" width="960" height="300"' in page
    today = datetime.now(SHANGHAI).date()
    assert f"<tr><td>{today.isoformat()}</td><td class=\"num\">1</td></tr>" in page

    chart = client.get(f"{PAGE}/chart.svg")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    svg = text(chart)
    assert svg.startswith("<svg") and "<script" not in svg
    assert today.strftime("%m-%d") in svg
    assert (today - timedelta(days=1)).strftime("%m-%d") in svg  # the campaign's first day, 0
    assert chart.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_no_chart_before_a_campaign_starts(client, app, make_staff):
    later = datetime.now(UTC) + timedelta(days=3)
    make_campaign(app, campaign_json(starts_at=later.isoformat(),
                                     ends_at=(later + timedelta(days=9)).isoformat()))
    logged_in(client, make_staff, "viewer")
    page = text(client.get(PAGE))
    assert "已发布 · 未开始" in page and "活动开始后，这里按天显示领取量" in page
    assert "chart.svg" not in page


def test_the_list_sums_each_campaigns_options(client, app, make_staff):
    make_campaign(app, codes={"video_month": voucher_codes("video", 3),
                              "music_month": voucher_codes("music", 4)})
    make_campaign(app, campaign_json("later-2027", title="明年的活动"), publish=False)
    logged_in(client, make_staff, "viewer")
    rows = re.findall(r'<td class="num">([\d,]+)</td>\s*<td class="num">([\d,]+)</td>',
                      text(client.get(LIST)))
    assert sorted(rows) == [("0", "0"), ("7", "0")]


def test_the_words_staff_read():
    assert wording.yuan(23000) == "¥230.00" and wording.yuan(123456789) == "¥1,234,567.89"
    assert wording.tier_names(["gold", "platinum", "diamond"]) == "金卡、白金卡、diamond"
