"""Transaction alerts end to end: the signed feed at a steady rate, sent by two workers.

What is measured: core banking posts signed batches to ``POST /api/transactions``
at a steady rate (``--rate`` transactions/s in batches of ``--batch``, one batch
every batch/rate seconds, for ``--duration`` seconds); every transaction is new
(its own txn_id), on the card of a holder bound to an official-account openid,
and carries ``occurred_at`` = the moment its batch was due. WeChat (the
simulator) records the time each ``message/template/send`` call reaches it. From
that, per target:

* sustained feed rate: transactions accepted (202) per second, and sustained
  send rate: messages WeChat received per second, both counted over the steady
  window from 1 s after the first batch to the end of the schedule (the first
  second, while the pipeline fills, is left out), with the slowest and median
  whole second of sends;
* end to end: ``occurred_at`` → WeChat received the transaction's message,
  p50/p95/p99/max; the feed's answer time (request sent → answer) and the
  time from the batch being due to its answer (includes waiting for a free
  connection, so a target that falls behind is not flattered); requests not
  answered 202 (refused, failed, or still waiting for a connection
  ``--drain-timeout`` s after the schedule's end, then dropped);
* duplicates: messages WeChat shows the holder beyond one per expected
  (transaction, openid) — distinct ``(openid, client_msg_id)`` pairs, since
  WeChat drops a repeat of the same pair within ten minutes (such repeated
  calls are counted apart); lost: transactions accepted by the feed whose
  message WeChat never received once the queue drained (bounded wait);
* CPUs busy by party (app, send workers, simulator, Redis + PostgreSQL, this
  process as feeder, other: the machine is shared, so other load above 0.1 CPU
  is flagged; PostgreSQL backends that exit during the run, e.g. a pool's
  overflow connections, count as other), CPU time per transaction, and RSS of
  the app and send workers.

Two targets run one after the other in the same invocation, each with its own
fresh database and Redis db, its own simulator process and the same offered load:

* ``project`` - ``app:create_app()`` under ``gunicorn -w 2 -k sync`` (as the other
  benches), plus two ``flask --app app worker`` processes (RQ, the same
  environment) that send: the feed stores the transactions and one outbox row
  per alert and enqueues send jobs; the workers claim, send and record them.
* ``naive`` - bench/peers/naive_alerts.py under the same gunicorn settings: the
  same app and feed handler, with the outbox step replaced: template/send is
  called for each new transaction inside the request, one after the other, once
  the batch is committed, and the feed answers when the last one has answered.
  No workers.

How: for each target the database (``cobrand_bench_alerts[_naive]``, created
if missing, schema dropped and rebuilt by the migrations) and the Redis db (11
or 12) are wiped; ``--holders`` card holders are imported in-process through
the registry importer (bench/harness/holders.py) and each is bound to an official-account
openid by inserting its ``Binding`` row (app "oa") directly - binding itself is
benchmarked by bench/login.py and bench/bruteforce.py; the openids are seeded as
followers in the simulator (``POST /sim/users``), which runs as ``gunicorn -w 1
-k gthread`` ('bench.harness.sim:create()', ``--sim-threads``) with its request log raised
to hold every call. The app, the workers and the simulator get the same
settings (bench/harness/backend.py, JSON logs at INFO). One signed transaction must then
reach WeChat (sanity check), a 1 s warm-up at the full rate is fed and drained,
the bench waits (up to 60 s) for the machine to go quiet, and the measured feed
runs. The feeder is this process (bench/harness/feed.py): one thread keeps the
schedule and builds each batch when due, ``--connections`` threads sign
(X-Timestamp, X-Signature = HMAC-SHA256 hex of timestamp + "." + body, the
contract's) and post them (a batch waits for a free connection if the target is
slow; that wait counts in its times).
Afterwards the bench waits for the outbox to drain (project: no delivery left
``queued`` or ``sending``; at most ``--drain-timeout`` s), reads every
template/send call back from the simulator (``GET /sim/requests``) and maps its
``client_msg_id`` (``txn-alert-<row id>``) to the transaction through the
target's database. For the project it also reports the deliveries' states and
the app's own view of the latency (``Delivery.sent_at`` - ``occurred_at``).
``--profile`` samples the send workers with py-spy during the measured feed
(``wall``: where the sending threads wait; ``gil``: where their Python CPU time
goes). ``--wechat-latency S`` makes the simulator sleep S seconds in every
template/send (after recording its arrival), as a real WeChat round trip would:
the rates then show how each design copes with a slow WeChat.

Targets (the issue), for the project: sustained feed and send rates of at least
``--rate`` (500/s; one batch of slack, since a window boundary can cut a batch),
end-to-end p99 under 2 s, 0 duplicates, 0 lost; and the ratios against the naive
baseline of the same run. PASS/FAIL lines do not change the exit status. Exit
status 1 only when a measurement is invalid: setup or the sanity check failed,
the simulator's log dropped calls, or the feeder fell a whole second behind its
own schedule (the other target's results are still printed).

Run from the repository root::

    python -m bench.alerts [--rate 500] [--batch 50] [--duration 60] [--holders 2000]
                           [--connections 4] [--only project|naive]
                           [--wechat-latency 0] [--profile [wall|gil]]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.harness import backend, holders, proc, profile, report, servers, sim, stats
from bench.harness.backend import Database
from bench.harness.feed import Batch, Feed, run_feed
from bench.harness.report import InvalidRun
from members.holders.binding import OFFICIAL_ACCOUNT

TEMPLATE_PATH = "/cgi-bin/message/template/send"
CLIENT_MSG_ID = re.compile(r"^txn-alert-(\d+)$")
SEND_WORKERS = 2
SIM_THREADS = 16  # two workers send 8 at a time each (ALERT_SEND_THREADS)
TARGET_RATE = 500.0
TARGET_P99_S = 2.0
STEADY_SKIP = 1.0  # seconds at the start of the feed left out of the sustained rates
WARMUP_SECONDS = 1.0
SANITY_TIMEOUT = 30.0
DRAIN_POLL = 1.0  # s between the drain wait's questions to the database
QUIET_WAIT_SECONDS = 60
# The schedule thread hands each batch over when due; a late one is still counted from its
# due time (its lateness counts against the target). Lateness (p99) above this share of the
# batch interval is reported (batches bunched up), and the run is invalid when the feeder
# was a whole second late (it could not offer the rate).
FEEDER_LAG_WARN = 0.5
FEEDER_LAG_INVALID = 1.0
PROFILE_BUCKETS = {
    "WeChat call: wechatpy + transport": "BaseWeChatClient.post (wechatpy/client/base.py)",
    "  HTTP (urllib3)": "WeChatHTTP.request (wechat/transport.py)",
    "  access token (held in the process for a job)": "TokenStore.get (wechat/token_store.py)",
    "SQLAlchemy statements": "Connection.execute (sqlalchemy/engine/base.py)",
    "  pool checkout with pre-ping (SELECT 1)": "DefaultDialect._do_ping_w_event "
                                                "(sqlalchemy/engine/default.py)",
    "SQLAlchemy commits": "Connection.commit (sqlalchemy/engine/base.py)",
    "waiting on PostgreSQL (psycopg)": "Connection.wait (psycopg/connection.py)",
    "logging": "Logger._log (logging/__init__.py)",
    "metrics (prometheus_client)": "MetricWrapperBase.labels (prometheus_client/metrics.py)",
}
PROFILE_TOP = 25
# Frames every profiled stack passes through, not worth a line.
PROFILE_SKIP = r"^(_WorkItem\.run|Thread\.\w+|_worker|Flask\.\w+|SyncWorker\.\w+) \("


@dataclass(frozen=True)
class Target:
    name: str
    app: str  # gunicorn app spec
    database: str
    redis_url: str
    workers: int  # `flask --app app worker` processes beside the server
    keys: str  # SQL: (row id in client_msg_id, txn_id)
    pending: str | None  # SQL: alerts not yet sent (None: sent inside the request)
    sending: str  # the frame (py-spy "name (file)") of the code that sends, for --profile
    about: str


TARGETS = {
    "project": Target(
        "project", "app:create_app()", backend.database_url("cobrand_bench_alerts"),
        f"{backend.REDIS_SERVER}/11", SEND_WORKERS,
        "SELECT d.id, t.txn_id FROM delivery d JOIN card_transaction t ON t.id = d.transaction_id",
        "SELECT count(*) FROM delivery WHERE state IN ('queued', 'sending')",
        "_send_chunk (members/transactions/alerts/sending.py)",  # a send job's threads
        f"gunicorn 2 sync workers + {SEND_WORKERS} `flask worker` (outbox, RQ jobs)"),
    "naive": Target(
        "naive", "bench.peers.naive_alerts:create()",
        backend.database_url("cobrand_bench_alerts_naive"), f"{backend.REDIS_SERVER}/12", 0,
        "SELECT id, txn_id FROM card_transaction", None,
        "send_now (bench/peers/naive_alerts.py)",
        "gunicorn 2 sync workers, template/send inside the request (bench/peers)"),
}


@dataclass
class Received:
    """What WeChat got, by transaction of the measured feed."""

    first: dict[str, float] = field(default_factory=dict)  # txn_id → first call's time
    messages: Counter[str] = field(default_factory=Counter)  # txn_id → distinct messages
    calls: int = 0  # template/send calls for the measured transactions
    unknown: int = 0  # calls whose client_msg_id maps to no transaction of this run
    all_calls: int = 0  # every template/send call of the run (sanity and warm-up included)


@dataclass
class Result:
    """Everything one target's run measured."""

    target: Target
    start: float = 0.0  # the first batch's due time
    schedule: float = 0.0  # seconds of feed scheduled
    batches: list[Batch] = field(default_factory=list)
    received: Received = field(default_factory=Received)
    drained_after: float = math.nan  # s after the schedule's end until nothing was pending
    cpu: proc.CpuUse = field(default_factory=proc.CpuUse)  # over the feed and the drain
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)  # project: deliveries by state
    app_latency: stats.Latency | None = None  # project: sent_at - occurred_at (ms)
    sim_sent: int = 0  # the simulator's own count of messages accepted
    profile: profile.Profile | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> list[Batch]:
        return [b for b in self.batches if b.status == 202]

    @property
    def expected(self) -> set[str]:
        """Transactions whose message WeChat must get: those of batches answered 202."""
        return {txn for b in self.accepted for txn in b.txn_ids}

    def lost(self) -> int:
        return len(self.expected - self.received.first.keys())

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.messages.values() if n > 1)

    def end_to_end(self) -> list[float]:
        """Seconds from each transaction's occurred_at to WeChat's first receipt of it."""
        due = {txn: b.due for b in self.batches for txn in b.txn_ids}
        return [seen - due[txn] for txn, seen in self.received.first.items() if txn in due]

    def feeder_lags(self) -> list[float]:
        return [b.handed - b.due for b in self.batches]

    def window(self) -> tuple[float, float]:
        return self.start + STEADY_SKIP, self.start + self.schedule

    def feed_rate(self) -> float:
        low, high = self.window()
        count = sum(b.accepted for b in self.accepted if low <= b.answered < high)
        return count / (high - low)

    def send_rate(self) -> float:
        low, high = self.window()
        return sum(low <= t < high for t in self.received.first.values()) / (high - low)

    def sends_per_second(self) -> list[int]:
        """Messages received in each whole second of the steady window."""
        low, high = self.window()
        bins = Counter(int(t - low) for t in self.received.first.values() if low <= t < high)
        return [bins[n] for n in range(int(high - low))]

    def last_message_after(self) -> float:
        """Seconds from the end of the schedule to the last message WeChat received."""
        times = self.received.first.values()
        return max(times) - (self.start + self.schedule) if times else math.nan


