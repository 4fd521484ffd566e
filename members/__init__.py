"""Card holders, their WeChat identities, and what is sent to them."""

from __future__ import annotations

from flask import Flask

from members import followers, notifications
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    dispatcher = get_dispatcher(app)
    followers.register(dispatcher)
    notifications.register(dispatcher)
