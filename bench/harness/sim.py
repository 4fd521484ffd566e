"""The WeChat simulator as a separate server process for the benchmarks, and its control API.

Two ways to run it, both one process (the simulator keeps its state in memory,
so a second worker would not know the codes the first one minted):

* ``cli``: ``flask --app app wechat-sim --port P``, the README's command
  (Werkzeug's threaded development server);
* ``gunicorn``: ``gunicorn -w 1 -k gthread --threads N 'bench.harness.sim:create()'``,
  the same WSGI app (``wechat.sim.app.create_sim_app``) under a production server.

Either way the simulated account comes from the same environment as the app's
(``wechat.sim.cli.sim_config_from`` over the app's settings).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from bench.harness import servers
from config.settings import load_settings
from wechat.sim.app import create_sim_app
from wechat.sim.cli import sim_config_from

MODES = ("gunicorn", "cli")
GUNICORN_THREADS = 8
MINT_THREADS = 4
# How many WeChat calls /sim/requests keeps (the simulator's default when unset); a bench
# that reads every call back sets it above the number of calls it makes.
RECORD_LIMIT_ENV = "BENCH_SIM_RECORD_LIMIT"


def create() -> Flask:
    """The simulator's WSGI app for the account in the environment (gunicorn's entry point)."""
    config = sim_config_from(load_settings(), callback_url=None)
    if os.environ.get(RECORD_LIMIT_ENV):
        limits = dataclasses.replace(config.limits,
                                     record_limit=int(os.environ[RECORD_LIMIT_ENV]))
        config = dataclasses.replace(config, limits=limits)
    return create_sim_app(config)


@contextlib.contextmanager
def running(mode: str, env: Mapping[str, str], cwd: Path, log: Path,
            threads: int = GUNICORN_THREADS) -> Iterator[servers.Server]:
    """The simulator in its own process until the block exits."""
    if mode == "gunicorn":
        with servers.gunicorn("bench.harness.sim:create()", env, cwd, log, workers=1,
                              worker_args=servers.worker_model(threads)) as sim:
            yield sim
        return
    if mode != "cli":
        raise ValueError(f"simulator mode must be one of {MODES}")
    port = servers.free_port()
    argv = [sys.executable, "-m", "flask", "--app", "app", "wechat-sim", "--port", str(port)]
    with servers.serve(argv, port, env, cwd, log, name="wechat-sim") as sim:
        yield sim


def pids(sim: servers.Server) -> list[int]:
    """Every process of the simulator (the gunicorn master and its worker, or the CLI)."""
    return [sim.process.pid, *sim.workers()]


def mint_login_code(url: str, openid: str, unionid: str | None = None,
                    http: requests.Session | None = None) -> str:
    """A single-use wx.login code that code2session turns into this user."""
    body = {"openid": openid, **({"unionid": unionid} if unionid else {})}
    response = (http or requests).post(f"{url}/sim/miniapp/code", json=body, timeout=30)
    response.raise_for_status()
    return response.json()["code"]


def _mint(url: str, users: list[tuple[str, str | None]]) -> list[str]:
    with requests.Session() as http:
        return [mint_login_code(url, openid, unionid, http) for openid, unionid in users]


def mint_login_codes(url: str, users: list[tuple[str, str | None]]) -> list[str]:
    """One single-use wx.login code per ``(openid, unionid)``, in the order given."""
    chunks = [users[i::MINT_THREADS] for i in range(MINT_THREADS)]
    with ThreadPoolExecutor(MINT_THREADS) as pool:
        minted = list(pool.map(_mint, [url] * MINT_THREADS, chunks))
    codes: list[str] = [""] * len(users)
    for i, chunk in enumerate(minted):
        codes[i::MINT_THREADS] = chunk
    return codes


def _add_followers(url: str, openids: list[str], fields: dict[str, Any]) -> None:
    with requests.Session() as http:
        for openid in openids:
            http.post(f"{url}/sim/users", json={"openid": openid, **fields},
                      timeout=30).raise_for_status()


def add_followers(url: str, openids: list[str], last_interaction: float | None = None) -> None:
    """Seed these openids as followers of the official account (``POST /sim/users`` each);
    ``last_interaction`` (unix time) opens their 48-hour customer-service window."""
    fields = {} if last_interaction is None else {"last_interaction": last_interaction}
    chunks = [openids[i::MINT_THREADS] for i in range(MINT_THREADS)]
    with ThreadPoolExecutor(MINT_THREADS) as pool:
        list(pool.map(_add_followers, [url] * MINT_THREADS, chunks,
                      [fields] * MINT_THREADS))


def recorded(url: str, path: str) -> list[dict[str, Any]]:
    """Every WeChat call to ``path`` the simulator kept: ``{method, path, query, json, time}``."""
    response = requests.get(f"{url}/sim/requests", params={"path": path}, timeout=120)
    response.raise_for_status()
    return response.json()


def stats(url: str) -> dict[str, dict[str, int]]:
    """The simulator's counters (``GET /sim/stats``): calls, messages sent, ..."""
    response = requests.get(f"{url}/sim/stats", timeout=30)
    response.raise_for_status()
    return response.json()


def sent(url: str, kind: str) -> int:
    """Messages of ``kind`` (``template``, ``subscribe``, ...) the simulator accepted so far."""
    return stats(url).get("sent", {}).get(kind, 0)


def add_fault(url: str, **fault: Any) -> None:
    """Install a fault (``POST /sim/faults``), e.g. ``path=..., delay=seconds, times=-1``."""
    requests.post(f"{url}/sim/faults", json=fault, timeout=30).raise_for_status()
