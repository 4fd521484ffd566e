"""The attribution funnel on PostgreSQL at scale: one channel's funnel and the ranking of
every channel read from the facts ``campaigns.attribution.facts`` keeps (each read
refreshing them first, after a realistic delta of new rows), beside the previous live
computation over the raw tables (the baseline), in the same run.

What is measured, in process (``app:create_app()``'s session, so statement building and
result handling count as they would in a request), each ``--runs`` times:

* ``funnel``: ``campaigns.attribution.funnel.funnel(code)`` of a random channel (all time
  and 30 days) and of the biggest channel;
* ``ranking``: ``funnel.ranking(by="binds")`` of all channels (all time and 30 days), and
  ``by="transacting"`` of one branch;
* before every timed read, untimed, ``--delta`` new followers through codes (with their
  scans), as many bindings and transactions, a tenth as many mini-program arrivals (with
  their logins' sessions) and redemptions, committed: the read's own refresh takes them in;
  ``refresh()`` alone after such a delta is timed too;
* the first build of the facts from scratch at this size (what the first refresh after the
  migration does), once;
* the baseline: the previous helper's one-statement CTE over follower, miniapp_arrival,
  binding, card_transaction, redemption and qr_scan (kept below as ``baseline_counts``),
  for a random channel, the biggest one and the ranking (``--baseline-runs`` times: slow).

p50/p95/max of each; PASS when the p95 of every read is under ``--target-ms`` (the issue's
200 ms). The facts and the baseline must agree on the biggest channel (all time: the
baseline's periods were "by the period's end", the facts' are "the cohort to date"). The
plans of the funnel's and the ranking's reads are printed, with a check that neither
reads a big table.

The data set is generated inside PostgreSQL (``INSERT ... SELECT ... FROM generate_series``,
``setseed`` for the same data every run) into a database of its own
(``cobrand_bench_funnel``, its schema built by the migrations, dropped at the end unless
``--keep``): ``--channels`` channels (branches and campaigns, ten per branch) over
``--followers`` followers, skewed as real channels are (a few bring most; the square of a
uniform draw picks the channel); 70% of followers with a unionid; one mini-program arrival
per ten followers (half of them the same person as a follower, through the same channel);
1.5 scans per follower; a quarter of followers bound (OA openid, plus the mini-program
twin's binding, five minutes earlier, for those who have one); 60% of the bound spend
after binding (four transactions) and a fifth of them also before; 15% of the bound
redeem. ANALYZE after loading, as autovacuum would have.

The machine is shared: the CPU load of other processes during the run is printed.

Run from the repository root::

    .venv/bin/python -m bench.funnel [--followers 1000000] [--channels 1000] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    create_engine,
    exists,
    func,
    literal,
    select,
    text,
    union,
    union_all,
)

from bench.harness import backend, proc, report
from bench.harness.stats import Latency
from campaigns.attribution.models import QrScan
from campaigns.benefits.models import Redemption
from members.holders.binding import MINIAPP, OFFICIAL_ACCOUNT
from members.holders.models import Binding, Follower, MiniappArrival
from members.transactions.models import Transaction

DATABASE = "cobrand_bench_funnel"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 330
# Big tables a read of the facts must not touch at all.
BIG_TABLES = ("follower", "binding", "card_transaction", "redemption", "qr_scan",
              "miniapp_arrival")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--delta", type=int, default=100,
                        help="new followers, bindings and transactions before each read")
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=float, default=0.12)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args(argv)


# -- the data set ---------------------------------------------------------------------------------

# :channels, :followers, :t0, :t_end, :seed. Ids are given (1..n), then the sequences are
# moved past them, so that rows the app inserts later get fresh ids.
_CODE = "'ch_' || lpad(floor(:channels * power(random(), 2))::int::text, 4, '0')"
LOAD = [
    "SELECT setseed(:seed)",
    "INSERT INTO channel (id, code, kind, name, branch, active, created_by, created_at) "
    "SELECT n + 1, 'ch_' || lpad(n::text, 4, '0'), "
    "CASE WHEN n % 10 = 0 THEN 'branch' ELSE 'campaign' END, '渠道 ' || n, "
    "'b' || lpad((n / 10)::text, 3, '0'), true, 'bench', now() "
    "FROM generate_series(0, :channels - 1) AS n",
    "INSERT INTO follower (id, openid, unionid, subscribed, first_scene, first_scene_at, "
    "subscribed_at, created_at, updated_at) "
    "SELECT n + 1, 'f' || n, CASE WHEN n % 10 < 7 THEN 'u' || n END, true, " + _CODE + ", "
    "at, at, at, at FROM (SELECT n, :t0 + random() * interval '330 days' AS at "
    "FROM generate_series(0, :followers - 1) AS n) AS drawn",
    # One arrival per ten followers; every other one the follower's twin (same unionid,
    # same channel, same moment).
    "INSERT INTO miniapp_arrival (openid, unionid, channel, arrived_at) "
    "SELECT 'm' || (f.id - 1), CASE WHEN twin THEN f.unionid END, "
    "CASE WHEN twin THEN f.first_scene ELSE " + _CODE + " END, "
    "CASE WHEN twin THEN f.first_scene_at ELSE :t0 + random() * interval '330 days' END "
    "FROM (SELECT *, (id - 1) % 20 = 0 AS twin FROM follower WHERE (id - 1) % 10 = 0) AS f",
    "INSERT INTO qr_scan (openid, scene, followed, scanned_at) "
    "SELECT openid, first_scene, true, first_scene_at FROM follower "
    "UNION ALL SELECT openid, " + _CODE + ", false, "
    "first_scene_at + random() * (:t_end - first_scene_at) FROM follower WHERE id % 2 = 0",
    "INSERT INTO card_holder (id, card_index, card_no, card_last4, name, phone, phone_index, "
    "id_no, id_no_index, tier, city, branch, source_digest, created_at, updated_at) "
    "SELECT h, 'c' || h, 'x', '0000', 'x', 'x', 'p' || h, 'x', 'i' || h, 'gold', '上海', "
    "'b000', 'x', now(), now() FROM generate_series(1, :followers / 4) AS h",
    "INSERT INTO binding (holder_id, app, openid, unionid, created_at) "
    "SELECT (id - 1) / 4 + 1, 'oa', openid, unionid, "
    "first_scene_at + random() * (:t_end - first_scene_at) FROM follower "
    "WHERE (id - 1) % 4 = 0 AND (id - 1) / 4 < :followers / 4",
    "INSERT INTO binding (holder_id, app, openid, unionid, created_at) "
    "SELECT holder_id, 'miniapp', 'm' || substr(openid, 2), unionid, "
    "created_at - interval '5 minutes' FROM binding "
    "WHERE app = 'oa' AND unionid IS NOT NULL AND substr(openid, 2)::int % 20 = 0",
    "INSERT INTO card_transaction (txn_id, card_index, card_last4, holder_id, amount_fen, "
    "currency, direction, merchant, channel, occurred_at, received_at) "
    "SELECT 'T' || holder_id || '_' || k, 'c' || holder_id, '0000', holder_id, 1234, 'CNY', "
    "'debit', 'm', 'POS', CASE WHEN k = 0 THEN created_at - (1 + random() * 30) * "
    "interval '1 day' ELSE created_at + random() * (:t_end - created_at) END, now() "
    "FROM binding CROSS JOIN generate_series(0, 4) AS k WHERE app = 'oa' AND "
    "((k > 0 AND holder_id * 7919 % 100 < 60) OR (k = 0 AND holder_id * 104729 % 100 < 20))",
    "INSERT INTO campaign (id, slug, title, starts_at, ends_at, eligibility, state, "
    "created_by, updated_by, created_at, updated_at) VALUES (1, 'bench', 'bench', :t0, "
    ":t_end + interval '60 days', '{}', 'published', 'bench', 'bench', now(), now())",
    "INSERT INTO campaign_option (id, campaign_id, key, title, points, position) "
    "VALUES (1, 1, 'o', 'o', 0, 0)",
    "INSERT INTO voucher_code (id, option_id, code, code_index, created_at, claimed_at) "
    "SELECT holder_id, 1, 'x', 'v' || holder_id, now(), now() FROM binding "
    "WHERE app = 'oa' AND holder_id * 31337 % 100 < 15",
    "INSERT INTO redemption (holder_id, campaign_id, option_id, code_id, points_spent, "
    "points_balance, request_id, redeemed_at) SELECT holder_id, 1, 1, holder_id, 0, 0, "
    "'r' || holder_id, created_at + random() * (:t_end - created_at) FROM binding "
    "WHERE app = 'oa' AND holder_id * 31337 % 100 < 15",
    *(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
      f"(SELECT max(id) FROM {table}))"
      for table in ("channel", "follower", "card_holder", "voucher_code")),
]
COUNTED = ("channel", "follower", "miniapp_arrival", "qr_scan", "card_holder", "binding",
           "card_transaction", "redemption")


def load(url: str, args: argparse.Namespace) -> dict[str, int]:
    """Generate the data set in the database; the number of rows of each table."""
    engine = create_engine(url)
    params = {"channels": args.channels, "followers": args.followers, "t0": T0,
              "t_end": T0 + timedelta(days=DAYS), "seed": args.seed}
    try:
        with engine.begin() as connection:
            for statement in LOAD:
                connection.execute(text(statement), params)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
            return {table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                    for table in COUNTED}
    finally:
        engine.dispose()


# -- what comes in between two reads --------------------------------------------------------------

DELTA = [
    # New followers through codes, now, with the scan that brought them.
    "INSERT INTO follower (openid, unionid, subscribed, first_scene, first_scene_at, "
    "subscribed_at, created_at, updated_at) SELECT 'n' || :round || '_' || k, "
    "CASE WHEN k % 10 < 7 THEN 'nu' || :round || '_' || k END, true, " + _CODE + ", "
    "now(), now(), now(), now() FROM generate_series(1, :n) AS k",
    "INSERT INTO qr_scan (openid, scene, followed, scanned_at) SELECT openid, first_scene, "
    "true, first_scene_at FROM follower WHERE openid LIKE 'n' || :round || '\\_%'",
    # Bindings: new holders for followers of the data set who had not bound yet.
    "INSERT INTO card_holder (card_index, card_no, card_last4, name, phone, phone_index, "
    "id_no, id_no_index, tier, city, branch, source_digest, created_at, updated_at) "
    "SELECT 'nc' || :round || '_' || k, 'x', '0000', 'x', 'x', 'np' || :round || '_' || k, "
    "'x', 'ni' || :round || '_' || k, 'gold', '上海', 'b000', 'x', now(), now() "
    "FROM generate_series(1, :n) AS k",
    "INSERT INTO binding (holder_id, app, openid, unionid, created_at) "
    "SELECT h.id, 'oa', f.openid, f.unionid, now() FROM "
    "(SELECT id, row_number() OVER (ORDER BY id) AS k FROM card_holder "
    " WHERE card_index LIKE 'nc' || :round || '\\_%') AS h "
    "JOIN (SELECT openid, unionid, row_number() OVER (ORDER BY id) AS k FROM follower "
    " WHERE id > CAST(:round AS bigint) * :n * 4 AND id % 4 = 2 AND openid LIKE 'f%'"
    " LIMIT :n) AS f ON f.k = h.k",
    "INSERT INTO card_transaction (txn_id, card_index, card_last4, holder_id, amount_fen, "
    "currency, direction, merchant, channel, occurred_at, received_at) "
    "SELECT 'NT' || :round || '_' || k, 'c' || h, '0000', h, 1234, 'CNY', 'debit', 'm', 'POS', "
    "now(), now() FROM (SELECT k, 1 + floor(random() * :holders)::int AS h "
    "FROM generate_series(1, :n) AS k) AS drawn",
    # A tenth as many mini-program arrivals, with their logins' sessions, and redemptions.
    "INSERT INTO miniapp_arrival (openid, channel, arrived_at) "
    "SELECT 'nm' || :round || '_' || k, " + _CODE + ", now() "
    "FROM generate_series(1, :n / 10) AS k",
    "INSERT INTO member_session (token_hash, openid, session_key, created_at, expires_at) "
    "SELECT 'nt' || :round || '_' || k, 'nm' || :round || '_' || k, 'x', now(), "
    "now() + interval '1 day' FROM generate_series(1, :n / 10) AS k",
    "INSERT INTO voucher_code (option_id, code, code_index, created_at, claimed_at) "
    "SELECT 1, 'x', 'nv' || :round || '_' || k, now(), now() "
    "FROM generate_series(1, :n / 10) AS k",
    "INSERT INTO redemption (holder_id, campaign_id, option_id, code_id, points_spent, "
    "points_balance, request_id, redeemed_at) SELECT 1 + floor(random() * :holders)::int, "
    "1, 1, v.id, 0, 0, v.code_index, now() FROM voucher_code AS v "
    "WHERE v.code_index LIKE 'nv' || :round || '\\_%'",
]


@dataclass
class Writer:
    """Commits a delta before each read, on its own connection (as the app's writers do)."""

    engine: Any
    args: argparse.Namespace
    round: int = 0

    def __call__(self) -> None:
        self.round += 1
        params = {"round": self.round, "n": self.args.delta, "channels": self.args.channels,
                  "holders": self.args.followers // 4}
        with self.engine.begin() as connection:
            for statement in DELTA:
                connection.execute(text(statement), params)


# -- the baseline: the previous live computation, kept as it was ----------------------------------

@dataclass(frozen=True)
class Period:
    """The baseline's period: ``[start, end)`` in UTC; None for an open side."""

    start: datetime | None = None
    end: datetime | None = None


ALL_TIME = Period()


STEPS = ("scans", "follows", "binds", "transacting", "redemptions")


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [condition for condition in (
        column >= period.start if period.start else None,
        column < period.end if period.end else None) if condition is not None]


def _before_end(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column < period.end] if period.end else []


def baseline_counts(codes: str | Select | None, period: Period) -> Select:
    """BASELINE (the previous helper's ``funnel._counts``, unchanged): the five steps per
    code, one row per code with anything to count, as one statement of CTEs. ``codes``:
    one code, or a one-column select of codes; None: every code.

    Each CTE reads the big tables only through their indexes on the code and time columns
    (follower's first scene, arrivals' channel, scans' scene), and the bound people's
    bindings, transactions and redemptions through their holder's indexes.
    """
    def of_codes(column: Any) -> list[ColumnElement[bool]]:
        if codes is None:
            return [column.is_not(None)]
        return [column == codes] if isinstance(codes, str) else [column.in_(codes)]

    people = union_all(
        select(Follower.first_scene.label("code"),
               func.coalesce(Follower.unionid,
                             literal("oa:") + Follower.openid).label("key"),
               literal(OFFICIAL_ACCOUNT).label("app"), Follower.openid, Follower.unionid)
        .where(*of_codes(Follower.first_scene), *_within(Follower.first_scene_at, period)),
        select(MiniappArrival.channel,
               func.coalesce(MiniappArrival.unionid, literal("mp:") + MiniappArrival.openid),
               literal(MINIAPP), MiniappArrival.openid, MiniappArrival.unionid)
        .where(*of_codes(MiniappArrival.channel), *_within(MiniappArrival.arrived_at, period)),
    ).cte("people")
    # Every binding of a person: of its own openid in its app, or of its unionid (the
    # other app's, or its own before its openid's unionid was known).
    bound = union_all(
        select(people.c.code, people.c.key, Binding.holder_id,
               Binding.created_at.label("bound_at"))
        .join(Binding, and_(Binding.app == people.c.app, Binding.openid == people.c.openid))
        .where(*_before_end(Binding.created_at, period)),
        select(people.c.code, people.c.key, Binding.holder_id, Binding.created_at)
        .join(Binding, Binding.unionid == people.c.unionid)
        .where(*_before_end(Binding.created_at, period)),
    ).cte("bound")
    spent = exists().where(Transaction.holder_id == bound.c.holder_id,
                           Transaction.occurred_at > bound.c.bound_at,
                           *_before_end(Transaction.occurred_at, period))

    scans = (select(QrScan.scene.label("code"), func.count().label("n"))
             .where(*of_codes(QrScan.scene), *_within(QrScan.scanned_at, period))
             .group_by(QrScan.scene).cte("scans"))
    follows = (select(people.c.code, func.count(people.c.key.distinct()).label("n"))
               .group_by(people.c.code).cte("follows"))
    binds = (select(bound.c.code, func.count(bound.c.key.distinct()).label("n"))
             .group_by(bound.c.code).cte("binds"))
    transacting = (select(bound.c.code, func.count(bound.c.key.distinct()).label("n"))
                   .where(spent).group_by(bound.c.code).cte("transacting"))
    redemptions = (select(bound.c.code, func.count(Redemption.id.distinct()).label("n"))
                   .join(Redemption, and_(Redemption.holder_id == bound.c.holder_id,
                                          Redemption.redeemed_at >= bound.c.bound_at,
                                          *_before_end(Redemption.redeemed_at, period)))
                   .group_by(bound.c.code).cte("redemptions"))

    every = union(select(scans.c.code), select(follows.c.code)).cte("every_code")
    steps = (scans, follows, binds, transacting, redemptions)
    query = select(every.c.code, *(func.coalesce(step.c.n, 0).label(name)
                                   for name, step in zip(STEPS, steps, strict=True)))
    joined = every
    for step in steps:
        joined = joined.outerjoin(step, step.c.code == every.c.code)
    return query.select_from(joined)




def baseline_funnel(session: Any, code: str) -> tuple[int, ...]:
    row = session.execute(baseline_counts(code, ALL_TIME)).first()
    return tuple(row._mapping[step] for step in STEPS) if row else (0,) * 5


def baseline_ranking(session: Any) -> list[Any]:
    return list(session.execute(baseline_counts(None, ALL_TIME)))


# -- measuring ------------------------------------------------------------------------------------

def timed(call: Callable[[], object], runs: int, before: Callable[[], None] | None = None
          ) -> tuple[Latency, object]:
    """``runs`` timings of ``call``; ``before`` (untimed) runs ahead of each."""
    samples, result = [], None
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples), result


def line(name: str, latency: Latency) -> str:
    return (f"{name:<52} n={latency.count:<4} p50 {latency.p50:8.1f} ms  "
            f"p95 {latency.p95:8.1f} ms  max {latency.max:8.1f} ms")


def plan_of(session: Any, statement: Any) -> list[str]:
    compiled = statement.compile(dialect=session.get_bind().dialect,
                                 compile_kwargs={"literal_binds": True})
    return [row[0] for row in session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))]


