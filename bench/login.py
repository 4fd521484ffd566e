"""Mini-program login followed by /api/members/me, under gunicorn, beside a bare wechatpy peer.

What is measured: one "login" is ``POST /api/miniapp/login {"code": ...}`` with
a fresh single-use wx.login code, immediately followed on the same connection
by ``GET /api/members/me`` with the bearer token that login returned. Logins/s
counts successful logins, each of which was followed by its own /me call: the
server answers two requests per login. Latencies are reported apart for the
login and the /me call. Two targets answer the same two requests, one after the
other in the same run, under the same gunicorn worker model (``--workers``,
``--threads``), against the same simulator process and the same PostgreSQL
database:

* ``project`` - this repository's app, ``app:create_app()``, every defence on:
  the app calls the simulator's ``/sns/jscode2session``, applies the client's
  region policy and the login rate limit in Redis, stores the session (token
  hashed, session key encrypted) and its audit event in PostgreSQL and looks up
  the caller's binding; /me resolves the token, the binding and, for a bound
  caller, decrypts and masks the holder's phone and reads the points balance.
* ``peer`` - bench/peers/wechatpy_login.py: a bare Flask handler that does only
  code2session through wechatpy and inserts one session row; /me reads it back.

How: the simulator runs as its own process on its own port (``--sim gunicorn``:
``gunicorn -w 1 -k gthread 'bench.harness.sim:create()'``; ``--sim cli``: ``flask
--app app wechat-sim``; one process either way, since it keeps its codes in
memory) and is first measured alone: wrk redeems fresh codes at
``/sns/jscode2session`` for ``--probe`` seconds. PostgreSQL (database
``cobrand_bench``, created if missing, its schema dropped and rebuilt by the
migrations, plus the peer's table) and Redis (db 14, flushed) are shared; the
apps get the simulator as every WeChat host, JSON logs at INFO and a temporary
PROMETHEUS_MULTIPROC_DIR. ``--users`` mini-program users (each with a unionid)
log in in turn; ``--bound`` of them are bound to a card holder imported through
the registry importer, so the project's /me also decrypts and masks a phone for
them. The login rate limit is raised so that the limiter runs on every login but
refuses none (the run reports it).

For each target, enough codes for ``--max-rate`` logins/s are minted at the
simulator before its load (not timed). wrk runs ``--connections`` threads with one
connection each, so a thread's Lua state sees its own request/response pairs in
order: it sends a login, keeps the token from the answer, sends /me with it, then
the next login. It times each request with the monotonic clock (LuaJIT FFI) and
hands every sample to Python, which computes the percentiles per request type. A
1 s warm-up run comes first, then the bench waits for the machine to go quiet.
The targets take turns for ``--rounds`` rounds (1); each is reported by its
median round (by logins/s). Also reported: the simulator's call time as the
project saw it (its INFO log), CPUs used by the app, the simulator, Redis +
PostgreSQL, wrk and the rest (other load above 0.1 CPU is flagged: the machine is
shared), the CPU time one login + /me costs each party and the rate the machine's
CPUs could sustain at that cost, and the workers' VmRSS after the run (MB =
2**20 bytes). ``--profile`` samples the workers with py-spy during the run
(bench/harness/profile.py) and prints where their time goes.

Targets: at least 0.7x the peer's logins/s with every defence on, judged in
the same run; and the issue's at least 800 logins/s on this machine with p99
under 30 ms (judged for the login and for /me). PASS/FAIL lines do not change
the exit status. Exit status 1 only when the measurement is invalid: a sanity
check failed, a wrk thread ran out of codes, or more than 0.1% of the requests
failed.

Run from the repository root::

    python -m bench.login [--duration 10] [--connections 16] [--sim gunicorn|cli]
                          [--workers 2] [--threads 0] [--only project|peer]
                          [--rounds 1] [--profile [wall|gil]]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.harness import backend, holders, load, proc, profile, report, servers, sim, stats
from bench.harness.report import InvalidRun
from bench.peers import wechatpy_login
from members.holders.binding import MINIAPP

REDIS_URL = f"{backend.REDIS_SERVER}/14"
WARMUP_SECONDS = 1.0
MAX_ERROR_RATE = 0.001
TARGET_LOGINS_PER_SECOND = 800
TARGET_P99_MS = 30.0
TARGET_PEER_RATIO = 0.7  # the project's logins/s against the bare peer's
# Sync workers by default, as the other benches. --threads N runs gthread workers instead, so
# one request's waits (simulator, PostgreSQL, Redis) overlap another's work; measured here it
# changed nothing: the machine's CPUs, not the waits, bound the rate.
APP_THREADS = 0
# Raised so that no login is refused, while every login still goes through the limiter.
BENCH_LOGIN_LIMITS = {"ip": "100000000/minute;100000000/hour"}
PROBE_MAX_RATE = 6000  # codes minted per second of the probe: above what the simulator reaches
QUIET_WAIT_SECONDS = 120  # how long to wait for the machine to go quiet before the load
# --profile: where the workers' time goes, by a few library entry points (both targets).
PROFILE_BUCKETS = {
    "request handling in Flask (everything below)": "Flask.full_dispatch_request (flask/app.py)",
    "code2session through wechatpy (HTTP included)": "WeChatWxa.code_to_session "
                                                     "(wechatpy/client/api/wxa.py)",
    "  HTTP to the simulator (project: urllib3)": "WeChatHTTP.request (wechat/transport.py)",
    "  HTTP to the simulator (peer: requests)": "Session.request (requests/sessions.py)",
    "SQLAlchemy statements (ORM's and Core's)": "Connection.execute "
                                                "(sqlalchemy/engine/base.py)",
    "  ORM statements": "Session._execute_internal (sqlalchemy/orm/session.py)",
    "  autoflush: INSERTs sent before a query": "Session._autoflush (sqlalchemy/orm/session.py)",
    "SQLAlchemy ORM commit": "Session.commit (sqlalchemy/orm/session.py)",
    "waiting on PostgreSQL (psycopg)": "Connection.wait (psycopg/connection.py)",
    "Redis commands (limiter's Lua scripts)": "Redis.execute_command (redis/client.py)",
    "end of request: session remove, rollback": "Flask.do_teardown_appcontext (flask/app.py)",
}
PROJECT_FRAMES = r"\((members|core|wechat|config|campaigns)/"

# One connection per wrk thread (-c == -t): request() and response() alternate strictly,
# so the thread knows which request an answer belongs to and can time each one.
LOGIN_LUA = r"""
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
  write_samples()
  write_totals(summary)
