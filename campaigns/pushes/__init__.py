"""Audiences and scheduled pushes: who should hear about a benefit, the channel WeChat
allows for it, four-eyes approval, quiet hours, one global rate, exactly once per
recipient, progress and delivery reports."""

from __future__ import annotations

from flask import Flask

from campaigns.pushes import (
    admin_api,
    audience_pages,
    audiences_api,
    cli,
    console_pages,
    grants,
    models,  # noqa: F401  (the tables, for migrations and queries)
    sending,
    tasks,
)
from core import schedule
from wechat.dispatch import get_dispatcher


def init_app(app: Flask) -> None:
    """Blueprints, callback handlers and CLI of pushes (wired as they are built)."""
    # The sending engine: its sweep, and WeChat's word on mass jobs (MASSSENDJOBFINISH).
    schedule.register(app, tasks.PERIODIC)
    sending.register(get_dispatcher(app))
    # Audiences: their API and console pages; followers' subscription-notice answers.
    app.register_blueprint(audiences_api.bp)
    app.register_blueprint(audience_pages.bp)
    grants.register(get_dispatcher(app))
    # Pushes: their API, console pages and commands.
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(console_pages.bp)
    app.cli.add_command(cli.pushes_cli)
