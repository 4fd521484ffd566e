"""Benefit campaigns: the catalogue (campaigns, options, voucher stock), eligibility,
redemption exactly once, the mini-program's API, the console's JSON API and pages, and the
holders' H5 pages."""

from __future__ import annotations

from flask import Flask

from campaigns.benefits import admin_api, api, console_pages, pages


def init_app(app: Flask) -> None:
    app.register_blueprint(api.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(console_pages.bp)
    app.register_blueprint(pages.bp)
