"""Message bodies in WeChat's shapes, with the platform's value rules."""

from __future__ import annotations

import pytest

from wechat import messages


def test_typed_values_are_cut_to_their_type_and_lose_control_characters():
    assert messages.typed_value("thing4", "咖啡" * 15) == "咖啡" * 9 + "咖…"
    assert len(messages.typed_value("thing4", "x" * 21)) == 20
    assert messages.typed_value("character_string2", "T" * 40).endswith(messages.ELLIPSIS)
    assert messages.typed_value("phrase1", "一二三四五六") == "一二三四…"
    assert messages.typed_value("thing1", "line\nbreak\x00") == "line break"
    assert messages.typed_value("amount3", "¥123.45") == "¥123.45"  # no length rule


def test_a_template_message_keeps_its_values_and_its_client_msg_id():
    body = messages.template("oUser", "tmpl", {"keyword1": "x" * 30}, client_msg_id="c-1",
                             url="https://bank.example/m/t")
    assert body == {"touser": "oUser", "template_id": "tmpl", "client_msg_id": "c-1",
                    "data": {"keyword1": {"value": "x" * 30}},  # WeChat cuts, not us
                    "url": "https://bank.example/m/t"}


def test_subscription_notices_apply_the_typed_rules():
    body = messages.oa_subscribe("oUser", "tmpl", {"thing1": "y" * 25}, client_msg_id="c",
                                 page="pages/index")
    assert body["data"]["thing1"]["value"] == "y" * 19 + messages.ELLIPSIS
    assert body["page"] == "pages/index"


@pytest.mark.parametrize("count", [1, 10_001])
def test_a_mass_send_takes_two_to_ten_thousand_openids(count):
    with pytest.raises(ValueError, match="2 to 10000"):
        messages.mass_text([f"o{n}" for n in range(count)], "hi", client_msg_id="m")
    assert messages.mass_text(["o1", "o2"], "hi", client_msg_id="m")["touser"] == ["o1", "o2"]


def test_client_msg_ids_are_at_most_64_bytes():
    with pytest.raises(ValueError, match="64 bytes"):
        messages.mass_text_to_tag(1, "x", client_msg_id="中" * 22)
    assert messages.mass_text_to_tag(7, "x", client_msg_id="m" * 64)["filter"]["tag_id"] == 7
