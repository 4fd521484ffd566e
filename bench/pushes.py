"""Marketing pushes on a million followers: freezing the recipients, the mass channel end to
end, the custom channel's rate with two workers, and a naive baseline.

The data set is COPYed into a PostgreSQL database of its own (``cobrand_bench_pushes``,
created, its schema built by the migrations, and dropped at the end unless ``--keep``):
``--followers`` followers, all subscribed, the first K of them (K = the custom push's
recipients, ``--custom-rate`` x (``--custom-seconds`` + 3), so that it still sends when the
window closes) having written to the account an hour ago (``last_message_at`` and
``last_interaction_at``: inside the 48-hour window), the others 2 to 29 days ago; a card
holder bound to every fourth follower (placeholder holder data: the audience filters here
do not read it; the naive baseline loads it as a naive resolver would). Redis is a private
``redis-server`` (no persistence); the simulator one gunicorn process (``--sim-threads``);
two ``flask --app app worker`` processes send. Every party reads the same settings
(bench/harness/backend.py), with ``PUSH_MAX_RATE_PER_S`` raised to let the mass push ask
``--mass-rate``.

What is measured, in this order:

1. **Freeze** (the mass push's): an audience ``{"subscribed": true}`` (every follower) and a
   mass push created and approved through the real services (``audiences.create_audience``,
   ``plans.create_push``, ``plans.approve``, which freezes the recipients with one
   ``INSERT … SELECT`` from ``audiences.recipients``), committed. Target: under 60 s.
2. **Mass end to end**: from that commit to the push ``done`` (its own ``finished_at``), at
   ``--mass-rate`` recipients/s, so that WeChat's mass-call limit (PUSH_MASS_CALLS_PER_MINUTE
   calls of up to 10,000 openids) is the bound. The simulator knows none of these
   followers (seeding a million over HTTP would take longer than the run): it records
   every call's openid list and answers success, and the counts come from that record, as
   WeChat would deliver: once per openid per distinct ``clientmsgid`` (a repeated call
   under the same clientmsgid sends nothing more). Duplicates: openids asked for in more
   than one distinct job; losses: frozen recipients asked for in none.
3. **Custom rate**: an audience ``{"subscribed": true, "active_within_hours": 24}`` (the K
   recent writers, seeded in the simulator with the same window) and a custom push at
   ``--custom-rate``, approved likewise; the rate is read from the simulator's record of
   custom/send arrivals over ``--custom-seconds`` from 1 s after the first (the first
   second holds the bucket's one second's worth on top of the rate): mean, slowest and
   busiest whole second. Target: the mean within ±5 %. Duplicates and losses as above
   (custom/send has no clientmsgid: every call is a message).
4. **Naive baseline** (after the workers stopped): the same mass audience resolved in Python
   (every follower, holder and binding SELECTed into Python, filtered there) and its
   recipients inserted one INSERT per row, committed at the end, into the same table, for
   a push of its own; on the first ``--naive-subset`` recipients only when that is fewer,
   the insert time then extrapolated to all of them (labelled so), and the ratio to the
   project's freeze.

The machine is shared: the load average and the CPUs busy by party (workers, simulator,
Redis + PostgreSQL, other) are printed with the figures; other load above 0.1 CPU is
flagged. PASS/FAIL lines do not change the exit status; it is 1 only when a measurement
could not be made.

Run from the repository root::

    python -m bench.pushes [--followers 1000000] [--custom-rate 300] [--custom-seconds 60]
                           [--mass-rate 10000] [--naive-subset 50000] [--keep]

A quick run: ``python -m bench.pushes --followers 100000 --custom-seconds 20``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis as redis_lib
import requests
from flask import Flask
from rq import Worker
from sqlalchemy import create_engine, delete, select, text

from app import create_app
from bench import alerts, faults
from bench.harness import backend, proc, report, servers, sim
from bench.harness.report import InvalidRun
from campaigns.console.models import Staff
from campaigns.pushes import audiences, plans
from campaigns.pushes.models import DONE, Audience, Push, PushDelivery
from core.db import db

DATABASE = backend.database_url("cobrand_bench_pushes")
MASS_PATH = "/cgi-bin/message/mass/send"
CUSTOM_PATH = "/cgi-bin/message/custom/send"
WORKERS = 2
SIM_THREADS = 16
FREEZE_TARGET_S = 60.0
RATE_TOLERANCE = 0.05
STEADY_SKIP = 1.0  # s after the first custom call: the bucket's one second's worth
CUSTOM_MARGIN_S = 3  # seconds of recipients beyond the window, so it sends throughout
POLL_S = 1.0
MAKER, CHECKER = "bench_maker", "bench_checker"
MASS_AUDIENCE: dict[str, Any] = {"subscribed": True}  # every follower
MESSAGE = "本月消费满1000元即可领取腾讯视频VIP月卡"


def openid(n: int) -> str:
    return f"oPush{n:023d}"  # 28 characters, as WeChat's


@dataclass
class Phase:
    """What one push's run measured."""

    name: str
    recipients: int = 0
    create_s: float = math.nan  # audience and push created, committed
    freeze_s: float = math.nan  # approve (INSERT … SELECT) committed
    done_s: float = math.nan  # approval's commit → the push done
    calls: int = 0
    distinct_jobs: int = 0  # mass: distinct clientmsgids
    duplicates: int = 0
    lost: int = 0
    states: dict[str, int] = field(default_factory=dict)
    per_second: list[int] = field(default_factory=list)  # custom: calls per steady second
    cpu: proc.CpuUse = field(default_factory=proc.CpuUse)
    load: tuple[float, float] = (math.nan, math.nan)  # 1-min load average before, after