end
"""

# The simulator alone: each line of the file is one code, redeemed once at jscode2session.
PROBE_LUA = r"""
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
  write_totals(summary)
  io.write(string.format("PROBE refused=%d\n", thread_total("refused")))
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    app: str  # gunicorn app spec
    about: str
    tells_bound: bool  # answers whether the caller is bound (else /me answers its openid)
    logs_wechat_calls: bool  # logs each WeChat call with its duration (INFO)


TARGETS = {
    "project": Target("project", "app:create_app()",
                      "app:create_app(): region policy, login rate limit (Redis), audit, "
                      "hashed token, encrypted session key, binding lookup", True, True),
    "peer": Target("peer", "bench.peers.wechatpy_login:create()",
                   "bench/peers/wechatpy_login.py: wechatpy code2session, one session row; "
                   "/me reads it", False, False),
}


@dataclass(frozen=True)
class User:
    openid: str
    unionid: str


@dataclass
class Run:
    """What one target's run measured."""

    target: Target
    duration: float = 0.0
    logins: stats.Latency | None = None
    me: stats.Latency | None = None
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    wrk: load.WrkResult | None = None
    sim_call: stats.Latency | None = None
    cpu: proc.CpuUse = field(default_factory=proc.CpuUse)
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

    @property
    def valid(self) -> bool:
        return not self.problems and self.error_rate <= MAX_ERROR_RATE


