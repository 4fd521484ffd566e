"""The funnel's staff API: who may read which funnel, the period's validation, the ranking as
JSON and as CSV."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from campaigns.console.models import StaffAction
from core.db import db
from tests.campaigns.attribution import people as p
from tests.fixtures.channels import make_channel

FUNNEL = "/admin/api/channels/{}/funnel"
RANKING = "/admin/api/funnel/ranking"


@pytest.fixture
def managers(app, make_staff):
    """Two managers of branch 0101, each with a channel; mgr_a's brought one bound follower
    on 2026-11-01 (Shanghai); a scene with a formula-like name brought one more."""
    mine, theirs = make_staff("manager", "mgr_a"), make_staff("manager", "mgr_b")
    make_channel(app, "mgr_a_code", "manager", "张三", staff="mgr_a")
    make_channel(app, "mgr_b_code", "manager", "李四", staff="mgr_b")
    with app.app_context():
        p.follower("fa", "mgr_a_code", p.day(0))
        p.binding(p.holder(), "oa", "fa", p.day(0, hours=1))
        p.scan("fa", "mgr_a_code", p.day(0), followed=True)
        p.follower("fx", "=HYPERLINK(1)", p.day(0))
        db.session.commit()
    return mine, theirs


def test_a_viewer_reads_any_funnel_and_the_answer_has_the_contracts_keys(client, make_staff,
                                                                         managers):
    viewer = make_staff("viewer")
    answer = client.get(FUNNEL.format("mgr_a_code"), headers=viewer.headers)
    assert answer.status_code == 200
    assert answer.json == {"scans": 1, "follows": 1, "binds": 1, "transacting": 0,
                           "redemptions": 0}
    # A scene the console never made is still somebody's channel.
    unnamed = client.get(FUNNEL.format("poster_2025"), headers=viewer.headers)
    assert unnamed.status_code == 200 and unnamed.json["follows"] == 0


def test_a_manager_reads_only_its_own_funnel_and_a_try_at_anothers_is_audited(
        app, client, managers):
    mine, theirs = managers
    assert client.get(FUNNEL.format("mgr_a_code"), headers=mine.headers).json["binds"] == 1
    refused = client.get(FUNNEL.format("mgr_a_code"), headers=theirs.headers)
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    with app.app_context():
        entry = db.session.scalars(select(StaffAction).where(
            StaffAction.action == "forbidden")).one()
        assert entry.target == "path:/admin/api/channels/mgr_a_code/funnel"
    assert client.get(FUNNEL.format("nobody"), headers=mine.headers).status_code == 404
    assert client.get(RANKING, headers=mine.headers).status_code == 403
    assert client.get(FUNNEL.format("mgr_a_code")).status_code == 401


@pytest.mark.parametrize("query", [
    {"from": "2026-13-01"}, {"to": "yesterday"}, {"from": "2026-11-02", "to": "2026-11-01"},
    {"from": "20261101"}, {"to": "1900-01-01"},
])
def test_bad_dates_are_400(client, make_staff, managers, query):
    viewer = make_staff("viewer")
    for path in (FUNNEL.format("mgr_a_code"), RANKING):
        answer = client.get(path, query_string=query, headers=viewer.headers)
        assert answer.status_code == 400 and answer.json["error"] == "invalid_period"


def test_a_period_is_of_shanghai_days(client, make_staff, managers):
    viewer = make_staff("viewer")

    def follows(first, last):
        return client.get(FUNNEL.format("mgr_a_code"), headers=viewer.headers,
                          query_string={"from": first, "to": last}).json["follows"]

    assert follows("2026-11-01", "2026-11-01") == 1
    assert follows("2026-11-02", "") == 0
    assert follows("", "2026-10-31") == 0


def test_the_ranking_as_json_and_its_filters(client, make_staff, managers):
    viewer = make_staff("viewer")
    answer = client.get(RANKING, headers=viewer.headers)
    assert answer.status_code == 200 and answer.json["by"] == "binds"
    rows = answer.json["channels"]
    assert [row["code"] for row in rows] == ["mgr_a_code", "=HYPERLINK(1)", "mgr_b_code"]
    assert rows[0] == {"code": "mgr_a_code", "name": "张三", "kind": "manager",
                       "branch": "0101", "scans": 1, "follows": 1, "binds": 1,
                       "transacting": 0, "redemptions": 0}
    other = client.get(RANKING, query_string={"branch": "0202"}, headers=viewer.headers)
    assert other.json["channels"] == []
    for bad in ({"by": "scans"}, {"branch": "01 01"}, {"format": "xlsx"}):
        refused = client.get(RANKING, query_string=bad, headers=viewer.headers)
        assert refused.status_code == 400 and refused.json["error"] == "invalid_filter"


def test_the_ranking_as_csv_is_safe_in_a_spreadsheet(client, make_staff, managers):
    viewer = make_staff("viewer")
    answer = client.get(RANKING, query_string={"format": "csv", "by": "transacting"},
                        headers=viewer.headers)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    text = answer.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0] == ["code", "name", "kind", "branch", "scans", "follows", "binds",
                       "transacting", "redemptions"]
    assert rows[1] == ["mgr_a_code", "张三", "manager", "0101", "1", "1", "1", "0", "0"]
    assert ["'=HYPERLINK(1)", "", "", "", "0", "1", "0", "0", "0"] in rows
