"""Card transactions from core banking: the feed, points, the transaction page, alerts."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from members.transactions import alerts, api, pages, points


def init_app(app: Flask, group: AppGroup) -> None:
    points.init_app(app)  # POINTS_RULES checked at start
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    alerts.init_app(app, group)
