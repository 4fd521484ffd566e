"""Helpers of the sending engine's tests: pushes and their frozen recipients written straight
to the models (as approval leaves them), followers on both sides, what WeChat received, the
workers' last log lines."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from campaigns.pushes import tasks
from campaigns.pushes.models import SCHEDULED, Audience, Push, PushDelivery
from core.db import db, utcnow
from members.holders.models import Follower
from tests.fixtures.sim import sim_calls, sim_post
from wechat.sim.server import SimServer

MASS_PATH = "/cgi-bin/message/mass/send"
CUSTOM_PATH = "/cgi-bin/message/custom/send"
SUBSCRIBE_PATH = "/cgi-bin/message/subscribe/bizsend"
TEMPLATE_ID = "tmpl-push-benefit"


def openids(prefix: str, count: int) -> list[str]:
    return [f"o{prefix}{n:020d}" for n in range(count)]


def add_followers(app: Flask, sim: SimServer | None, ids: Iterable[str], *,
                  subscribed: bool = True, messaged_ago: timedelta | None = None) -> None:
    """Followers in our database and, when ``sim`` is given, in WeChat's; ``messaged_ago``
    is how long ago each last sent the account a message (the 48-hour window)."""
    ids = list(ids)
    last = utcnow() - messaged_ago if messaged_ago is not None else None
    with app.app_context():
        db.session.add_all(Follower(openid=openid, subscribed=subscribed, last_message_at=last)
                           for openid in ids)
        db.session.commit()
    if sim is not None:
        for openid in ids:
            sim_post(sim, "/sim/users", openid=openid, subscribed=subscribed,
                     last_interaction=time.time() - messaged_ago.total_seconds()
                     if messaged_ago is not None else None)


def make_push(app: Flask, channel: str, ids: Iterable[str], *, message: dict | None = None,
              rate_per_s: int = 1000, quiet: tuple[str, str] | None = None,
              send_at: datetime | None = None, state: str = SCHEDULED) -> int:
    """An approved push with its recipients frozen, as ``plans.approve`` leaves it."""
    ids = list(ids)
    if message is None:
        message = ({"template_id": TEMPLATE_ID, "data": {"thing1": "本月权益"}}
                   if channel == "subscribe" else {"text": "本月消费满1000元即可领取权益"})
    with app.app_context():
        audience = Audience(name="测试", filter={}, created_by="maker")
        db.session.add(audience)
        db.session.flush()
        push = Push(name="测试推送", audience_id=audience.id, channel=channel, message=message,
                    rate_per_s=rate_per_s, quiet_from=quiet[0] if quiet else None,
                    quiet_to=quiet[1] if quiet else None, state=state, send_at=send_at,
                    created_by="maker", approved_by="checker", approved_at=utcnow(),
                    total=len(ids))
        db.session.add(push)
        db.session.flush()
        db.session.add_all(PushDelivery(push_id=push.id, openid=openid) for openid in ids)
        db.session.commit()
        return push.id


def start(app: Flask, push_id: int, run_jobs: Any) -> None:
    """Start the push as its scheduled job would, and run the jobs that follow."""
    with app.app_context():
        tasks.start_push(push_id)
    run_jobs()


def sweep(app: Flask, run_jobs: Any) -> dict[str, int]:
    with app.app_context():
        counts = tasks.sweep()
    run_jobs()
    return counts


def age_claims(app: Flask, by: timedelta) -> None:
    """Make every claim ``by`` older, as if its worker had died that long ago."""
    with app.app_context():
        for delivery in db.session.scalars(
                select(PushDelivery).where(PushDelivery.claimed_at.is_not(None))):
            delivery.claimed_at -= by  # in Python: SQLite keeps datetimes as text
        db.session.commit()


def outcomes(app: Flask, push_id: int) -> Counter:
    """(state, reason) → recipients."""
    with app.app_context():
        rows = db.session.execute(
            select(PushDelivery.state, PushDelivery.reason, func.count())
            .where(PushDelivery.push_id == push_id)
            .group_by(PushDelivery.state, PushDelivery.reason)).all()
        db.session.remove()
    return Counter({(state, reason): count for state, reason, count in rows})


def push_state(app: Flask, push_id: int) -> Push:
    with app.app_context():
        push = db.session.get(Push, push_id)
        db.session.expunge(push)
        return push


def received(sim: SimServer, channel: str, ids: Iterable[str]) -> Counter:
    """Messages WeChat really delivered per openid (not requests: a call refused, retried
    or answered 45065 delivered nothing more): for custom, the follower's messages in the
    windows it opened last (its last message's and its last follow or click's); for mass,
    its mass messages this month; for subscribe, grants used (each granted once)."""
    state = sim.state
    with state.lock:
        if channel == "custom":
            users = map(state.followers.get, ids)
            return Counter({u.openid: u.cs_streak + u.event_streak for u in users})
        if channel == "mass":
            month = state.clock.month()
            return Counter({o: state.outbox._quota.used(("mass-user", o), month) for o in ids})
        # Each follower of these tests granted the template once.
        return Counter({o: 1 - state.outbox.grants_left(o, TEMPLATE_ID) for o in ids})


def requested(sim: SimServer, path: str) -> Counter:
    """Calls WeChat received per openid on ``path``, refused ones included."""
    counts: Counter = Counter()
    for call in sim_calls(sim, path):
        target = (call.get("json") or {}).get("touser")
        for openid in target if isinstance(target, list) else [target]:
            counts[openid] += 1
    return counts


def log_tails(logs: Iterable[Path], lines: int = 20) -> str:
    """The last ``lines`` of each worker's log, without the line per WeChat call: what a
    test that waited in vain prints."""
    return "\n".join(f"--- {log.name}\n" + "\n".join(
        [line[:300] for line in log.read_text().splitlines()
         if '"wechat call"' not in line][-lines:]) for log in logs)
