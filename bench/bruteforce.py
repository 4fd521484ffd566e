"""Brute force of SMS binding codes: one simulated day of wrong codes against 100 cards.

What is measured: ``--attempts`` (20,000) wrong-code attempts by ``--attackers``
mini-program accounts (openids, logged in through the WeChat simulator) from
1,000 client addresses, 20% local (home-province ranges of
``config/regions_sample.csv``) and 80% non-local (other provinces' ranges and
addresses the table does not list), against 100 imported card holders. The
attackers know every card number, and for ``--phone-known`` (25%) of the cards
the reserved phone too (the strongest case); for the others they guess a
mobile number. They never see the codes. An attempt is one guessed code: a bot
without a live challenge first calls ``bind/start`` (card + phone), then sends
``bind/confirm`` with a random 6-digit code; a challenge is dropped after its 5
tries or when the app refuses it. Each attempt ends in exactly one of: refused
by a rate limit (429, at start or confirm), refused by the region policy (403),
refused as an invalid/expired/used/exhausted challenge (400), "reached the code
check" (``invalid_code``, or 200 = a takeover).

Meanwhile a handful of genuine customers bind their own cards from local
addresses at set times of the day: log in, ``bind/start`` with their card and
phone, read the code from the SMS sink (``SMS_GATEWAY_URL`` points at a tiny HTTP
server of the bench, fed by a real ``flask worker`` process) and confirm it,
retrying twice an hour apart if refused. Six of them hold attacked cards (three
whose phone the attackers know), two hold cards nobody attacks (control).

How: the app runs in this process (Flask test client, one thread per attacker
and per customer) in real mode: PostgreSQL (database ``cobrand_bruteforce``,
created if missing, schema dropped and rebuilt) and Redis (db 13, flushed). Client
addresses arrive in X-Forwarded-For from the test client's 127.0.0.1, which the
bench's ``TRUSTED_PROXIES`` trusts. The simulator and the job worker are separate
processes. Logs at WARNING (the in-process app would otherwise print JSON per call).

Time: the limits are sliding windows on the wall clock, so the day is
compressed. Every time setting is divided by ``--scale`` (default 300: a day is
288 s, an hour 12 s): each window of RATE_LIMITS and RATE_LIMITS_NONLOCAL,
BIND_CODE_TTL, CARD_LOCK_WINDOW, CARD_LOCK_SECONDS and MEMBER_SESSION_TTL. The
`limits` syntax takes whole seconds, so a window shorter than 1 s after scaling
(the login limits' per-minute windows) is kept at 1 s: stricter than scaled, and
only logins have such windows. Attempt i is due at i/N of the day, so the
attackers spread their budget evenly, as a patient botnet would; a bot that falls
behind sends at once and the lag is reported (a lagging run stretches the day,
which can only help the attacker). Everything else (request rates within
a window, the order of events) is unchanged.

Also measured: ``bind/start`` answer time in this process for a matching card +
phone vs. a known card with a wrong phone vs. an unknown card, ``--timing``
samples each in random order, after the attack, with the limits raised (a
separate app instance) so that every call is answered; noise is estimated by
splitting the matching samples in two random halves.

Printed: a summary table of the attempts (all, local, non-local), the database's
own view (bindings, locked cards, code checks on challenges that matched a
holder), the customers' outcomes, SMS sent to the holders' phones, the timing
table, and PASS/FAIL lines: takeovers = 0, >= 95% of non-local attempts stopped
before the code check, every genuine customer bound. Exit status 1 only when
the measurement is invalid (unexpected answers above 0.1%, setup failures).

Run from the repository root::

    python -m bench.bruteforce [--scale 300] [--attackers 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient
from limits import parse_many
from rq import Worker
from sqlalchemy import func, select

from app import create_app as app_factory
from bench.harness import backend, proc, servers, sim, smsink, stats
from bench.harness.report import InvalidRun, log, verdict
from config.settings import BASE
from core.db import db
from members.holders.models import BindChallenge, Binding
from members.protection import regions
from members.protection.models import SecurityEvent
from tests.fixtures.factories import Holder, holder, import_holders

DATABASE = "cobrand_bruteforce"
REDIS_URL = f"{backend.REDIS_SERVER}/13"
PROXY = "127.0.0.1"  # the test client's address, trusted as our own reverse proxy
DAY = 86_400
# Every time setting is divisible by the scale, so each stays a whole number of seconds.
SCALED_SECONDS = ("BIND_CODE_TTL", "CARD_LOCK_WINDOW", "CARD_LOCK_SECONDS", "MEMBER_SESSION_TTL")
CARDS = 100
CONTROLS = 2  # cards of genuine customers that nobody attacks
TIMING_HOLDERS = 50  # holders of the bind/start timing, attacked by nobody
IPS = 1_000
LOCAL_SHARE = 0.2
CODE_TRIES = 5  # BIND_CODE_MAX_TRIES: a bot drops a challenge after this many wrong codes
CUSTOMER_TRIES = 3
SMS_WAIT = 5.0  # real seconds a customer waits for its code
TIMING_WARMUP = 30
PERMUTATIONS = 2000  # relabellings of the timing permutation test
MAX_UNEXPECTED = 0.001
TARGET_STOPPED = 0.95
# Ranges of the sample table: home province (local) and elsewhere (named, not home).
LOCAL_RANGES = ("60.176.0.0/12", "122.224.0.0/12", "183.128.0.0/11", "115.192.0.0/12")
CUSTOMER_RANGE = "218.108.0.0/16"  # hangzhou: the genuine customers' carrier
NONLOCAL_RANGES = ("116.224.0.0/12", "123.112.0.0/12", "113.64.0.0/11",
                   "45.0.0.0/8", "91.0.0.0/8", "185.0.0.0/8")  # the last three: unlisted
CHALLENGE_ERRORS = frozenset({"invalid_challenge", "challenge_expired", "too_many_attempts",
                              "challenge_used"})
OUTCOMES = ("rate_limited", "region_refused", "challenge_refused", "code_checked", "takeover",
            "unexpected")
RAISED = "100000000/hour"


# -- compressed time ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Clock:
    """One simulated day in ``DAY / scale`` real seconds, from ``start`` (time.monotonic())."""

    scale: int
    start: float = 0.0

    @property
    def day(self) -> float:
        return DAY / self.scale

    def real(self, simulated_seconds: float) -> float:
        return simulated_seconds / self.scale

    def due(self, share_of_day: float) -> float:
        return self.start + share_of_day * self.day

    def hours(self, real_seconds: float) -> float:
        return real_seconds * self.scale / 3600


def scale_windows(spec: str, scale: int, notes: list[str]) -> str:
    """``spec`` with every window's period divided by ``scale`` (at least 1 s)."""
    parts = []
    for item in parse_many(spec):
        period = item.get_expiry() / scale
        seconds = max(1, math.ceil(period))
        if seconds != period:
            notes.append(f"{item.amount}/{item.get_expiry()}s -> {item.amount}/{seconds}s "
                         f"(exact {period:g}s)")
        parts.append(f"{item.amount} per {seconds} second")
    return ";".join(parts)


