"""Database engine settings."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.db import db


def test_postgresql_plans_every_execution(app):
    """A generic plan made while a table was small must not outlive its growth."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL setting")
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
