"""The attribution funnel on PostgreSQL at scale: one channel's funnel and the ranking of
every channel, the project's one-statement SQL beside a naive baseline, in the same run.

What is measured, in process (``app:create_app()``'s session, so statement building and
result handling count as they would in a request):

* ``funnel``: ``campaigns.attribution.funnel.funnel(code)`` of a random channel (all time,
  and for a 30-day period), ``--runs`` times each;
* ``ranking``: ``funnel.ranking(by="binds")`` of all channels (all time and 30 days), and
  ``by="transacting"`` of one branch;
* the naive baselines: a channel's funnel computed by loading its followers, arrivals,
  bindings, transactions and redemptions into Python (the loop the SQL replaces), and the
  ranking as one funnel query per channel (``--naive-runs`` times: it is slow).

p50/p95/max of each; PASS when the project's p95 is under ``--target-ms`` (the issue's
200 ms). The plans (EXPLAIN ANALYZE) of the funnel and the ranking are printed, with a
check that the funnel reads no big table sequentially.

The data set, loaded with COPY into a database of its own (``cobrand_bench_funnel``,
created, its schema built by the migrations, and dropped at the end unless ``--keep``):
``--channels`` channels (branches and campaigns, ten per branch) over ``--followers``
followers, skewed as real channels are (a few bring most; the square of a uniform draw
picks the channel); 70% of followers with a unionid; one mini-program arrival per ten
followers (half of them the same person as a follower); 1.5 scans per follower; a quarter
of followers bound (OA openid, plus the mini-program twin's binding for those who have
one); 60% of the bound spend after binding (four transactions) and a fifth of all also
before; 15% of the bound redeem. ANALYZE after loading, as autovacuum would have.

The machine is shared: the CPU load of other processes during the run is printed.

Run from the repository root::

    .venv/bin/python -m bench.funnel [--followers 1000000] [--channels 1000] [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from bench.harness import backend, proc, report
from bench.harness.stats import Latency

DATABASE = "cobrand_bench_funnel"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 330
# Big tables whose sequential scan in a channel's funnel would mean an index is missing.
BIG_TABLES = ("follower", "binding", "card_transaction", "redemption", "qr_scan",
              "miniapp_arrival")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--naive-runs", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args(argv)


# -- the data set ---------------------------------------------------------------------------------

def _at(rng: random.Random, after: datetime | None = None) -> datetime:
    start = after or T0
    left = max(1.0, (T0 + timedelta(days=DAYS) - start).total_seconds())
    return start + timedelta(seconds=rng.random() * left)


def _copy(cursor, table: str, columns: tuple[str, ...], rows: Iterator[tuple]) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load(url: str, args: argparse.Namespace) -> dict[str, int]:
    """COPY the data set in; the number of rows of each table."""
    rng = random.Random(args.seed)
    codes = [f"ch_{n:04d}" for n in range(args.channels)]
    now = datetime.now(UTC)
    engine = create_engine(url)
    counts: dict[str, int] = {}
    bound: list[tuple[int, datetime]] = []  # (holder id, bound at)
    try:
        raw = engine.raw_connection()
        cursor = raw.cursor()
        counts["channel"] = _copy(cursor, "channel", (
            "code", "kind", "name", "branch", "active", "created_by", "created_at"), (
            (code, "branch" if n % 10 == 0 else "campaign", f"渠道 {n}", f"b{n // 10:03d}",
             True, "bench", now) for n, code in enumerate(codes)))

        def code_of() -> str:
            return codes[int(len(codes) * rng.random() ** 2)]

        people: list[tuple[str, datetime]] = []  # each follower's (code, arrived)

        def followers() -> Iterator[tuple]:
            for n in range(args.followers):
                code, at = code_of(), _at(rng)
                people.append((code, at))
                yield (f"f{n}", f"u{n}" if n % 10 < 7 else None, True, code, at, at, now, now)

        counts["follower"] = _copy(cursor, "follower", (
            "openid", "unionid", "subscribed", "first_scene", "first_scene_at",
            "subscribed_at", "created_at", "updated_at"), followers())

        def arrivals() -> Iterator[tuple]:
            for n in range(0, args.followers, 10):
                twin = n % 20 == 0 and n % 10 < 7  # the same person as follower n
                code, at = people[n] if twin else (code_of(), _at(rng))
                yield (f"m{n}", f"u{n}" if twin else None, code, at)

        counts["miniapp_arrival"] = _copy(cursor, "miniapp_arrival", (
            "openid", "unionid", "channel", "arrived_at"), arrivals())

        def scans() -> Iterator[tuple]:
            for n, (code, at) in enumerate(people):
                yield (f"f{n}", code, True, at)
                if n % 2:
                    yield (f"f{n}", code_of(), False, _at(rng, at))

        counts["qr_scan"] = _copy(cursor, "qr_scan", ("openid", "scene", "followed",
                                                      "scanned_at"), scans())
        raw.commit()
        holders = args.followers // 4
        counts["card_holder"] = _copy(cursor, "card_holder", (
            "id", "card_index", "card_no", "card_last4", "name", "phone", "phone_index",
            "id_no", "id_no_index", "tier", "city", "branch", "source_digest", "created_at",
            "updated_at"), (
            (h, f"c{h}", "x", "0000", "x", "x", f"p{h}", "x", f"i{h}", "gold", "上海",
             "b000", "x", now, now) for h in range(1, holders + 1)))

        def bindings() -> Iterator[tuple]:
            for h in range(1, holders + 1):
                n = (h - 1) * 4
                at = _at(rng, people[n][1])
                bound.append((h, at))
                unionid = f"u{n}" if n % 10 < 7 else None
                yield (h, "oa", f"f{n}", unionid, at)
                if n % 20 == 0 and unionid:  # the mini-program twin, bound first
                    yield (h, "miniapp", f"m{n}", unionid, at - timedelta(minutes=5))

        counts["binding"] = _copy(cursor, "binding", (
            "holder_id", "app", "openid", "unionid", "created_at"), bindings())

        def transactions() -> Iterator[tuple]:
            t = 0
            for h, at in bound:
                times = [_at(rng, at) for _ in range(4)] if rng.random() < 0.6 else []
                if rng.random() < 0.2:
                    times.append(at - timedelta(days=1 + rng.random() * 30))
                for moment in times:
                    t += 1
                    yield (f"T{t}", f"c{h}", "0000", h, 1234, "CNY", "debit", "m", "POS",
                           moment, now)

        counts["card_transaction"] = _copy(cursor, "card_transaction", (
            "txn_id", "card_index", "card_last4", "holder_id", "amount_fen", "currency",
            "direction", "merchant", "channel", "occurred_at", "received_at"), transactions())
        cursor.execute(
            "INSERT INTO campaign (id, slug, title, starts_at, ends_at, eligibility, state, "
            "created_by, updated_by, created_at, updated_at) VALUES (1, 'bench', 'bench', "
            "%s, %s, '{}', 'published', 'bench', 'bench', %s, %s)",
            (T0, T0 + timedelta(days=400), now, now))
        cursor.execute("INSERT INTO campaign_option (id, campaign_id, key, title, points, "
                       "position) VALUES (1, 1, 'o', 'o', 0, 0)")
        redeemers = [(h, at) for h, at in bound if rng.random() < 0.15]
        counts["voucher_code"] = _copy(cursor, "voucher_code", (
            "id", "option_id", "code", "code_index", "created_at", "claimed_at"), (
            (n, 1, "x", f"v{n}", now, now) for n in range(1, len(redeemers) + 1)))
        counts["redemption"] = _copy(cursor, "redemption", (
            "holder_id", "campaign_id", "option_id", "code_id", "points_spent",
            "points_balance", "request_id", "redeemed_at"), (
            (h, 1, 1, n, 0, 0, f"r{n}", _at(rng, at))
            for n, (h, at) in enumerate(redeemers, start=1)))
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
        raw.close()
    finally:
        engine.dispose()
    return counts


# -- the naive baselines ------------------------------------------------------------------------

def naive_funnel(session, code: str) -> tuple[int, ...]:
    """The funnel as a loop over rows loaded into Python (what the one statement replaces)."""
    scans = session.execute(text("SELECT count(*) FROM qr_scan WHERE scene = :c"),
                            {"c": code}).scalar()
    people = session.execute(text(
        "SELECT 'oa', openid, unionid FROM follower WHERE first_scene = :c UNION ALL "
        "SELECT 'miniapp', openid, unionid FROM miniapp_arrival WHERE channel = :c"),
        {"c": code}).all()
    keys = {unionid or f"{app}:{openid}" for app, openid, unionid in people}
    bound: dict[str, list[tuple[int, datetime]]] = {}
    for app, openid, unionid in people:
        rows = session.execute(text(
            "SELECT holder_id, created_at FROM binding WHERE (app = :a AND openid = :o) "
            "OR unionid = :u"), {"a": app, "o": openid, "u": unionid}).all()
        if rows:
            bound.setdefault(unionid or f"{app}:{openid}", []).extend(rows)
    transacting, redemptions = 0, set()
    for rows in bound.values():
        spent = False
        for holder_id, at in rows:
            times = session.execute(text(
                "SELECT occurred_at FROM card_transaction WHERE holder_id = :h"),
                {"h": holder_id}).scalars().all()
            spent = spent or any(moment > at for moment in times)
            redemptions.update(session.execute(text(
                "SELECT id FROM redemption WHERE holder_id = :h AND redeemed_at >= :t"),
                {"h": holder_id, "t": at}).scalars().all())
        transacting += spent
    return scans, len(keys), len(bound), transacting, len(redemptions)


# -- measuring ----------------------------------------------------------------------------------

def timed(call: Callable[[], object], runs: int) -> tuple[Latency, object]:
    samples, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples), result


def line(name: str, latency: Latency) -> str:
    return (f"{name:<44} n={latency.count:<4} p50 {latency.p50:8.1f} ms  "
            f"p95 {latency.p95:8.1f} ms  max {latency.max:8.1f} ms")


def plan_of(session, statement) -> list[str]:
    compiled = statement.compile(dialect=session.get_bind().dialect,
                                 compile_kwargs={"literal_binds": True})
    return [row[0] for row in session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))]


def measure(app, args: argparse.Namespace) -> bool:
    from campaigns.attribution import funnel
    from core.db import db

    rng = random.Random(args.seed + 1)
    codes = [f"ch_{n:04d}" for n in range(args.channels)]
    month = funnel.Period(start=T0 + timedelta(days=200), end=T0 + timedelta(days=230))
    ok = True
    with app.app_context():
        session = db.session
        funnel.funnel(codes[0])  # warm the cache and the statement cache
        big = codes[0]
        report.log("measuring ...")
        results = []
        busy_before = proc.busy_cpus(0.5)
        started = time.perf_counter()
        with proc.measuring(lambda: {"bench": [os.getpid()],
                                     "postgres": backend.service_pids()}) as use:
            results.append(("funnel(code), all time", *timed(
                lambda: funnel.funnel(rng.choice(codes)), args.runs)))
            results.append(("funnel(code), 30 days", *timed(
                lambda: funnel.funnel(rng.choice(codes), month), args.runs)))
            results.append((f"funnel(biggest channel {big}), all time", *timed(
                lambda: funnel.funnel(big), args.runs)))
            results.append(("ranking(by=binds), all channels, all time", *timed(
                lambda: funnel.ranking(by="binds"), args.runs)))
            results.append(("ranking(by=binds), all channels, 30 days", *timed(
                lambda: funnel.ranking(month, by="binds"), args.runs)))
            results.append(("ranking(by=transacting, branch b000)", *timed(
                lambda: funnel.ranking(by="transacting", branch="b000"), args.runs)))
        elapsed = time.perf_counter() - started
        naive = [("naive funnel(code): rows into Python", *timed(
            lambda: naive_funnel(session, rng.choice(codes)), args.runs))]
        naive.append(("naive funnel(biggest channel)", *timed(
            lambda: naive_funnel(session, big), max(1, args.naive_runs))))
        naive.append(("naive ranking: one funnel query per channel", *timed(
            lambda: [funnel.funnel(code) for code in codes], args.naive_runs)))
        # The two ways agree (on the biggest channel: the loop's counts).
        project = funnel.funnel(big)
        looped = naive_funnel(session, big)
        agree = tuple(project.as_dict().values()) == looped
        single = plan_of(session, funnel._counts(big, funnel.ALL_TIME))
        ranked = plan_of(session, funnel._counts(None, funnel.ALL_TIME))

    print(f"data: {args.followers:,} followers over {args.channels:,} channels "
          f"(biggest {big}: {project.follows:,} follows, {project.binds:,} binds)")
    print(f"machine: {report.CPUS} CPUs; {busy_before:.2f} CPUs busy just before; during "
          f"the {elapsed:.1f} s of the project's queries: "
          + report.busy_line(use.busy, {"bench": "bench (app)"}))
    if warning := report.disturbed(use.busy):
        print(f"WARNING: {warning}")
    for name, latency, _ in results:
        print(line(name, latency))
    for name, latency, _ in naive:
        print(line(name, latency))
    report.verdict(agree, f"the SQL and the loop agree on {big}: {project.as_dict()}")
    ok &= agree
    for name, latency, _ in results:
        passed = latency.p95 < args.target_ms
        report.verdict(passed, f"{name}: p95 {latency.p95:.1f} ms < {args.target_ms:.0f} ms")
    seq = [row for row in single if "Seq Scan" in row and any(
        f" on {table} " in f"{row} " for table in BIG_TABLES)]
    report.verdict(not seq, "a channel's funnel reads no big table sequentially"
                   + (f": {seq}" if seq else ""))
    print("\nplan of a channel's funnel (EXPLAIN ANALYZE):")
    print("\n".join(single))
    print("\nplan of the ranking (EXPLAIN ANALYZE):")
    print("\n".join(ranked))
    return ok and not seq


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
        report.log(f"loading {args.followers:,} followers ...")
        started = time.perf_counter()
        counts = load(url, args)
        report.log(f"loaded in {time.perf_counter() - started:.0f} s: {counts}")
        print("rows: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()))
        report.await_quiet(30, "funnel: ")
        ok = measure(app, args)
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
