"""The facts the funnel reads, kept up to date incrementally: every attributed person with
their milestones (``AttributionPerson``) and each channel's counters per Asia/Shanghai day
(``ChannelDay``, added up by month in ``ChannelMonth``), so that a funnel or the ranking of
every channel sums a few small rows instead of joining millions of followers, bindings and
transactions.

``refresh()`` reads what the live tables gained since its last run, set-based:

1. new people: followers who followed through a code (their ``qr_scan`` row with
   ``followed``, written in the same transaction as ``Follower.first_scene``) and
   first-time mini-program users (``miniapp_arrival``, written with the login's
   ``member_session`` row); a mini-program user of the same unionid and channel as a
   follower is the same person (the follower's unionid as it is now: user/info may have
   brought it after the follow);
2. bindings: the first binding of each person (its app's openid or its unionid), from
   new bindings and, for new people, from the bindings they already had: the order of
   follow and binding does not matter;
3. transactions after binding (``first_transaction_at``) and redemptions after binding
   (a count recomputed for the holders that have new ones, and for the newly bound);
4. scans: each (code, day) with new scans is recounted from ``qr_scan``'s index, and its
   month from its days.

Each milestone of a person moves from NULL to a value once (``UPDATE ... WHERE bound_at IS
NULL ... RETURNING channel, day``), and that is when its cohort's counter gains one, in one
grouped upsert; redemptions and scans are recounted, not added. So every step is
idempotent: reading a row twice changes nothing, which is what makes the watermarks safe.

Watermarks (``AttributionMark``) are ids, and PostgreSQL hands out ids when rows are
inserted, not when they commit: a transaction may commit id 41 after id 42 was read. So
each source keeps ``final_id`` (every row below it is read, and no commit can add one) and a
``candidate_id`` (the highest id seen when it was recorded, with the snapshot's xmax then):
each refresh re-reads everything above ``final_id``, and the candidate becomes final once
the oldest transaction still running (the snapshot's xmin) is younger than every
transaction that was running when it was recorded, i.e. once no transaction that could
hold a smaller id is left. Only the last refresh or two are re-read, harmlessly. A
transaction left open for long (idle in transaction) holds finality back and the re-read
grows (the snapshot is the server's: a busy neighbour database delays it too); it is never
wrong. (One window is theoretical: an INSERT that had taken its id but not yet its
transaction id when the candidate was read, a few instructions apart.) The first build
takes the ids under
a brief ``SHARE`` lock of the source tables, which waits for the writers of the moment to
commit (``BUILD_LOCK_TIMEOUT``; busy past it, the build waits for the next read), so what
it reads is final at once. On SQLite one writer at
a time holds the database, and ids follow commits: what a refresh reads is final.

It runs in its own transaction on its own connection, under a lock: PostgreSQL's
transaction advisory lock (a concurrent caller that cannot take it skips: the holder is
refreshing), or on SQLite the database's write lock (a concurrent caller waits, then finds
little to do). The funnel calls it before every read (``funnel.funnel``,
``funnel.ranking``), so what was committed before a read is in it; the periodic job
(``tasks.PERIODIC``) keeps the delta small between reads. The first refresh of a database
builds everything from scratch, the same steps over whole tables.

What a person is, precisely: their cohort day is that of their first recorded arrival
(the follow, or the first login, whichever was read first); their card is the holder of
their first binding (a later binding to another card adds nothing: rare, and the channel
brought the first); their transactions and redemptions are that card's after that
binding.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from campaigns.attribution.models import AttributionMark
from core.db import db

log = logging.getLogger(__name__)

# The tables read by id, in the order the steps read them.
SOURCES = ("qr_scan", "member_session", "binding", "card_transaction", "redemption")
LOCK_ID = 0x636F_6272_616E_6402  # the refresh's advisory lock (the migrations' is ...01)
BUILD_LOCK_TIMEOUT = "2s"
COUNTERS = ("follows", "binds", "transacting", "redemptions")
_FOLLOWED_AT = "coalesce(f.first_scene_at, f.created_at)"
# The UTC bounds of the Asia/Shanghai day ``d.day``: as timestamps on PostgreSQL, as the text
# SQLite keeps them in (its ``datetime()`` sorts before the stored fractions of a second, so
# ">= start" and "< end" keep their meaning).
# And the month of a day (its first day), of a scan, and the first day of the next month.
_DAY_BOUNDS_PG = {"day_start": "(CAST(d.day AS timestamp) AT TIME ZONE 'Asia/Shanghai')",
                  "day_end": "((CAST(d.day AS timestamp) + interval '1 day') "
                             "AT TIME ZONE 'Asia/Shanghai')",
                  "month_of_day": "CAST(date_trunc('month', day) AS DATE)",
                  "month_of_scan": "CAST(date_trunc('month', timezone('Asia/Shanghai', "
                                   "scanned_at)) AS DATE)",
                  "month_end": "CAST(d.month + interval '1 month' AS DATE)"}
_DAY_BOUNDS_SQLITE = {"day_start": "datetime(d.day, '-8 hours')",
                      "day_end": "datetime(d.day, '+16 hours')",
                      "month_of_day": "date(day, 'start of month')",
                      "month_of_scan": "date(scanned_at, '+8 hours', 'start of month')",
                      "month_end": "date(d.month, '+1 month')"}
# A day's or a month's counters gain the row's counts (the scans are recounted apart).
_ADD_ON_CONFLICT = """
    ON CONFLICT (channel, {key}) DO UPDATE SET
        follows = {table}.follows + excluded.follows,
        binds = {table}.binds + excluded.binds,
        transacting = {table}.transacting + excluded.transacting,
        redemptions = {table}.redemptions + excluded.redemptions"""
_ADD_DAYS_ON_CONFLICT = _ADD_ON_CONFLICT.format(key="day", table="channel_day")
_ADD_MONTHS_ON_CONFLICT = _ADD_ON_CONFLICT.format(key="month", table="channel_month")
_INTO_DAYS = """
    INSERT INTO channel_day (channel, day, scans, follows, binds, transacting, redemptions)"""
_INTO_MONTHS = """
    INSERT INTO channel_month (channel, month, scans, follows, binds, transacting, redemptions)"""
_ADD_TO_DAYS = _INTO_DAYS + """
    VALUES (:channel, :day, 0, :follows, :binds, :transacting, :redemptions)""" + \
    _ADD_DAYS_ON_CONFLICT
_ADD_TO_MONTHS = _INTO_MONTHS + """
    VALUES (:channel, :month, 0, :follows, :binds, :transacting, :redemptions)""" + \
    _ADD_MONTHS_ON_CONFLICT
# PostgreSQL: all the rows in one statement, one array per column.
_ROWS_PG = """
    FROM unnest(CAST(:channel AS text[]), CAST(:day AS date[]), CAST(:follows AS int[]),
                CAST(:binds AS int[]), CAST(:transacting AS int[]),
                CAST(:redemptions AS int[])) AS r(channel, day, follows, binds, transacting,
                                                 redemptions)"""
_ADD_TO_DAYS_PG = _INTO_DAYS + """
    SELECT channel, day, 0, follows, binds, transacting, redemptions""" + _ROWS_PG + \
    _ADD_DAYS_ON_CONFLICT
_ADD_TO_MONTHS_PG = _INTO_MONTHS + """
    SELECT channel, CAST(date_trunc('month', day) AS DATE), 0, sum(follows), sum(binds),
           sum(transacting), sum(redemptions)""" + _ROWS_PG + """
    GROUP BY channel, CAST(date_trunc('month', day) AS DATE)""" + _ADD_MONTHS_ON_CONFLICT


class _Sql:
    """The statements of one dialect (they differ in the day of a time and the locks)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"

    def day(self, column: str) -> str:
        """The Asia/Shanghai date of a timestamp column (UTC+8 all year: no DST since 1991)."""
        if self.postgres:
            return "CAST(timezone('Asia/Shanghai', " + column + ") AS DATE)"
        return "date(" + column + ", '+8 hours')"

    def run(self, template: str, ids: Sequence[int] | None = None,
            parts: dict[str, str] | None = None, **params: Any) -> list[Any]:
        """Run one of this module's statements. ``template``'s ``{...}`` are filled with
        this module's own SQL fragments only (the dialect's day of a column, a scope, a
        RETURNING clause): every value travels as a bound parameter."""
        fragments = {"day_of_follow": self.day(_FOLLOWED_AT),
                     "day_of_arrival": self.day("a.arrived_at"),
                     "day_of_scan": self.day("scanned_at"), "followed_at": _FOLLOWED_AT,
                     **(_DAY_BOUNDS_PG if self.postgres else _DAY_BOUNDS_SQLITE),
                     **(parts or {})}
        statement = text(template.format(**fragments))
        if ids is not None:
            statement = statement.bindparams(bindparam("ids", expanding=True))
            params["ids"] = list(ids)
        result = self.connection.execute(statement, params)
        return list(result) if result.returns_rows else []

    def locked(self) -> bool:
        if self.postgres:
            # The facts are derived and a refresh is all or nothing: a crash that loses its
            # commit loses its marks with it, and the next refresh reads the same rows again.
            # So it need not wait for the WAL to reach the disk (a read waits on it).
            return bool(self.connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:id) "
                     "FROM set_config('synchronous_commit', 'off', true)"), {"id": LOCK_ID}))
        # The first write takes SQLite's write lock for the whole transaction: from here on
        # nothing else commits, and what this refresh reads is the latest.
        self.connection.execute(text("UPDATE attribution_mark SET final_id = final_id"))
        return True

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Add the counts of ``rows`` to their (channel, day) counters and their months'."""
        if not rows:
            return
        if self.postgres:  # one statement for all rows: the rows travel as arrays
            columns = {name: [row[name] for row in rows] for name in ("channel", "day",
                                                                     *COUNTERS)}
            self.connection.execute(text(_ADD_TO_DAYS_PG), columns)
            self.connection.execute(text(_ADD_TO_MONTHS_PG), columns)
            return
        self.connection.execute(text(_ADD_TO_DAYS), rows)
        by_month: Counter[tuple[str, date, str]] = Counter()
        for row in rows:
            for step in COUNTERS:
                by_month[row["channel"], row["day"].replace(day=1), step] += row[step]
        self.connection.execute(text(_ADD_TO_MONTHS), [
            {"channel": channel, "month": month, **dict.fromkeys(COUNTERS, 0), **values}
            for (channel, month), values in _by_key(by_month).items()])


