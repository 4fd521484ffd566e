"""Benefits, campaign pages, marketing pushes, posters and attribution."""

from __future__ import annotations

from flask import Flask

from campaigns.autoreply import AutoReplies
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    AutoReplies(app.config).register(get_dispatcher(app))