@dataclass
class Probe:
    """The simulator alone."""

    result: load.WrkResult | None = None
    refused: int = 0
    problems: list[str] = field(default_factory=list)


# -- setting up ---------------------------------------------------------------------------------

def users(count: int) -> list[User]:
    return [User(f"oLogin{n:022d}", f"uLogin{n:022d}") for n in range(count)]


def bench_env(workdir: Path) -> dict[str, str]:
    """The apps' environment (one set of fresh keys): bench services, raised login limit."""
    return backend.app_env(
        backend.database_url(), REDIS_URL,
        RATE_LIMITS=backend.as_env(backend.rate_limits(login=BENCH_LOGIN_LIMITS)),
        **backend.metrics_env(workdir, "login"),
    )


def write_codes(path: Path, sim_url: str, people: list[User], count: int) -> None:
    """Mint ``count`` codes, one a line, for the users in turn (cycling) into ``path``."""
    order = [people[n % len(people)] for n in range(count)]
    codes = sim.mint_login_codes(sim_url, [(u.openid, u.unionid) for u in order])
    path.write_text("".join(code + "\n" for code in codes))


# -- the simulator alone ------------------------------------------------------------------------

def probe_sim(sim_url: str, workdir: Path, people: list[User], args: argparse.Namespace) -> Probe:
    """wrk against /sns/jscode2session with fresh codes: the simulator's own ceiling."""
    count = int(PROBE_MAX_RATE * args.probe)
    codes = workdir / "probe-codes.txt"
    write_codes(codes, sim_url, people, count)
    script = load.write_script(workdir / "probe.lua", PROBE_LUA)
    query = (f"appid={backend.MINIAPP_APP_ID}&secret={backend.MINIAPP_APP_SECRET}"
             "&grant_type=authorization_code")
    threads = min(args.connections, 4)
    output = load.run(sim_url, script, args.probe, args.connections, threads,
                      [str(codes), str(threads), query])
    probe = Probe(load.parse(output), int(re.search(r"^PROBE refused=(\d+)$", output, re.M)[1]))
    if probe.result.wraps:
        probe.problems.append("simulator probe ran out of codes: raise PROBE_MAX_RATE")
    return probe


# -- a target -----------------------------------------------------------------------------------

def sanity_check(target: Target, app_url: str, sim_url: str, people: list[User],
                 bound: int) -> None:
    """A bound and an unbound user log in and read /me; InvalidRun unless both answer right.

    The project must tell them apart; the peer must give each its own openid back.
    """
    for user, expect_bound in ((people[0], bound > 0), (people[-1], bound >= len(people))):
        code = sim.mint_login_code(sim_url, user.openid, user.unionid)
        login = requests.post(f"{app_url}/api/miniapp/login", json={"code": code}, timeout=30)
        answer = login.json() if login.status_code == 200 else {}
        if "token" not in answer or (target.tells_bound and answer["bound"] is not expect_bound):
            raise InvalidRun(f"sanity login: HTTP {login.status_code} {login.text[:300]}")
        me = requests.get(f"{app_url}/api/members/me", timeout=30,
                          headers={"Authorization": f"Bearer {answer['token']}"})
        key, value = ("bound", expect_bound) if target.tells_bound else ("openid", user.openid)
        if me.status_code != 200 or me.json().get(key) != value:
            raise InvalidRun(f"sanity /me: HTTP {me.status_code} {me.text[:300]}")


def read_samples(path: Path, run: Run) -> None:
    """Per-type latencies and statuses from the Lua samples (``kind status microseconds``)."""
    times: dict[str, list[float]] = {"login": [], "me": []}
    run.statuses = {"login": Counter(), "me": Counter()}
    for line in path.read_text().splitlines():
        kind, status, micros = line.split()
        run.statuses[kind][int(status)] += 1
        times[kind].append(int(micros) / 1000)
    run.logins = stats.Latency.of(times["login"])
    run.me = stats.Latency.of(times["me"])


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