def measure(app: Any, url: str, args: argparse.Namespace) -> bool:
    from campaigns.attribution import facts, funnel
    from core.db import db

    rng = random.Random(int(args.seed * 1000))
    codes = [f"ch_{n:04d}" for n in range(args.channels)]
    last = (T0 + timedelta(days=DAYS)).date()
    month = funnel.Period(start=last - timedelta(days=30), end=last)
    big = codes[0]
    writer = Writer(create_engine(url), args)
    ok = True
    with app.app_context():
        session = db.session
        report.log("building the facts from scratch ...")
        started = time.perf_counter()
        built = facts.refresh()
        build_s = time.perf_counter() - started
        people = session.scalar(text("SELECT count(*) FROM attribution_person"))
        days = session.scalar(text("SELECT count(*) FROM channel_day"))
        session.commit()
        report.log(f"built in {build_s:.1f} s ({people:,} people, {days:,} channel days)")
        funnel.funnel(big)  # warm the statement cache

        report.log("measuring ...")
        results = []
        busy_before = proc.busy_cpus(0.5)
        started = time.perf_counter()
        with proc.measuring(lambda: {"bench": [os.getpid()],
                                     "postgres": backend.service_pids()}) as use:
            results.append((f"refresh() alone after a delta of {args.delta}", *timed(
                facts.refresh, args.runs, writer)))
            results.append(("funnel(random code), all time", *timed(
                lambda: funnel.funnel(rng.choice(codes)), args.runs, writer)))
            results.append(("funnel(random code), 30 days", *timed(
                lambda: funnel.funnel(rng.choice(codes), month), args.runs, writer)))
            results.append((f"funnel(biggest channel {big}), all time", *timed(
                lambda: funnel.funnel(big), args.runs, writer)))
            results.append(("ranking(by=binds), all channels, all time", *timed(
                lambda: funnel.ranking(by="binds"), args.runs, writer)))
            results.append(("ranking(by=binds), all channels, 30 days", *timed(
                lambda: funnel.ranking(month, by="binds"), args.runs, writer)))
            results.append(("ranking(by=transacting), branch b000", *timed(
                lambda: funnel.ranking(by="transacting", branch="b000"), args.runs, writer)))
            results.append(("funnel(random code), no delta (refresh finds none)", *timed(
                lambda: funnel.funnel(rng.choice(codes)), args.runs)))
        elapsed = time.perf_counter() - started
        session.commit()
        report.log("the baseline (live CTE over the raw tables) ...")
        baseline = [("BASELINE funnel(random code), all time", *timed(
            lambda: baseline_funnel(session, rng.choice(codes)), args.baseline_runs))]
        baseline.append(("BASELINE funnel(biggest channel), all time", *timed(
            lambda: baseline_funnel(session, big), max(1, args.baseline_runs // 2))))
        baseline.append(("BASELINE ranking, all channels, all time", *timed(
            lambda: baseline_ranking(session), 1)))
        facts.refresh()
        project = funnel.funnel(big)
        live = baseline_funnel(session, big)
        agree = tuple(project.as_dict().values()) == live
        single = plan_of(session, funnel._sums(funnel.ALL_TIME, big))
        ranked = plan_of(session, funnel._sums(funnel.ALL_TIME, None))
    writer.engine.dispose()

    print(f"data: {args.followers:,} followers over {args.channels:,} channels "
          f"(biggest {big}: {project.follows:,} follows, {project.binds:,} binds)")
    print(f"facts: first build {build_s:.1f} s ({'built' if built else 'NOT BUILT'}: "
          f"{people:,} people, {days:,} channel days)")
    print(f"machine: {report.CPUS} CPUs; {busy_before:.2f} CPUs busy just before; load "
          f"average {os.getloadavg()[0]:.1f}; during the {elapsed:.1f} s of the project's "
          "reads: " + report.busy_line(use.busy, {"bench": "bench (app)"}))
    if warning := report.disturbed(use.busy):
        print(f"WARNING: {warning}")
    for name, latency, _ in results + baseline:
        print(line(name, latency))
    report.verdict(agree, f"the facts and the baseline agree on {big}: {project.as_dict()} "
                   f"vs {dict(zip(STEPS, live, strict=True))}")
    ok &= agree
    for name, latency, _ in results:
        passed = latency.p95 < args.target_ms
        ok &= passed
        report.verdict(passed, f"{name}: p95 {latency.p95:.1f} ms < {args.target_ms:.0f} ms")
    touched = [row for row in single + ranked if any(
        f" on {table} " in f"{row} " for table in BIG_TABLES)]
    report.verdict(not touched, "the reads touch no big table" + (
        f": {touched}" if touched else ""))
    print("\nplan of a channel's funnel (EXPLAIN ANALYZE):")
    print("\n".join(single))
    print("\nplan of the ranking's sums (EXPLAIN ANALYZE):")
    print("\n".join(ranked))
    return ok and not touched and built


def main(argv: list[str] | None = None) -> int:
    """Build the data set, measure, drop the database; 0 when every check passed."""
    from app import create_app

    args = parse_args(argv)
    url = backend.database_url(DATABASE)
    backend.reset_database(url)
    env = backend.app_env(url, "")
    env.pop("REDIS_URL")  # embedded: the funnel needs no Redis
    try:
        app = create_app({**backend.settings(env), "LOG_LEVEL": "WARNING"})  # migrations
        report.log(f"generating {args.followers:,} followers in PostgreSQL ...")
        started = time.perf_counter()
        counts = load(url, args)
        report.log(f"loaded in {time.perf_counter() - started:.0f} s")
        print("rows: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()))
        report.await_quiet(30, "funnel: ")
        ok = measure(app, url, args)
    finally:
        if not args.keep:
            _drop(url)
    return 0 if ok else 1


def _drop(url: str) -> None:
    from sqlalchemy.engine import make_url

    admin = create_engine(f"{backend.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(
                f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
