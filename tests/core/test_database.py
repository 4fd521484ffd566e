"""Database engine settings."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from core.db import db


def test_postgresql_plans_every_execution(app):
    """A generic plan made while a table was small must not outlive its growth."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL setting")
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"


def test_pooled_connections_the_database_closed_are_replaced_before_a_request_uses_them(
        app, client):
    """A database restart (here: every backend of the app's pool terminated) costs no request:
    the checkout sees the server hung up and opens a new connection, without a ping."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL connections")
        assert not db.engine.pool._pre_ping  # the check replaces the round trip
    for _ in range(3):  # a few pooled connections, idle between requests
        assert client.get("/readyz").status_code == 200
    # Autocommit: pg_stat_activity is read once per transaction.
    admin = create_engine(app.config["DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            killed = connection.scalars(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")).all()
            assert killed
            for pid in killed:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while connection.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                         "WHERE pid = ANY(:pids)"), {"pids": killed}):
                assert time.monotonic() < deadline, "terminated backends still there"
                time.sleep(0.05)
    finally:
        admin.dispose()
    for _ in range(3):
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json
