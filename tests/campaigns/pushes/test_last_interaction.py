"""Followers' last interaction from the callback: every push sets last_interaction_at,
user messages last_message_at too; one write a minute at most, never backwards."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import redis as redis_lib
from sqlalchemy import select

from core.db import db
from members.holders.models import Follower
from tests.fixtures.members import follow
from tests.fixtures.wechat import push_message

OPENID = "oChatty0000000000000000001"


def _times(app, openid: str = OPENID) -> tuple[datetime | None, datetime | None]:
    with app.app_context():
        row = db.session.scalar(select(Follower).where(Follower.openid == openid))
        return (row.last_interaction_at, row.last_message_at) if row else None


def _at(seconds_ago: int) -> int:
    return int(time.time()) - seconds_ago


def _when(create_time: int) -> datetime:
    return datetime.fromtimestamp(create_time, UTC)


def test_a_follow_is_an_interaction_not_a_message(app, client):
    follow(client, app, OPENID)
    interaction, message = _times(app)
    assert interaction is not None and message is None


@pytest.mark.parametrize("kind", [
    {"msg_type": "text", "Content": "你好"},
    {"msg_type": "image", "PicUrl": "https://example.com/a.jpg", "MediaId": "m1"},
    {"msg_type": "voice", "MediaId": "m2", "Format": "amr"},
    {"msg_type": "location", "Location_X": 23.1, "Location_Y": 113.3, "Scale": 20,
     "Label": "广州"},
    {"msg_type": "link", "Title": "t", "Description": "d", "Url": "https://example.com"},
])
def test_messages_open_the_window(app, pusher, kind):
    with app.app_context():
        db.session.add(Follower(openid=OPENID, subscribed=True))
        db.session.commit()
    fields = dict(kind)
    sent = _at(5)
    assert pusher.post(push_message(fields.pop("msg_type"), OPENID, CreateTime=sent,
                                    **fields)).status_code == 200
    assert _times(app) == (_when(sent), _when(sent))


@pytest.mark.parametrize("event", [{"Event": "CLICK", "EventKey": "MENU_HELP"},
                                   {"Event": "VIEW", "EventKey": "https://bank.example/m"},
                                   {"Event": "SCAN", "EventKey": "branch_0101"}])
def test_events_are_interactions_only(app, pusher, event):
    with app.app_context():
        db.session.add(Follower(openid=OPENID, subscribed=True))
        db.session.commit()
    sent = _at(5)
    pusher.post(push_message("event", OPENID, CreateTime=sent, **event))
    assert _times(app) == (_when(sent), None)


def test_one_write_a_minute_and_never_backwards(app, pusher):
    with app.app_context():
        db.session.add(Follower(openid=OPENID, subscribed=True))
        db.session.commit()
    first = _at(300)
    pusher.post(push_message("text", OPENID, CreateTime=first, Content="1"))
    pusher.post(push_message("text", OPENID, CreateTime=first + 30, Content="2"))
    assert _times(app) == (_when(first), _when(first))  # within the minute: not written
    pusher.post(push_message("text", OPENID, CreateTime=first + 90, Content="3"))
    assert _times(app) == (_when(first + 90), _when(first + 90))
    pusher.post(push_message("event", OPENID, CreateTime=first + 200, Event="CLICK",
                             EventKey="MENU_HELP"))
    # A late message older than the click: the message time moves on, the click stays.
    pusher.post(push_message("text", OPENID, CreateTime=first + 160, Content="late"))
    assert _times(app) == (_when(first + 200), _when(first + 160))
    pusher.post(push_message("text", OPENID, CreateTime=first, Content="retry of 1"))
    assert _times(app) == (_when(first + 200), _when(first + 160))


def test_a_time_ahead_of_ours_is_taken_as_now(app, pusher):
    with app.app_context():
        db.session.add(Follower(openid=OPENID, subscribed=True))
        db.session.commit()
    pusher.post(push_message("text", OPENID, CreateTime=_at(-3600), Content="from the future"))
    interaction, _ = _times(app)
    assert interaction <= datetime.now(UTC)


def test_a_stranger_gets_no_row_and_the_reply_still_comes(app, pusher):
    answer = pusher.post(push_message("text", "oStranger00000000000000001", Content="积分"))
    assert answer.status_code == 200
    assert pusher.reply(answer)["Content"] == "您的积分请在小程序查看"
    assert _times(app, "oStranger00000000000000001") is None


def test_a_reply_only_message_is_noted_without_a_dedupe_claim(app, pusher, monkeypatch):
    """Text answered by a configured reply stays reply-only (no claim in Redis): the note
    is idempotent, so it is kept even with the dedupe cache's Redis down."""
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(app.wsgi_app.replies, "redis", dead)
    with app.app_context():
        db.session.add(Follower(openid=OPENID, subscribed=True))
        db.session.commit()
    sent = _at(5)
    answer = pusher.post(push_message("text", OPENID, CreateTime=sent, Content="积分"))
    assert answer.status_code == 200 and pusher.reply(answer)["Content"]
    assert _times(app) == (_when(sent), _when(sent))