def refresh() -> bool:
    """Bring the facts up to date with what the live tables hold (the first time: build
    them); commits its own transaction. False when another refresh holds the lock."""
    with db.engine.begin() as connection:
        sql = _Sql(connection)
        if not sql.locked():
            return False
        marks = {row.source: row for row in connection.execute(
            select(AttributionMark.__table__))}
        if set(marks) != set(SOURCES):
            return _build(sql)
        _update(sql, marks)
    return True


# The sources' highest ids, in the order of SOURCES.
_MAX_IDS = ("(SELECT coalesce(max(id), 0) FROM qr_scan), "
            "(SELECT coalesce(max(id), 0) FROM member_session), "
            "(SELECT coalesce(max(id), 0) FROM binding), "
            "(SELECT coalesce(max(id), 0) FROM card_transaction), "
            "(SELECT coalesce(max(id), 0) FROM redemption)")
_LATEST = "SELECT " + _MAX_IDS
_LATEST_PG = ("SELECT " + _MAX_IDS + ", "
              "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint), "
              "CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text) AS bigint)")
_LOCK_SOURCES = ("LOCK TABLE qr_scan, member_session, binding, card_transaction, redemption "
                 "IN SHARE MODE")


def _latest(sql: _Sql) -> tuple[dict[str, int], int | None, int | None]:
    """Each source's highest id and, on PostgreSQL, the xmin and xmax of the same snapshot."""
    if not sql.postgres:
        return dict(zip(SOURCES, sql.run(_LATEST)[0], strict=True)), None, None
    row = sql.run(_LATEST_PG)[0]
    return dict(zip(SOURCES, row[:-2], strict=True)), row[-2], row[-1]


