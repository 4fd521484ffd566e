"""Followers, audiences and push bodies for the tests of pushes' creation, approval and
reports (test_plans, test_push_api, test_push_cli), written straight to the database: these
tests are about pushes, not about how followers arrive (the callback's tests are)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from campaigns.pushes import tasks
from campaigns.pushes.models import Audience, Push
from core.db import db
from members.holders.models import Follower

SUBSCRIBED = {"subscribed": True}


def openids(count: int, prefix: str = "oPushTest") -> list[str]:
    return [f"{prefix}{n:06d}" for n in range(count)]


def add_followers(app: Flask, ids: list[str], *, subscribed: bool = True) -> None:
    with app.app_context():
        db.session.add_all(Follower(openid=openid, subscribed=subscribed) for openid in ids)
        db.session.commit()


def make_audience(app: Flask, filter_: dict[str, Any] | None = None,
                  name: str = "已关注粉丝") -> int:
    with app.app_context():
        audience = Audience(name=name, filter=filter_ or SUBSCRIBED, created_by="tests")
        db.session.add(audience)
        db.session.commit()
        return audience.id


def body(audience: int, **changes: Any) -> dict[str, Any]:
    """The contract's push body, without send_at (once approved), with ``changes`` (``...``
    leaves a field out)."""
    values: dict[str, Any] = {
        "name": "12月权益提醒", "audience_id": audience, "channel": "mass",
        "message": {"text": "本月消费满1000元即可领取腾讯视频VIP月卡"}, "rate_per_s": 50,
        "quiet_hours": {"from": "21:00", "to": "08:00"},
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not ...}


def push_row(app: Flask, push_id: int) -> Push:
    with app.app_context():
        push = db.session.get_one(Push, push_id)
        db.session.expunge(push)
        return push


@pytest.fixture(name="started")
def started_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The ids of pushes ``tasks.schedule_start`` was asked to start; the engine itself
    does not run (its own tests send)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks, "schedule_start", lambda push: calls.append(push.id))
    yield calls
