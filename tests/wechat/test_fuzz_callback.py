"""Fuzzing the WeChat callback: its parser, then the endpoint with valid signatures.

Every example must get the contract's answer (never a 5xx), and when it is
refused nothing of the domain may have changed.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from campaigns.attribution.models import QrScan
from members.holders.models import Follower
from members.transactions.alerts.models import TemplateJobResult
from tests.fixtures.fuzzing import FUZZ, RAW, TEXT, row_counts
from tests.fixtures.wechat import wechat_xml
from wechat.inbound import BadMessage, Inbound, parse

DOMAIN = (Follower, QrScan, TemplateJobResult)
pytestmark = pytest.mark.usefixtures("app_context")


@FUZZ
@given(body=RAW)
def test_the_parser_answers_only_a_push_or_bad_message(body):
    try:
        inbound = parse(body)
    except BadMessage:
        return
    assert isinstance(inbound, Inbound) and inbound.openid


@FUZZ
@given(body=RAW, mode=st.sampled_from(["plain", "safe"]))
def test_signed_callbacks_never_fail_and_refusals_change_nothing(pusher, body, mode):
    before = row_counts(*DOMAIN)
    try:
        response = pusher.post(body, mode=mode)
    except UnicodeDecodeError:  # the test's own encrypter takes text; plain mode covers it
        return
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400, 413), response.get_data()[:200]
    if response.status_code != 200:
        assert row_counts(*DOMAIN) == before


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["signature", "timestamp", "nonce", "echostr",
                                              "encrypt_type", "msg_signature"]),
                             TEXT, max_size=6),
       method=st.sampled_from(["get", "post"]))
def test_forged_queries_never_fail(client, query, method):
    before = row_counts(*DOMAIN)
    response = getattr(client, method)("/wechat/callback", query_string=query,
                                       data=wechat_xml({"FromUserName": "oFuzz"}))
    assert response.status_code in (200, 400, 403), response.get_data()[:200]
    assert row_counts(*DOMAIN) == before