# -- the first build ------------------------------------------------------------------------------

_REBUILD_DAYS = """
    INSERT INTO channel_day (channel, day, scans, follows, binds, transacting, redemptions)
    SELECT channel, day, sum(scans), sum(follows), sum(binds), sum(transacting),
           sum(redemptions)
    FROM (SELECT channel, day, 0 AS scans, count(*) AS follows, count(bound_at) AS binds,
                 count(first_transaction_at) AS transacting, sum(redemptions) AS redemptions
          FROM attribution_person GROUP BY channel, day
          UNION ALL
          SELECT scene, {day_of_scan}, count(*), 0, 0, 0, 0
          FROM qr_scan GROUP BY scene, {day_of_scan}) AS counted
    GROUP BY channel, day"""
_REBUILD_MONTHS = """
    INSERT INTO channel_month (channel, month, scans, follows, binds, transacting, redemptions)
    SELECT channel, {month_of_day}, sum(scans), sum(follows), sum(binds), sum(transacting),
           sum(redemptions)
    FROM channel_day GROUP BY channel, {month_of_day}"""


def _build(sql: _Sql) -> bool:
    """Everything from scratch, set-based; the marks start at the ids that were final."""
    if sql.postgres:
        try:
            finals = _final_ids_under_lock()
        except OperationalError:
            log.warning("attribution facts: the source tables stayed busy; build later")
            return False
    else:
        finals = _latest(sql)[0]
    sql.run("DELETE FROM channel_month")
    sql.run("DELETE FROM channel_day")
    sql.run("DELETE FROM attribution_person")
    _new_people(sql, build=True)
    _bind(sql, "")
    _transact(sql, "")
    _count_redemptions(sql, "", returning=False)
    sql.run(_REBUILD_DAYS)
    sql.run(_REBUILD_MONTHS)
    sql.run("DELETE FROM attribution_mark")
    sql.connection.execute(AttributionMark.__table__.insert(), [
        {"source": source, "final_id": finals[source], "candidate_id": None,
         "candidate_xmax": None} for source in SOURCES])
    if sql.postgres:
        sql.run("ANALYZE attribution_person, channel_day, channel_month")  # before autovacuum
    return True


