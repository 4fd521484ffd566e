"""The SQLAlchemy handle and migrations, shared by every package's models."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate(compare_type=True, render_as_batch=True)


def utcnow() -> datetime:
    """Timezone-aware now, the only clock models use."""
    return datetime.now(UTC)


# BIGINT keys on PostgreSQL; SQLite only auto-increments a column typed INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