# -- setting up ---------------------------------------------------------------------------------

def openid(n: int) -> str:
    return f"oAlert{n:022d}"


def target_env(target: Target, workdir: Path, secret: str) -> dict[str, str]:
    """The target's environment (fresh keys): its database and Redis db, the feed secret."""
    return backend.app_env(target.database, target.redis_url, TXN_FEED_SECRET=secret,
                           **backend.metrics_env(workdir, target.name))


def seed(env: dict[str, str], count: int) -> list[str]:
    """Schema by the migrations; ``count`` holders imported, holder n bound to ``openid(n)``.

    Returns the holders' card numbers.
    """
    bindings = [{"app": OFFICIAL_ACCOUNT, "openid": openid(n)} for n in range(count)]
    return [row.card_no for row in holders.seed(env, bindings)]


@contextlib.contextmanager
def send_workers(count: int, env: dict[str, str], workdir: Path,
                 name: str) -> Iterator[list[int]]:
    """``count`` ``flask --app app worker`` processes until the block exits; their pids."""
    with servers.job_workers(count, env, workdir, name) as processes:
        yield [process.pid for process in processes]


def worker_pids(pids: list[int]) -> list[int]:
    """The workers and their children (RQ's scheduler runs in a forked child)."""
    return [pid for parent in pids for pid in (parent, *proc.children(parent))]