def _final_ids_under_lock() -> dict[str, int]:
    """The sources' highest ids while no transaction writes to them: a SHARE lock waits for
    the writers of the moment and holds new ones off for an instant, so every id up to
    these is committed or gone. Taken on a connection of its own and let go at once."""
    with db.engine.connect() as connection, connection.begin():
        connection.execute(text(f"SET LOCAL lock_timeout = '{BUILD_LOCK_TIMEOUT}'"))
        connection.execute(text(_LOCK_SOURCES))
        row = connection.execute(text(_LATEST)).one()
    return dict(zip(SOURCES, row, strict=True))


# -- an incremental refresh -----------------------------------------------------------------------

_OLD_REDEMPTIONS = """
    SELECT p.id, p.redemptions FROM attribution_person AS p
    WHERE p.bound_at IS NOT NULL {scope}"""
# The people to recount: the holders of new redemptions; the newly bound.
_REDEEMERS = "AND p.holder_id IN (SELECT r.holder_id FROM redemption AS r WHERE r.id > :after)"
_BOUND_NOW = "AND p.id IN :ids"


def _update(sql: _Sql, marks: dict[str, Any]) -> None:
    latest, xmin, xmax = _latest(sql)
    after = {source: marks[source].final_id for source in SOURCES}
    new = {source for source in SOURCES if latest[source] > after[source]}
    counts: Counter[tuple[str, date, str]] = Counter()

    # A follower's person keeps the unionid known at the follow: one that user/info brings
    # later reaches the facts through the follower's own binding, which the holder gets
    # then (``binding.link_follower``; and ``_link_twin`` when the mini-program binds after).
    arrived, catch_up = _new_people(sql, build=False, after=after, new=new)
    _count(counts, arrived, "follows")

    bound = _bind(sql, "AND b.id > :after", after=after["binding"]) if "binding" in new else []
    if catch_up:
        bound += _bind(sql, _BOUND_NOW, ids=catch_up)
    _count(counts, bound, "binds")
    newly_bound = [row[0] for row in bound]
    spent = (_transact(sql, "AND t.id > :after", after=after["card_transaction"])
             if "card_transaction" in new else [])
    if newly_bound:
        spent += _transact(sql, _BOUND_NOW, ids=newly_bound)
    _count(counts, spent, "transacting")
    recounts: list[tuple[str, dict[str, Any]]] = []
    if "redemption" in new:
        recounts.append((_REDEEMERS, {"after": after["redemption"]}))
    if newly_bound:
        recounts.append((_BOUND_NOW, {"ids": newly_bound}))
    for scope, params in recounts:
        ids = params.pop("ids", None)
        old = dict(sql.run(_OLD_REDEMPTIONS, ids, parts={"scope": scope}, **params))
        for person, channel, day, redemptions in _count_redemptions(
                sql, scope, returning=True, ids=ids, **params):
            counts[channel, _as_date(day), "redemptions"] += redemptions - old.get(person, 0)

    sql.add([{"channel": channel, "day": day, **dict.fromkeys(COUNTERS, 0), **values}
             for (channel, day), values in _by_key(counts).items()])
    if "qr_scan" in new:
        sql.run(_RECOUNT_SCANS, after=after["qr_scan"])
        sql.run(_RECOUNT_MONTH_SCANS, after=after["qr_scan"])
    _advance(sql, marks, latest, xmin, xmax)


