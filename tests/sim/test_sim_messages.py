"""Sending APIs: template (with its async job event), subscription notices, CS, mass send."""

from __future__ import annotations

import time

import xmltodict

from tests.fixtures.simkit import MP_APP_ID, SUB_TEMPLATE, TEMPLATE, Api
from wechat.sim import SimLimits

TXN_DATA = {
    "character_string1": {"value": "1234"},
    "amount2": {"value": "123.45元"},
    "thing3": {"value": "Example Coffee"},
    "time4": {"value": "2026-11-21 12:00"},
    "first": {"value": "ignored since 2023"},
}


def _template(api: Api, token: str, openid: str, **extra: object) -> dict:
    body = {"touser": openid, "template_id": TEMPLATE, "data": TXN_DATA, **extra}
    return api.call("/cgi-bin/message/template/send", body, access_token=token)


def test_template_send_errors(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    api.sim("/users", {"openid": "o_gone", "subscribed": False})
    assert _template(api, token, "o_nobody")["errcode"] == 40003
    assert _template(api, token, "o_gone")["errcode"] == 43004
    assert _template(api, token, "o_follower", template_id="nope")["errcode"] == 40037
    long_thing = {"thing3": {"value": "x" * 21}}
    assert _template(api, token, "o_follower", data=long_thing)["errcode"] == 47003
    assert _template(api, token, "o_follower", data={"k": "not an object"})["errcode"] == 47003
    sent = _template(api, token, "o_follower")
    assert sent["errcode"] == 0 and sent["errmsg"] == "ok"
    assert isinstance(sent["msgid"], int)


def test_client_msg_id_sends_once(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    first = _template(api, token, "o_follower", client_msg_id="T1")
    again = _template(api, token, "o_follower", client_msg_id="T1")
    other = _template(api, token, "o_follower", client_msg_id="T2")
    assert again["msgid"] == first["msgid"] != other["msgid"]
    assert api.server.state.stats_snapshot()["sent"]["template"] == 2


def test_template_daily_quota(start_sim) -> None:
    api = start_sim(limits=SimLimits(template_daily_limit=1))
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    assert _template(api, token, "o_follower")["errcode"] == 0
    assert _template(api, token, "o_follower")["errcode"] == 45009


def test_template_job_finish_event_reaches_the_callback_url(start_sim, receiver) -> None:
    api = start_sim(callback_url=receiver.url)
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    api.sim("/users", {"openid": "o_blocker", "blocks_templates": True})
    ok_id = _template(api, token, "o_follower")["msgid"]
    blocked_id = _template(api, token, "o_blocker")["msgid"]
    assert api.http.get(api.url + "/sim/callbacks", params={"wait": 5}).json()["idle"]
    events = {}
    for push in receiver.pushes:
        event = xmltodict.parse(push["xml"])["xml"]
        assert push["query"]["encrypt_type"] == "aes"
        assert event["Event"] == "TEMPLATESENDJOBFINISH"
        events[int(event["MsgID"])] = (event["FromUserName"], event["Status"])
    assert events == {
        ok_id: ("o_follower", "success"),
        blocked_id: ("o_blocker", "failed:user block"),
    }
    log = api.server.state.callbacks()
    assert all(entry["accepted"] and entry["statuses"] == [200] for entry in log)


def test_job_events_retry_until_accepted(start_sim, receiver) -> None:
    api = start_sim(callback_url=receiver.url, callback_mode="plain")
    answers = iter([(500, b"oops"), (200, b"success")])
    receiver.reply = lambda xml: next(answers)
    api.sim("/users", {"openid": "o_follower"})
    _template(api, api.token(), "o_follower")
    assert api.server.state.wait_callbacks(5)
    first, retry = receiver.pushes
    assert first["body"] == retry["body"] and first["query"] == retry["query"]
    assert api.server.state.callbacks()[0]["statuses"] == [500, 200]


def test_oa_subscription_notice_needs_a_grant(start_sim, receiver) -> None:
    api = start_sim(callback_url=receiver.url)
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    body = {
        "touser": "o_follower",
        "template_id": SUB_TEMPLATE,
        "data": {"thing1": {"value": "hi"}},
    }
    path = "/cgi-bin/message/subscribe/bizsend"
    assert api.call(path, body, access_token=token)["errcode"] == 43101
    assert api.sim(
        "/subscribe-grants", {"openid": "o_follower", "template_id": SUB_TEMPLATE, "count": 1}
    ) == {"remaining": 1}
    assert api.call(path, body, access_token=token) == {"errcode": 0, "errmsg": "ok"}
    assert api.call(path, body, access_token=token)["errcode"] == 43101
    assert (
        api.call(path, {**body, "template_id": "unknown"}, access_token=token)["errcode"] == 40037
    )
    receiver.arrived.wait(5)
    event = xmltodict.parse(receiver.pushes[0]["xml"])["xml"]
    assert event["Event"] == "subscribe_msg_sent_event"
    assert event["SubscribeMsgSentEvent"]["List"]["ErrorStatus"] == "success"


def test_miniapp_subscribe_message_rules(api: Api) -> None:
    token = api.token("mp")
    api.sim("/miniapp/code", {"openid": "o_mp_user"})
    path = "/cgi-bin/message/subscribe/send"
    body = {
        "touser": "o_mp_user",
        "template_id": SUB_TEMPLATE,
        "page": "pages/index/index?x=1",
        "data": {"thing1": {"value": "到账提醒"}, "amount2": {"value": "¥12.50"}},
    }

    def send(**changes: object) -> int:
        return api.call(path, {**body, **changes}, access_token=token)["errcode"]

    assert send() == 43101
    api.sim("/subscribe-grants", {"openid": "o_mp_user", "template_id": SUB_TEMPLATE, "count": 2})
    assert (
        send(data={"thing1": {"value": "这是一个超过二十个字符长度限制的事物描述文本内容"}})
        == 47003
    )
    assert send(data={"phrase1": {"value": "abc"}}) == 47003
    assert send(page="pages/unknown/page") == 41030
    assert send(touser="o_stranger") == 40003
    assert send(miniprogram_state="beta") == 47003
    assert send() == 0
    assert send(page="/pages/card/bind") == 0
    assert send() == 43101
    assert api.call(path, body, access_token=api.token())["errcode"] == 48001


def test_custom_message_window_and_streak(start_sim) -> None:
    api = start_sim(limits=SimLimits(cs_streak_limit=2))
    token = api.token()
    now = api.server.state.clock.now()
    api.sim("/users", {"openid": "o_silent"})
    api.sim("/users", {"openid": "o_recent", "last_interaction": now - 3600})
    api.sim("/users", {"openid": "o_old", "last_interaction": now - 49 * 3600})
    path = "/cgi-bin/message/custom/send"

    def send(openid: str, msgtype: str = "text") -> int:
        body = {"touser": openid, "msgtype": msgtype, msgtype: {"content": "hi"}}
        return api.call(path, body, access_token=token)["errcode"]

    assert send("o_silent") == 45015
    assert send("o_old") == 45015
    assert send("o_recent", "fax") == 40008
    assert [send("o_recent") for _ in range(3)] == [0, 0, 45047]
    api.sim("/users/activity", {"openid": "o_recent", "action": "interact"})
    assert send("o_recent") == 0
    api.sim("/users/activity", {"openid": "o_recent", "action": "unsubscribe"})
    assert send("o_recent") == 45015


CUSTOM = "/cgi-bin/message/custom/send"


def _custom(api: Api, openid: str, times: int = 1) -> list[int]:
    """The errcodes of ``times`` customer-service texts to ``openid``."""
    token = api.token()
    body = {"touser": openid, "msgtype": "text", "text": {"content": "hi"}}
    return [api.call(CUSTOM, body, access_token=token)["errcode"] for _ in range(times)]


def test_a_user_message_allows_five_custom_messages_in_48_hours(api: Api) -> None:
    api.sim("/users", {"openid": "o_writer"})
    assert _custom(api, "o_writer") == [45015]  # a follower who never wrote
    api.sim("/users/activity", {"openid": "o_writer", "action": "interact"})  # a message
    assert _custom(api, "o_writer", 6) == [0] * 5 + [45047]
    api.sim("/clock", {"advance": 47 * 3600})
    assert _custom(api, "o_writer") == [45047]  # used up until the user writes again
    api.sim("/users/activity", {"openid": "o_writer", "action": "interact", "kind": "message"})
    api.sim("/clock", {"advance": 47 * 3600})
    assert _custom(api, "o_writer", 6) == [0] * 5 + [45047]  # a fresh window
    api.sim("/clock", {"advance": 3600 + 1})
    assert _custom(api, "o_writer") == [45015]  # 48 h after the message


def test_a_follow_allows_three_custom_messages_within_a_minute(api: Api) -> None:
    api.sim("/users/activity", {"openid": "o_new", "action": "subscribe", "scene": "card_A"})
    assert _custom(api, "o_new", 4) == [0, 0, 0, 45047]
    api.sim("/clock", {"advance": 61})
    assert _custom(api, "o_new") == [45015]
    user = api.server.state.user("o_new")
    assert user["last_interaction"] is None and user["event_streak"] == 3


def test_a_menu_click_or_scan_opens_the_one_minute_window(api: Api) -> None:
    api.sim("/users", {"openid": "o_click"})
    for kind in ("click", "scan"):
        api.sim("/users/activity", {"openid": "o_click", "action": "interact", "kind": kind})
        api.sim("/clock", {"advance": 30})
        assert _custom(api, "o_click", 4) == [0, 0, 0, 45047]
        api.sim("/clock", {"advance": 31})
        assert _custom(api, "o_click") == [45015]


def test_the_minute_window_is_used_before_the_48_hour_one(api: Api) -> None:
    now = api.server.state.clock.now()
    api.sim("/users", {"openid": "o_both", "last_interaction": now - 3600})
    assert _custom(api, "o_both", 2) == [0, 0]
    api.sim("/users/activity", {"openid": "o_both", "action": "interact", "kind": "click"})
    assert _custom(api, "o_both", 3) == [0, 0, 0]
    user = api.server.state.user("o_both")
    assert (user["cs_streak"], user["event_streak"]) == (2, 3)
    api.sim("/clock", {"advance": 61})
    assert _custom(api, "o_both", 4) == [0, 0, 0, 45047]  # the 48 h window's last 3


def test_seeded_windows_start_unused_unless_told(api: Api) -> None:
    now = api.server.state.clock.now()
    api.sim("/users", {"openid": "o_seed", "last_interaction": now - 60, "cs_streak": 4})
    assert _custom(api, "o_seed", 2) == [0, 45047]
    api.sim("/users", {"openid": "o_seed", "last_interaction": now - 60})  # seeded afresh
    assert _custom(api, "o_seed", 6) == [0] * 5 + [45047]
    api.sim("/users", {"openid": "o_event", "last_event": now - 30})
    assert _custom(api, "o_event", 4) == [0, 0, 0, 45047]
    api.sim("/users", {"openid": "o_event", "last_event": now - 61})
    assert _custom(api, "o_event") == [45015]


def test_unfollowing_closes_every_window(api: Api) -> None:
    api.sim("/users/activity", {"openid": "o_left", "action": "subscribe"})
    api.sim("/users/activity", {"openid": "o_left", "action": "interact"})
    api.sim("/users/activity", {"openid": "o_left", "action": "unsubscribe"})
    assert _custom(api, "o_left") == [45015]


def _mass_text(clientmsgid: str | None = None, **audience: object) -> dict:
    body: dict = {"msgtype": "text", "text": {"content": "news"}, **audience}
    if clientmsgid:
        body["clientmsgid"] = clientmsgid
    return body


def test_mass_send_quotas(start_sim, receiver) -> None:
    api = start_sim(
        callback_url=receiver.url,
        callback_mode="plain",
        limits=SimLimits(mass_to_all_monthly=1, mass_user_monthly=2),
    )
    token = api.token()
    for openid in ("o_a", "o_b"):
        api.sim("/users", {"openid": openid})
    sendall = "/cgi-bin/message/mass/sendall"
    first = api.call(sendall, _mass_text("c1", filter={"is_to_all": True}), access_token=token)
    assert first["errmsg"] == "send job submission success"
    duplicate = api.call(sendall, _mass_text("c1", filter={"is_to_all": True}), access_token=token)
    assert duplicate["errcode"] == 45065 and duplicate["msg_id"] == first["msg_id"]
    assert (
        api.call(sendall, _mass_text("x" * 65, filter={"is_to_all": True}), access_token=token)[
            "errcode"
        ]
        == 45067
    )
    assert (
        api.call(sendall, _mass_text(filter={"is_to_all": True}), access_token=token)["errcode"]
        == 45028
    )
    listed = "/cgi-bin/message/mass/send"
    assert api.call(listed, _mass_text(touser=["o_a"]), access_token=token)["errcode"] == 40130
    # o_a and o_b got one already; one more each, then the third is over their monthly 2.
    api.call(listed, _mass_text(touser=["o_a", "o_b", "o_x"]), access_token=token)
    last = api.call(listed, _mass_text(touser=["o_a", "o_b"]), access_token=token)
    assert api.call(
        "/cgi-bin/message/mass/get", {"msg_id": last["msg_id"]}, access_token=token
    ) == {"msg_id": last["msg_id"], "msg_status": "SEND_SUCCESS"}
    assert api.server.state.wait_callbacks(5)
    counts = [xmltodict.parse(push["xml"])["xml"] for push in receiver.pushes]
    summary = [(c["TotalCount"], c["FilterCount"], c["SentCount"], c["ErrorCount"]) for c in counts]
    assert sorted(summary) == sorted(
        [("2", "2", "2", "0"), ("3", "2", "2", "0"), ("2", "2", "0", "2")]
    )


def test_mass_send_rate_limit_per_minute(start_sim) -> None:
    api = start_sim(limits=SimLimits(mass_per_minute=1))
    token = api.token()
    api.sim("/users", {"openid": "o_a"})
    body = _mass_text(touser=["o_a", "o_b"])
    assert api.call("/cgi-bin/message/mass/send", body, access_token=token)["errcode"] == 0
    assert api.call("/cgi-bin/message/mass/send", body, access_token=token)["errcode"] == 45011


def test_mass_preview(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_admin"})
    body = _mass_text(touser="o_admin")
    answer = api.call("/cgi-bin/message/mass/preview", body, access_token=token)
    assert answer["errmsg"] == "preview success"
    assert (
        api.call("/cgi-bin/message/mass/preview", {**body, "touser": "o_x"}, access_token=token)[
            "errcode"
        ]
        == 40003
    )


def test_sent_calls_are_recorded(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_follower"})
    _template(api, token, "o_follower")
    started = time.time()
    recorded = api.http.get(
        api.url + "/sim/requests", params={"path": "/cgi-bin/message/template/send"}
    ).json()
    assert len(recorded) == 1
    call = recorded[0]
    assert call["method"] == "POST" and call["json"]["touser"] == "o_follower"
    assert call["query"]["access_token"] == token
    assert abs(call["time"] - started) < 5
    assert MP_APP_ID not in api.server.state.stats_snapshot().get("token_calls", {})


def test_callback_delay_holds_job_events_back(start_sim, receiver) -> None:
    api = start_sim(callback_url=receiver.url, callback_delay=0.3)
    api.sim("/users", {"openid": "o_follower"})
    _template(api, api.token(), "o_follower")
    assert not receiver.arrived.wait(0.1)
    assert receiver.arrived.wait(2)
