"""Fuzzing the benefits' JSON endpoints: a holder's redemption and the staff's campaign API.

Every example must get the contract's answer (a status below 500, errors in the one
error shape) and, when refused, change nothing: no redemption, no ledger entry, no
code claimed, no campaign written.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from campaigns.benefits.models import Campaign, CampaignOption, Redemption, VoucherCode
from core.db import db
from members.transactions.models import PointEntry
from tests.fixtures.benefits import SLUG, campaign_json, make_campaign, voucher_codes
from tests.fixtures.fuzzing import FUZZ, JSON_VALUES, TEXT, row_counts

DOMAIN = (Campaign, CampaignOption, VoucherCode, Redemption, PointEntry)
pytestmark = pytest.mark.usefixtures("app_context")


def _body(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _claimed() -> int:
    return db.session.scalar(select(func.count()).select_from(VoucherCode)
                             .where(VoucherCode.claimed_at.is_not(None)))


def _error_shape(response) -> bool:
    body = response.get_json(silent=True)
    return isinstance(body, dict) and {"error", "message"} <= set(body)


@pytest.fixture
def stocked(app):
    make_campaign(app, codes={"video_month": voucher_codes("FUZZ", 5)})


REDEEM_BODIES = st.one_of(
    st.binary(max_size=120), JSON_VALUES,
    st.fixed_dictionaries({}, optional={"option": st.one_of(JSON_VALUES, st.just("video_month")),
                                        "request_id": st.one_of(TEXT, JSON_VALUES),
                                        "extra": JSON_VALUES}))


@FUZZ
@given(body=REDEEM_BODIES, slug=st.one_of(st.just(SLUG), TEXT.filter(lambda s: "/" not in s)))
def test_redeem_never_fails_and_refusals_change_nothing(client, member, stocked, body, slug):
    before, claimed = row_counts(*DOMAIN), _claimed()
    response = client.post(f"/api/campaigns/{slug}/redeem", data=_body(body),
                           content_type="application/json", headers=member.headers)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.get_data()[:200]
    if response.status_code >= 400:
        assert _error_shape(response), response.get_data()[:200]
        assert (row_counts(*DOMAIN), _claimed()) == (before, claimed)


CAMPAIGN_FIELDS = st.dictionaries(
    st.sampled_from(["slug", "title", "starts_at", "ends_at", "eligibility", "options", "x"]),
    JSON_VALUES, max_size=3)


@pytest.fixture
def marketer(make_staff) -> dict[str, str]:
    """One marketer for all of a test's examples (the tables are emptied per test)."""
    return make_staff("marketer").headers


@FUZZ
@given(overrides=CAMPAIGN_FIELDS, raw=st.binary(max_size=80), use_raw=st.booleans())
def test_the_campaign_api_never_fails_and_refusals_write_nothing(client, marketer, overrides,
                                                                  raw, use_raw):
    before = row_counts(Campaign, CampaignOption)
    body = raw if use_raw else _body({**campaign_json(), **overrides})
    response = client.put(f"/admin/api/campaigns/{SLUG}", data=body,
                          content_type="application/json", headers=marketer)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.get_data()[:200]
    if response.status_code >= 400:
        assert _error_shape(response), response.get_data()[:200]
        assert row_counts(Campaign, CampaignOption) == before