_FOLLOWERS_SCOPE = ("AND f.openid IN (SELECT s.openid FROM qr_scan AS s "
                    "WHERE s.id > :scans AND s.followed)")
_ARRIVALS_SCOPE = ("AND a.openid IN (SELECT s.openid FROM member_session AS s "
                   "WHERE s.id > :sessions)")
_MERGE_FOLLOWERS = """
    UPDATE attribution_person SET oa_openid = f.openid
    FROM follower AS f
    WHERE f.first_scene IS NOT NULL {scope} AND f.unionid IS NOT NULL
      AND attribution_person.unionid = f.unionid AND attribution_person.channel = f.first_scene
      AND attribution_person.oa_openid IS NULL
      AND NOT EXISTS (SELECT 1 FROM attribution_person AS q WHERE q.oa_openid = f.openid)
    {returning}"""
_INSERT_FOLLOWERS = """
    INSERT INTO attribution_person (channel, day, arrived_at, oa_openid, unionid, redemptions)
    SELECT f.first_scene, {day_of_follow}, {followed_at}, f.openid, f.unionid, 0
    FROM follower AS f
    WHERE f.first_scene IS NOT NULL {scope} {not_yet}
    {returning}"""
_NOT_YET_FOLLOWER = ("AND NOT EXISTS (SELECT 1 FROM attribution_person AS q "
                     "WHERE q.oa_openid = f.openid)")
# A mini-program user joins the follower of the same unionid (the follower's, as it is now).
_MERGE_ARRIVALS = """
    UPDATE attribution_person SET mp_openid = a.openid, unionid = a.unionid
    FROM miniapp_arrival AS a JOIN follower AS f ON f.unionid = a.unionid
    WHERE a.unionid IS NOT NULL {scope}
      AND attribution_person.oa_openid = f.openid AND attribution_person.channel = a.channel
      AND attribution_person.mp_openid IS NULL
      AND NOT EXISTS (SELECT 1 FROM attribution_person AS q WHERE q.mp_openid = a.openid)
    {returning}"""
_INSERT_ARRIVALS = """
    INSERT INTO attribution_person (channel, day, arrived_at, mp_openid, unionid, redemptions)
    SELECT a.channel, {day_of_arrival}, a.arrived_at, a.openid, a.unionid, 0
    FROM miniapp_arrival AS a
    WHERE 1 = 1 {scope}
      AND NOT EXISTS (SELECT 1 FROM attribution_person AS q WHERE q.mp_openid = a.openid)
    {returning}"""


