"""What an alert says: values, formats, the field mapping, the resend marker, the link."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from config.settings import BASE
from members.transactions.alerts import content
from members.transactions.alerts.content import (
    Alert,
    local_time,
    subscribe_message,
    template_message,
    yuan,
)
from wechat import messages

CONFIG = {**BASE, "WECHAT_TXN_TEMPLATE_ID": "tmpl-txn", "MINIAPP_TXN_TEMPLATE_ID": "tmpl-mp",
          "PUBLIC_BASE_URL": "https://wx.bank.example/"}
ALERT = Alert(
    delivery_id=42, channel="template", openid="oHolder", txn_id="T2026/11 21#1",
    card_last4="1234", amount_fen=12345, currency="CNY", direction="debit",
    merchant="Example Coffee", occurred_at=datetime(2026, 11, 21, 4, 0, tzinfo=UTC),
    balance_fen=987654,
)


def values(body):
    return {key: item["value"] for key, item in body["data"].items()}


@pytest.mark.parametrize(("fen", "shown"), [
    (0, "0.00元"), (5, "0.05元"), (100, "1.00元"), (12345, "123.45元"),
    (10**10, "100000000.00元"), (999_999_999_999, "9999999999.99元"),
])
def test_amounts_are_yuan_with_two_decimals_exactly(fen, shown):
    assert yuan(fen) == shown


def test_another_currency_keeps_its_code():
    assert yuan(12345, "USD") == "123.45 USD"


def test_times_are_shown_in_shanghai_whatever_zone_they_come_in():
    moment = datetime(2026, 12, 31, 16, 30, 5, tzinfo=UTC)
    assert local_time(moment) == "2027-01-01 00:30:05"
    assert local_time(moment.astimezone(timezone(timedelta(hours=-5)))) == "2027-01-01 00:30:05"


def test_the_template_message_fills_the_configured_keywords():
    body = template_message(ALERT, marked=False, config=CONFIG)
    assert body["touser"] == "oHolder"
    assert body["template_id"] == "tmpl-txn"
    assert body["client_msg_id"] == "txn-alert-42"
    assert values(body) == {
        "keyword1": "**** 1234", "keyword2": "支出", "keyword3": "123.45元",
        "keyword4": "Example Coffee", "keyword5": "2026-11-21 12:00:00",
        "keyword6": "9876.54元",
    }


def test_keyword_names_come_from_configuration_and_unnamed_fields_are_not_sent():
    config = {**CONFIG, "WECHAT_TXN_TEMPLATE_FIELDS": {
        "card": "character_string1", "amount": "amount2", "time": "time3"}}
    assert values(template_message(ALERT, False, config)) == {
        "character_string1": "**** 1234", "amount2": "123.45元", "time3": "2026-11-21 12:00:00"}


def test_a_credit_without_balance_leaves_the_balance_out():
    alert = replace(ALERT, direction="credit", balance_fen=None)
    shown = values(template_message(alert, False, CONFIG))
    assert shown["keyword2"] == "入账"
    assert "keyword6" not in shown


def test_a_marked_resend_says_so_in_the_configured_field_and_keeps_its_client_msg_id():
    first = template_message(ALERT, marked=False, config=CONFIG)
    again = template_message(ALERT, marked=True, config=CONFIG)
    assert values(again)["keyword2"] == "【补发提醒·非新交易】支出"
    assert {k: v for k, v in values(again).items() if k != "keyword2"} == \
        {k: v for k, v in values(first).items() if k != "keyword2"}
    assert again["client_msg_id"] == first["client_msg_id"]
    moved = {**CONFIG, "ALERT_RESEND_FIELD": "merchant"}
    assert values(template_message(ALERT, True, moved))["keyword4"] == \
        "【补发提醒·非新交易】Example Coffee"


FIRST_CLAIM = datetime(2026, 11, 21, 4, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(("after", "is_marked"), [
    (0, False), (539.999, False),  # WeChat drops the copy: it cannot show twice
    (540, True), (3600, True),  # 600 s window less the 60 s margin: it might show
])
def test_a_template_resend_is_marked_only_once_wechats_window_may_have_closed(after,
                                                                             is_marked):
    now = FIRST_CLAIM + timedelta(seconds=after)
    assert content.marked("template", True, FIRST_CLAIM, now, CONFIG) is is_marked


def test_the_window_and_its_margin_are_settings():
    wider = {**CONFIG, "ALERT_RESEND_WINDOW_MARGIN": 120}
    assert content.marked("template", True, FIRST_CLAIM,
                                FIRST_CLAIM + timedelta(seconds=500), wider)
    longer = {**CONFIG, "WECHAT_CLIENT_MSG_ID_WINDOW": 900}
    assert not content.marked("template", True, FIRST_CLAIM,
                                    FIRST_CLAIM + timedelta(seconds=800), longer)


def test_a_subscribe_resend_is_always_marked_and_a_first_send_never():
    assert content.marked("subscribe", True, FIRST_CLAIM, FIRST_CLAIM, CONFIG)
    later = FIRST_CLAIM + timedelta(days=1)
    assert not content.marked("template", False, FIRST_CLAIM, later, CONFIG)
    assert not content.marked("subscribe", False, FIRST_CLAIM, later, CONFIG)


def test_the_link_opens_the_holders_h5_page_for_this_transaction():
    body = template_message(ALERT, False, CONFIG)
    assert body["url"] == "https://wx.bank.example/m/transactions/T2026%2F11%2021%231"


def test_without_a_public_base_url_there_is_no_link():
    assert "url" not in template_message(ALERT, False, {**CONFIG, "PUBLIC_BASE_URL": ""})


def test_the_subscribe_message_fits_wechats_typed_values():
    long_name = "一家名字非常非常非常非常长的咖啡馆（西湖店）"
    alert = replace(ALERT, channel="subscribe", merchant=long_name)
    body = subscribe_message(alert, marked=True, config=CONFIG)
    assert body["template_id"] == "tmpl-mp"
    assert body["page"] == "pages/transactions/detail?txn=T2026%2F11%2021%231"
    assert "client_msg_id" not in body
    shown = values(body)
    assert shown == {
        "thing1": "**** 1234", "amount2": "123.45元", "thing3": "【补发提醒·非新交易】支出",
        "thing4": shown["thing4"], "time5": "2026-11-21 12:00:00",
    }
    assert len(shown["thing4"]) == 20
    assert shown["thing4"].endswith(messages.ELLIPSIS)


def test_no_more_than_the_last_four_digits_ever_show():
    for garbled in ("", "12", "abcd", None):
        body = template_message(replace(ALERT, card_last4=garbled), False, CONFIG)
        assert values(body)["keyword1"] == "**** ****"
