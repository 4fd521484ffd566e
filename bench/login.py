"""Mini-program login followed by /api/members/me, under gunicorn, against the WeChat simulator.

What is measured: one "login" is ``POST /api/miniapp/login {"code": ...}`` with
a fresh single-use wx.login code (the app calls the simulator's
``/sns/jscode2session``, applies the login rate limit in Redis, stores the
session and its audit event in PostgreSQL and looks up the caller's binding),
immediately followed on the same connection by ``GET /api/members/me`` with the
bearer token that login returned. Logins/s counts successful logins, each of
which was followed by its own /me call: the server answers two requests per login.
Latencies are reported apart for the login and the /me call.

How: the simulator runs as its own process on its own port (``--sim gunicorn``:
``gunicorn -w 1 -k gthread 'bench.sim:create()'``; ``--sim cli``: ``flask --app
app wechat-sim``; one process either way, since it keeps its codes in memory)
and is first measured alone: wrk redeems fresh codes at ``/sns/jscode2session``
for ``--probe`` seconds. The app runs under ``gunicorn -w 2 -k sync`` with
PostgreSQL (database ``cobrand_bench``, created if missing, its schema dropped
and rebuilt by the migrations) and Redis (db 14, flushed), the simulator as every
WeChat host, JSON logs at INFO and a temporary PROMETHEUS_MULTIPROC_DIR.
``--users`` mini-program users (each with a unionid) log in in turn; ``--bound``
of them are bound to a card holder imported through the registry importer, so
/me also decrypts and masks a phone for them. The login rate limit is raised so
that the limiter runs on every login but refuses none (the run reports it).

Enough codes for ``--max-rate`` logins/s are minted at the simulator before the
load (not timed). wrk runs ``--connections`` threads with one connection each,
so a thread's Lua state sees its own request/response pairs in order: it sends a
login, keeps the token from the answer, sends /me with it, then the next login.
It times each request with the monotonic clock (LuaJIT FFI) and hands every
sample to Python, which computes the percentiles per request type. A 1 s warm-up
run comes first. Also reported: the simulator's call time as the app saw it (its
INFO log), CPUs used by the app, the simulator, Redis + PostgreSQL, wrk and the
rest (other load above 0.1 CPU is flagged: the machine is shared), the CPU time
one login + /me costs each party and the rate the machine's CPUs could sustain
at that cost, and the workers' VmRSS after the run (MB = 2**20 bytes).
``--profile`` samples the workers with py-spy during the run (bench/profile.py)
and prints where their wall time goes.

Target (the issue): at least 800 logins/s on this machine with p99 under 30 ms
(judged for the login and for /me); PASS/FAIL lines do not change the exit status.
Exit status 1 only when the measurement is invalid: the sanity check failed, a
wrk thread ran out of codes, or more than 0.1% of the requests failed.

Run from the repository root::

    python -m bench.login [--duration 10] [--connections 16] [--sim gunicorn|cli]
                          [--workers 2] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from flask import Flask

from app import create_app
from bench import backend, holders, proc, profile, server, sim, stats, wrk
from core.db import db
from members.holders.binding import MINIAPP
from members.holders.models import Binding, CardHolder
from members.protection.pii import vault

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = f"{backend.REDIS_SERVER}/14"
SERVICES = ("redis-server", "postgres")
WARMUP_SECONDS = 1.0
MAX_ERROR_RATE = 0.001
TARGET_LOGINS_PER_SECOND = 800
TARGET_P99_MS = 30.0
# Sync workers by default, as the other benches. --threads N runs gthread workers instead, so
# one request's waits (simulator, PostgreSQL, Redis) overlap another's work; measured here it
# changed nothing: the machine's CPUs, not the waits, bound the rate.
APP_THREADS = 0
# Raised so that no login is refused, while every login still goes through the limiter.
BENCH_LOGIN_LIMITS = {"ip": "100000000/minute;100000000/hour"}
PROBE_MAX_RATE = 4000  # codes minted per second of the simulator probe
MAX_OTHER_CPUS = 0.1  # background load above this is reported as disturbing the numbers
QUIET_WAIT_SECONDS = 120  # how long to wait for the machine to go quiet before the load
# --profile: where the workers' wall time goes, by a few library entry points.
PROFILE_BUCKETS = {
    "request handling in Flask (everything below)": "Flask.full_dispatch_request (flask/app.py)",
    "SQLAlchemy ORM statements (incl. waits)": "Session._execute_internal "
                                               "(sqlalchemy/orm/session.py)",
    "  autoflush: INSERTs sent before a query": "Session._autoflush (sqlalchemy/orm/session.py)",
    "SQLAlchemy commit": "Session.commit (sqlalchemy/orm/session.py)",
    "waiting on PostgreSQL (psycopg)": "Connection.wait (psycopg/connection.py)",
    "Redis commands (limiter's Lua scripts)": "Redis.execute_command (redis/client.py)",
    "HTTP to the simulator (urllib3)": "WeChatHTTP.request (wechat/transport.py)",
    "end of request: session remove, rollback": "Flask.do_teardown_appcontext (flask/app.py)",
}
PROJECT_FRAMES = r"\((members|core|wechat|config|campaigns)/"

# One connection per wrk thread (-c == -t): request() and response() alternate strictly,
# so the thread knows which request an answer belongs to and can time each one.
LOGIN_LUA = wrk.THREADS_LUA + r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

function init(args)
  codes = my_lines(args[1], tonumber(args[2]), function(line) return line end)
  samples_file = args[3]
  json_headers = {["Content-Type"] = "application/json"}
  token, kind, started, samples = nil, nil, 0, {}
end

function request()
  local req
  if token then
    kind = "me"
    req = wrk.format("GET", "/api/members/me", {["Authorization"] = "Bearer " .. token})
    token = nil
  else
    kind = "login"
    req = wrk.format("POST", "/api/miniapp/login", json_headers,
                     '{"code":"' .. next_of(codes) .. '"}')
  end
  started = now_us()
  return req
end

function response(status, headers, body)
  samples[#samples + 1] = string.format("%s %d %.0f", kind, status, now_us() - started)
  if kind == "login" and status == 200 then
    token = body:match('"token"%s*:%s*"([^"]+)"')
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(threads[1]:get("samples_file"), "w"))
  for _, thread in ipairs(threads) do
    for _, sample in ipairs(thread:get("samples")) do
      out:write(sample, "\n")
    end
  end
  out:close()
  io.write(string.format("BENCH requests=%d bytes=%d wraps=%d\n",
    summary.requests, summary.bytes, total_wraps()))
end
"""