def _new_people(sql: _Sql, *, build: bool, after: dict[str, int] | None = None,
                new: set[str] | None = None) -> tuple[list[Any], list[int]]:
    """Insert the people who arrived (all of them when ``build``), followers first, so that
    a mini-program user joins a follower of the same unionid and channel: the inserted
    rows' (id, channel, day), and the ids of every person new or with a new openid."""
    if build:
        # Into an empty table: no follower is there yet. (Asked anyway, the planner, which
        # knows the table as empty, would scan it once per follower as it fills.)
        followers = {"scope": "", "not_yet": ""}
        arrivals = {"scope": ""}
        merged = inserted = {"returning": ""}
        params: dict[str, Any] = {}
    else:
        assert after is not None
        followers = {"scope": _FOLLOWERS_SCOPE, "not_yet": _NOT_YET_FOLLOWER}
        arrivals = {"scope": _ARRIVALS_SCOPE}
        merged = {"returning": "RETURNING attribution_person.id"}
        inserted = {"returning": "RETURNING id, channel, day"}
        params = {"scans": after["qr_scan"], "sessions": after["member_session"]}
    joined: list[Any] = []
    arrived: list[Any] = []
    if build or "qr_scan" in (new or ()):
        if not build:  # a follower may join a mini-program user read earlier
            joined += sql.run(_MERGE_FOLLOWERS, parts={**followers, **merged}, **params)
        arrived += sql.run(_INSERT_FOLLOWERS, parts={**followers, **inserted}, **params)
    if build and sql.postgres:
        # The planner must know how many people there now are, or it loops over them.
        sql.run("ANALYZE attribution_person")
    if build or "member_session" in (new or ()):
        joined += sql.run(_MERGE_ARRIVALS, parts={**arrivals, **merged}, **params)
        arrived += sql.run(_INSERT_ARRIVALS, parts={**arrivals, **inserted}, **params)
    return arrived, [row[0] for row in joined] + [row[0] for row in arrived]


_MATCH = """
    SELECT p.id AS person_id, b.created_at, b.holder_id, b.id AS binding_id
    FROM attribution_person AS p JOIN binding AS b ON {on}
    WHERE p.bound_at IS NULL {scope}"""
_BIND = """
    UPDATE attribution_person SET bound_at = m.created_at, holder_id = m.holder_id
    FROM (SELECT person_id, created_at, holder_id,
                 row_number() OVER (PARTITION BY person_id ORDER BY created_at, binding_id) AS n
          FROM ({oa} UNION ALL {miniapp} UNION ALL {unionid}) AS matched) AS m
    WHERE m.n = 1 AND attribution_person.id = m.person_id AND attribution_person.bound_at IS NULL
    RETURNING attribution_person.id, attribution_person.channel, attribution_person.day"""
_BINDING_OF = {"oa": "b.app = 'oa' AND b.openid = p.oa_openid",
               "miniapp": "b.app = 'miniapp' AND b.openid = p.mp_openid",
               "unionid": "b.unionid = p.unionid"}


def _bind(sql: _Sql, scope: str, **params: Any) -> list[Any]:
    """Give the unbound people within ``scope`` (a condition on ``p`` the person and ``b``
    the binding) their first binding: (id, channel, day) of each person bound now. A
    binding counts once made, also when undone later."""
    matches = {name: _MATCH.format(on=on, scope=scope) for name, on in _BINDING_OF.items()}
    return sql.run(_BIND.format(**matches), **params)


_TRANSACT = """
    UPDATE attribution_person SET first_transaction_at = m.occurred_at
    FROM (SELECT p.id AS person_id, min(t.occurred_at) AS occurred_at
          FROM attribution_person AS p
          JOIN card_transaction AS t ON t.holder_id = p.holder_id AND t.occurred_at > p.bound_at
          WHERE p.first_transaction_at IS NULL {scope}
          GROUP BY p.id) AS m
    WHERE attribution_person.id = m.person_id AND attribution_person.first_transaction_at IS NULL
    RETURNING attribution_person.id, attribution_person.channel, attribution_person.day"""


def _transact(sql: _Sql, scope: str, **params: Any) -> list[Any]:
    """The first transaction after binding of the bound people within ``scope`` (on ``p``
    and ``t`` the transaction): (id, channel, day) of each person who has one now. Any
    transaction the feed accepted counts, a credit too."""
    return sql.run(_TRANSACT, parts={"scope": scope}, **params)


