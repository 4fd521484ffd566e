"""The official-account callback: modes, message types, signatures, hostile input, retries."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import func, select

from campaigns.attribution.models import QrScan
from core.db import db
from members.holders.models import Follower
from members.transactions.alerts.models import TemplateJobResult
from tests.fixtures.sim import sim_calls
from tests.fixtures.wechat import Pusher, push_message, wechat_xml

OPENID = "oUserCallback000000000000001"


def message(msg_type: str, openid: str = OPENID, **fields) -> dict:
    return push_message(msg_type, openid, **fields)


USER_MESSAGES = {
    "text": {"Content": "你好"},
    "image": {"PicUrl": "http://mmbiz.qpic.cn/x.jpg", "MediaId": "media1"},
    "voice": {"MediaId": "media2", "Format": "amr", "Recognition": "查积分"},
    "video": {"MediaId": "media3", "ThumbMediaId": "thumb3"},
    "shortvideo": {"MediaId": "media4", "ThumbMediaId": "thumb4"},
    "location": {"Location_X": 23.134521, "Location_Y": 113.358803, "Scale": 20,
                 "Label": "广州市天河区"},
    "link": {"Title": "标题", "Description": "描述", "Url": "https://example.com/a"},
}
SILENT_EVENTS = {
    "VIEW": {"EventKey": "https://bank.example/m/card"},
    "LOCATION": {"Latitude": 23.137466, "Longitude": 113.352425, "Precision": 119.385040},
    "MASSSENDJOBFINISH": {"MsgID": 1000001625, "Status": "send success", "TotalCount": 100,
                          "FilterCount": 80, "SentCount": 75, "ErrorCount": 5},
    "subscribe_msg_popup_event": {"SubscribeMsgPopupEvent": {"List": {
        "TemplateId": "tmplA", "SubscribeStatusString": "accept", "PopupScene": 2}}},
    "subscribe_msg_sent_event": {"SubscribeMsgSentEvent": {"List": {
        "TemplateId": "tmplA", "MsgID": 1700827132819554304, "ErrorCode": 0,
        "ErrorStatus": "success"}}},
}
MODES = ["plain", "compat", "safe"]


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# -- URL verification -------------------------------------------------------------------------

def test_url_verification_echoes_echostr(client, pusher):
    response = client.get("/wechat/callback", query_string={**pusher.query(), "echostr": "e42"})
    assert response.status_code == 200
    assert response.get_data() == b"e42"


def test_url_verification_with_forged_signature_is_403(client, pusher):
    query = {**pusher.query(), "echostr": "e42", "signature": "0" * 40}
    response = client.get("/wechat/callback", query_string=query)
    assert response.status_code == 403
    assert b"e42" not in response.get_data()


# -- round trips of every message and event type, in every mode -------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("msg_type", sorted(USER_MESSAGES))
def test_user_messages_round_trip(pusher, mode, msg_type, app):
    response = pusher.post(message(msg_type, **USER_MESSAGES[msg_type]), mode=mode)
    assert response.status_code == 200
    reply = pusher.reply(response)
    if msg_type == "text":
        assert reply["MsgType"] == "text"
        assert reply["ToUserName"] == OPENID
        assert reply["FromUserName"] == "gh_test00000001"
        assert reply["Content"] == app.config["WECHAT_HELP_TEXT"]
        assert ("Encrypt" in response.get_data().decode()) == (mode != "plain")
    else:
        assert reply is None
        assert response.get_data() == b"success"


@pytest.mark.parametrize("mode", MODES)
def test_keyword_reply(pusher, mode):
    reply = pusher.reply(pusher.post(message("text", Content="  积分 "), mode=mode))
    assert reply["Content"] == "您的积分请在小程序查看"


@pytest.mark.parametrize("mode", MODES)
def test_menu_click_reply(pusher, mode, app):
    reply = pusher.reply(pusher.post(message("event", Event="CLICK", EventKey="MENU_HELP"),
                                     mode=mode))
    assert reply["Content"] == "客服热线 95500"
    unknown = pusher.post(message("event", Event="CLICK", EventKey="NOPE"), mode=mode)
    assert pusher.reply(unknown)["Content"] == app.config["WECHAT_HELP_TEXT"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("event", sorted(SILENT_EVENTS))
def test_other_events_answer_success(pusher, mode, event):
    response = pusher.post(message("event", Event=event, **SILENT_EVENTS[event]), mode=mode)
    assert (response.status_code, response.get_data()) == (200, b"success")


def test_unfollow_and_template_job_result(pusher, app):
    pusher.post(message("event", Event="subscribe"))
    pusher.post(message("event", Event="unsubscribe"))
    pusher.post(message("event", Event="TEMPLATESENDJOBFINISH", MsgID=200163836,
                        Status="failed:user block"))
    with app.app_context():
        follower = db.session.scalar(select(Follower))
        assert follower.subscribed is False and follower.unsubscribed_at is not None
        result = db.session.get(TemplateJobResult, "200163836")
        assert (result.openid, result.status) == (OPENID, "failed:user block")


# -- signatures and replays -------------------------------------------------------------------

def _followers(app) -> int:
    with app.app_context():
        return _count(Follower)


FORGERIES = [(forgery, mode) for forgery in ("signature", "missing", "stale") for mode in MODES]
FORGERIES += [("msg_signature", "compat"), ("msg_signature", "safe")]


@pytest.mark.parametrize(("forgery", "mode"), FORGERIES)
def test_forged_or_missing_signature_is_403_without_side_effect(pusher, app, mode, forgery):
    stale = str(int(time.time()) - 3600)
    query = {
        "signature": {"signature": "f" * 40},
        "missing": {"signature": ""},
        "msg_signature": {"msg_signature": "0" * 40},
        "stale": pusher.query(timestamp=stale),
    }[forgery]
    response = pusher.post(message("event", Event="subscribe"), mode=mode, query=query)
    assert response.status_code == 403
    assert _followers(app) == 0


def test_three_deliveries_of_one_push_have_one_effect_and_one_reply(pusher, app, sim, run_jobs):
    event = message("event", Event="subscribe", EventKey="qrscene_9")
    replies = []
    for attempt in range(3):
        # WeChat's retries may carry a new timestamp and nonce; the body is identical.
        response = pusher.post(event, nonce=f"n{attempt}")
        replies.append(pusher.reply(response)["Content"])
    run_jobs()
    assert len(set(replies)) == 1
    with app.app_context():
        assert (_count(Follower), _count(QrScan)) == (1, 1)
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 1


def test_text_retry_gets_the_same_reply(pusher):
    text = message("text", Content="积分")
    first, second = (pusher.reply(pusher.post(text)) for _ in range(2))
    assert first["Content"] == second["Content"] == "您的积分请在小程序查看"


def test_handler_failure_answers_503_and_the_retry_succeeds(pusher, app, monkeypatch):
    from members.holders import followers

    calls = {"n": 0}
    original = followers._follower

    def flaky(openid):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return original(openid)

    monkeypatch.setattr(followers, "_follower", flaky)
    event = message("event", Event="unsubscribe")
    assert pusher.post(event).status_code == 503
    assert pusher.post(event).status_code == 200
    assert _followers(app) == 1


# -- hostile and malformed input --------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol4;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"""
HOSTILE = {
    "billion_laughs": BILLION_LAUGHS,
    "external_entity": EXTERNAL_ENTITY,
    "not_xml": b"this is not xml",
    "truncated": b"<xml><ToUserName>a</ToUserName><FromUser",
    "wrong_root": b"<root><MsgType>text</MsgType></root>",
    "no_msgtype": wechat_xml({"ToUserName": "a", "FromUserName": "b", "CreateTime": 1}),
    "empty_msgtype": b"<xml><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
                     b"<MsgType/></xml>",
    "no_sender": wechat_xml({"ToUserName": "a", "CreateTime": 1, "MsgType": "text"}),
    "empty": b"",
}


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_400_fast_and_harmless(pusher, app, mode, name):
    started = time.perf_counter()
    response = pusher.post(HOSTILE[name], mode=mode)
    elapsed = time.perf_counter() - started
    assert response.status_code == 400, response.get_data()
    assert elapsed < 0.5
    assert pusher.post(message("event", Event="subscribe"), mode=mode).status_code == 200
    assert _followers(app) == 1


