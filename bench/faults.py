"""Fault trials of transaction alerts: Redis restarted, and a worker killed, mid-batch.

Each trial feeds ``--alerts`` new transactions through the signed feed at ``--rate``
per second (batches of ``--batch``) to the app under gunicorn, with ``--workers``
``flask --app app worker`` processes sending, and meanwhile, ``--fault-at`` seconds
into the feed:

* ``redis``: the Redis server is SIGKILLed and started again on the same port
  ``--outage`` seconds later. It runs without persistence, so the restart loses
  every queued job, as a crash of a Redis without AOF would; the feed goes on
  meanwhile (its rows stay ``queued`` for the sweep).
* ``worker``: one worker's process group (the worker and its RQ scheduler) is
  SIGKILLed, as a machine dying would, 1.5 WeChat round trips into a send job
  (RQ's record says when it runs one), so that some of the job's messages are at
  WeChat but not yet recorded and some not sent; the others keep running, and a
  replacement starts ``--restart-after`` seconds later, as ``Restart=always``
  would (negative: none).

Then the trial waits (at most ``--drain-timeout`` s) until no delivery is left
``queued`` or ``sending`` and reads back every template/send call the simulator
kept. WeChat shows one message per (openid, client_msg_id) within ten minutes;
the simulator's rule is replayed over the calls to tell shown messages from the
repeats WeChat dropped, and cross-checked against the simulator's own count (a
call the simulator answered with an error would show as a difference, with a
WARNING). Per trial it prints: transactions fed (202), sent (transactions with a
shown message), lost (fed, never shown), seen twice (same openid and transaction
shown more than once), marked resends (shown messages carrying
ALERT_RESEND_MARKER), repeats WeChat dropped, the simulator's count, the time to
drain after the feed's end and after the fault, the deliveries' states, workers
alive at the end, the workers' own outage counters (``worker_redis_outages_total``
/ ``..._reconnects_total``), their ERROR log lines by logger and the template/send
answers they logged by errcode.

Everything is private to the run: the PostgreSQL database ``cobrand_bench_faults``
(created when missing, its schema dropped and rebuilt for each trial), a
``redis-server`` on a free port (no persistence), a simulator (gunicorn, one
process) and the app's gunicorn, all stopped at the end. The sweep runs every
``--sweep-interval`` s and re-drives rows stuck for ``--stuck-after`` s (the
defaults, 30 and 120 s, would only make the trials slower).

PASS/FAIL lines (0 lost, 0 seen twice, drained, workers alive) do not change the
exit status; it is 1 only when a trial could not be run.

    python -m bench.faults [--alerts 1000] [--rate 100] [--only redis|worker]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Worker
from rq.worker import WorkerStatus

from bench import alerts
from bench.harness import backend, report, servers, sim
from bench.harness.backend import Database
from bench.harness.feed import Feed, run_feed
from bench.harness.report import InvalidRun
from config.settings import BASE
from wechat.sim.config import SimLimits

DATABASE = backend.database_url("cobrand_bench_faults")
PROJECT = alerts.TARGETS["project"]  # its SQL: pending deliveries, client_msg_id → txn_id
MARKER = BASE["ALERT_RESEND_MARKER"]
REPLAY_WINDOW = SimLimits().template_dedupe_window  # WeChat's client_msg_id window (s)
FEED_CONNECTIONS = 2
SIM_THREADS = 16
HOLDERS = 300
BUSY_WAIT = 5.0  # s the worker trial waits for its victim to be running a send job
SEND_JOB = ".send_batch"  # the send job's function (members.transactions.alerts.tasks)
WORKER_ARGV = [sys.executable, *servers.JOB_WORKER]
ERROR_LINE = re.compile(r'"level": "ERROR", "logger": "([^"]+)"')
# The workers' line per WeChat call (wechat.client): what WeChat answered each template/send.
SEND_ANSWER = re.compile(r'"endpoint": "cgi-bin/message/template/send", "errcode": "([^"]+)"')


# -- a Redis of our own -------------------------------------------------------------------------

class RedisServer:
    """``redis-server`` on a free port without persistence: killed, it comes back empty."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise InvalidRun("needs the redis-server binary (Debian: redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = servers.free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{servers.HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", servers.HOST, "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]
        with (self.workdir / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise InvalidRun(f"redis-server on port {self.port} not answering after {timeout:g}s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    running = RedisServer(workdir)
    running.start()
    try:
        yield running
    finally:
        running.kill()


# -- what happened ------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One trial's figures."""

    name: str
    about: str
    fed: int = 0
    feed_failures: int = 0  # feed requests not answered 202
    sent: int = 0
    lost: int = 0
    seen_twice: int = 0
    marked: int = 0
    dropped: int = 0  # template/send calls WeChat answered as repeats
    wechat_count: int = 0  # the simulator's own count of messages shown (sanity one included)
    drained_after_feed: float = math.nan  # s from the feed's last answer; NaN: not drained
    drained_after_fault: float = math.nan  # s from Redis answering again / the kill
    states: dict[str, int] = field(default_factory=dict)
    workers_started: int = 0  # the replacement included
    workers_killed: int = 0
    workers_alive: int = 0
    outages: tuple[float, float] = (0.0, 0.0)  # worker_redis_outages_total, reconnects_total
    errors: Counter[str] = field(default_factory=Counter)  # ERROR lines in worker logs, by logger
    answers: Counter[str] = field(default_factory=Counter)  # template/send answers by errcode
    warnings: list[str] = field(default_factory=list)


def shown_messages(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The template/send calls WeChat showed: the first per (openid, client_msg_id) within
    REPLAY_WINDOW seconds of the last one shown; the others it answered as repeats."""
    last_shown: dict[tuple[str, str], float] = {}
    shown = []
    for call in sorted(calls, key=lambda c: c["time"]):
        body = call.get("json") or {}
        key = (body.get("touser"), body.get("client_msg_id"))
        if key[1] and call["time"] - last_shown.get(key, -math.inf) < REPLAY_WINDOW:
            continue
        last_shown[key] = call["time"]
        shown.append(body)
    return shown


def is_marked(body: dict[str, Any]) -> bool:
    return any(MARKER in str(item.get("value", "")) for item in body.get("data", {}).values())


def count_messages(outcome: Outcome, calls: list[dict[str, Any]], txn_of: dict[int, str],
                   fed: set[str], sim_sent: int) -> None:
    """Sent, lost, seen twice, marked and dropped, from the calls WeChat got."""
    shown = shown_messages(calls)
    outcome.wechat_count = sim_sent
    if len(shown) != sim_sent:
        outcome.warnings.append(f"{len(shown)} messages shown by the replayed rule, "
                                f"{sim_sent} by the simulator's count")
    per_message: Counter[tuple[str, str]] = Counter()
    for body in shown:
        match = alerts.CLIENT_MSG_ID.match(str(body.get("client_msg_id", "")))
        txn = txn_of.get(int(match[1])) if match else None
        if txn not in fed:
            continue  # the sanity transaction
        per_message[(body["touser"], txn)] += 1
        outcome.marked += is_marked(body)
    outcome.sent = len({txn for _openid, txn in per_message})
    outcome.lost = len(fed) - outcome.sent
    outcome.seen_twice = sum(1 for n in per_message.values() if n > 1)
    outcome.dropped = len(calls) - len(shown)


def metric(directory: Path, name: str) -> float:
    """A counter summed over every process that wrote to the multiprocess directory."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry.get_sample_value(name) or 0.0


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (our children are reaped only at the end)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def log_counts(paths: list[Path], pattern: re.Pattern[str]) -> Counter[str]:
    """How often each first group of ``pattern`` occurs in the logs at ``paths``."""
    found: Counter[str] = Counter()
    for path in paths:
        if path.exists():
            found.update(pattern.findall(path.read_text(errors="replace")))
    return found


# -- one trial ----------------------------------------------------------------------------------

@dataclass
class Stage:
    """The running pieces of a trial, for its fault."""

    redis: RedisServer
    workers: list[int]
    env: dict[str, str]
    workdir: Path
    stack: contextlib.ExitStack
    fault_done: float = math.nan  # unix time Redis answered again, or the worker was killed
    killed: int = 0  # workers


def redis_restart(stage: Stage, args: argparse.Namespace) -> None:
    stage.redis.kill()
    report.log(f"[redis] redis-server killed; restarting in {args.outage:g}s")
    time.sleep(args.outage)
    stage.redis.start()
    stage.fault_done = time.time()
    report.log("[redis] redis-server answering again (empty)")


def sending(worker: Worker) -> bool:
    """RQ's record of ``worker`` says it runs a send job (not the sweep, say)."""
    if worker.get_state() != WorkerStatus.BUSY:
        return False
    job = worker.get_current_job()
    return job is not None and job.func_name.endswith(SEND_JOB)


def wait_sending(redis_url: str, pid: int, timeout: float) -> bool:
    """Until the worker ``pid`` runs a send job; False on timeout."""
    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(w.pid == pid and sending(w) for w in Worker.all(connection=connection)):
            return True
        time.sleep(0.005)
    return False


def worker_kill(stage: Stage, args: argparse.Namespace) -> None:
    victim = stage.workers[0]
    if wait_sending(stage.redis.url, victim, BUSY_WAIT):
        # Into the job: some of its messages are at WeChat and not yet recorded, some not sent.
        time.sleep(1.5 * args.wechat_latency)
    else:
        report.log(f"[worker] worker {victim} not seen sending within {BUSY_WAIT:g}s")
    os.killpg(victim, signal.SIGKILL)  # its own session: the worker and its scheduler
    stage.killed += 1
    stage.fault_done = time.time()
    report.log(f"[worker] worker {victim} SIGKILLed with its scheduler")
    if args.restart_after >= 0:
        time.sleep(args.restart_after)
        replacement = stage.stack.enter_context(servers.background(
            WORKER_ARGV, stage.env, servers.ROOT, stage.workdir / "worker-replacement.log"))
        stage.workers.append(replacement.pid)
        report.log(f"[worker] replacement worker {replacement.pid} started")


FAULTS: dict[str, tuple[Callable[[Stage, argparse.Namespace], None], str]] = {
    "redis": (redis_restart, "Redis SIGKILLed mid-batch, restarted empty on the same port"),
    "worker": (worker_kill, "one worker (and its scheduler) SIGKILLed in the middle of a send "
                            "job, a replacement started"),
}


def trial_env(name: str, redis_url: str, workdir: Path,
              args: argparse.Namespace) -> dict[str, str]:
    return backend.app_env(
        DATABASE, redis_url, TXN_FEED_SECRET=secrets.token_hex(32),
        ALERT_SWEEP_INTERVAL=str(args.sweep_interval), ALERT_STUCK_AFTER=str(args.stuck_after),
        **backend.metrics_env(workdir, name))


def run_trial(name: str, args: argparse.Namespace, workdir: Path) -> Outcome:
    fault, about = FAULTS[name]
    outcome = Outcome(name, about)
    backend.reset_database(DATABASE)
    with contextlib.ExitStack() as stack:
        redis_ = stack.enter_context(redis_server(workdir))
        env = trial_env(name, redis_.url, workdir, args)
        cards = alerts.seed(env, HOLDERS)
        backend.settle(DATABASE)
        records = {**os.environ, **env, sim.RECORD_LIMIT_ENV: str(args.alerts * 3 + 10_000)}
        wechat = stack.enter_context(sim.running("gunicorn", records, servers.ROOT,
                                                 workdir / "sim.log", SIM_THREADS))
        sim.add_followers(wechat.url, [alerts.openid(n) for n in range(HOLDERS)])
        if args.wechat_latency:
            sim.add_fault(wechat.url, path=alerts.TEMPLATE_PATH, delay=args.wechat_latency,
                          times=-1)
        full = backend.with_sim(env, wechat.url)
        app = stack.enter_context(servers.gunicorn("app:create_app()", full, servers.ROOT,
                                                   workdir / "app.log"))
        workers = stack.enter_context(alerts.send_workers(args.workers, full, workdir, name))
        database = Database(DATABASE)
        stack.callback(database.close)
        feed = Feed(app.url, full["TXN_FEED_SECRET"], cards, args.batch, args.rate)
        alerts.sanity_check(feed, PROJECT, database, wechat.url)
        report.log(f"[{name}] {args.workers} workers sending; sanity transaction sent")
        stage = Stage(redis_, workers, full, workdir, stack)
        fed = feed_and_fault(stage, fault, feed, args, outcome, database, wechat.url)
        outcome.workers_started, outcome.workers_killed = len(stage.workers), stage.killed
        outcome.workers_alive = sum(alive(pid) for pid in stage.workers)
        outcome.states = dict(database.rows("SELECT state, count(*) FROM delivery GROUP BY state"))
        count_messages(outcome, sim.recorded(wechat.url, alerts.TEMPLATE_PATH),
                       dict(database.rows(PROJECT.keys)), fed, alerts.sent_count(wechat.url))
        metrics = Path(env["PROMETHEUS_MULTIPROC_DIR"])
        outcome.outages = (metric(metrics, "worker_redis_outages_total"),
                           metric(metrics, "worker_redis_reconnects_total"))
    logs = sorted(workdir.glob("worker-*.log"))
    outcome.errors = log_counts(logs, ERROR_LINE)
    outcome.answers = log_counts(logs, SEND_ANSWER)
    return outcome


def feed_and_fault(stage: Stage, fault: Callable[[Stage, argparse.Namespace], None],
                   feed: Feed, args: argparse.Namespace, outcome: Outcome,
                   database: Database, sim_url: str) -> set[str]:
    """The feed in a thread, the fault on time in this one, then the drain; the
    transactions the feed accepted."""
    before = alerts.sent_count(sim_url)
    with ThreadPoolExecutor(1, thread_name_prefix="feeder") as pool:
        feeding = pool.submit(run_feed, feed, "F", args.alerts / args.rate,
                              FEED_CONNECTIONS, args.drain_timeout)
        time.sleep(args.fault_at)
        fault(stage, args)
        batches = feeding.result()
    answered = [b.answered for b in batches if not math.isnan(b.answered)]
    fed_until = max(answered, default=time.time())
    accepted = [b for b in batches if b.status == 202]
    fed = {txn for b in accepted for txn in b.txn_ids}
    outcome.fed = len(fed)
    outcome.feed_failures = len(batches) - len(accepted)
    if alerts.wait_drained(PROJECT, database, sim_url, before + outcome.fed, args.drain_timeout):
        outcome.drained_after_feed = time.time() - fed_until
        outcome.drained_after_fault = time.time() - stage.fault_done
    else:
        outcome.warnings.append(f"not drained {args.drain_timeout:g}s after the feed")
    return fed


# -- reporting ----------------------------------------------------------------------------------

def print_report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    print(f"\nfault trials: {args.alerts:,} alerts per trial at {args.rate:g}/s in batches of "
          f"{args.batch}, fault {args.fault_at:g}s into the feed; {args.workers} workers; "
          f"WeChat answers template/send after {args.wechat_latency * 1000:g} ms; sweep every "
          f"{args.sweep_interval}s, stuck after {args.stuck_after}s; {os.cpu_count()} CPUs")
    for outcome in outcomes:
        print(f"  {outcome.name:<7} {outcome.about}")
    rows: list[tuple[str, Callable[[Outcome], str]]] = [
        ("alerts fed (202)", lambda o: f"{o.fed:,}"),
        ("feed requests not 202", lambda o: f"{o.feed_failures:,}"),
        ("sent (shown to the holder)", lambda o: f"{o.sent:,}"),
        ("lost (never shown)", lambda o: f"{o.lost:,}"),
        ("seen twice", lambda o: f"{o.seen_twice:,}"),
        ("marked resends shown", lambda o: f"{o.marked:,}"),
        ("repeats WeChat dropped", lambda o: f"{o.dropped:,}"),
        ("WeChat's own count (+1 sanity)", lambda o: f"{o.wechat_count:,}"),
        ("drained after the feed (s)", lambda o: f"{o.drained_after_feed:.1f}"),
        ("drained after the fault (s)", lambda o: f"{o.drained_after_fault:.1f}"),
        ("workers alive / started / killed",
         lambda o: f"{o.workers_alive} / {o.workers_started} / {o.workers_killed}"),
        ("worker Redis outages / reconnects", lambda o: f"{o.outages[0]:g} / {o.outages[1]:g}"),
    ]
    print(f"\n{'':<34}" + "".join(f"{o.name:>14}" for o in outcomes))
    for label, value in rows:
        print(f"{label:<34}" + "".join(f"{value(o):>14}" for o in outcomes))
    for outcome in outcomes:
        print(f"[{outcome.name}] deliveries by state: {outcome.states}; ERROR lines in worker "
              f"logs by logger: {dict(outcome.errors) or 'none'}; template/send answers the "
              f"workers logged, by errcode: {dict(outcome.answers)}")
    print()
    for outcome in outcomes:
        report.verdict(outcome.lost == 0, f"[{outcome.name}] 0 lost: {outcome.lost}")
        report.verdict(outcome.seen_twice == 0,
                       f"[{outcome.name}] 0 seen twice: {outcome.seen_twice}")
        report.verdict(not math.isnan(outcome.drained_after_feed), f"[{outcome.name}] drained "
                       f"within {args.drain_timeout:g}s: {outcome.drained_after_feed:.1f}s")
        survivors = outcome.workers_started - outcome.workers_killed
        report.verdict(outcome.workers_alive == survivors, f"[{outcome.name}] every worker "
                       f"not killed still running: {outcome.workers_alive} of {survivors}")
    for outcome in outcomes:
        for warning in outcome.warnings:
            print(f"WARNING  [{outcome.name}] {warning}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1000, help="alerts per trial (1000)")
    parser.add_argument("--rate", type=float, default=100, help="transactions per second (100)")
    parser.add_argument("--batch", type=int, default=20, help="transactions per request (20)")
    parser.add_argument("--workers", type=int, default=2, help="send workers (2)")
    parser.add_argument("--fault-at", type=float, default=3.0,
                        help="seconds into the feed the fault strikes (3)")
    parser.add_argument("--outage", type=float, default=5.0,
                        help="redis: seconds Redis stays down (5)")
    parser.add_argument("--restart-after", type=float, default=2.0,
                        help="worker: seconds until a replacement starts, negative: none (2)")
    parser.add_argument("--wechat-latency", type=float, default=0.05,
                        help="seconds WeChat takes per template/send (0.05)")
    parser.add_argument("--sweep-interval", type=int, default=2, help="ALERT_SWEEP_INTERVAL (2)")
    parser.add_argument("--stuck-after", type=int, default=10, help="ALERT_STUCK_AFTER (10)")
    parser.add_argument("--drain-timeout", type=float, default=90,
                        help="seconds to wait for the outbox to drain after the feed (90)")
    parser.add_argument("--only", choices=sorted(FAULTS), help="run one trial only")
    args = parser.parse_args(argv)
    feed_seconds = args.alerts / args.rate if args.rate > 0 else 0
    if args.workers < 2 or not 0 < args.fault_at < feed_seconds or not 1 <= args.batch <= 1000:
        parser.error("need --workers >= 2, 0 < --fault-at < the feed's length "
                     "(--alerts / --rate) and 1 <= --batch <= 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the trials and print their figures; 1 if a trial could not be run."""
    args = parse_args(argv)
    outcomes, invalid = [], []
    for name in [args.only] if args.only else list(FAULTS):
        with servers.workspace(f"faults-{name}") as workdir:
            try:
                outcomes.append(run_trial(name, args, workdir))
            except (InvalidRun, servers.ServerError, OSError, requests.RequestException) as exc:
                invalid.append(f"INVALID  [{name}] {type(exc).__name__}: {exc}")
    if outcomes:
        print_report(outcomes, args)
    for line in invalid:
        print(line)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
