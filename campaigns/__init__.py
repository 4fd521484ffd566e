"""What marketing does with card holders: configured replies, attribution of followers to
the QR codes they came through, the staff console, and benefit campaigns (pushes and
posters follow)."""

from __future__ import annotations

from flask import Flask

from campaigns import attribution, benefits, console, pushes
from campaigns.attribution import scans
from campaigns.autoreply import AutoReplies
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    dispatcher = get_dispatcher(app)
    scans.register(dispatcher)
    AutoReplies(app.config).register(dispatcher)
    console.init_app(app)
    benefits.init_app(app)
    pushes.init_app(app)
    attribution.init_app(app)