@dataclass
class Naive:
    resolve_s: float = math.nan
    matched: int = 0
    inserted: int = 0
    insert_s: float = math.nan

    @property
    def extrapolated_s(self) -> float:
        """The inserts of every matched recipient, at the subset's pace."""
        return self.insert_s * self.matched / self.inserted if self.inserted else math.nan


# -- the data set -------------------------------------------------------------------------------

def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: Iterator[tuple]) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load(url: str, followers: int, recent: int) -> dict[str, int]:
    """COPY followers, holders and bindings in; rows per table."""
    rng = random.Random(11)  # a reproducible data set
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    engine = create_engine(url)
    counts: dict[str, int] = {}
    try:
        raw = engine.raw_connection()
        cursor = raw.cursor()

        def follower_rows() -> Iterator[tuple]:
            for n in range(followers):
                if n < recent:
                    last, wrote = hour_ago, hour_ago
                else:
                    last, wrote = now - timedelta(days=2 + 27 * rng.random()), None
                yield (openid(n), True, now - timedelta(days=90), last, wrote, now, now)

        counts["follower"] = _copy(cursor, "follower", (
            "openid", "subscribed", "subscribed_at", "last_interaction_at", "last_message_at",
            "created_at", "updated_at"), follower_rows())
        holders = followers // 4
        tiers = ("standard", "gold", "platinum")
        counts["card_holder"] = _copy(cursor, "card_holder", (
            "id", "card_index", "card_no", "card_last4", "name", "phone", "phone_index",
            "id_no", "id_no_index", "tier", "city", "branch", "source_digest", "created_at",
            "updated_at"), (
            (h, f"c{h}", "x", "0000", "x", "x", f"p{h}", "x", f"i{h}", tiers[h % 3], "上海",
             f"b{h % 50:03d}", "x", now, now) for h in range(1, holders + 1)))
        counts["binding"] = _copy(cursor, "binding", (
            "holder_id", "app", "openid", "created_at"), (
            (h, "oa", openid((h - 1) * 4), now) for h in range(1, holders + 1)))
        raw.commit()
        # The data set is loaded once and read as it is: statistics for the audience's
        # queries (push_delivery, which grows during the run, is left to its live size).
        for table in ("follower", "card_holder", "binding"):
            cursor.execute(f"ANALYZE {table}")
        raw.commit()
        raw.close()
    finally:
        engine.dispose()
    return counts


