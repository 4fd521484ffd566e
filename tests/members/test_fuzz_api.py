"""Fuzzing every JSON endpoint: login, phone, bind start and confirm, the signed feed.

Every example must get the contract's answer (a status below 500, errors in the
one error shape), and when it is refused nothing of the domain may have changed.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from members.holders.models import BindChallenge, Binding, MemberSession
from members.transactions.alerts.models import Delivery
from members.transactions.models import PointEntry, Transaction
from tests.fixtures.feed import item, post_feed
from tests.fixtures.fuzzing import FUZZ, JSON_VALUES, row_counts

DOMAIN = (MemberSession, BindChallenge, Binding, Transaction, Delivery, PointEntry)
pytestmark = pytest.mark.usefixtures("app_context")


def _json_or_raw(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _is_error_shape(response) -> bool:
    body = response.get_json(silent=True)
    return isinstance(body, dict) and set(body) == {"error", "message"}


BODIES = st.one_of(st.binary(max_size=200), JSON_VALUES,
                   st.fixed_dictionaries({}, optional={
                       "code": JSON_VALUES, "card_no": JSON_VALUES, "phone": JSON_VALUES,
                       "challenge_id": JSON_VALUES, "otp": JSON_VALUES}))


@FUZZ
@given(body=BODIES, path=st.sampled_from(["/api/miniapp/login", "/api/miniapp/phone",
                                          "/api/members/bind/start",
                                          "/api/members/bind/confirm"]))
def test_member_endpoints_never_fail_and_refusals_change_nothing(client, member, body, path):
    before = row_counts(*DOMAIN)
    response = client.post(path, data=_json_or_raw(body), content_type="application/json",
                           headers=member.headers)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.get_data()[:200]
    if response.status_code >= 400:
        assert _is_error_shape(response), response.get_data()[:200]
        assert row_counts(*DOMAIN) == before


FEED_ITEM_FIELDS = st.dictionaries(
    st.sampled_from(["txn_id", "card_no", "amount_fen", "currency", "direction", "merchant",
                     "channel", "occurred_at", "balance_fen", "extra"]), JSON_VALUES, max_size=4)


@FUZZ
@given(overrides=st.lists(FEED_ITEM_FIELDS, min_size=1, max_size=3), raw=st.binary(max_size=80),
       use_raw=st.booleans())
def test_the_feed_never_fails_and_stores_all_or_nothing(client, app, card, overrides, raw,
                                                        use_raw):
    before = row_counts(*DOMAIN)
    batch = [{**item(900 + n, card), **fields} for n, fields in enumerate(overrides)]
    response = post_feed(client, app, raw=raw if use_raw else _json_or_raw(batch))
    event(f"status {response.status_code}")
    assert response.status_code in (202, 400, 413), response.get_data()[:200]
    if response.status_code != 202:
        assert _is_error_shape(response)
        assert row_counts(*DOMAIN) == before
