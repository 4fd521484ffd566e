"""`flask wechat-sim`: serving, `send` and `verify-url`, with the account from app config."""

from __future__ import annotations

import pytest
from flask import Flask
from wechatpy import parse_message

from tests.fixtures.simkit import (
    AES_KEY,
    MP_APP_ID,
    MP_SECRET,
    OA_APP_ID,
    OA_SECRET,
    ORIGINAL_ID,
    TEMPLATE,
    TOKEN,
    Receiver,
)
from wechat.sim.cli import sim_config_from, wechat_sim_command
from wechat.sim.server import SimServer

SETTINGS = {
    "WECHAT_APP_ID": OA_APP_ID,
    "WECHAT_APP_SECRET": OA_SECRET,
    "WECHAT_TOKEN": TOKEN,
    "WECHAT_AES_KEY": AES_KEY,
    "WECHAT_ORIGINAL_ID": ORIGINAL_ID,
    "MINIAPP_APP_ID": MP_APP_ID,
    "MINIAPP_APP_SECRET": MP_SECRET,
    "WECHAT_TXN_TEMPLATE_ID": TEMPLATE,
}


@pytest.fixture
def cli():
    app = Flask("cli-test")
    app.config.update(SETTINGS)
    app.cli.add_command(wechat_sim_command)
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["wechat-sim", *args])


def test_config_comes_from_the_app_settings() -> None:
    config = sim_config_from(SETTINGS, "http://127.0.0.1:5000/wechat/callback", "compat")
    assert config.oa_app_id == OA_APP_ID and config.mp_app_secret == MP_SECRET
    assert config.template_ids == (TEMPLATE,) and config.callback_mode == "compat"


def test_serving_prints_the_base_url(cli, monkeypatch) -> None:
    def interrupted(self: SimServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SimServer, "serve_forever", interrupted)
    result = cli("--port", "0", "--callback-mode", "plain")
    assert result.exit_code == 0, result.output
    assert "WeChat simulator on http://127.0.0.1:" in result.output
    assert "plain mode" in result.output


def test_send_prints_status_and_decrypted_reply(cli, receiver: Receiver, start_sim) -> None:
    receiver.reply = lambda xml: (
        200,
        receiver.crypto.encrypt_message(
            f"<xml><ToUserName><![CDATA[{parse_message(xml).source}]]></ToUserName>"
            f"<FromUserName><![CDATA[{ORIGINAL_ID}]]></FromUserName>"
            "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[积分 100]]></Content></xml>",
            "n",
        ).encode(),
    )
    sim = start_sim()
    port = sim.url.rsplit(":", 1)[1]
    result = cli(
        "--port", port, "--callback-url", receiver.url,
        "send", "--type", "subscribe", "--from", "o_cli", "--key", "card_ABC",
        "--unionid", "u_cli",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "delivery 1: HTTP 200" in result.output
    assert "encrypted reply" in result.output and "积分 100" in result.output
    event = parse_message(receiver.pushes[0]["xml"])
    assert event.event == "subscribe_scan" and event.source == "o_cli"
    mirrored = sim.server.state.user("o_cli")
    assert mirrored["subscribed"] and mirrored["unionid"] == "u_cli"
    assert mirrored["qr_scene_str"] == "card_ABC"


def test_send_exits_non_zero_when_wechat_would_refuse(cli, receiver: Receiver) -> None:
    receiver.reply = lambda xml: (500, b"boom")
    result = cli(
        "send", "--url", receiver.url, "--mode", "plain", "--type", "click", "--key", "K",
        "--deliveries", "2", "--no-mirror",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "delivery 2: HTTP 500" in result.output and "refused by WeChat" in result.output
    assert receiver.pushes[0]["query"].get("encrypt_type") is None


def test_verify_url_reports_refusal(cli, receiver: Receiver) -> None:
    result = cli("verify-url", "--url", receiver.url, "--echostr", "123")
    assert result.exit_code == 1 and "refused" in result.output


def test_send_mirrors_which_window_the_push_opens(cli, receiver: Receiver, start_sim) -> None:
    """A message opens the 48 h customer-service window, a click or scan the one-minute one,
    a menu link (VIEW) neither."""
    sim = start_sim()
    port = sim.url.rsplit(":", 1)[1]
    state = sim.server.state

    def send(push_type: str, openid: str) -> dict:
        result = cli("--port", port, "--callback-url", receiver.url,
                     "send", "--type", push_type, "--from", openid)  # fmt: skip
        assert result.exit_code == 0, result.output
        return state.user(openid)

    now = state.clock.now()
    for push_type in ("click", "scan"):
        user = send(push_type, f"o_{push_type}")
        assert user["last_event"] >= now and user["last_interaction"] is None
    user = send("text", "o_text")
    assert user["last_interaction"] >= now and user["last_event"] is None
    sim.sim("/users", {"openid": "o_view"})
    assert send("view", "o_view")["last_event"] is None
