"""The callback sender judges replies like WeChat and retries with the identical body."""

from __future__ import annotations

import time

import pytest
from wechatpy import parse_message
from wechatpy.replies import TextReply, create_reply

from tests.fixtures.simkit import AES_KEY, OA_APP_ID, ORIGINAL_ID, TOKEN, Receiver
from wechat.sim import CallbackSender

USER = "oUSER0000000000000000000001"


def _sender(receiver: Receiver, timeout: float = 2.0) -> CallbackSender:
    return CallbackSender(receiver.url, TOKEN, AES_KEY, OA_APP_ID, ORIGINAL_ID, timeout)


def _echo(xml: str) -> str:
    message = parse_message(xml)
    return create_reply(f"echo: {message.content}", message).render()


@pytest.mark.parametrize("mode", ["safe", "compat", "plain"])
def test_plaintext_reply_is_accepted_in_every_mode(receiver: Receiver, mode: str) -> None:
    receiver.reply = lambda xml: (200, _echo(xml).encode())
    sender = _sender(receiver)
    result = sender.send(sender.pushes.text(USER, "hi <there>"), mode)
    assert result.accepted and not result.encrypted
    assert result.reply["Content"] == "echo: hi <there>"
    assert result.statuses == [200]
    query = receiver.pushes[0]["query"]
    assert query["openid"] == USER
    assert ("msg_signature" in query) == (mode != "plain")


def test_unescaped_cdata_terminator_in_a_reply_is_refused(receiver: Receiver) -> None:
    """wechatpy does not escape `]]>` (wechat-platform.md §6): echoing it breaks the reply."""
    receiver.reply = lambda xml: (200, _echo(xml).encode())
    sender = _sender(receiver)
    push = sender.pushes.text(USER, "a]]>b")
    assert "a]]]]><![CDATA[>b" in push  # the push itself splits the CDATA correctly
    result = sender.send(push, "plain")
    assert not result.accepted and "XML" in result.problem


def test_encrypted_reply_is_verified_and_decrypted(receiver: Receiver) -> None:
    def encrypted(xml: str) -> tuple[int, bytes]:
        return 200, receiver.crypto.encrypt_message(_echo(xml), "n0nce").encode()

    receiver.reply = encrypted
    sender = _sender(receiver)
    result = sender.send(sender.pushes.text(USER, "你好"), "safe")
    assert result.accepted and result.encrypted
    assert result.reply["Content"] == "echo: 你好"
    assert result.reply["ToUserName"] == USER and result.reply["FromUserName"] == ORIGINAL_ID


def test_encrypted_reply_in_plain_mode_is_refused(receiver: Receiver) -> None:
    receiver.reply = lambda xml: (200, receiver.crypto.encrypt_message(_echo(xml), "n").encode())
    sender = _sender(receiver)
    result = sender.send(sender.pushes.text(USER, "hi"), "plain")
    assert not result.accepted and "plaintext" in result.problem


@pytest.mark.parametrize("body", [b"success", b"", b"  success\n"])
def test_success_and_empty_mean_no_reply(receiver: Receiver, body: bytes) -> None:
    receiver.reply = lambda xml: (200, body)
    sender = _sender(receiver)
    result = sender.send(sender.pushes.click(USER, "MENU_POINTS"), "safe", deliveries=3)
    assert result.accepted and result.reply is None and result.statuses == [200]


def _tampered_envelope(receiver: Receiver, xml: str) -> tuple[int, bytes]:
    envelope = receiver.crypto.encrypt_message(_echo(xml), "n")
    return 200, envelope.replace("<Nonce><![CDATA[n]]>", "<Nonce><![CDATA[m]]>").encode()


def _misaddressed(xml: str) -> tuple[int, bytes]:
    reply = TextReply(source=ORIGINAL_ID, target="oSOMEONE_ELSE", content="x")
    return 200, reply.render().encode()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (lambda r, xml: (200, b"OK"), "neither success nor XML"),
        (lambda r, xml: (200, b"<xml><MsgType>text</MsgType></xml>"), "ToUserName"),
        (lambda r, xml: _misaddressed(xml), "ToUserName"),
        (_tampered_envelope, "MsgSignature"),
        (lambda r, xml: (200, b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>'), "DTD"),
        (lambda r, xml: (403, b""), "HTTP 403"),
    ],
)
def test_invalid_replies_are_refused_and_retried(receiver: Receiver, reply, problem) -> None:
    receiver.reply = lambda xml: reply(receiver, xml)
    sender = _sender(receiver)
    result = sender.send(sender.pushes.text(USER, "hi"), "safe", deliveries=2)
    assert not result.accepted and problem in result.problem
    assert len(receiver.pushes) == 2
    assert receiver.pushes[0]["body"] == receiver.pushes[1]["body"]


def test_timeout_then_retry_with_the_same_body(receiver: Receiver) -> None:
    answers = iter(["slow", "fast"])

    def slow_first(xml: str) -> tuple[int, bytes]:
        if next(answers) == "slow":
            time.sleep(0.5)
        return 200, b"success"

    receiver.reply = slow_first
    sender = _sender(receiver, timeout=0.2)
    xml = sender.pushes.subscribe(USER, scene="card_ABC")
    result = sender.send(xml, "safe", deliveries=3)
    assert result.accepted and result.statuses == [None, 200]
    assert result.deliveries[0].error == "ReadTimeout"
    assert receiver.pushes[0]["body"] == receiver.pushes[1]["body"]
    event = parse_message(receiver.pushes[1]["xml"])
    assert event.event == "subscribe_scan" and event.scene_id == "card_ABC"


def test_unreachable_url_gives_no_answer() -> None:
    sender = CallbackSender("http://127.0.0.1:9/cb", TOKEN, AES_KEY, OA_APP_ID, ORIGINAL_ID, 0.5)
    result = sender.send(sender.pushes.text(USER, "hi"), "safe", deliveries=2)
    assert result.statuses == [None, None] and not result.accepted


def test_verify_url(receiver: Receiver) -> None:
    receiver.reply = lambda xml: (200, b"")
    sender = _sender(receiver)
    result = sender.verify_url("5838479218127813673")
    assert result.status == 200 and not result.ok  # our receiver does not echo GETs
