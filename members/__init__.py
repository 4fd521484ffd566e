"""Card holders, their WeChat identities, and what is sent to them."""

from __future__ import annotations

from flask import Flask

from core import client_ip
from members import api, audit, cli, followers, limits, notifications, pages, pii, regions
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    pii.init_app(app)
    client_ip.init_app(app)
    regions.init_app(app)
    limits.init_app(app)
    cli.members_cli.add_command(audit.audit_command)
    app.cli.add_command(cli.members_cli)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    dispatcher = get_dispatcher(app)
    followers.register(dispatcher)
    notifications.register(dispatcher)
