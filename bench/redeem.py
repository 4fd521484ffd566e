"""A flash sale of benefit codes: the month's stock released at once and claimed in minutes,
the project's redemption beside the classic counter-row design.

What is measured: ``--codes`` voucher codes of one free option go on sale at once to
``--holders`` bound card holders. ``--connections`` clients (wrk threads, one connection
each) start together and each redeems for its own holders in turn
(``POST /api/campaigns/<slug>/redeem`` with the holder's bearer token and a fresh
request_id every time) until it is answered 409 ``out_of_stock``; the sale ends when
every client has been. Per target:

* redemptions/s: redemptions answered 200 over the sale (first request sent to last
  redemption answered); p50/p99/max of the successful redemptions as the clients timed
  them (monotonic clock, LuaJIT FFI), and their server time (below);
* 409 ``out_of_stock`` answers apart (each client gets one at the end; a few more when a
  claim found the last codes locked by other claims still in flight), other answers and
  socket errors apart again;
* exactly once, in the target's database after the sale: oversold (redemptions beyond the
  codes), duplicated codes (redemptions sharing a code), codes never given; and in the
  answers: a code the clients were given twice, answers against stored redemptions;
* CPUs busy by party (app, simulator, Redis + PostgreSQL, wrk, other: the machine is
  shared, other load above 0.1 CPU is flagged) and CPU time per redemption.

Two targets, one after the other in the same run, under the same gunicorn worker model, on
the same PostgreSQL database ``cobrand_bench_redeem`` (created if missing, schema dropped
and rebuilt by the migrations) and with the same holders, tokens and code strings:

* ``project``: ``app:create_app()``, every check on: bearer session, binding, the holder's
  row lock, the request_id replay check, the open campaign, eligibility (tiers), the
  per-holder limit (set high enough never to refuse: 2x codes/holders), the points
  balance, the claim ``FOR UPDATE SKIP LOCKED``, the redemption, the code decrypted, the
  metrics (campaigns/benefits/redemption.py);
* ``naive``: bench/peers/naive_redeem.py, its own ``naive_*`` tables in the same
  database: token lookup, the option's stock counter row ``SELECT ... FOR UPDATE``,
  decrement, the next code by ``OFFSET``, the redemption; less work per request on
  purpose, but one redemption of the option at a time.

The worker model is the one the README recommends for production (section "Running for
real"): gthread workers of ``PRODUCTION_THREADS`` threads (``--workers`` 2, the machine's
cores, ``--threads`` 8 by default; ``--threads 0`` for sync workers, the other benches'
default). A flash sale is many holders at once: a server of sync workers runs as many
transactions as it has workers, which hides what a design does under concurrency (with 2
sync workers the naive counter row is never contended); threads, as in production, let
each target have as many transactions in flight as its design allows. The report prints
the model and whether it is the production one.

How: Redis db 10 is flushed; the holders are the tests' factory's, imported through the
registry importer and bound to mini-program openids (with unionids) directly
(bench/harness/holders.py); the campaigns are written, published and stocked through the
catalogue's services (campaigns/benefits/catalogue.py), opened a minute before the sale.
The WeChat simulator runs as its own process (gunicorn, 1 worker); every holder logs in
through it (``/sim/miniapp/code``, then ``POST /api/miniapp/login``, login rate limit
raised) and the tokens go to both targets (the naive one stores their SHA-256). Each
target is sanity-checked (a redemption, and for the project its replay), warmed up with
a small sale of its own (``--warmup-codes``) and measured once the machine is quiet
(waits up to 30 s, then measures anyway and says so).

The campaign page: ``GET /m/campaigns/<slug>`` (the H5 page, campaigns/benefits/pages.py)
with a WeChat web-OAuth session each of 16 holders got through the simulator (their
official-account openid shares the unionid of their mini-program binding), loaded by
``--page-connections`` wrk connections for ``--page-seconds`` before the project's sale,
stock full. Its server time is gunicorn's access-log ``%(D)s`` (request parsed to response
written, in the worker; the wait for a free worker is not in it; the client's view is
printed beside it). The access log is on for both targets.

Targets (issue 10): the project's redemptions/s at least 3x the naive baseline's in the
same run, p99 of successful redemptions under 200 ms, every code given exactly once
(0 oversold, 0 duplicated, none left); the page's server time p95 under 20 ms. PASS/FAIL
lines do not change the exit status; exit status 1 only when a measurement is invalid
(setup or a sanity check failed, more than 0.1% of a sale's requests failed otherwise).
``--profile`` samples the app workers with py-spy during about half of the sale
(bench/harness/profile.py) and prints where their time goes.

Run from the repository root::

    python -m bench.redeem [--codes 10000] [--holders 2000] [--connections 64]
                           [--duration 120] [--workers 2] [--threads 8]
                           [--only project|naive] [--profile [wall|gil]]
    python -m bench.redeem --codes 2000 --holders 400 --page-seconds 2   # a quick run
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from app import create_app
from bench.harness import backend, finite, holders, load, proc, profile, report, servers, sim, stats
from bench.harness.backend import Database
from bench.harness.report import InvalidRun
from bench.peers import naive_redeem
from campaigns.benefits import catalogue
from core.db import db
from members.holders.binding import MINIAPP

DATABASE = backend.database_url("cobrand_bench_redeem")
REDIS_URL = f"{backend.REDIS_SERVER}/10"
SLUG, WARMUP_SLUG, OPTION = "flash-video-month", "flash-warmup", "video_month"
TITLE = "腾讯视频VIP月卡 限时领取"
ELIGIBILITY = {"tiers": ["gold", "platinum"]}  # the factory's holders are gold
PAGE_USERS = 16
# Threads per gunicorn worker of the README's production command (gthread): see the module's
# doc. Both targets run under the same model.
PRODUCTION_THREADS = 8
PAGE_ELIGIBLE = "您已符合领取条件"  # the page's verdict for an eligible holder
TARGET_RATIO = 3.0
TARGET_P99_MS = 200.0
TARGET_PAGE_P95_MS = 20.0
MAX_ERROR_RATE = 0.001
QUIET_WAIT_SECONDS = 30
LOGIN_THREADS = 4
BENCH_LOGIN_LIMITS = {"ip": "100000000/minute;100000000/hour"}  # every login still counted
# One access-log line per request: method, path, status, microseconds in the worker.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"
PROFILE_SHARE = 0.5  # of the sale's expected length (judged by the warm-up's rate) sampled
PROFILE_BUCKETS = {
    "request handling in Flask (everything below)": "Flask.full_dispatch_request (flask/app.py)",
    "bearer session, holder found and locked (sessions.authenticate)":
        "authenticate (members/holders/sessions.py)",
    "redemption (redemption.redeem_in_turn)": "redeem_in_turn (campaigns/benefits/redemption.py)",
    "  eligibility": "of (campaigns/benefits/eligibility.py)",
    "  claim and redemption, one statement": "_claim_and_record "
                                             "(campaigns/benefits/redemption.py)",
    "  code decrypted": "Vault.decrypt (members/protection/pii.py)",
    "SQLAlchemy ORM commit": "Session.commit (sqlalchemy/orm/session.py)",
    "naive: the whole redemption": "redeem (bench/peers/naive_redeem.py)",
    "SQLAlchemy statements": "Connection.execute (sqlalchemy/engine/base.py)",
    "waiting on PostgreSQL (psycopg)": "Connection.wait (psycopg/connection.py)",
    "logging": "Logger._log (logging/__init__.py)",
    "metrics (prometheus_client)": "Counter.inc (prometheus_client/metrics.py)",
}
PROJECT_FRAMES = r"\((members|core|wechat|config|campaigns)/"

# A client: its holders' tokens (every n-th line), a fresh request_id per request
# (<prefix><thread>-<n>: unique per holder across the warm-up and the sale), one sample per
# answer "status started_us answered_us code-or-error", stopping at its first out_of_stock.
SALE_LUA = finite.CLOCK_LUA + finite.STOP_LUA + r"""
function init(args)
  tokens = my_lines(args[1], tonumber(args[2]), function(line) return line end)
  path, option, prefix = args[3], args[4], args[5]
  samples_file, stopped_file = args[6], args[7]
  json_headers = {["Content-Type"] = "application/json"}
  sent, started, samples = 0, 0, {}