# -- the target ---------------------------------------------------------------------------------

def sent_count(sim_url: str) -> int:
    return sim.sent(sim_url, "template")


def wait_drained(target: Target, database: Database, sim_url: str, want: int,
                 timeout: float) -> bool:
    """Until no alert is pending; False on timeout.

    The database is the judge: every delivery row was committed before its batch's
    202, and a row leaves ``queued``/``sending`` only once WeChat has answered for it
    (a row that failed for good is not waited for). A target that sends inside the
    request has nothing pending once its feed is answered. So as not to load the
    database being measured, it is asked every DRAIN_POLL s, or as soon as the
    simulator (an in-memory counter) has accepted ``want`` messages.
    """
    if target.pending is None:
        return True
    deadline = time.monotonic() + timeout
    asked = -math.inf
    while time.monotonic() < deadline:
        due = time.monotonic() - asked >= DRAIN_POLL or sent_count(sim_url) >= want
        if due:
            asked = time.monotonic()
            if not database.scalar(target.pending):
                return True
        time.sleep(0.05)
    return False


def sanity_check(feed: Feed, target: Target, database: Database, sim_url: str) -> None:
    """One transaction fed and its message at WeChat, or InvalidRun."""
    batch = run_feed(Feed(feed.url, feed.secret, feed.cards, 1, feed.rate), "S", 0, 1, 5)[0]
    if batch.status != 202 or batch.accepted != 1:
        raise InvalidRun(f"sanity batch: HTTP {batch.status} {batch.error}")
    drained = wait_drained(target, database, sim_url, 1, SANITY_TIMEOUT)
    if not drained or sent_count(sim_url) != 1:
        raise InvalidRun(f"sanity transaction: {sent_count(sim_url)} messages at WeChat "
                         f"after {SANITY_TIMEOUT:g}s (want 1)")


