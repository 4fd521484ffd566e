"""Throughput and latency of the official-account callback against two peers.

What is measured: safe-mode (AES) text messages POSTed to ``/wechat/callback``,
each with its own MsgId, nonce, fresh timestamp and valid ``signature`` and
``msg_signature``, answered with an encrypted passive text reply. Three targets
run one after the other in the same invocation, each under
``gunicorn -w 2 -k sync`` with the same credentials:

* ``project``  - this repository's app, ``app:create_app()``, with PostgreSQL
  and Redis (db 15, flushed first), after ``flask db upgrade``;
* ``wechatpy`` - bench/peers/wechatpy_app.py, a bare Flask handler using wechatpy;
* ``werobot``  - bench/peers/werobot_app.py, WeRoBot 1.13 in safe mode (its own WSGI app).

How: for each target, the server is started and one request is sent with
``requests`` and its reply decrypted and checked (a text reply from the account
to the sender). Then enough distinct signed requests for a 10,000/s ceiling are
generated into a file (not timed), a 1 s warm-up runs, and wrk loads the target
for ``--duration`` seconds through a Lua script that cycles through the file.
Reported: wrk's Requests/sec and 50%/99% latency, non-2xx and socket errors,
the larger VmRSS of the two workers (MB = 2**20 bytes, /proc, after the run),
and who kept the CPUs busy during the run (gunicorn, Redis + PostgreSQL, wrk,
anything else; background load above 0.1 CPU is flagged as disturbing).
The server is stopped and its port checked closed before the next target.
The targets take turns for ``--rounds`` rounds (5): this machine is shared and
its speed drifts by 20% from minute to minute, so each target is reported by
its median round (by throughput), with every round's figure beside it.

Targets for the project: throughput >= WeRoBot's in the same run, p99 < 10 ms,
worker RSS < 150 MB. They print PASS/FAIL but do not change the exit status.
The exit status is 1 only when a measurement is invalid: a target failed its
check or did not run, or more than 0.1% of its requests failed.

Run from the repository root::

    python -m bench.callback [--duration 10] [--connections 16] [--threads 2]
                             [--only project|wechatpy|werobot] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from bench.harness import backend, callbacks, load, proc, servers
from bench.harness.report import InvalidRun, disturbed, log, ratio, verdict

MAX_RATE = 10_000  # requests generated per second of load: the ceiling wrk can reach
WARMUP_SECONDS = 1
MAX_ERROR_RATE = 0.001
P99_LIMIT_MS = 10.0
RSS_LIMIT_MB = 150.0
REDIS_URL = f"{backend.REDIS_SERVER}/15"
DATABASE_URL = backend.database_url("postgres")

# Each line of the requests file is ``path<TAB>body``, pre-formatted in init().
LUA = r"""
function init(args)
  local headers = {["Content-Type"] = "text/xml"}
  requests = my_lines(args[1], tonumber(args[2]), function(line)
    local tab = line:find("\t", 1, true)
    return wrk.format("POST", line:sub(1, tab - 1), headers, line:sub(tab + 1))
  end)
end

function request()
  return next_of(requests)
end

function done(summary, latency, _)
  write_totals(summary)
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    app: str  # gunicorn app spec, importable from the repository root
    prepare: Callable[[dict[str, str]], None] | None = None


@dataclass
class Outcome:
    target: str
    result: load.WrkResult | None = None
    rss_mb: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.result is not None and self.result.error_rate <= MAX_ERROR_RATE