def run_load(app: servers.Server, sim_pids: list[int], workdir: Path, codes: Path,
             seconds: float, connections: int, profiled: list[Path] | None = None,
             mode: str = "wall") -> tuple[str, proc.CpuUse]:
    """One wrk run of login + /me pairs; its output and the CPUs each party used.

    With ``profiled`` (a list to fill), py-spy samples the workers meanwhile.
    """
    script = load.write_script(workdir / "login.lua", LOGIN_LUA)
    samples = workdir / "samples.txt"
    app_pids = [app.process.pid, *app.workers()]

    def groups() -> dict[str, list[int]]:
        return {"app": app_pids, "sim": sim_pids, "redis+pg": backend.service_pids()}

    with proc.measuring(groups) as cpu, contextlib.ExitStack() as stack:
        if profiled is not None:
            profiled.extend(stack.enter_context(
                profile.recording(app.workers(), seconds, workdir, mode)))
        output = load.run(app.url, script, seconds, connections, connections,
                          [str(codes), str(connections), str(samples)])
    return output, cpu


def code2session_calls(sim_url: str) -> int:
    return sum(sim.stats(sim_url).get("code2session_calls", {}).values())


def measure(target: Target, args: argparse.Namespace, env: dict[str, str],
            wechat: servers.Server, people: list[User], bound: int, workdir: Path) -> Run:
    """Codes minted, the target started and checked, warmed up, then loaded and profiled."""
    run = Run(target)
    sim_pids = sim.pids(wechat)
    warmup, codes = workdir / "warmup-codes.txt", workdir / "codes.txt"
    started = time.monotonic()
    write_codes(warmup, wechat.url, people, int(args.max_rate * WARMUP_SECONDS))
    write_codes(codes, wechat.url, people, int(args.max_rate * args.duration))
    minted = int(args.max_rate * (args.duration + WARMUP_SECONDS))
    report.log(f"[{target.name}] minted {minted:,} codes in {time.monotonic() - started:.1f}s")
    app_log = workdir / f"gunicorn-{target.name}.log"
    app_env = backend.with_sim({**env, **backend.metrics_env(workdir, target.name)}, wechat.url)
    with servers.gunicorn(target.app, app_env, servers.ROOT, app_log, workers=args.workers,
                          worker_args=servers.worker_model(args.threads)) as app:
        try:
            sanity_check(target, app.url, wechat.url, people, bound)
        except InvalidRun as exc:
            raise InvalidRun(f"[{target.name}] {exc}\n{app.log_tail(30)}") from None
        workers = app.workers()
        servers.wait_idle(workers)
        report.log(f"[{target.name}] on {app.url}, workers {workers}; sanity login + /me OK")
        run_load(app, sim_pids, workdir, warmup, WARMUP_SECONDS, args.connections)
        report.await_quiet(QUIET_WAIT_SECONDS, f"[{target.name}] ")
        calls_before = code2session_calls(wechat.url)
        offset = app_log.stat().st_size
        profiled: list[Path] | None = [] if args.profile else None
        output, run.cpu = run_load(app, sim_pids, workdir, codes, args.duration,
                                   args.connections, profiled, args.profile)
        if profiled:
            run.profile = profile.load(profiled)
        run.rss_mb = [proc.rss_mb(pid) for pid in app.workers()]
        if app.workers() != workers:
            run.problems.append(f"workers changed: {workers} -> {app.workers()}")
    run.code2session_calls = code2session_calls(wechat.url) - calls_before
    run.wrk = load.parse(output)
    run.duration = run.wrk.requests / run.wrk.rps if run.wrk.rps else 0.0
    read_samples(workdir / "samples.txt", run)
    if target.logs_wechat_calls:
        run.sim_call = sim_call_times(app_log, offset)
    warning = report.disturbed(run.cpu.busy)
    if warning:
        run.warnings.append(warning)
    if run.wrk.wraps:
        run.problems.append(f"wrk threads ran out of codes {run.wrk.wraps} times "
                            "(codes were reused): raise --max-rate")
    return run