def scale_table(table: dict[str, dict[str, str]], scale: int,
                notes: list[str]) -> dict[str, dict[str, str]]:
    return {action: {dim: scale_windows(spec, scale, notes) for dim, spec in windows.items()}
            for action, windows in table.items()}


def scaled_env(scale: int, policy: str) -> tuple[dict[str, str], list[str]]:
    """The compressed-day settings as environment strings, and notes on inexact windows."""
    notes: list[str] = []
    env = {key: str(BASE[key] // scale) for key in SCALED_SECONDS}
    env["RATE_LIMITS"] = backend.as_env(scale_table(BASE["RATE_LIMITS"], scale, notes))
    env["RATE_LIMITS_NONLOCAL"] = backend.as_env(
        scale_table(BASE["RATE_LIMITS_NONLOCAL"], scale, notes))
    env["NONLOCAL_POLICY"] = policy
    return env, sorted(set(notes))


def valid_scales() -> list[int]:
    return [k for k in range(1, 301) if all(BASE[key] % k == 0 for key in SCALED_SECONDS)
            and DAY % k == 0]


# -- addresses ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ip:
    address: str
    local: bool


def _random_address(rng: random.Random, cidr: str) -> str:
    network = ipaddress.ip_network(cidr)
    return str(network[rng.randrange(1, network.num_addresses - 1)])


def addresses(app: Flask, rng: random.Random, ranges: tuple[str, ...], count: int,
              local: bool) -> list[Ip]:
    """``count`` distinct addresses from ``ranges`` that the app classifies as ``local``."""
    found: dict[str, Ip] = {}
    with app.app_context():
        for _ in range(count * 100):
            address = _random_address(rng, rng.choice(ranges))
            if address not in found and regions.classify(address).local is local:
                found[address] = Ip(address, local)
                if len(found) == count:
                    return list(found.values())
    raise InvalidRun(f"could not find {count} {'local' if local else 'non-local'} addresses")


def attack_addresses(app: Flask, rng: random.Random) -> list[Ip]:
    local = round(IPS * LOCAL_SHARE)
    pool = (addresses(app, rng, LOCAL_RANGES, local, True)
            + addresses(app, rng, NONLOCAL_RANGES, IPS - local, False))
    rng.shuffle(pool)
    return pool


# -- talking to the app -------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    error: str | None
    body: dict[str, Any]


class Member:
    """One mini-program user driving the API through the test client, from any address."""

    def __init__(self, app: Flask, sim_url: str, openid: str,
                 rng: random.Random | None = None) -> None:
        self.client: FlaskClient = app.test_client()
        self.sim_url = sim_url
        self.openid = openid
        self.rng = rng or random.Random(openid)
        self.token: str | None = None
        self.logins = 0

    def _call(self, method: str, path: str, ip: str, body: dict[str, Any] | None) -> Answer:
        headers = {"X-Forwarded-For": ip}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = getattr(self.client, method)(path, json=body, headers=headers)
        data = response.get_json(silent=True) or {}
        return Answer(response.status_code, data.get("error"), data)

    def login(self, ip: str) -> Answer:
        code = sim.mint_login_code(self.sim_url, self.openid)
        self.token = None
        answer = self._call("post", "/api/miniapp/login", ip, {"code": code})
        self.logins += 1
        if answer.status == 200:
            self.token = answer.body["token"]
        return answer

    def call(self, path: str, ip: str, body: dict[str, Any],
             relogin_ips: list[Ip] | None = None) -> Answer:
        """POST ``path``; on 401 (session expired) log in again and retry once."""
        answer = self._call("post", path, ip, body)
        if answer.status == 401:
            self.ensure_login(ip, relogin_ips)
            answer = self._call("post", path, ip, body)
        return answer

    def ensure_login(self, ip: str, fallback: list[Ip] | None = None) -> None:
        """Log in from ``ip``, else from other addresses of ``fallback`` (when refused)."""
        answer = self.login(ip)
        for _ in range(50):
            if answer.status == 200 or not fallback:
                break
            answer = self.login(self.rng.choice(fallback).address)
        if answer.status != 200:
            raise InvalidRun(f"{self.openid} could not log in: {answer.status} {answer.body}")

    def start(self, card_no: str, phone: str, ip: str, fallback: list[Ip] | None = None) -> Answer:
        return self.call("/api/members/bind/start", ip, {"card_no": card_no, "phone": phone},
                         fallback)

    def confirm(self, challenge_id: str, otp: str, ip: str,
                fallback: list[Ip] | None = None) -> Answer:
        return self.call("/api/members/bind/confirm", ip,
                         {"challenge_id": challenge_id, "otp": otp}, fallback)


def outcome_of(step: str, answer: Answer) -> str:
    """What ended an attempt at ``step`` with ``answer``."""
    if answer.status == 429:
        return "rate_limited"
    if answer.status == 403 and answer.error == "region_refused":
        return "region_refused"
    if step == "confirm" and answer.status == 200:
        return "takeover"
    if step == "confirm" and answer.error == "invalid_code":
        return "code_checked"
    if answer.status == 400 and answer.error in CHALLENGE_ERRORS:
        return "challenge_refused"
    return "unexpected"


# -- the attackers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    local: bool
    step: str  # where it ended: "start" or "confirm"
    outcome: str
    lag: float  # real seconds behind its schedule
    detail: str = ""


@dataclass
class Challenge:
    id: str
    tries_left: int = CODE_TRIES


@dataclass
class Bot:
    """One attacker openid working through its share of the attempts, in order."""

    member: Member
    targets: list[Holder]
    known_phones: set[str]
    ips: list[Ip]
    rng: random.Random
    attempts: list[Attempt] = field(default_factory=list)
    challenge: Challenge | None = None
    starts: Counter[str] = field(default_factory=Counter)

    def phone_for(self, card: Holder) -> str:
        if card.card_no in self.known_phones:
            return card.phone
        return f"1{self.rng.choice('3456789')}{self.rng.randrange(10**9):09d}"

    def attempt(self, lag: float) -> Attempt:
        ip = self.rng.choice(self.ips)
        if self.challenge is None:
            card = self.rng.choice(self.targets)
            answer = self.member.start(card.card_no, self.phone_for(card), ip.address, self.ips)
            self.starts[str(answer.status)] += 1
            if answer.status != 200:
                return Attempt(ip.local, "start", outcome_of("start", answer), lag,
                               f"{answer.status} {answer.error}")
            self.challenge = Challenge(answer.body["challenge_id"])
        code = f"{self.rng.randrange(10**6):06d}"
        answer = self.member.confirm(self.challenge.id, code, ip.address, self.ips)
        outcome = outcome_of("confirm", answer)
        if outcome == "code_checked":
            self.challenge.tries_left -= 1
        if outcome in ("challenge_refused", "takeover") or (
                self.challenge.tries_left <= 0):
            self.challenge = None
        return Attempt(ip.local, "confirm", outcome, lag, f"{answer.status} {answer.error}")

    def run(self, clock: Clock, shares: list[float]) -> None:
        for share in shares:
            lag = sleep_until(clock.due(share))
            self.attempts.append(self.attempt(lag))


def sleep_until(moment: float) -> float:
    """Sleep until ``moment`` (time.monotonic()); how late we already were, in seconds."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
        return 0.0
    return -delay


# -- the genuine customers ----------------------------------------------------------------------

@dataclass
class Customer:
    member: Member
    holder: Holder
    ip: Ip
    group: str  # "phone known", "card only", "not attacked"
    tries: list[str] = field(default_factory=list)
    bound: bool = False
    sms_delays: list[float] = field(default_factory=list)

    def bind_once(self, sink: smsink.SmsSink) -> str:
        """One try; returns how it ended ("bound" or the refusal)."""
        if self.member.token is None:
            self.member.ensure_login(self.ip.address)
        sent = time.monotonic()
        start = self.member.start(self.holder.card_no, self.holder.phone, self.ip.address)
        if start.status != 200:
            return f"start {start.status} {start.error}"
        sms = sink.wait_code(self.holder.phone, sent, SMS_WAIT)
        if sms is None:
            return "no SMS code"
        self.sms_delays.append(sms.received - sent)
        answer = self.member.confirm(start.body["challenge_id"], sms.code or "", self.ip.address)
        if answer.status == 200:
            return "bound"
        return f"confirm {answer.status} {answer.error}"

    def run(self, clock: Clock, share: float, sink: smsink.SmsSink) -> None:
        for attempt in range(CUSTOMER_TRIES):
            sleep_until(clock.due(share) + attempt * clock.real(3600))
            result = self.bind_once(sink)
            self.tries.append(result)
            if result == "bound":
                self.bound = True
                return


# -- setting up ---------------------------------------------------------------------------------

@dataclass
class World:
    app: Flask
    env: dict[str, str]
    sim_url: str
    sink: smsink.SmsSink
    targets: list[Holder]
    timing_holders: list[Holder]
    notes: list[str]


def build_env(args: argparse.Namespace, sim_url: str, sms_url: str) -> tuple[dict[str, str],
                                                                            list[str]]:
    scaled, notes = scaled_env(args.scale, args.policy)
    env = backend.app_env(
        backend.database_url(DATABASE), REDIS_URL, SMS_GATEWAY_URL=sms_url,
        TRUSTED_PROXIES=backend.as_env([f"{PROXY}/32"]), LOG_LEVEL="WARNING", **scaled,
    )
    return backend.with_sim(env, sim_url), notes


def create_app(env: dict[str, str], **overrides: Any) -> Flask:
    return app_factory({**backend.settings(env), **overrides})


@contextlib.contextmanager
def job_worker(env: dict[str, str], workdir: Path) -> Iterator[None]:
    """``flask --app app worker`` in its own process (it sends the SMS), until the block exits.

    Waits until the worker has registered, so that no customer's SMS waits for it to boot.
    """
    connection = redis.Redis.from_url(REDIS_URL)
    with servers.job_workers(1, env, workdir, "sms") as (process,):
        deadline = time.monotonic() + 60
        while not Worker.all(connection=connection):
            if process.poll() is not None or time.monotonic() > deadline:
                raise InvalidRun("the job worker did not start:\n"
                                 + (workdir / "worker-sms-0.log").read_text()[-2000:])
            time.sleep(0.2)
        yield


@contextlib.contextmanager
def world(args: argparse.Namespace, workdir: Path) -> Iterator[World]:
    """Fresh database and Redis, the simulator, the SMS sink, the worker, the app, the holders."""
    backend.reset_database(backend.database_url(DATABASE))
    backend.reset_redis(REDIS_URL)
    with (smsink.SmsSink() as sink,
          sim.running("gunicorn", {**os.environ, **backend.wechat_env()}, servers.ROOT,
                      workdir / "sim.log") as wechat):
        env, notes = build_env(args, wechat.url, sink.url)
        app = create_app(env)  # AUTO_MIGRATE builds the schema before the worker starts
        rows = import_holders(app, CARDS + CONTROLS + TIMING_HOLDERS)
        with job_worker(env, workdir):
            yield World(app, env, wechat.url, sink, rows[:CARDS + CONTROLS],
                        rows[CARDS + CONTROLS:], notes)


# -- the attack ---------------------------------------------------------------------------------

def make_bots(w: World, args: argparse.Namespace, ips: list[Ip]) -> list[Bot]:
    rng = random.Random(args.seed)
    targets = w.targets[:CARDS]
    known = {h.card_no for h in targets[:round(CARDS * args.phone_known)]}
    bots = []
    for n in range(args.attackers):
        bot_rng = random.Random(rng.randrange(2**32))
        member = Member(w.app, w.sim_url, f"oAttacker{n:019d}", bot_rng)
        member.ensure_login(bot_rng.choice(ips).address, ips)
        bots.append(Bot(member, targets, known, ips, bot_rng))
    return bots


def make_customers(w: World, args: argparse.Namespace) -> list[Customer]:
    rng = random.Random(args.seed + 1)
    known = round(CARDS * args.phone_known)
    picks = [(0, "phone known"), (1, "phone known"), (2, "phone known"),
             (known, "card only"), (known + 1, "card only"), (known + 2, "card only"),
             (CARDS, "not attacked"), (CARDS + 1, "not attacked")]
    ips = addresses(w.app, rng, (CUSTOMER_RANGE,), len(picks), True)
    return [Customer(Member(w.app, w.sim_url, f"oCustomer{n:018d}"), w.targets[index], ip, group)
            for n, ((index, group), ip) in enumerate(zip(picks, ips, strict=True))]


def run_actors(actors: list[tuple[str, Any, tuple[Any, ...]]]) -> None:
    """Run each ``(name, function, args)`` in its own thread; InvalidRun if any raised."""
    errors: list[BaseException] = []

    def guarded(function: Any, *args: Any) -> None:
        try:
            function(*args)
        except BaseException as exc:  # re-raised as InvalidRun after the join
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(function, *args), name=name)
               for name, function, args in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise InvalidRun(f"{len(errors)} actor thread(s) failed: {errors[0]!r}")


def run_attack(w: World, args: argparse.Namespace, bots: list[Bot],
               customers: list[Customer]) -> tuple[Clock, float]:
    """Every bot and customer in its own thread over one compressed day; (clock, real span)."""
    clock = Clock(args.scale, time.monotonic() + 1.0)
    shares = [j / args.attempts for j in range(args.attempts)]
    actors = [(f"bot-{n}", bot.run, (clock, shares[n::len(bots)]))
              for n, bot in enumerate(bots)]
    actors += [(f"customer-{n}", c.run, (clock, (n + 0.5) / len(customers), w.sink))
               for n, c in enumerate(customers)]
    run_actors(actors)
    return clock, time.monotonic() - clock.start


# -- counting -----------------------------------------------------------------------------------

@dataclass
class DbFacts:
    attacker_bindings: int
    customer_bindings: int
    lock_events: int
    cards_locked: int
    matched_challenges: int
    matched_code_checks: int
    challenges: int


def db_facts(app: Flask, bots: list[Bot], customers: list[Customer]) -> DbFacts:
    attackers = [b.member.openid for b in bots]
    genuine = [c.member.openid for c in customers]
    with app.app_context():
        def count(query: Any) -> int:
            return int(db.session.scalar(query) or 0)

        facts = DbFacts(
            attacker_bindings=count(select(func.count()).select_from(Binding)
                                    .where(Binding.openid.in_(attackers))),
            customer_bindings=count(select(func.count()).select_from(Binding)
                                    .where(Binding.openid.in_(genuine))),
            lock_events=count(select(func.count()).select_from(SecurityEvent)
                              .where(SecurityEvent.kind == "card_locked")),
            cards_locked=count(select(func.count(func.distinct(SecurityEvent.card_hash)))
                               .where(SecurityEvent.kind == "card_locked")),
            matched_challenges=count(select(func.count()).select_from(BindChallenge).where(
                BindChallenge.openid.in_(attackers), BindChallenge.holder_id.is_not(None))),
            matched_code_checks=count(select(func.sum(BindChallenge.attempts)).where(
                BindChallenge.openid.in_(attackers), BindChallenge.holder_id.is_not(None))),
            challenges=count(select(func.count()).select_from(BindChallenge)
                             .where(BindChallenge.openid.in_(attackers))),
        )
        db.session.remove()
    return facts


def tally(attempts: list[Attempt]) -> dict[str, Counter[str]]:
    """Outcome counts for all attempts, the local ones and the non-local ones."""
    groups: dict[str, Counter[str]] = {"all": Counter(), "local": Counter(),
                                       "non-local": Counter()}
    for a in attempts:
        for name in ("all", "local" if a.local else "non-local"):
            groups[name][a.outcome] += 1
            groups[name][f"{a.step}:{a.outcome}"] += 1
    return groups


# -- timing of bind/start -----------------------------------------------------------------------

def time_starts(w: World, args: argparse.Namespace) -> dict[str, list[float]]:
    """bind/start answer times (ms) by class, in random order, limits raised."""
    raised = {action: dict.fromkeys(windows, RAISED)
              for action, windows in BASE["RATE_LIMITS"].items()}
    app = create_app(w.env, RATE_LIMITS=raised)
    rng = random.Random(args.seed + 2)
    member = Member(app, w.sim_url, "oTiming0000000000000000000001")
    member.ensure_login(f"{PROXY}")
    imported = len(w.targets) + len(w.timing_holders)  # the factory numbers them from 1
    unknown = [holder(imported + 1 + n) for n in range(len(w.timing_holders))]
    plan = [kind for kind in ("match", "wrong phone", "unknown card") for _ in range(args.timing)]
    rng.shuffle(plan)
    times: dict[str, list[float]] = {"match": [], "wrong phone": [], "unknown card": []}
    for n, kind in enumerate(["match"] * TIMING_WARMUP + plan):
        h = w.timing_holders[n % len(w.timing_holders)]
        card, phone = {
            "match": (h.card_no, h.phone),
            "wrong phone": (h.card_no, unknown[n % len(unknown)].phone),
            "unknown card": (unknown[n % len(unknown)].card_no, h.phone),
        }[kind]
        started = time.perf_counter()
        answer = member.start(card, phone, PROXY)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200 or len(answer.body.get("challenge_id", "")) != 32:
            raise InvalidRun(f"timing: bind/start answered {answer.status} {answer.body}")
        if n >= TIMING_WARMUP:
            times[kind].append(elapsed)
    return times


# -- reporting ----------------------------------------------------------------------------------

def _share(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "   n/a"


def print_settings(w: World, args: argparse.Namespace, clock: Clock, span: float,
                   bots: list[Bot]) -> None:
    print(f"\n{args.attempts:,} wrong-code attempts by {args.attackers} attacker openids from "
          f"{IPS:,} addresses ({LOCAL_SHARE:.0%} local) against {CARDS} cards "
          f"(phone known for {args.phone_known:.0%}); NONLOCAL_POLICY={args.policy}; seed "
          f"{args.seed}")
    print(f"time: every window and time setting divided by {args.scale}: one day = "
          f"{clock.day:g} s real, one hour = {clock.real(3600):g} s; the attack took "
          f"{span:.1f} s = {clock.hours(span):.1f} simulated hours")
    settings = w.app.config
    print("scaled: " + ", ".join(f"{k}={settings[k]}s" for k in SCALED_SECONDS))
    for name in ("RATE_LIMITS", "RATE_LIMITS_NONLOCAL"):
        table = settings[name]
        print(f"{name} as run: " + "; ".join(
            f"{action} " + ", ".join(f"{dim} {spec.replace(' per ', '/').replace(' second', 's')}"
                                     for dim, spec in table[action].items())
            for action in ("bind_start", "bind_confirm")))
    if w.notes:
        print("windows kept at 1 s (stricter than exact scaling): " + "; ".join(w.notes))
    lags = sorted(a.lag for b in bots for a in b.attempts) or [0.0]
    print(f"schedule: attempts sent on time up to p99 lag {stats.percentile(lags, 0.99):.3f} s, "
          f"max {lags[-1]:.3f} s real; attacker logins "
          f"{sum(b.member.logins for b in bots)} (sessions expire every "
          f"{settings['MEMBER_SESSION_TTL']} s real)")


def print_attempts(groups: dict[str, Counter[str]]) -> None:
    print(f"\n{'attempts':<40}{'all':>9}{'local':>9}{'non-local':>11}")
    rows = [
        ("attempts made", None),
        ("refused by rate limits (429)", "rate_limited"),
        ("  at bind/start", "start:rate_limited"),
        ("  at bind/confirm", "confirm:rate_limited"),
        ("refused by region policy (403)", "region_refused"),
        ("refused: invalid/expired/used challenge", "challenge_refused"),
        ("reached the code check (invalid_code)", "code_checked"),
        ("takeovers (confirm answered 200)", "takeover"),
        ("unexpected answers", "unexpected"),
    ]
    for label, key in rows:
        cells = [sum(groups[g][o] for o in OUTCOMES) if key is None else groups[g][key]
                 for g in ("all", "local", "non-local")]
        print(f"{label:<40}{cells[0]:>9,}{cells[1]:>9,}{cells[2]:>11,}")
    stopped = {g: sum(groups[g][o] for o in OUTCOMES) - groups[g]["code_checked"]
               - groups[g]["takeover"] for g in groups}
    totals = {g: sum(groups[g][o] for o in OUTCOMES) for g in groups}
    print(f"{'stopped before the code check':<40}"
          + "".join(f"{_share(stopped[g], totals[g]):>{w}}"
                    for g, w in (("all", 9), ("local", 9), ("non-local", 11))))


def print_facts(facts: DbFacts, bots: list[Bot], w: World) -> None:
    starts = sum((b.starts for b in bots), Counter())
    print(f"\nbind/start calls by attackers: {sum(starts.values()):,} "
          f"({', '.join(f'HTTP {k}: {v:,}' for k, v in sorted(starts.items()))}); challenges "
          f"stored {facts.challenges:,}, of which matched a holder {facts.matched_challenges:,}")
    print(f"code checks on challenges that matched a holder (the only ones a right guess could "
          f"pass): {facts.matched_code_checks:,} -> expected takeovers "
          f"{facts.matched_code_checks / 10**6:.4f} at 1 in 10^6 per guess")
    print(f"card locks: {facts.lock_events} lock events on {facts.cards_locked} distinct cards")
    print(f"bindings held by attacker openids (database): {facts.attacker_bindings}")
    phones = {h.phone for h in w.targets[:CARDS]}
    sms = [m for m in w.sink.messages() if m.phone in phones]
    codes = Counter(m.phone for m in sms if m.code)
    notices = sum(1 for m in sms if not m.code)
    print(f"SMS to the attacked holders' own phones: {sum(codes.values()):,} code messages to "
          f"{len(codes)} phones (max {max(codes.values(), default=0)} to one), "
          f"{notices} lock notices")


def print_customers(customers: list[Customer]) -> None:
    print(f"\n{'genuine customer':<20}{'card':<14}{'result':<8}tries")
    for n, c in enumerate(customers):
        print(f"customer {n:<11}{c.group:<14}{'bound' if c.bound else 'FAILED':<8}"
              + " | ".join(c.tries))
    delays = sorted(d for c in customers for d in c.sms_delays)
    if delays:
        print(f"SMS code delivery (start -> sink, real): p50 {stats.percentile(delays, .5):.3f} s,"
              f" max {delays[-1]:.3f} s")


def shuffled_band(a: list[float], b: list[float], rng: random.Random,
                  rounds: int = PERMUTATIONS) -> tuple[float, float]:
    """Where the p50 difference of ``a`` and ``b`` falls when the labels mean nothing.

    Returns (the 95% band of |p50(a') - p50(b')| over random relabellings, the share of
    relabellings at least as far apart as the real one: a permutation test's p-value).
    """
    observed = abs(stats.Latency.of(a).p50 - stats.Latency.of(b).p50)
    pooled = a + b
    gaps = []
    for _ in range(rounds):
        rng.shuffle(pooled)
        gaps.append(abs(stats.Latency.of(pooled[:len(a)]).p50
                        - stats.Latency.of(pooled[len(a):]).p50))
    gaps.sort()
    return stats.percentile(gaps, 0.95), sum(g >= observed for g in gaps) / rounds


def print_timing(times: dict[str, list[float]], rng: random.Random) -> None:
    print(f"\nbind/start answer time in-process (ms), {len(times['match'])} each, random order, "
          "limits raised")
    print(f"{'class':<16}{'p50':>8}{'p99':>8}{'mean':>8}")
    summary = {kind: stats.Latency.of(values) for kind, values in times.items()}
    for kind, s in summary.items():
        print(f"{kind:<16}{s.p50:>8.3f}{s.p99:>8.3f}{s.mean:>8.3f}")
    m = summary["match"]
    for kind in ("wrong phone", "unknown card"):
        o = summary[kind]
        band, p_value = shuffled_band(times["match"], times[kind], rng)
        print(f"match - {kind:<13} p50 {m.p50 - o.p50:+.3f} ms, p99 {m.p99 - o.p99:+.3f} ms, "
              f"mean {m.mean - o.mean:+.3f} ms; labels shuffled: 95% of p50 gaps within "
              f"{band:.3f} ms, p = {p_value:.2f}")


def print_verdicts(groups: dict[str, Counter[str]], facts: DbFacts,
                   customers: list[Customer]) -> None:
    nonlocal_total = sum(groups["non-local"][o] for o in OUTCOMES)
    reached = groups["non-local"]["code_checked"] + groups["non-local"]["takeover"]
    stopped = 1 - reached / nonlocal_total if nonlocal_total else 0.0
    takeovers = groups["all"]["takeover"] + facts.attacker_bindings
    print()
    verdict(takeovers == 0, f"takeovers = 0: {groups['all']['takeover']} confirmed, "
            f"{facts.attacker_bindings} attacker bindings in the database")
    verdict(stopped >= TARGET_STOPPED, f"non-local attempts stopped before the code check >= "
            f"{TARGET_STOPPED:.0%}: {stopped:.2%} ({nonlocal_total - reached:,} of "
            f"{nonlocal_total:,})")
    bound = sum(c.bound for c in customers)
    verdict(bound == len(customers), f"genuine customers bound during the attack: {bound} of "
            f"{len(customers)} (database: {facts.customer_bindings})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=20_000, help="wrong codes (20000)")
    parser.add_argument("--attackers", type=int, default=10, help="attacker openids (10)")
    parser.add_argument("--phone-known", type=float, default=0.25,
                        help="share of cards whose phone the attackers know (0.25)")
    parser.add_argument("--scale", type=int, default=300,
                        help="time compression: a day lasts 86400/scale s (300)")
    parser.add_argument("--policy", choices=("limit", "refuse"), default="limit",
                        help="NONLOCAL_POLICY (limit)")
    parser.add_argument("--timing", type=int, default=300,
                        help="bind/start timing samples per class (300)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.scale not in valid_scales():
        parser.error(f"--scale must keep every time setting whole: one of {valid_scales()}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the attack and the timing, print the report; 1 if the measurement is invalid."""
    args = parse_args(argv)
    with servers.workspace("bruteforce") as workdir:
        try:
            with world(args, workdir) as w:
                ips = attack_addresses(w.app, random.Random(args.seed))
                bots = make_bots(w, args, ips)
                customers = make_customers(w, args)
                log(f"attack starts: one day = {DAY / args.scale:g} s")
                clock, span = run_attack(w, args, bots, customers)
                facts = db_facts(w.app, bots, customers)
                proc.wait_quiet(0.3, 30)
                times = time_starts(w, args)
        except (InvalidRun, servers.ServerError, OSError, redis.RedisError) as exc:
            print(f"INVALID  {type(exc).__name__}: {exc}")
            return 1
    attempts = [a for b in bots for a in b.attempts]
    groups = tally(attempts)
    print_settings(w, args, clock, span, bots)
    print_attempts(groups)
    print_facts(facts, bots, w)
    print_customers(customers)
    print_timing(times, random.Random(args.seed + 3))
    print_verdicts(groups, facts, customers)
    unexpected = groups["all"]["unexpected"]
    if unexpected > MAX_UNEXPECTED * len(attempts):
        details = Counter(a.detail for a in attempts if a.outcome == "unexpected")
        print(f"INVALID  {unexpected} unexpected answers: {dict(details.most_common(5))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
