"""The campaign catalogue: the campaign JSON checked, written, published, stocked with codes,
and shown back to staff; through the console's JSON API with every role."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from campaigns.benefits import catalogue, redemption
from campaigns.benefits.models import Campaign, CampaignOption, VoucherCode
from campaigns.console.models import StaffAction
from core.db import db
from members.holders.models import CardHolder
from members.protection.pii import vault
from tests.fixtures.benefits import SLUG, campaign_json, make_campaign, voucher_codes

PATH = f"/admin/api/campaigns/{SLUG}"


def put(client, account, body, slug=SLUG):
    return client.put(f"/admin/api/campaigns/{slug}", json=body, headers=account.headers)


def upload(client, account, body: bytes | str, key="video_month", slug=SLUG,
           content_type="text/plain; charset=utf-8"):
    return client.post(f"/admin/api/campaigns/{slug}/options/{key}/codes", data=body,
                       content_type=content_type, headers=account.headers)


def audit_trail(app) -> list[tuple[str, str, str, dict | None, dict | None]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            select(StaffAction.username, StaffAction.action, StaffAction.target,
                   StaffAction.before, StaffAction.after)
            .where(StaffAction.action.like("campaign.%")).order_by(StaffAction.id))]


@pytest.fixture
def marketer(make_staff):
    return make_staff("marketer", "mia")


@pytest.fixture
def approver(make_staff):
    return make_staff("approver", "adam")


# -- the campaign JSON ---------------------------------------------------------------------------

def test_the_contracts_example_parses_to_utc_times():
    body = {"slug": "video-2026-12", "title": "腾讯视频VIP月卡 12月",
            "starts_at": "2026-12-01T00:00:00+08:00", "ends_at": "2026-12-31T23:59:59+08:00",
            "eligibility": {"tiers": ["gold", "platinum"], "min_spend_fen": 100000},
            "options": [{"key": "video_month", "title": "腾讯视频VIP月卡", "points": 0,
                         "limit_per_holder": 1},
                        {"key": "music_month", "title": "QQ音乐绿钻月卡", "points": 500,
                         "limit_per_holder": 2}]}
    spec = catalogue.parse(body, "video-2026-12")
    assert spec.starts_at == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert spec.ends_at == datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC)
    assert spec.eligibility == {"tiers": ["gold", "platinum"], "min_spend_fen": 100000}
    assert [(o.key, o.points, o.limit_per_holder) for o in spec.options] == [
        ("video_month", 0, 1), ("music_month", 500, 2)]


def test_slug_eligibility_and_limits_may_be_left_out():
    body = campaign_json(options=[{"key": "free", "title": "免费", "points": 0}])
    del body["slug"], body["eligibility"]
    spec = catalogue.parse(body, "from-the-path")
    assert (spec.slug, spec.eligibility, spec.options[0].limit_per_holder) == \
        ("from-the-path", {}, None)


@pytest.mark.parametrize(("change", "field"), [
    ({"colour": "red"}, "colour"),
    ({"slug": "another-slug"}, "slug"),
    ({"title": ""}, "title"),
    ({"title": 7}, "title"),
    ({"title": "x" * 129}, "title"),
    ({"title": "bell\x07"}, "title"),
    ({"starts_at": "2026-12-01T00:00:00"}, "starts_at"),  # no offset: 8 hours ambiguous
    ({"starts_at": "2026-12-01"}, "starts_at"),
    ({"starts_at": "next monday"}, "starts_at"),
    ({"starts_at": "1999-12-01T00:00:00+08:00"}, "starts_at"),
    ({"ends_at": "2026-11-01T00:00:00+08:00", "starts_at": "2026-12-01T00:00:00+08:00"},
     "ends_at"),
    ({"ends_at": "2026-12-01T00:00:00+08:00", "starts_at": "2026-12-01T00:00:00+08:00"},
     "ends_at"),
    ({"eligibility": []}, "eligibility"),
    ({"eligibility": {"tiers": "gold"}}, "eligibility.tiers"),
    ({"eligibility": {"tiers": []}}, "eligibility.tiers"),
    ({"eligibility": {"tiers": ["gold", 1]}}, "eligibility.tiers[1]"),
    ({"eligibility": {"tiers": ["gold", "gold"]}}, "eligibility.tiers[1]"),
    ({"eligibility": {"tiers": [" gold"]}}, "eligibility.tiers[0]"),
    ({"eligibility": {"min_spend_fen": -1}}, "eligibility.min_spend_fen"),
    ({"eligibility": {"min_spend_fen": 1000.0}}, "eligibility.min_spend_fen"),
    ({"eligibility": {"min_spend_fen": True}}, "eligibility.min_spend_fen"),
    ({"eligibility": {"cities": ["杭州"]}}, "eligibility.cities"),
    ({"options": []}, "options"),
    ({"options": {}}, "options"),
    ({"options": [{"key": "a", "title": "A", "points": 0}] * 2}, "options[1].key"),
    ({"options": [{"key": "Video", "title": "A", "points": 0}]}, "options[0].key"),
    ({"options": [{"key": "a" * 33, "title": "A", "points": 0}]}, "options[0].key"),
    ({"options": [{"key": "a", "title": "A", "points": -1}]}, "options[0].points"),
    ({"options": [{"key": "a", "title": "A", "points": "5"}]}, "options[0].points"),
    ({"options": [{"key": "a", "title": "A", "points": 2**31}]}, "options[0].points"),
    ({"options": [{"key": "a", "title": "A", "points": 0, "limit_per_holder": 0}]},
     "options[0].limit_per_holder"),
    ({"options": [{"key": "a", "title": "A", "points": 0, "limit_per_holder": None}]},
     "options[0].limit_per_holder"),
    ({"options": [{"key": "a", "title": "A", "points": 0, "stock": 5}]}, "options[0].stock"),
    ({"options": [{"key": "a", "points": 0}]}, "options[0].title"),
    ({"options": ["a"]}, "options[0]"),
])
def test_campaign_json_is_strict(change, field):
    with pytest.raises(catalogue.CampaignProblems) as caught:
        catalogue.parse(campaign_json(**change), SLUG)
    assert field in caught.value.problems, caught.value.problems
    assert caught.value.status == 400 and caught.value.code == "invalid_campaign"


def test_every_problem_is_reported_by_field_at_once():
    body = campaign_json(title="", starts_at="soon", colour="red",
                         options=[{"key": "OK", "title": "", "points": -5}])
    with pytest.raises(catalogue.CampaignProblems) as caught:
        catalogue.parse(body, "Bad Slug")
    assert set(caught.value.problems) == {"slug", "title", "starts_at", "colour",
                                          "options[0].key", "options[0].title",
                                          "options[0].points"}


@pytest.mark.parametrize("body", [None, [], "campaign", 7])
def test_a_body_that_is_no_object_is_refused(body):
    with pytest.raises(catalogue.CampaignProblems) as caught:
        catalogue.parse(body, SLUG)
    assert caught.value.problems == {"": "must be a JSON object"}


# -- writing and publishing through the API ------------------------------------------------------

def test_put_creates_a_draft_then_updates_it(client, app, marketer):
    body = campaign_json()
    created = put(client, marketer, body)
    assert (created.status_code, created.json) == (201, {"slug": SLUG, "state": "draft"})
    body["title"] = "腾讯视频VIP月卡 12月（加量）"
    updated = put(client, marketer, body)
    assert (updated.status_code, updated.json) == (200, {"slug": SLUG, "state": "draft"})
    with app.app_context():
        campaign = catalogue.find(SLUG)
        assert campaign.title == body["title"]
        assert (campaign.created_by, campaign.updated_by) == ("mia", "mia")


def test_get_shows_the_campaign_json_in_shanghai_time_with_state_stock_and_redeemed(
        client, app, make_staff):
    body = campaign_json(starts_at="2026-12-01T00:00:00+08:00",
                         ends_at="2026-12-31T23:59:59+08:00")
    make_campaign(app, body, publish=False, codes={"video_month": voucher_codes("v", 3)})
    answer = client.get(PATH, headers=make_staff("viewer").headers)
    assert answer.status_code == 200
    expected = json.loads(json.dumps(body))
    expected["state"] = "draft"
    expected["options"][0].update(stock=3, redeemed=0)
    expected["options"][1].update(stock=0, redeemed=0)
    assert answer.json == expected


def test_a_draft_may_change_everything_and_drop_options_without_codes(client, app, marketer):
    make_campaign(app, publish=False)
    body = campaign_json(starts_at="2027-01-01T00:00:00+08:00",
                         ends_at="2027-01-31T00:00:00+08:00", eligibility={},
                         options=[{"key": "sports_month", "title": "体育会员", "points": 50}])
    assert put(client, marketer, body).status_code == 200
    with app.app_context():
        assert [o.key for o in catalogue.find(SLUG).options] == ["sports_month"]
        assert db.session.scalar(select(func.count()).select_from(CampaignOption)) == 1


def test_a_draft_keeps_options_that_hold_codes(client, app, marketer):
    make_campaign(app, publish=False, codes={"music_month": ["M-1"]})
    body = campaign_json()
    body["options"] = body["options"][:1]
    refused = put(client, marketer, body)
    assert refused.status_code == 409 and refused.json["error"] == "option_has_codes"
    assert "music_month" in refused.json["message"]


def test_options_keep_the_order_they_are_written_in(client, app, marketer):
    make_campaign(app, publish=False)
    body = campaign_json()
    body["options"].reverse()
    put(client, marketer, body)
    with app.app_context():
        assert [o.key for o in catalogue.find(SLUG).options] == ["music_month", "video_month"]


def test_publish_then_a_published_campaign_changes_only_its_end_titles_and_limits(
        client, app, marketer, approver):
    make_campaign(app, publish=False)
    answer = client.post(f"{PATH}/publish", headers=approver.headers)
    assert (answer.status_code, answer.json) == (200, {"state": "published"})
    body = campaign_json()
    with app.app_context():
        body["starts_at"] = catalogue.describe(catalogue.find(SLUG))["starts_at"]
    body["title"] = "新标题"
    body["ends_at"] = "2030-01-01T00:00:00+08:00"
    body["options"][0]["title"] = "新的选项标题"
    body["options"][1]["limit_per_holder"] = 5
    del body["options"][0]["limit_per_holder"]  # no limit any more
    body["options"].reverse()  # reordering is no change of keys
    changed = put(client, marketer, body)
    assert (changed.status_code, changed.json) == (200, {"slug": SLUG, "state": "published"})
    with app.app_context():
        shown = catalogue.describe(catalogue.find(SLUG))
    assert shown["ends_at"] == "2030-01-01T00:00:00+08:00" and shown["title"] == "新标题"
    assert shown["options"] == body["options"]


@pytest.mark.parametrize(("change", "code", "field"), [
    (lambda body: body["options"].pop(), "option_keys_fixed", "options"),
    (lambda body: body["options"].append({"key": "new", "title": "新", "points": 0}),
     "option_keys_fixed", "options"),
    (lambda body: body["options"][0].update(key="renamed"), "option_keys_fixed", "options"),
    (lambda body: body["options"][1].update(points=400), "published_fields_fixed",
     "options[1].points"),
    (lambda body: body.update(eligibility={}), "published_fields_fixed", "eligibility"),
    (lambda body: body.update(starts_at="2020-01-01T00:00:00+08:00"), "published_fields_fixed",
     "starts_at"),
])
def test_a_published_campaign_keeps_its_keys_prices_start_and_eligibility(
        client, app, marketer, change, code, field):
    body = make_campaign(app)
    before = client.get(PATH, headers=marketer.headers).json
    edited = json.loads(json.dumps(body))
    change(edited)
    refused = put(client, marketer, edited)
    assert refused.status_code == 409 and refused.json["error"] == code
    assert field in refused.json["fields"]
    assert client.get(PATH, headers=marketer.headers).json == before


def test_publishing_twice_answers_the_same_and_audits_once(client, app, approver):
    make_campaign(app, publish=False)
    for _ in range(2):
        answer = client.post(f"{PATH}/publish", headers=approver.headers)
        assert (answer.status_code, answer.json) == (200, {"state": "published"})
    assert audit_trail(app) == [("adam", "campaign.publish", f"campaign:{SLUG}",
                                 {"state": "draft"}, {"state": "published"})]


def test_unknown_campaigns_and_options_are_404(client, make_staff):
    admin = make_staff("admin")
    assert client.get(PATH, headers=admin.headers).status_code == 404
    assert client.post(f"{PATH}/publish", headers=admin.headers).json["error"] == \
        "unknown_campaign"
    assert upload(client, admin, "A-1").status_code == 404


def test_unknown_option_codes_are_404(client, app, marketer):
    make_campaign(app)
    answer = upload(client, marketer, "A-1", key="nope")
    assert (answer.status_code, answer.json["error"]) == (404, "unknown_option")


def test_changes_are_audited_with_before_and_after(client, app, marketer, approver):
    body = campaign_json()
    put(client, marketer, body)
    put(client, marketer, body)  # no change: nothing to audit
    body["title"] = "改名"
    put(client, marketer, body)
    client.post(f"{PATH}/publish", headers=approver.headers)
    upload(client, marketer, "SECRET-CODE-1\nSECRET-CODE-2\nSECRET-CODE-1\n")
    trail = audit_trail(app)
    assert [(who, action) for who, action, *_ in trail] == [
        ("mia", "campaign.create"), ("mia", "campaign.update"), ("adam", "campaign.publish"),
        ("mia", "campaign.codes_add")]
    _, _, _, before, after = trail[0]
    assert before is None and after["title"] == "腾讯视频VIP月卡 12月"
    assert trail[1][3]["title"] == "腾讯视频VIP月卡 12月" and trail[1][4]["title"] == "改名"
    assert trail[3][2:] == (f"campaign:{SLUG}/option:video_month", {"stock": 0},
                            {"stock": 2, "added": 2, "duplicates": 1})
    assert "SECRET-CODE" not in json.dumps(trail)


def test_refused_changes_are_not_audited(client, app, marketer):
    put(client, marketer, campaign_json(title=""))
    assert audit_trail(app) == []


@pytest.mark.parametrize(("body", "error"), [
    (b'{"slug": "video-2026-12",', "invalid_json"),
    (b'{"title": "a", "title": "b"}', "invalid_json"),
    (b'{"title": NaN}', "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
])
def test_malformed_json_is_refused(client, app, marketer, body, error):
    answer = client.put(PATH, data=body, content_type="application/json",
                        headers=marketer.headers)
    assert (answer.status_code, answer.json["error"]) == (400, error)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_unknown_fields_are_refused_by_name(client, marketer):
    answer = put(client, marketer, campaign_json(budget=100))
    assert answer.status_code == 400 and answer.json["fields"] == {"budget": "is not a known field"}


def test_a_huge_campaign_body_is_413(client, app, marketer):
    body = campaign_json(title="x" * app.config["API_MAX_BYTES"])
    answer = put(client, marketer, body)
    assert (answer.status_code, answer.json["error"]) == (413, "body_too_large")


# -- voucher codes -------------------------------------------------------------------------------

def test_codes_upload_skips_blank_lines_and_counts_duplicates(client, app, marketer):
    make_campaign(app, codes={"video_month": ["V-1", "V-2"]})
    body = "\ufeffV-3\r\n\n   \nV-2\n  V-4  \nV-3\nV-5\t\n\n"
    answer = upload(client, marketer, body.encode())
    assert (answer.status_code, answer.json) == (200, {"added": 3, "duplicates": 2, "stock": 5})
    again = upload(client, marketer, body.encode())
    assert again.json == {"added": 0, "duplicates": 5, "stock": 5}
    with app.app_context():
        option = catalogue.find_option(catalogue.find(SLUG), "video_month")
        stored = [vault().decrypt(row, catalogue.CODE_CONTEXT)
                  for row in db.session.scalars(select(VoucherCode.code)
                                                .where(VoucherCode.option_id == option.id))]
    assert sorted(stored) == ["V-1", "V-2", "V-3", "V-4", "V-5"]


def test_the_same_code_may_stock_two_options(client, app, marketer):
    make_campaign(app, codes={"video_month": ["SHARED-1"]})
    assert upload(client, marketer, "SHARED-1", key="music_month").json["added"] == 1


def test_codes_are_encrypted_at_rest(client, app, marketer):
    make_campaign(app)
    upload(client, marketer, "PLAIN-CODE-12345\n")
    with app.app_context():
        raw = db.session.execute(text("SELECT code, code_index FROM voucher_code")).one()
    assert raw.code.startswith("v1.") and "PLAIN-CODE-12345" not in raw.code
    assert "PLAIN-CODE-12345" not in raw.code_index


@pytest.mark.parametrize(("line", "reason"), [
    ("x" * 1_000_000, "line 2: longer than 128 characters"),
    ("x" * 129, "line 2: longer than 128 characters"),
    ("BAD\x00CODE", "line 2: holds a control or invisible character"),
    ("BAD\x1bCODE", "line 2: holds a control or invisible character"),
    ("BAD\u200bCODE", "line 2: holds a control or invisible character"),
    ("BAD\rCODE", "line 2: holds a control or invisible character"),
])
def test_a_bad_line_refuses_the_whole_file_naming_its_line(client, app, marketer, line, reason):
    make_campaign(app)
    answer = upload(client, marketer, f"GOOD-1\n{line}\nGOOD-2\n".encode())
    assert (answer.status_code, answer.json["error"]) == (400, "invalid_codes")
    assert reason in answer.json["message"]
    assert "BAD" not in answer.json["message"] and "xxx" not in answer.json["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VoucherCode)) == 0


def test_many_bad_lines_are_counted_after_the_first_ten(client, app, marketer):
    make_campaign(app)
    answer = upload(client, marketer, "\n".join(["\x01"] * 25))
    assert answer.status_code == 400 and answer.json["message"].endswith("; and 15 more")


def test_codes_must_be_utf8_text_plain(client, app, marketer):
    make_campaign(app)
    assert upload(client, marketer, b"\xff\xfeA\x00").json["error"] == "invalid_codes"
    wrong_type = upload(client, marketer, b'["A-1"]', content_type="application/json")
    assert (wrong_type.status_code, wrong_type.json["error"]) == (415, "unsupported_media_type")


def test_a_huge_codes_body_is_413_and_stores_nothing(client, app, marketer):
    make_campaign(app)
    line = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\n"
    body = line * (app.config["BENEFIT_CODES_MAX_BYTES"] // len(line) + 1)
    answer = upload(client, marketer, body)
    assert (answer.status_code, answer.json["error"]) == (413, "body_too_large")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(VoucherCode)) == 0


# -- figures -------------------------------------------------------------------------------------

def test_figures_count_stock_redeemed_and_redemptions_per_shanghai_day(app, people):
    body = campaign_json(eligibility={})
    make_campaign(app, body, codes={"video_month": voucher_codes("v", 5)})
    # 23:30 and 00:30 Beijing time: two days there, one day in UTC.
    late = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    with app.app_context():
        holders = list(db.session.scalars(select(CardHolder).order_by(CardHolder.id)))
        campaign = catalogue.find(SLUG)
        campaign.starts_at = late - timedelta(days=1)
        for number, moment in enumerate([late, late + timedelta(hours=1)]):
            redemption.redeem(holders[number], SLUG, "video_month", f"r{number}", now=moment)
        figures = catalogue.figures(campaign)
    assert [(o.key, o.stock, o.redeemed) for o in figures.options] == [
        ("video_month", 3, 2), ("music_month", 0, 0)]
    assert figures.per_day == [(date(2026, 12, 1), 1), (date(2026, 12, 2), 1)]


# -- roles ---------------------------------------------------------------------------------------

ENDPOINTS = {
    "put": ("marketer", lambda client, headers: client.put(PATH, json=campaign_json(),
                                                           headers=headers)),
    "publish": ("approver", lambda client, headers: client.post(f"{PATH}/publish",
                                                                headers=headers)),
    "codes": ("marketer", lambda client, headers: client.post(
        f"{PATH}/options/video_month/codes", data="C-1\n", content_type="text/plain",
        headers=headers)),
    "get": ("viewer", lambda client, headers: client.get(PATH, headers=headers)),
}
LADDER = ["viewer", "marketer", "approver", "admin"]
OK = {"put": 200, "publish": 200, "codes": 200, "get": 200}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", [*LADDER, "manager", None])
def test_every_admin_call_checks_the_role(client, app, make_staff, endpoint, role):
    make_campaign(app, publish=False)
    needed, call = ENDPOINTS[endpoint]
    headers = make_staff(role).headers if role else {}
    answer = call(client, headers)
    if role is None:
        assert (answer.status_code, answer.json["error"]) == (401, "missing_token")
    elif role in LADDER and LADDER.index(role) >= LADDER.index(needed):
        assert answer.status_code == OK[endpoint], answer.json
    else:
        assert (answer.status_code, answer.json["error"]) == (403, "forbidden")
        with app.app_context():
            campaign = catalogue.find(SLUG)
            assert campaign.state == "draft" and campaign.updated_by == "fixture"
            assert db.session.scalar(select(func.count()).select_from(VoucherCode)) == 0


def test_a_wrong_token_is_401(client, app):
    make_campaign(app)
    answer = client.get(PATH, headers={"Authorization": "Bearer not-a-token"})
    assert (answer.status_code, answer.json["error"]) == (401, "invalid_token")


def test_a_member_token_opens_no_admin_call(client, app, member):
    make_campaign(app)
    assert client.get(PATH, headers=member.headers).status_code == 401