def staff(app: Flask) -> None:
    with app.app_context():
        db.session.add_all([Staff(username=MAKER, role="marketer", password_hash="x"),
                            Staff(username=CHECKER, role="approver", password_hash="x")])
        db.session.commit()


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(f"{backend.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- a push through the real services -----------------------------------------------------------

def approve_push(app: Flask, phase: Phase, spec: dict[str, Any], channel: str,
                 rate: int) -> tuple[int, float]:
    """Audience and push created, then approved (recipients frozen), each committed; the
    push's id and the approval's commit time (monotonic)."""
    with app.app_context():
        maker = db.session.scalars(select(Staff).where(Staff.username == MAKER)).one()
        checker = db.session.scalars(select(Staff).where(Staff.username == CHECKER)).one()
        started = time.monotonic()
        audience = audiences.create_audience(maker, f"bench {phase.name}", spec)
        push = plans.create_push(maker, {"name": f"bench {phase.name}", "channel": channel,
                                         "audience_id": audience.id, "rate_per_s": rate,
                                         "message": {"text": MESSAGE}})
        db.session.commit()
        created = time.monotonic()
        plans.approve(checker, push)
        db.session.commit()  # the start job is enqueued once this commits
        committed = time.monotonic()
        phase.create_s, phase.freeze_s = created - started, committed - created
        phase.recipients = push.total
        push_id = push.id
        db.session.remove()
    return push_id, committed


def wait_done(database: backend.Database, push_id: int, since: float, timeout: float) -> float:
    """Seconds from ``since`` until the push is done; InvalidRun after ``timeout``."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if database.scalar(f"SELECT state FROM push WHERE id = {int(push_id)}") == DONE:
            return time.monotonic() - since
        time.sleep(POLL_S)
    pending = database.rows(f"SELECT state, count(*) FROM push_delivery WHERE push_id = "
                            f"{int(push_id)} GROUP BY state")
    raise InvalidRun(f"push {push_id} not done after {timeout:.0f}s: {pending}")


def states(database: backend.Database, push_id: int) -> dict[str, int]:
    return dict(database.rows(f"SELECT state, count(*) FROM push_delivery WHERE push_id = "
                              f"{int(push_id)} GROUP BY state"))


def frozen(database: backend.Database, push_id: int) -> set[str]:
    return {row[0] for row in database.rows(
        f"SELECT openid FROM push_delivery WHERE push_id = {int(push_id)}")}


def _measure(groups: dict[str, list[int]]) -> contextlib.AbstractContextManager[proc.CpuUse]:
    return proc.measuring(lambda: {**groups, "redis+pg": backend.service_pids()})


def run_mass(app: Flask, database: backend.Database, sim_url: str, args: argparse.Namespace,
             groups: dict[str, list[int]]) -> Phase:
    phase = Phase("mass")
    before = os.getloadavg()[0]
    with _measure(groups) as cpu:
        push_id, committed = approve_push(app, phase, MASS_AUDIENCE, "mass", args.mass_rate)
        report.log(f"[mass] {phase.recipients:,} recipients frozen in {phase.freeze_s:.1f}s; "
                   "sending")
        # WeChat's limit: PUSH_MASS_CALLS_PER_MINUTE calls of up to 10,000 a minute.
        calls = math.ceil(phase.recipients / min(10_000, args.mass_rate))
        phase.done_s = wait_done(database, push_id, committed, 120 + calls * 5)
    phase.cpu, phase.load = cpu, (before, os.getloadavg()[0])
    phase.states = states(database, push_id)
    asked: Counter[str] = Counter()
    jobs: set[str] = set()
    for call in sim.recorded(sim_url, MASS_PATH):
        phase.calls += 1
        body = call.get("json") or {}
        if body.get("clientmsgid") in jobs:
            continue  # WeChat answers 45065 and sends nothing more
        jobs.add(body.get("clientmsgid"))
        asked.update(body.get("touser") or [])
    phase.distinct_jobs = len(jobs)
    expected = frozen(database, push_id)
    phase.duplicates = sum(n - 1 for n in asked.values() if n > 1)
    phase.lost = len(expected - asked.keys())
    return phase


def run_custom(app: Flask, database: backend.Database, sim_url: str, args: argparse.Namespace,
               groups: dict[str, list[int]]) -> Phase:
    phase = Phase("custom")
    before = os.getloadavg()[0]
    with _measure(groups) as cpu:
        push_id, committed = approve_push(
            app, phase, {"subscribed": True, "active_within_hours": 24}, "custom",
            args.custom_rate)
        report.log(f"[custom] {phase.recipients:,} recipients frozen in "
                   f"{phase.freeze_s:.2f}s; sending at {args.custom_rate}/s")
        phase.done_s = wait_done(database, push_id, committed,
                                 120 + 3 * phase.recipients / args.custom_rate)
    phase.cpu, phase.load = cpu, (before, os.getloadavg()[0])
    phase.states = states(database, push_id)
    calls = sim.recorded(sim_url, CUSTOM_PATH)
    phase.calls = len(calls)
    asked = Counter((call.get("json") or {}).get("touser") for call in calls)
    expected = frozen(database, push_id)
    phase.duplicates = sum(n - 1 for n in asked.values() if n > 1)
    phase.lost = len(expected - asked.keys())
    times = sorted(call["time"] for call in calls)
    if times:
        low = times[0] + STEADY_SKIP
        bins = Counter(int(t - low) for t in times if low <= t < low + args.custom_seconds)
        phase.per_second = [bins[n] for n in range(int(args.custom_seconds))]
    return phase


# -- the naive baseline ---------------------------------------------------------------------------

def naive_match(spec: dict[str, Any], subscribed: bool, last_interaction: datetime | None,
                holder: tuple | None, since: datetime | None) -> bool:
    """A filter read in Python, part by part, for one follower and its holder (or None)."""
    if "subscribed" in spec and subscribed is not spec["subscribed"]:
        return False
    if since is not None and (last_interaction is None or last_interaction < since):
        return False
    if "bound" in spec and (holder is not None) is not spec["bound"]:
        return False
    parts = {"tiers": 1, "cities": 2, "branches": 3}  # columns of the holder rows
    return all(holder is not None and holder[column] in spec[name]
               for name, column in parts.items() if name in spec)


def run_naive(app: Flask, url: str, spec: dict[str, Any], subset: int) -> Naive:
    """``spec`` resolved in Python and its recipients inserted one row per INSERT (the first
    ``subset`` of them), for a push of its own; the rows are deleted afterwards."""
    result = Naive()
    with app.app_context():
        audience = Audience(name="naive", filter=spec, created_by=MAKER)
        db.session.add(audience)
        db.session.flush()
        push = Push(name="naive", audience_id=audience.id, channel="mass",
                    message={"text": MESSAGE}, rate_per_s=1, state="cancelled",
                    created_by=MAKER, total=0)
        db.session.add(push)
        db.session.commit()
        push_id = push.id
        db.session.remove()
    engine = create_engine(url)
    hours = spec.get("active_within_hours")
    since = datetime.now(UTC) - timedelta(hours=hours) if hours is not None else None
    try:
        with engine.connect() as connection:
            started = time.monotonic()
            everyone = connection.execute(text(
                "SELECT openid, subscribed, last_interaction_at FROM follower")).all()
            holders = {row[0]: tuple(row) for row in connection.execute(
                text("SELECT id, tier, city, branch FROM card_holder"))}
            holder_of = {row[1]: holders.get(row[0]) for row in connection.execute(text(
                "SELECT holder_id, openid FROM binding WHERE unbound_at IS NULL "
                "AND app = 'oa'"))}
            matched = [row[0] for row in everyone
                       if naive_match(spec, row[1], row[2], holder_of.get(row[0]), since)]
            result.resolve_s = time.monotonic() - started
            result.matched = len(matched)
            insert = text("INSERT INTO push_delivery (push_id, openid, state) "
                          "VALUES (:push_id, :openid, 'pending')")
            started = time.monotonic()
            for one in matched[:subset]:
                connection.execute(insert, {"push_id": push_id, "openid": one})
            connection.commit()
            result.insert_s = time.monotonic() - started
            result.inserted = min(subset, len(matched))
    finally:
        engine.dispose()
    with app.app_context():
        db.session.execute(delete(PushDelivery).where(PushDelivery.push_id == push_id))
        db.session.commit()
    return result


def wait_registered(redis_url: str, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` RQ workers are registered: they are ready for jobs."""
    connection = redis_lib.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while Worker.count(connection=connection) < count:
        if time.monotonic() > deadline:
            raise InvalidRun(f"{count} workers not registered after {timeout:.0f}s")
        time.sleep(0.2)


# -- reporting ----------------------------------------------------------------------------------

PARTIES = {"workers": "send workers", "sim": "simulator", "redis+pg": "Redis+PostgreSQL",
           "children": "children", "other": "other"}


def print_phase(phase: Phase) -> None:
    print(f"\n[{phase.name}] {phase.recipients:,} recipients; created in "
          f"{phase.create_s:.2f}s, frozen (approve) in {phase.freeze_s:.2f}s; done "
          f"{phase.done_s:.1f}s after the approval's commit; deliveries {phase.states}")
    print(f"[{phase.name}] WeChat calls {phase.calls:,}"
          + (f" ({phase.distinct_jobs:,} distinct clientmsgids)" if phase.name == "mass" else "")
          + f"; duplicates {phase.duplicates:,}, losses {phase.lost:,}")
    print(f"[{phase.name}] load average {phase.load[0]:.1f} -> {phase.load[1]:.1f}; CPUs busy "
          f"over {phase.cpu.seconds:.0f}s: {report.busy_line(phase.cpu.busy, PARTIES)}")


def print_report(args: argparse.Namespace, counts: dict[str, int], load_s: float,
                 mass: Phase | None, custom: Phase | None, naive: Naive | None) -> None:
    print(f"\npushes: {counts.get('follower', 0):,} followers, "
          f"{counts.get('card_holder', 0):,} holders bound, loaded with COPY in {load_s:.1f}s; "
          f"{WORKERS} `flask worker` processes, simulator gunicorn 1 x {args.sim_threads} "
          f"threads; {report.CPUS} CPUs, load average now {os.getloadavg()[0]:.1f}")
    for phase in (mass, custom):
        if phase is not None:
            print_phase(phase)
    if custom is not None and custom.per_second:
        seconds = custom.per_second
        mean = sum(seconds) / len(seconds)
        print(f"[custom] rate over {len(seconds)}s from {STEADY_SKIP:g}s after the first "
              f"call: mean {mean:.1f}/s, slowest second {min(seconds)}, busiest "
              f"{max(seconds)} (target {args.custom_rate}/s)")
    if naive is not None:
        label = "" if naive.inserted == naive.matched else \
            f" (inserted {naive.inserted:,}, extrapolated to {naive.matched:,})"
        total = naive.resolve_s + naive.extrapolated_s
        print(f"\n[naive] resolved in Python in {naive.resolve_s:.1f}s ({naive.matched:,} "
              f"matched); row-by-row INSERTs {naive.insert_s:.1f}s{label} -> "
              f"{naive.extrapolated_s:.1f}s; total {total:.1f}s")
        if mass is not None:
            print(f"[naive] naive / project freeze: {report.ratio(total, mass.freeze_s)} "
                  "(time; higher means the project is faster)")
    print()
    if mass is not None:
        report.verdict(mass.freeze_s < FREEZE_TARGET_S,
                       f"freeze {mass.recipients:,} recipients < {FREEZE_TARGET_S:g}s: "
                       f"{mass.freeze_s:.1f}s")
        report.verdict(mass.duplicates == 0 and mass.lost == 0,
                       f"mass 0 duplicates / 0 losses: {mass.duplicates} / {mass.lost}")
    if custom is not None:
        mean = sum(custom.per_second) / len(custom.per_second) if custom.per_second else 0.0
        report.verdict(abs(mean - args.custom_rate) <= RATE_TOLERANCE * args.custom_rate,
                       f"custom rate {args.custom_rate}/s ±5 %: {mean:.1f}/s")
        report.verdict(custom.duplicates == 0 and custom.lost == 0,
                       f"custom 0 duplicates / 0 losses: {custom.duplicates} / {custom.lost}")
    for phase in (mass, custom):
        warning = report.disturbed(phase.cpu.busy) if phase is not None else None
        if warning:
            print(f"WARNING  [{phase.name}] {warning}")


# -- the run --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=1_000_000)
    parser.add_argument("--custom-rate", type=int, default=300, help="custom rate_per_s (300)")
    parser.add_argument("--custom-seconds", type=float, default=60,
                        help="seconds of custom sending measured (60)")
    parser.add_argument("--mass-rate", type=int, default=10_000,
                        help="mass rate_per_s (10,000: WeChat's call limit bounds it)")
    parser.add_argument("--naive-subset", type=int, default=50_000,
                        help="recipients the naive baseline inserts row by row (50,000)")
    parser.add_argument("--sim-threads", type=int, default=SIM_THREADS)
    parser.add_argument("--only", choices=("mass", "custom"), help="one channel only")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if args.custom_seconds < 2 or args.custom_rate < 1 or args.mass_rate < 2:
        parser.error("need --custom-seconds >= 2, --custom-rate >= 1, --mass-rate >= 2")
    recent = int(args.custom_rate * (args.custom_seconds + CUSTOM_MARGIN_S))
    if args.followers < recent:
        parser.error(f"need --followers >= {recent:,} (the custom push's recipients)")
    return args


def run(args: argparse.Namespace, workdir: Path) -> int:
    recent = int(args.custom_rate * (args.custom_seconds + CUSTOM_MARGIN_S))
    backend.reset_database(DATABASE)
    mass = custom = naive = None
    try:
        with faults.redis_server(workdir) as redis_server:
            env = backend.app_env(DATABASE, redis_server.url,
                                  PUSH_MAX_RATE_PER_S=str(max(args.mass_rate, args.custom_rate)),
                                  **backend.metrics_env(workdir, "pushes"))
            sim_env = {**os.environ, **env,
                       sim.RECORD_LIMIT_ENV: str(2 * recent + args.followers // 1000 + 10_000)}
            with sim.running("gunicorn", sim_env, servers.ROOT, workdir / "sim.log",
                             args.sim_threads) as wechat:
                full = backend.with_sim(env, wechat.url)
                app = create_app(backend.settings(full))  # AUTO_MIGRATE builds the schema
                started = time.monotonic()
                counts = load(DATABASE, args.followers, recent)
                load_s = time.monotonic() - started
                staff(app)
                report.log(f"loaded {counts} in {load_s:.1f}s; seeding {recent:,} custom "
                           "followers in the simulator")
                sim.add_followers(wechat.url, [openid(n) for n in range(recent)],
                                  last_interaction=time.time() - 3600)
                database = backend.Database(DATABASE)
                try:
                    with alerts.send_workers(WORKERS, full, workdir, "pushes") as pids:
                        groups = {"workers": alerts.worker_pids(pids),
                                  "sim": sim.pids(wechat)}
                        wait_registered(redis_server.url, WORKERS)
                        if args.only != "custom":
                            mass = run_mass(app, database, wechat.url, args, groups)
                        if args.only != "mass":
                            custom = run_custom(app, database, wechat.url, args, groups)
                finally:
                    database.close()
                if mass is not None:
                    report.log("[naive] resolving in Python, inserting row by row")
                    naive = run_naive(app, DATABASE, MASS_AUDIENCE, args.naive_subset)
                with app.app_context():
                    db.engine.dispose()
        print_report(args, counts, load_s, mass, custom, naive)
    finally:
        if not args.keep:
            drop_database(DATABASE)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; 1 if a measurement could not be made."""
    args = parse_args(argv)
    with servers.workspace("pushes") as workdir:
        try:
            return run(args, workdir)
        except (InvalidRun, servers.ServerError, RuntimeError, OSError,
                requests.RequestException) as exc:
            print(f"INVALID  {type(exc).__name__}: {exc}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
