"""Staff and the console: accounts and roles, logins, API tokens, the audit of what staff
do, and the console's pages (``pages.console`` registers other packages' console pages;
``auth.staff_api`` / ``auth.staff_page`` guard every view)."""

from __future__ import annotations

from flask import Flask

from campaigns.console import cli, pages, staff
from config.validation import ConfigError


def init_app(app: Flask) -> None:
    try:
        staff.check_hash_parameters(app.config["STAFF_PASSWORD_HASH"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    app.register_blueprint(pages.bp)
    app.cli.add_command(cli.staff_cli)