def read_received(sim_url: str, database: Database, target: Target,
                  fed: set[str]) -> Received:
    """WeChat's template/send calls, mapped to the measured transactions."""
    keys = dict(database.rows(target.keys))
    received = Received()
    messages: dict[str, set[tuple[str, str]]] = {}
    calls = sim.recorded(sim_url, TEMPLATE_PATH)
    received.all_calls = len(calls)
    for call in calls:
        body = call.get("json") or {}
        match = CLIENT_MSG_ID.match(str(body.get("client_msg_id", "")))
        txn = keys.get(int(match[1])) if match else None
        if txn is None:
            received.unknown += 1
            continue
        if txn not in fed:
            continue  # sanity check and warm-up
        received.calls += 1
        received.first[txn] = min(call["time"], received.first.get(txn, math.inf))
        messages.setdefault(txn, set()).add((body.get("touser"), body["client_msg_id"]))
    received.messages = Counter({txn: len(pairs) for txn, pairs in messages.items()})
    return received


def check_records(sim_url: str, received: Received) -> None:
    """InvalidRun when the simulator's log kept fewer template/send calls than it counted."""
    counted = sim.stats(sim_url).get("requests", {}).get(TEMPLATE_PATH, 0)
    if counted != received.all_calls:
        raise InvalidRun(f"the simulator counted {counted} template/send calls but kept "
                         f"{received.all_calls}: raise {sim.RECORD_LIMIT_ENV}")


def project_facts(database: Database, result: Result, prefix: str) -> None:
    """The deliveries' states and the app's own latency view (project only)."""
    result.states = dict(database.rows("SELECT state, count(*) FROM delivery GROUP BY state"))
    seconds = database.rows(
        "SELECT extract(epoch FROM d.sent_at - t.occurred_at) FROM delivery d "
        "JOIN card_transaction t ON t.id = d.transaction_id "
        f"WHERE d.sent_at IS NOT NULL AND t.txn_id LIKE '{prefix}%'")
    result.app_latency = stats.Latency.of(float(s) * 1000 for (s,) in seconds)


