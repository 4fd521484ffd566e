"""The app factory: builds the Flask app from configuration. Nothing else lives here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

import campaigns
import members
from config import load_settings, validate
from config.dev_secrets import load_or_create
from core import errors, health, jobs, kv, logs, schedule
from core.db import db, drop_dead_connections, migrate
from core.sessions import LazyCookieSessionInterface
from core.worker import worker_command
from wechat import callback, clients
from wechat.sim.cli import wechat_sim_command

log = logging.getLogger(__name__)
MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


def _engine_options(settings: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "pool_size": settings["DB_POOL_SIZE"],
        # No pool_pre_ping: its SELECT 1 is a round trip per request; core.db's checkout
        # check (drop_dead_connections) survives a database restart without one.
        # Statement parameters stay out of error messages and logs in production.
        "hide_parameters": settings["APP_ENV"] == "production",
    }
    if settings["DATABASE_URL"].startswith("postgresql"):
        # psycopg prepares a statement after a few runs, and PostgreSQL then keeps a generic
        # plan if it is no dearer than the custom ones, judged on the tables' size at that
        # moment: an outbox that was nearly empty keeps its sequential scan as it fills
        # (bench/alerts.py: PostgreSQL's CPU per alert doubled). Plan every execution instead.
        options["connect_args"] = {"options": "-c plan_cache_mode=force_custom_plan"}
    return options


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app for APP_ENV (or ``overrides['APP_ENV']``) with ``overrides`` applied."""
    settings = load_settings(overrides=overrides)
    instance_path = settings["INSTANCE_PATH"]
    app = Flask(__name__, instance_relative_config=True,
                instance_path=str(Path(instance_path).resolve()) if instance_path else None)
    _fill_dev_defaults(app, settings)
    validate(settings)
    app.config.update(settings)
    app.config["SQLALCHEMY_DATABASE_URI"] = settings["DATABASE_URL"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(settings)
    app.session_interface = LazyCookieSessionInterface()

    logs.init_app(app)
    errors.init_app(app)
    db.init_app(app)
    with app.app_context():
        drop_dead_connections(db.engine)
    migrate.init_app(app, db, directory=MIGRATIONS)
    kv.init_app(app)
    jobs.init_app(app)
    clients.init_app(app)
    callback.init_app(app)
    members.init_app(app)
    campaigns.init_app(app)
    schedule.init_app(app)  # last: its middleware sees every request, the callback's too

    app.register_blueprint(health.bp)
    app.cli.add_command(worker_command)
    app.cli.add_command(wechat_sim_command)
    if app.config["AUTO_MIGRATE"]:
        _upgrade_schema(app)
    return app


def _fill_dev_defaults(app: Flask, settings: dict[str, Any]) -> None:
    """Outside production, empty secrets and database get per-instance defaults."""
    if settings["APP_ENV"] == "production":
        return
    if not settings["DATABASE_URL"]:
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        settings["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'cobrand.db'}"
    generated = load_or_create(app.instance_path)
    for key, value in generated.items():
        settings[key] = settings[key] or value


def _upgrade_schema(app: Flask) -> None:
    """Migrate to head; processes starting together take turns (``core.db.migration_lock``,
    held by migrations/env.py), and all but the first find nothing to do."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=MIGRATIONS)
