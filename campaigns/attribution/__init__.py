"""Where followers came from: channels (branches, customer managers, campaigns), their QR
and mini-program codes, posters, and the funnel from scan to redemption."""

from __future__ import annotations

from flask import Flask

from campaigns.attribution import (
    admin_api,
    console_pages,
    funnel_api,
    funnel_pages,
    poster_api,
    poster_pages,
    tasks,
)
from core import schedule


def init_app(app: Flask) -> None:
    """Blueprints and CLI of attribution (the scan handlers register with the dispatcher in
    ``campaigns.init_app``)."""
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(console_pages.bp)
    app.register_blueprint(funnel_api.bp)
    app.register_blueprint(funnel_pages.bp)
    app.register_blueprint(poster_api.bp)
    app.register_blueprint(poster_pages.bp)
    schedule.register(app, tasks.PERIODIC)