end

function request()
  sent = sent + 1
  json_headers["Authorization"] = "Bearer " .. next_of(tokens)
  local body = string.format('{"option":"%s","request_id":"%s%d-%d"}',
                             option, prefix, thread_index, sent)
  started = now_us()
  return wrk.format("POST", path, json_headers, body)
end

function response(status, headers, body)
  local answered = now_us()
  local detail
  if status == 200 then
    detail = body:match('"code"%s*:%s*"([^"]*)"') or "-"
  else
    detail = body:match('"error"%s*:%s*"([^"]*)"') or "-"
  end
  samples[#samples + 1] = string.format("%d %.0f %.0f %s", status, started, answered, detail)
  if status == 409 and detail == "out_of_stock" then
    finish_thread(stopped_file)
  end
end

function done(summary, latency, requests)
  write_samples()
  write_totals(summary)
end
"""

# The campaign page with a logged-in session cookie (each thread cycles through its own).
PAGE_LUA = r"""
function init(args)
  cookies = my_lines(args[1], tonumber(args[2]), function(line) return line end)
  path, marker = args[3], args[4]
  wrong = 0
end

function request()
  return wrk.format("GET", path, {["Cookie"] = next_of(cookies)})
end

function response(status, headers, body)
  if status ~= 200 or not body:find(marker, 1, true) then
    wrong = wrong + 1
  end
end

function done(summary, latency, requests)
  write_totals(summary)
  io.write(string.format("PAGE wrong=%d\n", thread_total("wrong")))
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    app: str  # gunicorn app spec
    replays: bool  # answers a request_id again with the first redemption
    checks: str  # SQL: (redemptions, distinct codes in them, codes, codes left) of the sale
    about: str


_PROJECT_OPTION = (f"(SELECT o.id FROM campaign_option o JOIN campaign c ON c.id = o.campaign_id "
                   f"WHERE c.slug = '{SLUG}' AND o.key = '{OPTION}')")
_NAIVE_STOCK = f"(SELECT id FROM naive_stock WHERE slug = '{SLUG}' AND option = '{OPTION}')"
TARGETS = {
    "project": Target(
        "project", "app:create_app()", True,
        f"SELECT (SELECT count(*) FROM redemption WHERE option_id = {_PROJECT_OPTION}), "
        f"(SELECT count(DISTINCT code_id) FROM redemption WHERE option_id = {_PROJECT_OPTION}), "
        f"(SELECT count(*) FROM voucher_code WHERE option_id = {_PROJECT_OPTION}), "
        f"(SELECT count(*) FROM voucher_code WHERE option_id = {_PROJECT_OPTION} "
        "AND claimed_at IS NULL)",
        "app:create_app(): session, binding, holder row lock, replay check, campaign, "
        "eligibility, limit, points, claim FOR UPDATE SKIP LOCKED, redemption, decrypt"),
    "naive": Target(
        "naive", "bench.peers.naive_redeem:create()", False,
        f"SELECT (SELECT count(*) FROM naive_redemption WHERE stock_id = {_NAIVE_STOCK}), "
        f"(SELECT count(DISTINCT code_id) FROM naive_redemption WHERE stock_id = {_NAIVE_STOCK}),"
        f" (SELECT count(*) FROM naive_code WHERE stock_id = {_NAIVE_STOCK}), "
        f"(SELECT remaining FROM naive_stock WHERE id = {_NAIVE_STOCK})",
        "bench/peers/naive_redeem.py: token lookup, stock counter row FOR UPDATE, decrement, "
        "next code by OFFSET, insert"),
}


@dataclass(frozen=True)
class User:
    openid: str  # mini-program
    unionid: str

    @property
    def page_openid(self) -> str:
        """The same person's official-account openid (the H5 page's login)."""
        return self.openid.replace("oRedeem", "oRedeemOA", 1)


@dataclass
class Sale:
    """One run of clients against one campaign until it sold out."""

    statuses: Counter[str] = field(default_factory=Counter)  # "200", "409 out_of_stock", ...
    latency_ms: stats.Latency | None = None  # of the successful redemptions
    seconds: float = 0.0  # first request sent -> last redemption answered
    codes: Counter[str] = field(default_factory=Counter)  # code -> times the answers gave it
    server_ms: stats.Latency | None = None  # access log, successful redemptions
    wrk: load.WrkResult | None = None
    sold_out: bool = False  # every client met out_of_stock within --duration

    @property
    def redeemed(self) -> int:
        return self.statuses["200"]

    @property
    def out_of_stock(self) -> int:
        return self.statuses["409 out_of_stock"]

    @property
    def others(self) -> int:
        return sum(self.statuses.values()) - self.redeemed - self.out_of_stock

    @property
    def rate(self) -> float:
        return self.redeemed / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        failed = self.others + (self.wrk.socket_errors if self.wrk else 0)
        return failed / max(sum(self.statuses.values()), 1)


@dataclass(frozen=True)
class Stored:
    """What the target's database says of the sale."""

    redemptions: int
    distinct_codes: int
    codes: int
    left: int  # project: codes still in stock; naive: the counter

    @property
    def oversold(self) -> int:
        return max(self.redemptions - self.codes, 0) + max(-self.left, 0)

    @property
    def duplicated(self) -> int:
        return self.redemptions - self.distinct_codes

    @property
    def not_given(self) -> int:
        return self.codes - self.distinct_codes


@dataclass
class Page:
    """The campaign page under load."""

    server_ms: stats.Latency
    wrk: load.WrkResult
    wrong: int  # answers not 200 or without the eligible holder's verdict
    seconds: float


@dataclass
class Result:
    target: Target
    sale: Sale = field(default_factory=Sale)
    stored: Stored | None = None
    cpu: proc.CpuUse = field(default_factory=proc.CpuUse)
    page: Page | None = None
    profile: profile.Profile | None = None
    warnings: list[str] = field(default_factory=list)


# -- setting up ---------------------------------------------------------------------------------

def users(count: int) -> list[User]:
    return [User(f"oRedeem{n:021d}", f"uRedeem{n:021d}") for n in range(count)]


def bench_env(workdir: Path) -> dict[str, str]:
    return backend.app_env(
        DATABASE, REDIS_URL,
        RATE_LIMITS=backend.as_env(backend.rate_limits(login=BENCH_LOGIN_LIMITS)),
        **backend.metrics_env(workdir, "redeem"))


def sale_codes(prefix: str, count: int) -> list[str]:
    """Partner-looking codes, the same strings for both targets."""
    return [f"{prefix}-{n:05d}-K7Q" for n in range(1, count + 1)]


def campaign_json(slug: str, limit: int) -> dict[str, Any]:
    """One free option, open since a minute ago (the sale's 10:00) for a month."""
    now = datetime.now(UTC)
    return {"slug": slug, "title": TITLE,
            "starts_at": (now - timedelta(minutes=1)).isoformat(timespec="seconds"),
            "ends_at": (now + timedelta(days=30)).isoformat(timespec="seconds"),
            "eligibility": ELIGIBILITY,
            "options": [{"key": OPTION, "title": "腾讯视频VIP月卡", "points": 0,
                         "limit_per_holder": limit}]}


def stock_campaigns(env: dict[str, str], stocks: dict[str, list[str]], limit: int) -> None:
    """Write, publish and stock each campaign through the catalogue, as the console does."""
    app = create_app(backend.settings(env))
    with app.app_context():
        for slug, codes in stocks.items():
            catalogue.save(catalogue.parse(campaign_json(slug, limit), slug), actor="bench")
            catalogue.publish(slug, actor="bench")
            catalogue.add_codes(catalogue.find_option(catalogue.find(slug), OPTION), codes)
        db.session.commit()
        db.engine.dispose()


def _log_in(url: str, codes: list[str]) -> list[str]:
    tokens = []
    with requests.Session() as http:
        for code in codes:
            answer = http.post(f"{url}/api/miniapp/login", json={"code": code}, timeout=30)
            body = answer.json() if answer.status_code == 200 else {}
            if body.get("bound") is not True:
                raise InvalidRun(f"login: HTTP {answer.status_code} {answer.text[:300]}")
            tokens.append(body["token"])
    return tokens


def log_in(app_url: str, sim_url: str, people: list[User]) -> list[str]:
    """Every holder's bearer token, through the simulator and the project's login."""
    codes = sim.mint_login_codes(sim_url, [(u.openid, u.unionid) for u in people])
    chunks = [codes[i::LOGIN_THREADS] for i in range(LOGIN_THREADS)]
    with ThreadPoolExecutor(LOGIN_THREADS) as pool:
        logged = list(pool.map(_log_in, [app_url] * LOGIN_THREADS, chunks))
    tokens: list[str] = [""] * len(people)
    for i, chunk in enumerate(logged):
        tokens[i::LOGIN_THREADS] = chunk
    return tokens


def page_cookie(app_url: str, sim_url: str, user: User) -> str:
    """``name=value`` of the session cookie after the H5 page's WeChat OAuth, page seen once.

    The simulator plays WeChat's authorize page for the user's official-account openid,
    seeded as a follower with the unionid of the mini-program binding (the same person).
    """
    requests.post(f"{sim_url}/sim/users", json={"openid": user.page_openid,
                                                "unionid": user.unionid},
                  timeout=30).raise_for_status()
    page = f"{app_url}/m/campaigns/{SLUG}"
    with requests.Session() as browser:
        to_wechat = browser.get(page, allow_redirects=False, timeout=30)
        authorize = to_wechat.headers.get("Location", "")
        if to_wechat.status_code != 302 or not authorize.startswith(sim_url):
            raise InvalidRun(f"page without login: HTTP {to_wechat.status_code} "
                             f"to {authorize[:200]!r}")
        to_callback = requests.get(authorize.partition("#")[0], allow_redirects=False,
                                   params={"sim_openid": user.page_openid}, timeout=30)
        callback = to_callback.headers.get("Location", "")
        if to_callback.status_code != 302 or urlsplit(callback).netloc != urlsplit(page).netloc:
            raise InvalidRun(f"simulator's authorize: HTTP {to_callback.status_code} "
                             f"to {callback[:200]!r}")
        shown = browser.get(callback, timeout=30)  # the callback sends it back to the page
        if shown.status_code != 200 or PAGE_ELIGIBLE not in shown.text:
            raise InvalidRun(f"page after login: HTTP {shown.status_code} {shown.text[:300]}")
        (cookie,) = browser.cookies
        return f"{cookie.name}={cookie.value}"


# -- a sale -------------------------------------------------------------------------------------

def sanity_check(target: Target, url: str, token: str) -> None:
    """A warm-up redemption, then (project) its replay; InvalidRun unless right."""
    def attempt() -> requests.Response:
        return requests.post(f"{url}/api/campaigns/{WARMUP_SLUG}/redeem", timeout=30,
                             json={"option": OPTION, "request_id": "sanity-1"},
                             headers={"Authorization": f"Bearer {token}"})

    first = attempt()
    if first.status_code != 200 or not first.json().get("code"):
        raise InvalidRun(f"[{target.name}] sanity redemption: HTTP {first.status_code} "
                         f"{first.text[:300]}")
    if target.replays:
        again = attempt()
        if again.status_code != 200 or again.json() != first.json():
            raise InvalidRun(f"[{target.name}] sanity replay: HTTP {again.status_code} "
                             f"{again.text[:300]}")


def run_sale(app: servers.Server, workdir: Path, tokens: Path, slug: str, prefix: str,
             connections: int, seconds: float) -> tuple[Sale, finite.Finished]:
    """Clients redeem ``slug`` until sold out (or ``seconds``); the answers as they saw them."""
    script = load.write_script(workdir / "sale.lua", SALE_LUA)
    samples = workdir / f"samples-{prefix}.txt"
    finished = finite.run(app.url, script, connections, seconds,
                          [str(tokens), str(connections), f"/api/campaigns/{slug}/redeem",
                           OPTION, prefix, str(samples), str(workdir / "stopped.txt")],
                          workdir / "stopped.txt")
    sale = Sale(wrk=load.parse(finished.output), sold_out=finished.all_stopped)
    times, first, last = [], math.inf, -math.inf
    for line in samples.read_text().splitlines():
        status, sent, answered, detail = line.split(" ", 3)
        started, ended = float(sent), float(answered)
        first = min(first, started)
        if status == "200":
            sale.statuses["200"] += 1
            sale.codes[detail] += 1
            times.append((ended - started) / 1000)
            last = max(last, ended)
        else:
            sale.statuses[f"{status} {detail}"] += 1
    sale.latency_ms = stats.Latency.of(times)
    sale.seconds = (last - first) / 1e6 if times else 0.0
    return sale, finished


def access_times(log: Path, offset: int, method: str, path: str,
                 status: str = "200") -> stats.Latency:
    """Server times (ms) of ``method path`` answered ``status`` in the access log after
    ``offset``."""
    wanted = f"{method} {path} {status} "
    times = []
    with log.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            line = raw.decode(errors="replace")
            if line.startswith(wanted):
                times.append(int(line.rsplit(" ", 1)[1]) / 1000)
    return stats.Latency.of(times)


def measure_page(app: servers.Server, access_log: Path, workdir: Path, cookies: list[str],
                 args: argparse.Namespace) -> Page:
    """The campaign page loaded for ``--page-seconds``: server and client times."""
    cookie_file = workdir / "cookies.txt"
    cookie_file.write_text("".join(cookie + "\n" for cookie in cookies))
    script = load.write_script(workdir / "page.lua", PAGE_LUA)
    path = f"/m/campaigns/{SLUG}"
    offset = access_log.stat().st_size
    output = load.run(app.url, script, args.page_seconds, args.page_connections,
                      args.page_connections,
                      [str(cookie_file), str(args.page_connections), path, PAGE_ELIGIBLE])
    wrong = int(re.search(r"^PAGE wrong=(\d+)$", output, re.M)[1])
    return Page(access_times(access_log, offset, "GET", path), load.parse(output), wrong,
                args.page_seconds)


def profile_seconds(warmup: Sale, codes: int) -> float:
    """Most of the sale's expected length, judged by the warm-up's rate."""
    return PROFILE_SHARE * codes / warmup.rate if warmup.rate else 1.0


def measure(target: Target, app: servers.Server, access_log: Path, workdir: Path,
            tokens: Path, token: str, cookies: list[str], args: argparse.Namespace) -> Result:
    """Sanity check, warm-up sale, (project) the page, then the measured sale and its checks."""
    result = Result(target)
    try:
        sanity_check(target, app.url, token)
    except InvalidRun as exc:
        raise InvalidRun(f"{exc}\n{app.log_tail(20)}") from None
    servers.wait_idle(app.workers())
    warmup, _ = run_sale(app, workdir, tokens, WARMUP_SLUG, "w", args.connections,
                         args.duration)
    report.log(f"[{target.name}] warm-up sale: {warmup.redeemed} redeemed, "
               f"{warmup.rate:,.0f}/s")
    if target.name == "project" and args.page_seconds:
        report.await_quiet(QUIET_WAIT_SECONDS, f"[{target.name}] page: ")
        result.page = measure_page(app, access_log, workdir, cookies, args)
    report.await_quiet(QUIET_WAIT_SECONDS, f"[{target.name}] ")
    offset = access_log.stat().st_size
    app_pids = [app.process.pid, *app.workers()]

    def groups() -> dict[str, list[int]]:
        return {"app": app_pids, "redis+pg": backend.service_pids()}

    with proc.measuring(groups) as result.cpu, contextlib.ExitStack() as stack:
        profiled = (stack.enter_context(profile.recording(
            app.workers(), profile_seconds(warmup, args.codes), workdir, args.profile))
            if args.profile else None)
        result.sale, finished = run_sale(app, workdir, tokens, SLUG, "s", args.connections,
                                         args.duration)
    if profiled:
        result.profile = profile.load(profiled)
    result.sale.server_ms = access_times(access_log, offset, "POST",
                                         f"/api/campaigns/{SLUG}/redeem")
    database = Database(DATABASE)
    try:
        result.stored = Stored(*database.rows(target.checks)[0])
    finally:
        database.close()
    report.log(f"[{target.name}] sale: {result.sale.redeemed} redeemed in "
               f"{finished.seconds:.1f}s")
    judge(result, args)
    return result


def judge(result: Result, args: argparse.Namespace) -> None:
    sale = result.sale
    if sale.error_rate > MAX_ERROR_RATE:
        raise InvalidRun(f"[{result.target.name}] {sale.error_rate:.2%} of the sale's requests "
                         f"failed: {dict(sale.statuses)}, "
                         f"{sale.wrk.socket_errors if sale.wrk else 0} socket errors")
    if not sale.sold_out:
        result.warnings.append(f"not sold out within --duration {args.duration:g}s")
    warning = report.disturbed(result.cpu.busy)
    if warning:
        result.warnings.append(warning)


@contextlib.contextmanager
def serve(target: Target, env: dict[str, str], workdir: Path,
          args: argparse.Namespace) -> Iterator[tuple[servers.Server, Path]]:
    """The target under gunicorn with an access log; (server, access log)."""
    access_log = workdir / f"access-{target.name}.log"
    options = (*servers.worker_model(args.threads), "--access-logfile", str(access_log),
               "--access-logformat", ACCESS_LOG_FORMAT)
    with servers.gunicorn(target.app, env, servers.ROOT, workdir / f"gunicorn-{target.name}.log",
                          workers=args.workers, worker_args=options) as app:
        report.log(f"[{target.name}] on {app.url}, workers {app.workers()}")
        yield app, access_log


def measure_all(args: argparse.Namespace, workdir: Path) -> list[Result]:
    """Seed, log every holder in, then each target's sale in turn."""
    people = users(args.holders)
    backend.reset_database(DATABASE)
    backend.reset_redis(REDIS_URL)
    env = bench_env(workdir)
    holders.seed(env, [{"app": MINIAPP, "openid": u.openid, "unionid": u.unionid}
                       for u in people])
    stocks = {SLUG: sale_codes("VIDEO", args.codes),
              WARMUP_SLUG: sale_codes("WARM", args.warmup_codes)}
    stock_campaigns(env, stocks, 2 * math.ceil(args.codes / args.holders))
    report.log(f"{DATABASE} and {REDIS_URL} wiped; {args.holders} holders imported and bound; "
               f"{args.codes} + {args.warmup_codes} (warm-up) codes in stock")
    names = [args.only] if args.only else list(TARGETS)
    results = []
    with sim.running("gunicorn", {**os.environ, **env}, servers.ROOT, workdir / "sim.log") as wx:
        app_env = backend.with_sim(env, wx.url)
        with serve(TARGETS["project"], app_env, workdir, args) as (app, access_log):
            tokens = log_in(app.url, wx.url, people)
            cookies = [page_cookie(app.url, wx.url, user) for user in people[:PAGE_USERS]]
            report.log(f"{len(tokens)} holders logged in; {len(cookies)} page sessions")
            naive_redeem.create_schema(DATABASE)
            naive_redeem.seed(DATABASE, {(slug, OPTION): codes for slug, codes in stocks.items()},
                              {token: n for n, token in enumerate(tokens)})
            backend.settle(DATABASE)
            token_file = workdir / "tokens.txt"
            token_file.write_text("".join(token + "\n" for token in tokens))
            if "project" in names:
                results.append(measure(TARGETS["project"], app, access_log, workdir,
                                       token_file, tokens[0], cookies, args))
        if "naive" in names:
            with serve(TARGETS["naive"], app_env, workdir, args) as (app, access_log):
                results.append(measure(TARGETS["naive"], app, access_log, workdir,
                                       token_file, tokens[0], cookies, args))
    return results


# -- reporting ----------------------------------------------------------------------------------

def _ms(latency: stats.Latency | None) -> str:
    if latency is None or not latency.count:
        return "-"
    return f"{latency.p50:.1f} / {latency.p99:.1f}"


def _model_note(threads: int) -> str:
    if threads == PRODUCTION_THREADS:
        return "the README's production worker model"
    return (f"not the README's production model: gthread, {PRODUCTION_THREADS} threads a "
            "worker")


def print_header(args: argparse.Namespace, results: list[Result]) -> None:
    print(f"\nflash sale: {args.codes:,} codes of one free option on sale at once to "
          f"{args.holders:,} bound holders; {args.connections} clients (wrk, one connection "
          "each, a fresh request_id per request) until sold out; gunicorn "
          f"{args.workers} {servers.worker_kind(args.threads)} workers per target "
          f"({_model_note(args.threads)}); PostgreSQL "
          f"{DATABASE.rsplit('/', 1)[1]}; {report.CPUS} CPUs (shared)")
    for result in results:
        print(f"  {result.target.name:<8} {result.target.about}")


def print_table(results: list[Result]) -> None:
    def column(get: Callable[[Result], str]) -> list[str]:
        return [get(r) for r in results]

    rows: list[tuple[str, list[str]]] = [
        ("redeemed (200)", column(lambda r: f"{r.sale.redeemed:,}")),
        ("sold out (409 out_of_stock)", column(lambda r: f"{r.sale.out_of_stock:,}")),
        ("other answers", column(lambda r: f"{r.sale.others:,}")),
        ("socket errors", column(lambda r: f"{r.sale.wrk.socket_errors:,}")),
        ("sale lasted (s)", column(lambda r: f"{r.sale.seconds:.2f}")),
        ("redemptions/s", column(lambda r: f"{r.sale.rate:,.1f}")),
        ("client p50 / p99 (ms)", column(lambda r: _ms(r.sale.latency_ms))),
        ("client max (ms)", column(lambda r: f"{r.sale.latency_ms.max:.1f}")),
        ("server p50 / p99 (ms, access log)", column(lambda r: _ms(r.sale.server_ms))),
        ("oversold (database)", column(lambda r: f"{r.stored.oversold:,}")),
        ("duplicated codes (database)", column(lambda r: f"{r.stored.duplicated:,}")),
        ("codes never given (database)", column(lambda r: f"{r.stored.not_given:,}")),
        ("codes given twice (answers)",
         column(lambda r: f"{sum(n - 1 for n in r.sale.codes.values()):,}")),
        ("stored / answered redemptions",
         column(lambda r: f"{r.stored.redemptions:,}/{r.sale.redeemed:,}")),
    ]
    print(f"\n{'':<36}" + "".join(f"{r.target.name:>16}" for r in results))
    for label, values in rows:
        print(f"{label:<36}" + "".join(f"{value:>16}" for value in values))
    for result in results:
        others = {k: n for k, n in result.sale.statuses.items()
                  if k not in ("200", "409 out_of_stock")}
        if others:
            print(f"  {result.target.name} other answers: {others}")


def print_costs(result: Result) -> None:
    names = {"app": "app", "redis+pg": "Redis + PostgreSQL",
             "children": "wrk + py-spy" if result.profile else "wrk"}
    name = result.target.name
    print(f"[{name}] CPUs busy during the sale: {report.busy_line(result.cpu.busy, names)}")
    if result.sale.redeemed:
        parties = {k: v for k, v in names.items() if k in result.cpu.busy}
        print(f"[{name}] CPU per redemption: " + report.cost_line(
            report.cpu_cost(result.cpu, result.sale.redeemed, parties), "redemptions"))


def print_page(page: Page, args: argparse.Namespace) -> None:
    s, w = page.server_ms, page.wrk
    print(f"\ncampaign page GET /m/campaigns/<slug> (H5, WeChat OAuth session through the "
          f"simulator, {PAGE_USERS} holders, stock full, {args.page_connections} connections, "
          f"{page.seconds:g}s): {s.count:,} pages ({w.rps:,.0f}/s), {page.wrong} wrong; server "
          f"time (gunicorn access log %(D)s, in the worker) p50 {s.p50:.2f} ms, p95 "
          f"{s.p95:.2f} ms, p99 {s.p99:.2f} ms; client p50 {w.p50_ms:.2f} ms, p99 "
          f"{w.p99_ms:.2f} ms")


def print_profile(result: Result, mode: str) -> None:
    found = result.profile
    if found is None:
        return
    of = "wall time" if mode == "wall" else "CPU (GIL held)"
    print(f"\n[{result.target.name}] profile of the workers during the sale (py-spy, "
          f"{found.total:,} samples, share of {of}, inclusive; the profiled sale is slower):")
    report.print_shares((found.share(frame), label) for label, frame in PROFILE_BUCKETS.items()
                        if found.share(frame))
    if result.target.name == "project":
        print("  project functions:")
        report.print_shares(found.top(PROJECT_FRAMES, 20))


def print_verdicts(by_name: dict[str, Result]) -> None:
    print()
    project, naive = by_name.get("project"), by_name.get("naive")
    if project is None:
        print("SKIP  project targets: the project was not measured")
        return
    rate = project.sale.rate
    if naive is not None:
        report.verdict(rate >= TARGET_RATIO * naive.sale.rate,
                       f"redemptions/s >= {TARGET_RATIO:g}x the naive baseline: {rate:,.1f}/s vs "
                       f"{naive.sale.rate:,.1f}/s ({report.ratio(rate, naive.sale.rate)})")
    else:
        print(f"SKIP  redemptions/s >= {TARGET_RATIO:g}x the naive baseline: not measured")
    p99 = project.sale.latency_ms.p99
    report.verdict(p99 < TARGET_P99_MS, f"p99 of successful redemptions < {TARGET_P99_MS:g} ms: "
                                        f"{p99:.1f} ms")
    stored = project.stored
    given_twice = sum(n - 1 for n in project.sale.codes.values())
    report.verdict(stored.oversold == 0 and stored.duplicated == 0 and stored.not_given == 0
                   and given_twice == 0 and stored.redemptions == project.sale.redeemed,
                   f"every code given exactly once: {stored.codes:,} codes, "
                   f"{stored.redemptions:,} redemptions, {stored.oversold} oversold, "
                   f"{stored.duplicated} duplicated, {stored.not_given} never given, "
                   f"{given_twice} given twice in the answers")
    if project.page is not None:
        p95 = project.page.server_ms.p95
        report.verdict(p95 < TARGET_PAGE_P95_MS and not project.page.wrong,
                       f"campaign page server time p95 < {TARGET_PAGE_P95_MS:g} ms: {p95:.2f} ms")
    else:
        print(f"SKIP  campaign page server time p95 < {TARGET_PAGE_P95_MS:g} ms: not measured")


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print_header(args, results)
    print_table(results)
    print()
    for result in results:
        print_costs(result)
    by_name = {r.target.name: r for r in results}
    if "project" in by_name and "naive" in by_name:
        p, n = by_name["project"].sale, by_name["naive"].sale
        print(f"\nproject / naive (same run, same holders and codes): redemptions/s "
              f"{report.ratio(p.rate, n.rate)}; p50 "
              f"{report.ratio(p.latency_ms.p50, n.latency_ms.p50)}, p99 "
              f"{report.ratio(p.latency_ms.p99, n.latency_ms.p99)} "
              "(rates: higher is better; times: lower is better)")
    project = by_name.get("project")
    if project is not None and project.page is not None:
        print_page(project.page, args)
    print_verdicts(by_name)
    for result in results:
        for warning in result.warnings:
            print(f"WARNING  [{result.target.name}] {warning}")
    for result in results:
        print_profile(result, args.profile)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=10_000, help="codes on sale (10000)")
    parser.add_argument("--holders", type=int, default=2000, help="bound holders (2000)")
    parser.add_argument("--connections", type=int, default=64,
                        help="clients: wrk threads, one connection each (64)")
    parser.add_argument("--duration", type=float, default=120,
                        help="seconds a sale may last at most; it normally sells out first "
                             "(120)")
    parser.add_argument("--warmup-codes", type=int, default=300,
                        help="codes of each target's warm-up sale (300)")
    parser.add_argument("--page-seconds", type=float, default=5,
                        help="seconds of campaign-page load, 0 to skip (5)")
    parser.add_argument("--page-connections", type=int, default=4,
                        help=f"connections loading the page, at most {PAGE_USERS} (4)")
    parser.add_argument("--workers", type=int, default=servers.WORKERS,
                        help=f"gunicorn workers per target ({servers.WORKERS})")
    parser.add_argument("--threads", type=int, default=PRODUCTION_THREADS,
                        help="threads per worker (gthread; the README's production model); "
                             f"0 for sync workers ({PRODUCTION_THREADS})")
    parser.add_argument("--only", choices=sorted(TARGETS), help="measure one target")
    parser.add_argument("--profile", nargs="?", const="wall", choices=sorted(profile.MODES),
                        help="sample the workers with py-spy during the sale: 'wall' (the "
                             "default) counts waits too, 'gil' only Python's CPU time")
    args = parser.parse_args(argv)
    if args.holders < max(args.connections, PAGE_USERS):
        parser.error(f"--holders must be at least --connections and {PAGE_USERS}")
    if not 1 <= args.page_connections <= PAGE_USERS:
        parser.error(f"--page-connections is between 1 and {PAGE_USERS}")
    if args.codes < 1 or args.warmup_codes < 2:
        parser.error("need --codes >= 1 and --warmup-codes >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; 1 if a measurement is invalid."""
    args = parse_args(argv)
    with servers.workspace("redeem") as workdir:
        try:
            results = measure_all(args, workdir)
        except (InvalidRun, servers.ServerError, RuntimeError, OSError,
                requests.RequestException) as exc:
            print(f"INVALID  {type(exc).__name__}: {exc}")
            return 1
    print_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