@dataclass
class Running:
    """The processes of one target while it runs."""

    app: servers.Server
    workers: list[int]
    sim: servers.Server
    database: Database

    def groups(self) -> dict[str, list[int]]:
        found = {"app": [self.app.process.pid, *self.app.workers()],
                 "workers": worker_pids(self.workers), "sim": sim.pids(self.sim),
                 "redis+pg": backend.service_pids(), "feeder": [os.getpid()]}
        return {name: pids for name, pids in found.items() if pids}


def warm_up(run: Running, feed: Feed, target: Target, args: argparse.Namespace) -> None:
    """A short feed at the full rate, drained, so that pools and connections are open."""
    want = sent_count(run.sim.url) + sum(b.accepted for b in run_feed(
        feed, "W", WARMUP_SECONDS, args.connections, args.drain_timeout))
    if not wait_drained(target, run.database, run.sim.url, want, args.drain_timeout):
        raise InvalidRun(f"warm-up not drained after {args.drain_timeout:g}s")


def measure_feed(run: Running, feed: Feed, target: Target, args: argparse.Namespace,
                 workdir: Path, result: Result) -> None:
    """The measured feed, the drain after it and the CPU used meanwhile."""
    already_sent = sent_count(run.sim.url)
    # The CPU meter encloses py-spy's recording, so that its CPU counts as ours ("children").
    with proc.measuring(run.groups) as result.cpu, contextlib.ExitStack() as stack:
        profiled = (stack.enter_context(profile.recording(
            worker_pids(run.workers) or run.app.workers(), args.duration, workdir,
            mode=args.profile)) if args.profile else None)
        result.batches = run_feed(feed, "M", args.duration, args.connections,
                                  args.drain_timeout)
        result.start, result.schedule = result.batches[0].due, len(result.batches) * feed.interval
        drained = wait_drained(target, run.database, run.sim.url,
                               already_sent + len(result.expected), args.drain_timeout)
        result.drained_after = time.time() - (result.start + result.schedule)
    if profiled:
        result.profile = profile.load(profiled, within=target.sending)
    if not drained:
        result.warnings.append(f"not drained {args.drain_timeout:g}s after the feed: "
                               "what was still pending counts as lost")


def collect(run: Running, target: Target, result: Result) -> None:
    result.rss_mb = {"app": [proc.rss_mb(pid) for pid in run.app.workers()],
                     "workers": [proc.rss_mb(pid) for pid in run.workers]}
    fed = {txn for b in result.batches for txn in b.txn_ids}
    result.received = read_received(run.sim.url, run.database, target, fed)
    check_records(run.sim.url, result.received)
    if result.received.unknown:
        result.warnings.append(f"{result.received.unknown} template/send calls carried a "
                               "client_msg_id of no transaction of this run")
    result.sim_sent = sent_count(run.sim.url)
    if target.pending:
        project_facts(run.database, result, "M")


def prepare(target: Target, args: argparse.Namespace,
            workdir: Path) -> tuple[dict[str, str], str, list[str]]:
    """Wiped database and Redis db, seeded holders; (environment, feed secret, cards)."""
    backend.reset_database(target.database)
    backend.reset_redis(target.redis_url)
    secret = secrets.token_hex(32)
    env = target_env(target, workdir, secret)
    cards = seed(env, args.holders)
    backend.settle(target.database)
    report.log(f"[{target.name}] {target.database} and {target.redis_url} wiped; "
               f"{args.holders} holders imported and bound; checkpointed")
    return env, secret, cards