# The simulator alone: each line of the file is one code, redeemed once at jscode2session.
PROBE_LUA = wrk.THREADS_LUA + r"""
function init(args)
  local query = args[3]
  paths = my_lines(args[1], tonumber(args[2]), function(line)
    return wrk.format("GET", "/sns/jscode2session?" .. query .. "&js_code=" .. line)
  end)
  refused = 0
end

function request()
  return next_of(paths)
end

function response(status, headers, body)
  if not body:find('"openid"', 1, true) then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local refused = 0
  for _, thread in ipairs(threads) do
    refused = refused + thread:get("refused")
  end
  io.write(string.format("BENCH requests=%d bytes=%d wraps=%d\n",
    summary.requests, summary.bytes, total_wraps()))
  io.write(string.format("PROBE refused=%d\n", refused))
end
"""


class InvalidRun(RuntimeError):
    """The measurement cannot be trusted; the message says why."""


@dataclass(frozen=True)
class User:
    openid: str
    unionid: str


@dataclass
class Report:
    """Everything one run measured."""

    duration: float = 0.0
    logins: stats.Latency | None = None
    me: stats.Latency | None = None
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    wrk: wrk.WrkResult | None = None
    sim_probe: wrk.WrkResult | None = None
    sim_probe_refused: int = 0
    sim_call: stats.Latency | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)
    code2session_calls: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: profile.Profile | None = None

    def ok(self, kind: str) -> int:
        return self.statuses.get(kind, Counter())[200]

    def failed(self, kind: str) -> int:
        return sum(self.statuses.get(kind, Counter()).values()) - self.ok(kind)

    @property
    def logins_per_second(self) -> float:
        return self.ok("login") / self.duration if self.duration else 0.0

    @property
    def error_rate(self) -> float:
        answered = sum(sum(c.values()) for c in self.statuses.values())
        socket_errors = self.wrk.socket_errors if self.wrk else 0
        failed = self.failed("login") + self.failed("me") + socket_errors
        return failed / max(answered + socket_errors, 1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def app_worker_model(args: argparse.Namespace) -> tuple[str, ...]:
    if not args.threads:
        return server.WORKER_CLASS
    return ("--worker-class", "gthread", "--threads", str(args.threads))


def worker_kind(args: argparse.Namespace) -> str:
    return f"gthread ({args.threads} threads)" if args.threads else "sync"


# -- setting up ---------------------------------------------------------------------------------

def users(count: int) -> list[User]:
    return [User(f"oLogin{n:022d}", f"uLogin{n:022d}") for n in range(count)]


def bench_env(workdir: Path) -> dict[str, str]:
    """The app's environment (one set of fresh keys): bench services, raised login limit."""
    metrics = workdir / "prometheus"
    metrics.mkdir(exist_ok=True)
    return backend.app_env(
        backend.database_url(), REDIS_URL,
        RATE_LIMITS=backend.as_env(backend.rate_limits(login=BENCH_LOGIN_LIMITS)),
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )


def seed(env: dict[str, str], people: list[User], bound: int) -> None:
    """Schema by the migrations; ``bound`` holders imported and bound to the first users."""
    app: Flask = create_app(backend.settings(env))  # AUTO_MIGRATE builds the schema
    rows = holders.holders(0, bound)
    holders.import_rows(app, rows)
    with app.app_context():
        cards = {h.card_index: h.id for h in db.session.query(CardHolder)}
        ids = [cards[vault().blind_index("card", row.card_no)] for row in rows]
        db.session.add_all(
            Binding(holder_id=holder_id, app=MINIAPP, openid=u.openid, unionid=u.unionid)
            for holder_id, u in zip(ids, people, strict=False)
        )
        db.session.commit()
        db.engine.dispose()


def write_codes(path: Path, sim_url: str, people: list[User], count: int) -> None:
    """Mint ``count`` codes, one a line, for the users in turn (cycling) into ``path``."""
    order = [people[n % len(people)] for n in range(count)]
    codes = sim.mint_login_codes(sim_url, [(u.openid, u.unionid) for u in order])
    path.write_text("".join(code + "\n" for code in codes))


# -- the simulator alone ------------------------------------------------------------------------

def probe_sim(sim_url: str, workdir: Path, people: list[User], args: argparse.Namespace,
              report: Report) -> None:
    """wrk against /sns/jscode2session with fresh codes: the simulator's own ceiling."""
    count = int(PROBE_MAX_RATE * args.probe)
    codes = workdir / "probe-codes.txt"
    write_codes(codes, sim_url, people, count)
    script = workdir / "probe.lua"
    script.write_text(PROBE_LUA)
    query = (f"appid={backend.MINIAPP_APP_ID}&secret={backend.MINIAPP_APP_SECRET}"
             "&grant_type=authorization_code")
    threads = min(args.connections, 4)
    output = wrk.run_script(sim_url, script, args.probe, args.connections, threads,
                            [str(codes), str(threads), query])
    report.sim_probe = wrk.parse(output)
    report.sim_probe_refused = int(re.search(r"^PROBE refused=(\d+)$", output, re.M)[1])
    if report.sim_probe.wraps:
        report.problems.append("simulator probe ran out of codes: raise PROBE_MAX_RATE")


# -- the app ------------------------------------------------------------------------------------

def sanity_check(app_url: str, sim_url: str, people: list[User], bound: int) -> None:
    """A bound and an unbound user log in and read /me; InvalidRun unless both answer right."""
    for user, expect_bound in ((people[0], bound > 0), (people[-1], bound >= len(people))):
        code = sim.mint_login_code(sim_url, user.openid, user.unionid)
        login = requests.post(f"{app_url}/api/miniapp/login", json={"code": code}, timeout=30)
        if login.status_code != 200 or login.json().get("bound") is not expect_bound:
            raise InvalidRun(f"sanity login: HTTP {login.status_code} {login.text[:300]}")
        me = requests.get(f"{app_url}/api/members/me", timeout=30,
                          headers={"Authorization": f"Bearer {login.json()['token']}"})
        if me.status_code != 200 or me.json().get("bound") is not expect_bound:
            raise InvalidRun(f"sanity /me: HTTP {me.status_code} {me.text[:300]}")


def read_samples(path: Path, report: Report) -> None:
    """Per-type latencies and statuses from the Lua samples (``kind status microseconds``)."""
    times: dict[str, list[float]] = {"login": [], "me": []}
    report.statuses = {"login": Counter(), "me": Counter()}
    for line in path.read_text().splitlines():
        kind, status, micros = line.split()
        report.statuses[kind][int(status)] += 1
        times[kind].append(int(micros) / 1000)
    report.logins = stats.Latency.of(times["login"])
    report.me = stats.Latency.of(times["me"])


def sim_call_times(log_file: Path, offset: int) -> stats.Latency:
    """jscode2session durations the app logged ("wechat call", INFO) after ``offset``."""
    durations = []
    with log_file.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            if b"sns/jscode2session" not in raw:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                durations.append(float(entry["duration_ms"]))
    return stats.Latency.of(durations)


def service_pids() -> list[int]:
    return proc.pids_named(SERVICES)


def load(app: server.Server, sim_pids: list[int], workdir: Path, codes: Path, seconds: float,
         connections: int, profiled: list[Path] | None = None,
         mode: str = "wall") -> tuple[str, dict[str, float]]:
    """One wrk run of login + /me pairs; its output and the CPUs each party used.

    With ``profiled`` (a list to fill), py-spy samples the workers meanwhile.
    """
    script = workdir / "login.lua"
    script.write_text(LOGIN_LUA)
    samples = workdir / "samples.txt"
    app_pids = [app.process.pid, *app.workers()]
    before = proc.CpuSample.take([*app_pids, *sim_pids, *service_pids()])
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if profiled is not None:
            profiled.extend(stack.enter_context(
                profile.recording(app.workers(), seconds, workdir, mode)))
        output = wrk.run_script(app.url, script, seconds, connections, connections,
                                [str(codes), str(connections), str(samples)])
    elapsed = time.monotonic() - started
    services = service_pids()
    after = proc.CpuSample.take([*app_pids, *sim_pids, *services])
    groups = {"app": app_pids, "sim": sim_pids, "redis+pg": services}
    return output, proc.cpu_by_group(before, after, groups, elapsed)


def measure(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    people = users(args.users)
    bound = int(args.users * args.bound)
    log(f"database {backend.database_url()} and Redis {REDIS_URL}: wiped")
    backend.reset_database(backend.database_url())
    backend.reset_redis(REDIS_URL)
    env = bench_env(workdir)
    seed(env, people, bound)
    backend.settle(backend.database_url())
    log(f"schema migrated; {bound} of {len(people)} users bound to imported holders")
    with sim.running(args.sim, {**os.environ, **env}, ROOT, workdir / "sim.log",
                     args.sim_threads) as wechat:
        sim_pids = sim.pids(wechat)
        log(f"simulator ({args.sim}) on {wechat.url}, pids {sim_pids}")
        if args.probe:
            probe_sim(wechat.url, workdir, people, args, report)
            log(f"simulator alone: {report.sim_probe.rps:,.0f} jscode2session/s")
        warmup, codes = workdir / "warmup-codes.txt", workdir / "codes.txt"
        started = time.monotonic()
        write_codes(warmup, wechat.url, people, int(args.max_rate * WARMUP_SECONDS))
        write_codes(codes, wechat.url, people, int(args.max_rate * args.duration))
        log(f"minted {int(args.max_rate * (args.duration + WARMUP_SECONDS)):,} codes "
            f"in {time.monotonic() - started:.1f}s")
        app_log = workdir / "gunicorn-app.log"
        with server.gunicorn("app:create_app()", backend.with_sim(env, wechat.url), ROOT,
                             app_log, workers=args.workers,
                             worker_args=app_worker_model(args)) as app:
            try:
                sanity_check(app.url, wechat.url, people, bound)
            except InvalidRun as exc:
                raise InvalidRun(f"{exc}\n{app.log_tail(30)}") from None
            workers = app.workers()
            server.wait_idle(workers)
            log(f"app on {app.url}, workers {workers}; sanity login + /me OK")
            load(app, sim_pids, workdir, warmup, WARMUP_SECONDS, args.connections)
            background = proc.wait_quiet(MAX_OTHER_CPUS, QUIET_WAIT_SECONDS)
            if background >= MAX_OTHER_CPUS:
                log(f"the machine is not quiet ({background:.2f} CPUs busy); measuring anyway")
            calls_before = code2session_calls(wechat.url)
            offset = app_log.stat().st_size
            profiled: list[Path] | None = [] if args.profile else None
            output, report.cpu = load(app, sim_pids, workdir, codes, args.duration,
                                      args.connections, profiled, args.profile)
            if profiled:
                report.profile = profile.load(profiled)
            report.rss_mb = [proc.rss_mb(pid) for pid in app.workers()]
            if app.workers() != workers:
                report.problems.append(f"workers changed: {workers} -> {app.workers()}")
        report.code2session_calls = code2session_calls(wechat.url) - calls_before
    report.wrk = wrk.parse(output)
    report.duration = report.wrk.requests / report.wrk.rps if report.wrk.rps else 0.0
    read_samples(workdir / "samples.txt", report)
    report.sim_call = sim_call_times(app_log, offset)
    if report.cpu["other"] > MAX_OTHER_CPUS:
        report.warnings.append(f"other processes kept {report.cpu['other']:.2f} CPUs busy "
                               "during the run: the numbers are disturbed")
    if report.wrk.wraps:
        report.problems.append(f"wrk threads ran out of codes {report.wrk.wraps} times "
                               "(codes were reused): raise --max-rate")


def code2session_calls(sim_url: str) -> int:
    return sum(sim.stats(sim_url).get("code2session_calls", {}).values())


# -- reporting ----------------------------------------------------------------------------------

def _row(name: str, latency: stats.Latency | None, ok: int, failed: int, seconds: float) -> str:
    if latency is None or not latency.count:
        return f"{name:<8}  no answers"
    rate = ok / seconds if seconds else 0.0
    return (f"{name:<8}{ok:>9,}{rate:>9,.0f}{latency.p50:>9.2f}{latency.p99:>9.2f}"
            f"{latency.max:>9.1f}{failed:>8,}")


def print_report(report: Report, args: argparse.Namespace) -> None:
    w = report.wrk
    print(f"\nlogin + /api/members/me; app: gunicorn {args.workers} {worker_kind(args)} workers, "
          "PostgreSQL, "
          f"Redis; simulator: {args.sim}"
          + (f" (1 process, {args.sim_threads} threads)" if args.sim == "gunicorn" else "")
          + f"; wrk {args.connections} threads x 1 connection, {args.duration:g}s; "
          f"{os.cpu_count()} CPUs")
    print(f"rate limit: RATE_LIMITS login ip raised to {BENCH_LOGIN_LIMITS['ip']!r} for the "
          "bench: the limiter runs on every login and refused "
          f"{report.statuses['login'][429]} of them")
    print(f"users: {args.users:,} openids with unionids, {args.bound:.0%} bound to a holder; "
          f"every code used once ({report.code2session_calls:,} jscode2session calls)\n")
    print(f"{'request':<8}{'ok':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'failed':>8}")
    print(_row("login", report.logins, report.ok("login"), report.failed("login"),
               report.duration))
    print(_row("/me", report.me, report.ok("me"), report.failed("me"), report.duration))
    for kind in ("login", "me"):
        others = {s: n for s, n in report.statuses[kind].items() if s != 200}
        if others:
            print(f"  {kind} statuses other than 200: {others}")
    print(f"\nwrk: {w.requests:,} requests in {report.duration:.1f}s ({w.rps:,.0f}/s, both kinds), "
          f"{w.socket_errors} socket errors, {w.non_2xx} non-2xx")
    if report.sim_call and report.sim_call.count:
        s = report.sim_call
        print(f"jscode2session as the app saw it: {s.count:,} calls, p50 {s.p50:.2f} ms, "
              f"p99 {s.p99:.2f} ms, mean {s.mean:.2f} ms (app's INFO log)")
    if report.sim_probe:
        p = report.sim_probe
        print(f"simulator alone ({args.probe:g}s wrk, fresh codes): {p.rps:,.0f} "
              f"jscode2session/s, p50 {p.p50_ms:.2f} ms, p99 {p.p99_ms:.2f} ms, "
              f"{report.sim_probe_refused} refused")
    names = {"children": "wrk (and py-spy if profiling)"}
    print("CPUs busy during the run: "
          + ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in report.cpu.items())
          + f" (of {os.cpu_count()})")
    print_cpu_cost(report)
    print("worker RSS after the run: " + ", ".join(f"{mb:.1f} MB" for mb in report.rss_mb))
    print_verdicts(report)
    for warning in report.warnings:
        print(f"WARNING  {warning}")
    if report.profile:
        print_profile(report.profile, args.profile)


def print_profile(found: profile.Profile, mode: str) -> None:
    """Shares of the workers' wall time (idle frames included) or of their CPU (GIL held)."""
    measure = "wall time" if mode == "wall" else "CPU (GIL held)"
    print(f"\nprofile of the workers during the run (py-spy, {found.total:,} samples, share of "
          f"{measure}, inclusive; the profiled run is a little slower):")
    for label, frame in PROFILE_BUCKETS.items():
        print(f"  {found.share(frame):6.1%}  {label}")
    print("  project functions:")
    for share, frame in found.top(PROJECT_FRAMES, 16):
        print(f"  {share:6.1%}  {frame}")


def print_cpu_cost(report: Report) -> None:
    """CPU milliseconds per login (with its /me) by party, and the ceiling they imply.

    Less sensitive to background load than the rates: what the work costs, whoever
    else shares the CPUs.
    """
    logins = report.ok("login")
    if not logins:
        return
    parties = {"app": "app", "sim": "simulator", "redis+pg": "Redis + PostgreSQL",
               "children": "wrk + py-spy" if report.profile else "wrk"}
    cost = {label: report.cpu.get(key, 0.0) * report.duration * 1000 / logins
            for key, label in parties.items()}
    total = sum(cost.values())
    print("CPU per login + its /me: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cost.items())
          + f"; total {total:.2f} ms -> at most {(os.cpu_count() or 1) * 1000 / total:,.0f} "
          f"logins/s if all {os.cpu_count()} CPUs did nothing else")


def print_verdicts(report: Report) -> None:
    print()
    if report.problems or report.error_rate > MAX_ERROR_RATE:
        print(f"INVALID  {report.error_rate:.2%} of requests failed; "
              + "; ".join(report.problems))
        return
    rate = report.logins_per_second
    verdict = "PASS" if rate >= TARGET_LOGINS_PER_SECOND else "FAIL"
    print(f"{verdict}  logins/s >= {TARGET_LOGINS_PER_SECOND}: {rate:,.0f}/s")
    for name, latency in (("login", report.logins), ("/me", report.me)):
        verdict = "PASS" if latency and latency.p99 < TARGET_P99_MS else "FAIL"
        print(f"{verdict}  {name} p99 < {TARGET_P99_MS:g} ms: {latency.p99:.2f} ms")
    sim_cpu = report.cpu.get("sim", 0.0)
    if sim_cpu > 0.9:
        print(f"NOTE  the simulator used {sim_cpu:.2f} CPU (one process): it may be the limit")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load (10)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk threads, one connection each (16)")
    parser.add_argument("--users", type=int, default=2000, help="distinct openids (2000)")
    parser.add_argument("--bound", type=float, default=0.5,
                        help="share of users bound to a card holder (0.5)")
    parser.add_argument("--max-rate", type=int, default=1200,
                        help="codes minted per second of load: the ceiling (1200)")
    parser.add_argument("--sim", choices=sim.MODES, default="gunicorn",
                        help="how the simulator runs (gunicorn)")
    parser.add_argument("--sim-threads", type=int, default=sim.GUNICORN_THREADS,
                        help=f"simulator threads under gunicorn ({sim.GUNICORN_THREADS})")
    parser.add_argument("--threads", type=int, default=APP_THREADS,
                        help=f"threads per app worker, gunicorn gthread; 0 for sync workers "
                             f"({APP_THREADS})")
    parser.add_argument("--workers", type=int, default=server.WORKERS,
                        help=f"app workers, gunicorn sync ({server.WORKERS})")
    parser.add_argument("--profile", nargs="?", const="wall", choices=sorted(profile.MODES),
                        help="sample the workers with py-spy during the run and print where "
                             "their time goes: 'wall' (the default) counts waits too, 'gil' "
                             "only the thread running Python, i.e. CPU")
    parser.add_argument("--probe", type=float, default=2,
                        help="seconds of the simulator-alone probe, 0 to skip (2)")
    args = parser.parse_args(argv)
    if not 0 <= args.bound <= 1:
        parser.error("--bound is a share between 0 and 1")
    return args


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-login-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; 1 if the measurement is invalid."""
    args = parse_args(argv)
    report = Report()
    with workspace() as workdir:
        try:
            measure(args, workdir, report)
        except (InvalidRun, server.ServerError, RuntimeError, OSError) as exc:
            print(f"INVALID  {type(exc).__name__}: {exc}")
            return 1
    print_report(report, args)
    return 1 if report.problems or report.error_rate > MAX_ERROR_RATE else 0


if __name__ == "__main__":
    sys.exit(main())