def measure_all(args: argparse.Namespace, workdir: Path) -> tuple[Probe | None, list[list[Run]]]:
    """The shared database, Redis and simulator; the probe, then the targets' rounds in turn."""
    people = users(args.users)
    bound = int(args.users * args.bound)
    database = backend.database_url()
    report.log(f"database {database} and Redis {REDIS_URL}: wiped")
    backend.reset_database(database)
    backend.reset_redis(REDIS_URL)
    env = bench_env(workdir)
    holders.seed(env, [{"app": MINIAPP, "openid": u.openid, "unionid": u.unionid}
                       for u in people[:bound]])
    wechatpy_login.create_schema(database)
    backend.settle(database)
    report.log(f"schema migrated; {bound} of {len(people)} users bound to imported holders")
    names = [args.only] if args.only else list(TARGETS)
    with sim.running(args.sim, {**os.environ, **env}, servers.ROOT, workdir / "sim.log",
                     args.sim_threads) as wechat:
        report.log(f"simulator ({args.sim}) on {wechat.url}, pids {sim.pids(wechat)}")
        probe = probe_sim(wechat.url, workdir, people, args) if args.probe else None
        if probe:
            report.log(f"simulator alone: {probe.result.rps:,.0f} jscode2session/s")
        rounds = [[measure(TARGETS[name], args, env, wechat, people, bound, workdir)
                   for name in names] for _ in range(args.rounds)]
    return probe, [list(runs) for runs in zip(*rounds, strict=True)]