def sim_env(env: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """The simulator's environment: the app's, with a request log that keeps every call."""
    calls = int(args.rate * (args.duration + WARMUP_SECONDS) * 1.5) + 10_000
    return {**os.environ, **env, sim.RECORD_LIMIT_ENV: str(calls)}


def measure(run: Running, feed: Feed, target: Target, args: argparse.Namespace,
            workdir: Path, result: Result) -> None:
    """Sanity check, warm-up, a quiet machine, then the measured feed and its results."""
    try:
        sanity_check(feed, target, run.database, run.sim.url)
    except InvalidRun as exc:
        raise InvalidRun(f"{exc}\n{run.app.log_tail(20)}") from None
    warm_up(run, feed, target, args)
    report.log(f"[{target.name}] sanity transaction and {WARMUP_SECONDS:g}s warm-up sent")
    report.await_quiet(QUIET_WAIT_SECONDS, f"[{target.name}] ")
    measure_feed(run, feed, target, args, workdir, result)
    collect(run, target, result)


def run_target(target: Target, args: argparse.Namespace, workdir: Path) -> Result:
    """Set up, feed and measure one target; its Result."""
    result = Result(target)
    env, secret, cards = prepare(target, args, workdir)
    app_log = workdir / f"gunicorn-{target.name}.log"
    with sim.running("gunicorn", sim_env(env, args), servers.ROOT,
                     workdir / f"sim-{target.name}.log", args.sim_threads) as wechat:
        sim.add_followers(wechat.url, [openid(n) for n in range(args.holders)])
        if args.wechat_latency:  # as a real WeChat round trip would
            sim.add_fault(wechat.url, path=TEMPLATE_PATH, delay=args.wechat_latency, times=-1)
        full = backend.with_sim(env, wechat.url)
        database = Database(target.database)
        try:
            with servers.gunicorn(target.app, full, servers.ROOT, app_log) as app, \
                    send_workers(target.workers, full, workdir, target.name) as workers:
                run = Running(app, workers, wechat, database)
                feed = Feed(app.url, secret, cards, args.batch, args.rate)
                measure(run, feed, target, args, workdir, result)
        finally:
            database.close()
    judge(result, args.batch / args.rate)
    scan_logs(result, [app_log, *workdir.glob(f"worker-{target.name}-*.log")])
    return result


def scan_logs(result: Result, logs: list[Path]) -> None:
    """A warning per log with ERROR lines or tracebacks (app, workers)."""
    for path in logs:
        content = path.read_text(errors="replace") if path.exists() else ""
        errors = content.count('"level": "ERROR"') + content.count("Traceback (most recent")
        if errors:
            result.warnings.append(f"{path.name}: {errors} ERROR lines or tracebacks")


def judge(result: Result, interval: float) -> None:
    """InvalidRun when the feeder could not offer the rate; warnings for disturbances."""
    lag = stats.Latency.of(result.feeder_lags())
    if lag.max > FEEDER_LAG_INVALID:
        raise InvalidRun(f"the feeder fell {lag.max:.2f}s behind its own schedule: the "
                         "bench, not the target, limited the rate")
    if lag.p99 > FEEDER_LAG_WARN * interval:
        result.warnings.append(f"the feeder handed batches over late (p99 {lag.p99 * 1000:.0f}"
                               f" ms, max {lag.max * 1000:.0f} ms; counted against the "
                               "target): this process was short of CPU")
    warning = report.disturbed(result.cpu.busy)
    if warning:
        result.warnings.append(warning)


# -- reporting ----------------------------------------------------------------------------------

def feed_times(result: Result) -> tuple[stats.Latency, stats.Latency]:
    """(request sent → answer, batch due → answer) of the answered batches, seconds."""
    answered = [b for b in result.batches if b.status is not None]
    return (stats.Latency.of([b.answered - b.sent for b in answered]),
            stats.Latency.of([b.answered - b.due for b in answered]))


def print_header(args: argparse.Namespace, results: list[Result]) -> None:
    feed = Feed("", "", [], args.batch, args.rate)
    print(f"\ntransaction alerts: {args.rate:g} txn/s offered as batches of {args.batch} every "
          f"{feed.interval * 1000:.0f} ms for {args.duration:g}s, {args.connections} feed "
          f"connections; {args.holders:,} holders, each bound to one official-account openid; "
          f"simulator: gunicorn 1 process x {args.sim_threads} threads"
          + (f", answering template/send after {args.wechat_latency * 1000:g} ms"
             if args.wechat_latency else "")
          + f"; {report.CPUS} CPUs")
    for result in results:
        print(f"  {result.target.name:<8} {result.target.about}")


def print_table(results: list[Result]) -> None:
    print(f"\n{'':<34}" + "".join(f"{r.target.name:>14}" for r in results))
    rows: list[tuple[str, list[str]]] = [
        ("transactions fed (202)", [f"{len(r.expected):,}" for r in results]),
        ("feed requests not 202", [f"{len(r.batches) - len(r.accepted):,}" for r in results]),
        ("sustained feed rate (txn/s)", [f"{r.feed_rate():,.1f}" for r in results]),
        ("messages WeChat received", [f"{len(r.received.first):,}" for r in results]),
        ("sustained send rate (msg/s)", [f"{r.send_rate():,.1f}" for r in results]),
        ("  slowest / median second", [_seconds(r.sends_per_second()) for r in results]),
        ("last message after feed end (s)", [f"{r.last_message_after():.2f}" for r in results]),
    ]
    for name in ("p50", "p95", "p99", "max"):
        rows.append((f"end to end {name} (s)",
                     [f"{getattr(stats.Latency.of(r.end_to_end()), name):.3f}" for r in results]))
    for name in ("p50", "p99", "max"):
        rows.append((f"feed answer {name} (s)",
                     [f"{getattr(feed_times(r)[0], name):.3f}" for r in results]))
    rows.append(("feed due -> answer p99 (s)", [f"{feed_times(r)[1].p99:.3f}" for r in results]))
    rows.append(("feeder lateness p99 (ms)",
                 [f"{stats.Latency.of(r.feeder_lags()).p99 * 1000:.1f}" for r in results]))
    rows += [
        ("duplicates (shown twice)", [f"{r.duplicates():,}" for r in results]),
        ("lost (never received)", [f"{r.lost():,}" for r in results]),
        ("repeated calls (WeChat dropped)",
         [f"{r.received.calls - sum(r.received.messages.values()):,}" for r in results]),
    ]
    for label, values in rows:
        print(f"{label:<34}" + "".join(f"{value:>14}" for value in values))


def _seconds(counts: list[int]) -> str:
    if not counts:
        return "-"
    return f"{min(counts)} / {sorted(counts)[len(counts) // 2]}"


def print_costs(result: Result) -> None:
    names = {"app": "app", "workers": "send workers", "sim": "simulator",
             "redis+pg": "Redis+PostgreSQL", "feeder": "feeder (this process)",
             "children": "py-spy" if result.profile else "children", "other": "other"}
    print(f"\n[{result.target.name}] CPUs busy over {result.cpu.seconds:.1f}s (feed + drain): "
          + report.busy_line(result.cpu.busy, names))
    done = len(result.received.first)
    if done:
        parties = {k: names[k] for k in result.cpu.busy if k not in ("other", "children")}
        print(f"[{result.target.name}] CPU per alert: "
              + report.cost_line(report.cpu_cost(result.cpu, done, parties), "alerts"))
    print(f"[{result.target.name}] RSS after the run: "
          + "; ".join(f"{k} " + ", ".join(f"{mb:.1f} MB" for mb in v)
                      for k, v in result.rss_mb.items() if v))


def print_project_facts(result: Result) -> None:
    if not result.states:
        return
    latency = result.app_latency
    print(f"[{result.target.name}] outbox drained {result.drained_after:.2f}s after the "
          f"schedule's end; deliveries by state: {result.states}; WeChat accepted "
          f"{result.sim_sent:,} messages in all (sanity and warm-up included); app's view "
          f"(sent_at - occurred_at): p50 {latency.p50 / 1000:.3f}s, p99 "
          f"{latency.p99 / 1000:.3f}s, max {latency.max / 1000:.3f}s")


def print_profile(result: Result, mode: str) -> None:
    """Where the sending code's time went: wall time, or Python CPU time (GIL held)."""
    found = result.profile
    if found is None:
        return
    whose = "send workers" if result.target.workers else "app workers"
    of = ("wall time, waits included" if mode == "wall"
          else "time holding the GIL (Python CPU time)")
    print(f"\n[{result.target.name}] profile of the {whose} during the feed (py-spy, "
          f"{found.total:,} samples inside {result.target.sending}; inclusive shares of its "
          f"{of}):")
    report.print_shares((found.share(frame), label) for label, frame in PROFILE_BUCKETS.items())
    print("  heaviest functions:")
    # Frames on every stack (the sending frame's callers, thread and server loops) say nothing.
    heaviest = [(frame, count) for frame, count in found.inclusive.most_common()
                if (count < found.total or frame == result.target.sending)
                and not re.search(PROFILE_SKIP, frame)]
    report.print_shares((count / found.total, frame) for frame, count in heaviest[:PROFILE_TOP])


def print_verdicts(project: Result, args: argparse.Namespace) -> None:
    slack = args.batch / (project.schedule - STEADY_SKIP)  # one batch cut by the window
    floor = args.rate - slack
    print()
    report.verdict(project.feed_rate() >= floor,
                   f"sustained feed rate >= {args.rate:g}/s: {project.feed_rate():,.1f}/s")
    report.verdict(project.send_rate() >= floor,
                   f"sustained send rate >= {args.rate:g}/s: {project.send_rate():,.1f}/s")
    p99 = stats.Latency.of(project.end_to_end()).p99
    report.verdict(p99 < TARGET_P99_S, f"end-to-end p99 < {TARGET_P99_S:g}s: {p99:.3f}s")
    report.verdict(project.duplicates() == 0, f"0 duplicates: {project.duplicates()}")
    report.verdict(project.lost() == 0, f"0 lost: {project.lost()}")


def print_ratios(project: Result, naive: Result) -> None:
    p, n = stats.Latency.of(project.end_to_end()), stats.Latency.of(naive.end_to_end())
    fp, fn = feed_times(project)[0], feed_times(naive)[0]
    print("\nproject / naive (same run, same offered load): "
          f"feed rate {report.ratio(project.feed_rate(), naive.feed_rate())}, "
          f"send rate {report.ratio(project.send_rate(), naive.send_rate())}; "
          f"end to end p50 {report.ratio(p.p50, n.p50)}, p99 {report.ratio(p.p99, n.p99)}; "
          f"feed answer p50 {report.ratio(fp.p50, fn.p50)}, p99 {report.ratio(fp.p99, fn.p99)} "
          "(rates: higher is better; times: lower is better)")


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print_header(args, results)
    print_table(results)
    for result in results:
        print_costs(result)
        print_project_facts(result)
        print_profile(result, args.profile)
    by_name = {r.target.name: r for r in results}
    if "project" in by_name and "naive" in by_name:
        print_ratios(by_name["project"], by_name["naive"])
    if "project" in by_name:
        print_verdicts(by_name["project"], args)
    for result in results:
        for warning in result.warnings:
            print(f"WARNING  [{result.target.name}] {warning}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE,
                        help=f"transactions per second offered ({TARGET_RATE:g})")
    parser.add_argument("--batch", type=int, default=50, help="transactions per request (50)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of feed (60)")
    parser.add_argument("--holders", type=int, default=2000,
                        help="card holders, each bound to one openid (2000)")
    parser.add_argument("--connections", type=int, default=4,
                        help="feed requests in flight at most (4)")
    parser.add_argument("--sim-threads", type=int, default=SIM_THREADS,
                        help=f"simulator threads ({SIM_THREADS})")
    parser.add_argument("--wechat-latency", type=float, default=0.0,
                        help="seconds WeChat takes to answer each template/send (0): the "
                             "simulator sleeps that long after recording the call")
    parser.add_argument("--drain-timeout", type=float, default=120,
                        help="seconds to wait for the outbox to drain after the feed (120)")
    parser.add_argument("--only", choices=sorted(TARGETS), help="run one target only")
    parser.add_argument("--profile", nargs="?", const="wall", choices=sorted(profile.MODES),
                        help="sample the send workers (naive: the app) with py-spy during the "
                             "feed: wall time (default) or the GIL holder (Python CPU time)")
    args = parser.parse_args(argv)
    if args.duration <= STEADY_SKIP + 1 or args.rate <= 0 or not 1 <= args.batch <= 1000:
        parser.error("need --duration > 2, --rate > 0 and 1 <= --batch <= 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; 1 if a measurement is invalid."""
    args = parse_args(argv)
    names = [args.only] if args.only else ["project", "naive"]
    results, invalid = [], []
    with servers.workspace("alerts") as workdir:
        for name in names:
            try:
                results.append(run_target(TARGETS[name], args, workdir))
            except (InvalidRun, servers.ServerError, RuntimeError, OSError,
                    requests.RequestException) as exc:
                invalid.append(f"INVALID  [{name}] {type(exc).__name__}: {exc}")
    if results:
        print_report(results, args)
    for line in invalid:
        print(line)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