_REDEEM = """
    UPDATE attribution_person SET redemptions = m.n
    FROM (SELECT p.id AS person_id, count(*) AS n
          FROM attribution_person AS p
          JOIN redemption AS r ON r.holder_id = p.holder_id AND r.redeemed_at >= p.bound_at
          WHERE p.bound_at IS NOT NULL {scope}
          GROUP BY p.id) AS m
    WHERE attribution_person.id = m.person_id AND attribution_person.redemptions <> m.n
    {returning}"""


def _count_redemptions(sql: _Sql, scope: str, *, returning: bool,
                       ids: Sequence[int] | None = None, **params: Any) -> list[Any]:
    """Recount the redemptions after binding of the bound people within ``scope`` (on
    ``p``); with ``returning``, (id, channel, day, count) of each whose count changed."""
    returned = ("RETURNING attribution_person.id, attribution_person.channel, "
                "attribution_person.day, attribution_person.redemptions" if returning else "")
    return sql.run(_REDEEM, ids, parts={"scope": scope, "returning": returned}, **params)


# Each (code, day) with scans above :after, recounted over its day through qr_scan's index
# on (scene, scanned_at). ("WHERE 1 = 1": SQLite's parser needs a WHERE before ON CONFLICT.)
_RECOUNT_SCANS = """
    INSERT INTO channel_day (channel, day, scans, follows, binds, transacting, redemptions)
    SELECT d.scene, d.day,
           (SELECT count(*) FROM qr_scan AS q WHERE q.scene = d.scene
              AND q.scanned_at >= {day_start} AND q.scanned_at < {day_end}), 0, 0, 0, 0
    FROM (SELECT DISTINCT scene, {day_of_scan} AS day FROM qr_scan WHERE id > :after) AS d
    WHERE 1 = 1
    ON CONFLICT (channel, day) DO UPDATE SET scans = excluded.scans"""
# Then the months of those days, from their days.
_RECOUNT_MONTH_SCANS = """
    INSERT INTO channel_month (channel, month, scans, follows, binds, transacting, redemptions)
    SELECT d.scene, d.month,
           (SELECT coalesce(sum(c.scans), 0) FROM channel_day AS c WHERE c.channel = d.scene
              AND c.day >= d.month AND c.day < {month_end}), 0, 0, 0, 0
    FROM (SELECT DISTINCT scene, {month_of_scan} AS month FROM qr_scan WHERE id > :after) AS d
    WHERE 1 = 1
    ON CONFLICT (channel, month) DO UPDATE SET scans = excluded.scans"""


_ADVANCE = """
    UPDATE attribution_mark SET final_id = :final_id, candidate_id = :candidate_id,
                                candidate_xmax = :candidate_xmax
    WHERE source = :source"""


def _advance(sql: _Sql, marks: dict[str, Any], latest: dict[str, int], xmin: int | None,
             xmax: int | None) -> None:
    """Move each source's final id as far as is safe (see the module's docstring)."""
    changes = []
    for source in SOURCES:
        mark = marks[source]
        if not sql.postgres:
            final, candidate, candidate_xmax = max(mark.final_id, latest[source]), None, None
        elif mark.candidate_id is None or mark.candidate_xmax <= xmin:
            final = max(mark.final_id, mark.candidate_id or 0)
            candidate, candidate_xmax = latest[source], xmax
        else:
            continue  # the candidate's transactions are not all over: read from final again
        if (final, candidate, candidate_xmax) != (
                mark.final_id, mark.candidate_id, mark.candidate_xmax):
            changes.append({"source": source, "final_id": final, "candidate_id": candidate,
                            "candidate_xmax": candidate_xmax})
    if changes:
        sql.connection.execute(text(_ADVANCE), changes)


def _count(counts: Counter, rows: Iterable[Any], step: str) -> None:
    for _, channel, day in rows:
        counts[channel, _as_date(day), step] += 1


def _by_key(counts: Counter) -> dict[tuple[str, date], dict[str, int]]:
    rows: dict[tuple[str, date], dict[str, int]] = {}
    for (channel, day, step), n in counts.items():
        if n:
            rows.setdefault((channel, day), {})[step] = n
    return rows


def _as_date(value: date | str) -> date:
    """A date column's value as the driver gives it (SQLite: ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(value)