@pytest.mark.parametrize("encrypted", [
    None,  # no Encrypt element at all
    "%%%not-base64%%%",
    "AAAAAAAAAAAAAAAAAAAAAA==",  # one block of zeros: padding cannot be right
    "A" * 64,  # block-aligned garbage
])
def test_broken_safe_mode_envelopes_are_400(pusher, client, encrypted):
    from wechat.crypto import signature

    fields = {"ToUserName": "gh_test00000001"}
    if encrypted is not None:
        fields["Encrypt"] = encrypted
    query = pusher.query()
    query.update(encrypt_type="aes", msg_signature=signature(
        pusher.token, query["timestamp"], query["nonce"], encrypted or ""))
    response = client.post("/wechat/callback", query_string=query, data=wechat_xml(fields))
    assert response.status_code == 400


def test_oversize_body_is_413_before_parsing(pusher, app):
    body = b"<xml>" + b"A" * (app.config["CALLBACK_MAX_BYTES"] + 1) + b"</xml>"
    response = pusher.post(body, mode="plain")
    assert response.status_code == 413


def test_oversize_body_without_a_length_is_413(pusher, app):
    # Chunked upload: no Content-Length, so the endpoint reads one byte past the cap.
    body = b"<xml>" + b"A" * (app.config["CALLBACK_MAX_BYTES"] + 1) + b"</xml>"
    query = pusher.query()
    response = pusher.client.post("/wechat/callback", query_string=query,
                                  input_stream=io.BytesIO(body),
                                  environ_overrides={"wsgi.input_terminated": True,
                                                     "CONTENT_LENGTH": ""})
    assert response.status_code == 413


