"""Card holders, their WeChat identities, and what is sent to them."""

from __future__ import annotations

from flask import Flask

from core import client_ip
from members import (
    alert_recovery,
    api,
    audit,
    cli,
    feed_api,
    followers,
    limits,
    notifications,
    pages,
    pii,
    points,
    regions,
)
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    pii.init_app(app)
    points.init_app(app)  # POINTS_RULES checked at start
    client_ip.init_app(app)
    regions.init_app(app)
    limits.init_app(app)
    alert_recovery.init_app(app)  # the periodic sweep of stuck alerts
    cli.members_cli.add_command(audit.audit_command)
    app.cli.add_command(cli.members_cli)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(feed_api.bp)
    dispatcher = get_dispatcher(app)
    followers.register(dispatcher)
    notifications.register(dispatcher)