def median_round(runs: list[Run]) -> Run:
    """The round with the median logins/s; a round that is not valid is reported instead."""
    invalid = [run for run in runs if not run.valid]
    if invalid:
        return invalid[0]
    return sorted(runs, key=lambda run: run.logins_per_second)[(len(runs) - 1) // 2]


# -- reporting ----------------------------------------------------------------------------------

def _row(target: str, name: str, latency: stats.Latency | None, ok: int, failed: int,
         seconds: float) -> str:
    if latency is None or not latency.count:
        return f"{target:<9}{name:<8}  no answers"
    rate = ok / seconds if seconds else 0.0
    return (f"{target:<9}{name:<8}{ok:>9,}{rate:>9,.0f}{latency.p50:>9.2f}{latency.p99:>9.2f}"
            f"{latency.max:>9.1f}{failed:>8,}")


def print_header(args: argparse.Namespace, runs: list[Run]) -> None:
    print(f"\nlogin + /api/members/me; apps: gunicorn {args.workers} "
          f"{servers.worker_kind(args.threads)} workers, PostgreSQL; simulator: {args.sim}"
          + (f" (1 process, {args.sim_threads} threads)" if args.sim == "gunicorn" else "")
          + f"; wrk {args.connections} threads x 1 connection, {args.duration:g}s; "
          f"{report.CPUS} CPUs")
    for run in runs:
        print(f"  {run.target.name:<8} {run.target.about}")
    project = next((run for run in runs if run.target.name == "project"), None)
    if project:
        print(f"rate limit: RATE_LIMITS login ip raised to {BENCH_LOGIN_LIMITS['ip']!r} for the "
              "bench: the limiter runs on every login and refused "
              f"{project.statuses['login'][429]} of them")
    calls = ", ".join(f"{run.target.name} {run.code2session_calls:,}" for run in runs)
    print(f"users: {args.users:,} openids with unionids, {args.bound:.0%} bound to a holder; "
          f"every code used once (jscode2session calls: {calls})\n")


def print_table(runs: list[Run]) -> None:
    print(f"{'target':<9}{'request':<8}{'ok':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'failed':>8}")
    for run in runs:
        name = run.target.name
        print(_row(name, "login", run.logins, run.ok("login"), run.failed("login"),
                   run.duration))
        print(_row(name, "/me", run.me, run.ok("me"), run.failed("me"), run.duration))
        for kind in ("login", "me"):
            others = {s: n for s, n in run.statuses[kind].items() if s != 200}
            if others:
                print(f"  {name} {kind} statuses other than 200: {others}")


def print_run_facts(run: Run) -> None:
    name, w = run.target.name, run.wrk
    print(f"[{name}] wrk: {w.requests:,} requests in {run.duration:.1f}s ({w.rps:,.0f}/s, both "
          f"kinds), {w.socket_errors} socket errors, {w.non_2xx} non-2xx")
    if run.sim_call and run.sim_call.count:
        s = run.sim_call
        print(f"[{name}] jscode2session as the app saw it: {s.count:,} calls, p50 "
              f"{s.p50:.2f} ms, p99 {s.p99:.2f} ms, mean {s.mean:.2f} ms (app's INFO log)")
    names = {"children": "wrk (and py-spy if profiling)"}
    print(f"[{name}] CPUs busy during the run: {report.busy_line(run.cpu.busy, names)}")
    logins = run.ok("login")
    if logins:
        parties = {"app": "app", "sim": "simulator", "redis+pg": "Redis + PostgreSQL",
                   "children": "wrk + py-spy" if run.profile else "wrk"}
        print(f"[{name}] CPU per login + its /me: "
              + report.cost_line(report.cpu_cost(run.cpu, logins, parties), "logins"))
    print(f"[{name}] worker RSS after the run: "
          + ", ".join(f"{mb:.1f} MB" for mb in run.rss_mb))


def app_cpu_ms(run: Run) -> float:
    """The app's CPU milliseconds per login + its /me."""
    return report.cpu_cost(run.cpu, max(run.ok("login"), 1), {"app": "app"})["app"]


def print_ratio(project: Run, peer: Run) -> None:
    p, q = project, peer
    ratio = report.ratio
    print(f"\nproject/peer (same run, same simulator and PostgreSQL): logins/s "
          f"{ratio(p.logins_per_second, q.logins_per_second)}; login p50 "
          f"{ratio(p.logins.p50, q.logins.p50)}, p99 {ratio(p.logins.p99, q.logins.p99)}; /me "
          f"p50 {ratio(p.me.p50, q.me.p50)}, p99 {ratio(p.me.p99, q.me.p99)}; app CPU per login "
          f"{ratio(app_cpu_ms(p), app_cpu_ms(q))} "
          "(rates: higher is better; times and CPU: lower is better)")


def print_verdicts(by_name: dict[str, Run]) -> None:
    print()
    project, peer = by_name.get("project"), by_name.get("peer")
    if project is None or not project.valid:
        print("SKIP  project criteria: no valid run of the project")
        return
    rate = project.logins_per_second
    if peer is not None and peer.valid:
        report.verdict(rate >= TARGET_PEER_RATIO * peer.logins_per_second,
                       f"logins/s >= {TARGET_PEER_RATIO:g}x the bare peer: {rate:,.0f}/s vs "
                       f"{peer.logins_per_second:,.0f}/s "
                       f"({report.ratio(rate, peer.logins_per_second)})")
    else:
        print(f"SKIP  logins/s >= {TARGET_PEER_RATIO:g}x the bare peer: peer not measured")
    report.verdict(rate >= TARGET_LOGINS_PER_SECOND,
                   f"logins/s >= {TARGET_LOGINS_PER_SECOND}: {rate:,.0f}/s")
    for name, latency in (("login", project.logins), ("/me", project.me)):
        report.verdict(latency is not None and latency.p99 < TARGET_P99_MS,
                       f"{name} p99 < {TARGET_P99_MS:g} ms: {latency.p99:.2f} ms")
    sim_cpu = project.cpu.busy.get("sim", 0.0)
    if sim_cpu > 0.9:
        print(f"NOTE  the simulator used {sim_cpu:.2f} CPU (one process): it may be the limit")


def print_profile(run: Run, mode: str) -> None:
    """Shares of the workers' wall time (idle frames included) or of their CPU (GIL held)."""
    found = run.profile
    if found is None:
        return
    of = "wall time" if mode == "wall" else "CPU (GIL held)"
    print(f"\n[{run.target.name}] profile of the workers during the run (py-spy, "
          f"{found.total:,} samples, share of {of}, inclusive; the profiled run is a "
          "little slower):")
    report.print_shares((found.share(frame), label) for label, frame in PROFILE_BUCKETS.items())
    if run.target.name == "project":
        print("  project functions:")
        report.print_shares(found.top(PROJECT_FRAMES, 16))


def print_report(probe: Probe | None, by_target: list[list[Run]],
                 args: argparse.Namespace) -> None:
    runs = [median_round(rounds) for rounds in by_target]
    print_header(args, runs)
    print_table(runs)
    print()
    for run in runs:
        print_run_facts(run)
    if probe:
        p = probe.result
        print(f"simulator alone ({args.probe:g}s wrk, fresh codes): {p.rps:,.0f} "
              f"jscode2session/s, p50 {p.p50_ms:.2f} ms, p99 {p.p99_ms:.2f} ms, "
              f"{probe.refused} refused")
    by_name = {run.target.name: run for run in runs}
    if "project" in by_name and "peer" in by_name and all(run.valid for run in runs):
        print_ratio(by_name["project"], by_name["peer"])
    for run in runs:
        if not run.valid:
            print(f"INVALID  [{run.target.name}] {run.error_rate:.2%} of requests failed; "
                  + "; ".join(run.problems))
    if probe and probe.problems:
        print("INVALID  " + "; ".join(probe.problems))
    print_verdicts(by_name)
    for run in runs:
        for warning in run.warnings:
            print(f"WARNING  [{run.target.name}] {warning}")
    if args.rounds > 1:
        print("\nlogins/s (login p99 ms) by round (the figures above are each target's "
              "median round):")
        for rounds in by_target:
            print(f"  {rounds[0].target.name:<9}" + "  ".join(
                f"{r.logins_per_second:>6,.0f} ({r.logins.p99:6.2f})" for r in rounds))
    for run in runs:
        print_profile(run, args.profile)


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
    parser.add_argument("--workers", type=int, default=servers.WORKERS,
                        help=f"app workers, gunicorn sync ({servers.WORKERS})")
    parser.add_argument("--only", choices=sorted(TARGETS), help="measure one target")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of every target, taking turns; each is reported by its "
                             "median round (1)")
    parser.add_argument("--profile", nargs="?", const="wall", choices=sorted(profile.MODES),
                        help="sample the workers with py-spy during the run and print where "
                             "their time goes: 'wall' (the default) counts waits too, 'gil' "
                             "only the thread running Python, i.e. CPU")
    parser.add_argument("--probe", type=float, default=2,
                        help="seconds of the simulator-alone probe, 0 to skip (2)")
    args = parser.parse_args(argv)
    if not 0 <= args.bound <= 1:
        parser.error("--bound is a share between 0 and 1")
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; 1 if a measurement is invalid."""
    args = parse_args(argv)
    with servers.workspace("login") as workdir:
        try:
            probe, by_target = measure_all(args, workdir)
        except (InvalidRun, servers.ServerError, RuntimeError, OSError) as exc:
            print(f"INVALID  {type(exc).__name__}: {exc}")
            return 1
    print_report(probe, by_target, args)
    valid = all(run.valid for runs in by_target for run in runs)
    return 0 if valid and not (probe and probe.problems) else 1


if __name__ == "__main__":
    sys.exit(main())