class MsgIds:
    """Hands out MsgIds that no earlier request in this run (or an earlier run) used."""

    def __init__(self) -> None:
        self.next = int(time.time()) * 10_000_000

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def _prepare_project(env: dict[str, str]) -> None:
    """Flush the dedupe/cache Redis db and bring the schema up to date."""
    backend.reset_redis(env["REDIS_URL"])
    argv = [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"]
    done = subprocess.run(argv, cwd=servers.ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise InvalidRun(
            f"flask db upgrade failed ({done.returncode}):\n" + "\n".join(output[-40:])
        )


TARGETS = {
    "project": Target("project", "app:create_app()", _prepare_project),
    "wechatpy": Target("wechatpy", "bench.peers.wechatpy_app:app"),
    "werobot": Target("werobot", "bench.peers.werobot_app:app"),
}


def target_env(workdir: Path, name: str) -> dict[str, str]:
    """The same environment for every target, with a fresh Prometheus directory."""
    return {
        **os.environ,
        **backend.BENCH_CREDENTIALS.env(),
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": DATABASE_URL,
        "LOG_LEVEL": "INFO",
        **backend.metrics_env(workdir, name),
    }


def sanity_check(srv: servers.Server, msg_id: int) -> int:
    """POST one callback, decrypt the reply, check it; return the reply's length in bytes."""
    creds, user = backend.BENCH_CREDENTIALS, callbacks.openid(msg_id)
    path, body = callbacks.signed_request(creds, msg_id, user)
    try:
        response = requests.post(
            srv.url + path, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=60
        )
    except requests.RequestException as exc:
        raise InvalidRun(f"sanity request failed: {exc}\n{srv.log_tail()}") from exc
    if response.status_code != 200:
        raise InvalidRun(
            f"sanity request: HTTP {response.status_code}: {response.text[:500]}\n{srv.log_tail()}"
        )
    try:
        reply = callbacks.decrypt_reply(creds, response.text)
    except Exception as exc:
        raise InvalidRun(
            f"sanity reply not a valid encrypted reply ({exc!r}): "
            f"{response.text[:500]}\n{srv.log_tail()}"
        ) from exc
    expected = ("text", user, creds.original_id)
    if (reply.type, reply.target, reply.source) != expected or not reply.content:
        raise InvalidRun(f"sanity reply is not a text reply to {user}: {reply!r}")
    return len(response.content)


def run_load(
    srv: servers.Server, args: argparse.Namespace, workdir: Path, ids: MsgIds, seconds: float
) -> tuple[load.WrkResult, dict[str, float]]:
    """Generate fresh signed requests for ``seconds`` of load, then run wrk with them.

    Returns wrk's result and who kept the CPUs busy meanwhile.
    """
    count = int(MAX_RATE * seconds)
    requests_file = workdir / "requests.txt"
    started = time.monotonic()
    callbacks.write_requests(requests_file, backend.BENCH_CREDENTIALS, ids.take(count), count)
    log(f"  generated {count:,} signed requests in {time.monotonic() - started:.1f}s")
    gunicorn = [srv.process.pid, *srv.workers()]
    try:
        with proc.measuring(lambda: {"gunicorn": gunicorn,
                                     "redis+pg": backend.service_pids()}) as cpu:
            output = load.run(srv.url, workdir / "load.lua", seconds, args.connections,
                              args.threads, [str(requests_file), str(args.threads)])
    finally:
        requests_file.unlink()
    return load.parse(output), cpu.busy


def measure(target: Target, args: argparse.Namespace, workdir: Path, ids: MsgIds) -> Outcome:
    """Start the target, check it, warm it up, load it and read its workers' RSS."""
    outcome = Outcome(target.name)
    env = target_env(workdir, target.name)
    if target.prepare:
        target.prepare(env)
    log_file = workdir / f"gunicorn-{target.name}.log"
    with servers.gunicorn(target.app, env, servers.ROOT, log_file,
                          worker_args=servers.worker_model(args.worker_threads)) as srv:
        reply_bytes = sanity_check(srv, ids.take(1))
        workers = srv.workers()
        servers.wait_idle(workers)
        log(f"  up on {srv.url}, workers {workers}, sanity reply OK ({reply_bytes} bytes)")
        run_load(srv, args, workdir, ids, WARMUP_SECONDS)
        outcome.result, outcome.cpu = run_load(srv, args, workdir, ids, args.duration)
        after = srv.workers()
        outcome.rss_mb = max(proc.rss_mb(pid) for pid in after)
    outcome.warnings = _result_warnings(outcome.result, reply_bytes, workers, after)
    if outcome.warnings:
        outcome.warnings.append(f"end of the gunicorn log:\n{srv.log_tail(20)}")
    warning = disturbed(outcome.cpu)
    if warning:
        outcome.warnings.append(warning)
    return outcome


def _result_warnings(
    result: load.WrkResult, reply_bytes: int, workers: list[int], after: list[int]
) -> list[str]:
    """What makes the run's numbers suspect: errors, replays, short replies, restarts."""
    found = []
    if result.errors:
        found.append(
            f"{result.non_2xx:,} non-2xx responses and {result.socket_errors:,} "
            f"socket errors in {result.requests:,} requests ({result.error_rate:.3%})"
        )
    if result.wraps:
        found.append(f"request list exhausted {result.wraps} times: MsgIds were replayed")
    average = result.bytes_read / max(result.requests, 1)
    if average < reply_bytes:
        found.append(
            f"average response {average:.0f} bytes < the {reply_bytes}-byte "
            "checked reply body: some responses were not full replies"
        )
    if after != workers:
        found.append(f"workers changed during the run: {workers} -> {after}")
    return found


def run_target(target: Target, args: argparse.Namespace, workdir: Path, ids: MsgIds) -> Outcome:
    log(f"{target.name}: gunicorn -w {servers.WORKERS} '{target.app}'")
    try:
        return measure(target, args, workdir, ids)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired, redis.RedisError) as exc:
        return Outcome(target.name, error=f"{type(exc).__name__}: {exc}")


def print_table(outcomes: list[Outcome]) -> None:
    print(
        f"{'target':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>11}"
        f"{'non-2xx':>9}{'sock err':>10}{'RSS MB':>8}"
    )
    for o in outcomes:
        if o.result is None:
            print(f"{o.target:<10}  not measured")
            continue
        r = o.result
        print(
            f"{o.target:<10}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.requests:>11,}"
            f"{r.non_2xx:>9,}{r.socket_errors:>10,}{o.rss_mb:>8.1f}"
        )


def print_cpu(outcomes: list[Outcome]) -> None:
    print(f"{'CPUs busy':<10}{'gunicorn':>10}{'redis+pg':>10}{'wrk':>7}{'other':>7}")
    for o in outcomes:
        if o.cpu:
            c = o.cpu
            print(
                f"{o.target:<10}{c['gunicorn']:>10.2f}{c['redis+pg']:>10.2f}"
                f"{c['children']:>7.2f}{c['other']:>7.2f}"
            )


def print_ratios(by_name: dict[str, Outcome]) -> None:
    project = by_name.get("project")
    if not project or not project.result:
        return
    p = project.result
    for peer in ("wechatpy", "werobot"):
        other = by_name.get(peer)
        if other and other.result:
            q = other.result
            print(
                f"project/{peer:<9} throughput {ratio(p.rps, q.rps)}, "
                f"p50 {ratio(p.p50_ms, q.p50_ms)}, p99 {ratio(p.p99_ms, q.p99_ms)}, "
                f"RSS {ratio(project.rss_mb or 0, other.rss_mb or 0)}"
            )


def print_criteria(by_name: dict[str, Outcome]) -> None:
    project, werobot = by_name.get("project"), by_name.get("werobot")
    if not project or not project.result:
        print("SKIP  project criteria: project not measured")
        return
    p = project.result
    if not project.valid:
        print(f"FAIL  project run invalid: {p.error_rate:.2%} of requests failed; not judged")
        return
    if werobot and werobot.result:
        verdict(p.rps >= werobot.result.rps,
                f"throughput >= WeRoBot: {p.rps:,.0f}/s vs {werobot.result.rps:,.0f}/s")
    else:
        print("SKIP  throughput >= WeRoBot: WeRoBot not measured")
    verdict(p.p99_ms < P99_LIMIT_MS, f"p99 < {P99_LIMIT_MS:g} ms: {p.p99_ms:.2f} ms")
    verdict((project.rss_mb or 0) < RSS_LIMIT_MB,
            f"worker RSS < {RSS_LIMIT_MB:g} MB: {project.rss_mb:.1f} MB")


def report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    print(
        f"\nsafe-mode text callbacks; wrk {args.threads} threads, {args.connections} "
        f"connections, {args.duration:g}s; gunicorn {servers.WORKERS} "
        f"{servers.worker_kind(args.worker_threads)} workers; "
        f"{os.cpu_count()} CPUs\n"
    )
    print_table(outcomes)
    print()
    print_cpu(outcomes)
    by_name = {o.target: o for o in outcomes}
    print()
    print_ratios(by_name)
    print_criteria(by_name)
    for o in outcomes:
        for warning in o.warnings:
            print(f"WARNING  {o.target}: {warning}")
        if o.error:
            print(f"\nERROR  {o.target} could not be measured:\n{o.error}")
        elif not o.valid:
            print(
                f"ERROR  {o.target}: more than {MAX_ERROR_RATE:.1%} of requests failed; "
                "its numbers are not valid"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load (10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--only", choices=sorted(TARGETS), help="measure one target")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of every target, taking turns; each is reported by "
                             "its median round (5)")
    parser.add_argument("--worker-threads", type=int, default=0,
                        help="gunicorn gthread workers with this many threads, for every "
                             "target (default: sync workers)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen targets and print the report; 1 if any measurement is invalid."""
    args = parse_args(argv)
    names = [args.only] if args.only else list(TARGETS)
    ids = MsgIds()
    with servers.workspace("callback") as workdir:
        load.write_script(workdir / "load.lua", LUA)
        rounds = [[run_target(TARGETS[name], args, workdir, ids) for name in names]
                  for _ in range(args.rounds)]
    by_target = [list(measured) for measured in zip(*rounds, strict=True)]
    outcomes = [median_round(measured) for measured in by_target]
    report(outcomes, args)
    print_rounds(by_target)
    return 0 if all(o.valid for measured in by_target for o in measured) else 1


def median_round(measured: list[Outcome]) -> Outcome:
    """The round with the median throughput; a round that failed is reported instead."""
    failed = [o for o in measured if not o.valid]
    if failed:
        return failed[0]
    ranked = sorted(measured, key=lambda o: o.result.rps)
    return ranked[(len(ranked) - 1) // 2]


def print_rounds(by_target: list[list[Outcome]]) -> None:
    print("\nreq/s (p99 ms) by round (the table shows each target's median round):")
    for measured in by_target:
        figures = "  ".join(f"{o.result.rps:>7,.0f} ({o.result.p99_ms:5.2f})" if o.result
                            else "            n/a" for o in measured)
        print(f"  {measured[0].target:<10}{figures}")


if __name__ == "__main__":
    sys.exit(main())