def test_other_methods_are_405_and_head_has_no_body(client, pusher):
    response = client.put("/wechat/callback", query_string=pusher.query())
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST"
    query = {**pusher.query(), "echostr": "e1"}
    head = client.head("/wechat/callback", query_string=query)
    assert head.status_code == 200 and head.data == b""


def test_request_id_is_echoed_or_made(pusher):
    sent = pusher.post(message("text", Content="hi"), headers={"X-Request-Id": "wx-retry-1"})
    assert sent.headers["X-Request-Id"] == "wx-retry-1"
    made = pusher.post(message("text", Content="hi"), headers={"X-Request-Id": "bad id!"})
    assert len(made.headers["X-Request-Id"]) == 32


def test_other_paths_still_reach_the_app(client):
    assert client.get("/healthz").status_code == 200
    assert client.post("/wechat/callback/extra").status_code == 404


def test_reply_text_cannot_break_out_of_cdata(client, app, settings):
    from app import create_app

    hostile = "]]></Content><MsgType><![CDATA[news]]></MsgType><Content><![CDATA[pwned"
    custom = create_app({**settings, "WECHAT_KEYWORD_REPLIES": {"x": hostile},
                         "AUTO_MIGRATE": False})
    pusher = Pusher(custom.test_client(), custom.config)
    for mode in ("plain", "safe"):
        reply = pusher.reply(pusher.post(message("text", Content="x"), mode=mode))
        assert reply["MsgType"] == "text"
        assert reply["Content"] == hostile


def test_metrics_count_callbacks_by_type_and_outcome(pusher, client):
    pusher.post(message("text", Content="hi"))
    pusher.post(message("text", Content="hi"), query={"signature": "bad"})
    page = client.get("/metrics").get_data(as_text=True)
    assert 'wechat_callbacks_total{outcome="replied",type="text"}' in page
    assert 'wechat_callbacks_total{outcome="bad_signature",type="unknown"}' in page
    assert "job_queue_depth" in page
