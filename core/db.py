"""The SQLAlchemy handle and migrations, shared by every package's models."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from select import POLLIN, poll
from typing import Any

from filelock import FileLock, Timeout
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    Row,
    Select,
    Table,
    bindparam,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

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

log = logging.getLogger(__name__)
# The PostgreSQL advisory lock (any fixed bigint, per database) held while migrating.
MIGRATION_LOCK_POLL = 0.2  # seconds between tries for the migration lock
MIGRATION_LOCK_ID = 0x636F_6272_616E_6401


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold this database's migration lock: Alembic runs in one process at a time.

    Two processes starting together on a database without the schema (``flask run``
    beside ``flask wechat-sim`` on a fresh machine) would both find it missing, both
    create it, and the second would fail ("table ... already exists"). Under the lock
    the later one finds the schema at head and does nothing. Both locks die with their
    process: PostgreSQL's session advisory lock with its connection, SQLite's OS file
    lock (beside the database file) with its descriptor. An in-memory SQLite database
    belongs to one process and needs none.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            _take_advisory_lock(connection)
            try:
                yield
            finally:
                # Closed, not unlocked: the server drops the lock with the session, also when
                # the connection broke meanwhile, and no pooled connection keeps holding it.
                connection.invalidate()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_file = FileLock(f"{database}.migrate-lock")
    try:
        lock_file.acquire(blocking=False)
    except Timeout:
        log.info("waiting for another process's migrations")
        lock_file.acquire()
    try:
        yield
    finally:
        lock_file.release()


def _take_advisory_lock(connection: Connection) -> None:
    """Poll for the migration lock rather than wait inside ``pg_advisory_lock``.

    A statement blocked in ``pg_advisory_lock`` keeps a snapshot open for as long as it
    waits, and ``CREATE INDEX CONCURRENTLY`` in the holder's migration waits for every
    snapshot older than itself to end: the two would wait for each other for ever, and
    no deadlock detector sees an advisory lock and a snapshot as a cycle. Between polls
    this connection runs nothing, so it holds no snapshot.
    """
    lock = {"id": MIGRATION_LOCK_ID}
    announced = False
    while not connection.scalar(text("SELECT pg_try_advisory_lock(:id)"), lock):
        if not announced:
            log.info("waiting for another process's migrations")
            announced = True
        time.sleep(MIGRATION_LOCK_POLL)


def drop_dead_connections(engine: Engine) -> None:
    """Replace, at checkout, a pooled PostgreSQL connection the server has hung up on.

    Instead of ``pool_pre_ping``, which spends a round trip (``SELECT 1``) on every
    checkout, that is on every request. A server that closes a connection (a restart, a
    terminated backend, ``idle_session_timeout``) first writes its FATAL error to it and
    then shuts the socket, so a dead idle connection is one with something to read: an idle
    connection of ours is otherwise silent (the app never LISTENs). One ``poll`` with no
    timeout tells, without a round trip; the pool then opens a new connection in its
    place, and the request never sees the dead one.

    What a poll cannot see fails the one request that meets it: a connection dropped
    without a word (a firewall's idle timeout, a server host gone), or one that breaks
    mid-request (a ping could not have helped there either). SQLAlchemy then recycles
    every connection pooled before that failure, so the next requests get fresh ones.
    """
    if engine.dialect.name == "postgresql":
        event.listen(engine, "checkout", _refuse_hung_up)


def _refuse_hung_up(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # psycopg's own flags first: set once it saw the connection break or closed it itself.
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the pooled connection is closed")
    poller = poll()
    poller.register(dbapi_connection.fileno(), POLLIN)
    if poller.poll(0):  # readable (a FATAL error, end of file) or hung up (POLLHUP, POLLERR)
        raise DisconnectionError("the server hung up on the pooled connection")


def utcnow() -> datetime:
    """Timezone-aware now, the only clock models use."""
    return datetime.now(UTC)


# BIGINT keys on PostgreSQL; SQLite only auto-increments a column typed INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database: SQLite hands back naive values otherwise."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC value (core.db.utcnow)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _on_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def insert_skipping_conflicts(table: Table, *conflict_columns: str) -> Any:
    """``INSERT ... ON CONFLICT (conflict_columns) DO NOTHING`` in this database's dialect.

    Add ``.returning(...)`` to learn which rows were new; for many rows at once see
    ``bulk_insert``. Under concurrency this is the one race-free insert-if-absent: a
    second writer of the same key waits for the first to commit, then inserts nothing,
    where select-then-insert would let both pass the select.
    """
    dialect = postgresql if _on_postgres() else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


def bulk_insert(table: Table, rows: Sequence[Mapping[str, Any]], *,
                skip_conflicts_on: Sequence[str] = (),
                returning: Sequence[str] = ()) -> list[Row]:
    """Insert ``rows`` in one statement; the ``returning`` columns of the rows inserted.

    ``skip_conflicts_on`` makes it ``ON CONFLICT (...) DO NOTHING`` (see
    ``insert_skipping_conflicts``): a row that conflicts is not inserted and not returned.

    On PostgreSQL the rows travel as one array per column (``INSERT ... SELECT FROM
    unnest(...)``): a dozen parameters whatever the row count, where a VALUES list of
    1,000 rows has 12,000 that the driver spends longer parsing than the server inserting.
    Column defaults are evaluated once for the statement. SQLite gets SQLAlchemy's
    multi-row VALUES.
    """
    if not rows:
        return []
    postgres = _on_postgres()
    statement = (postgresql if postgres else sqlite).insert(table)
    if postgres:
        statement = statement.from_select(*_unnest(table, rows))
    if skip_conflicts_on:
        statement = statement.on_conflict_do_nothing(index_elements=list(skip_conflicts_on))
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    result = db.session.execute(statement) if postgres else db.session.execute(statement, rows)
    return list(result) if returning else []


def _unnest(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], Select]:
    """Column names and ``SELECT * FROM unnest(:col1, :col2, ...)`` of the rows."""
    values = {name: [row[name] for row in rows] for name in rows[0]}
    for column in table.columns:
        default = column.default
        if column.name not in values and default is not None and not column.primary_key:
            value = default.arg(None) if default.is_callable else default.arg
            values[column.name] = [value] * len(rows)
    # The psycopg dialect casts each parameter to its array type (%(x)s::BIGINT[]), so
    # unnest knows its columns' types even when every element is NULL.
    arrays = [bindparam(f"{name}_values", value, type_=ARRAY(table.c[name].type))
              for name, value in values.items()]
    unnested = func.unnest(*arrays).table_valued(*values).render_derived("batch")
    return list(values), select(*(unnested.c[name] for name in values))
