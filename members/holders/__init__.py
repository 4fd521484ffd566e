"""Card holders and the WeChat users bound to them: registry, login, binding, followers."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from members.holders import api, cli, followers, pages
from wechat.dispatch import get_dispatcher


def init_app(app: Flask, group: AppGroup) -> None:
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    group.add_command(cli.import_command)
    group.add_command(cli.rotate_key_command)
    followers.register(get_dispatcher(app))
