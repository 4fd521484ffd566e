"""``flask --app app demo``: a newcomer's walk from a follow to a transaction alert.

Against a WeChat simulator the user started (``flask --app app wechat-sim --port 8081``),
the command builds a backend of its own, serves it on a free local port so that the
simulator's callback sender can reach it, and then plays every other party in turn:
WeChat delivering a follow, the mini-program logging in and binding a card, the bank's SMS
platform receiving the one-time code, core banking posting a signed transaction, and
finally reads back the alert WeChat was asked to send. It goes through the same public HTTP
API and callback as production traffic. A walk-through for people, not a test: each step
prints a few lines, card numbers and phones only masked.

The backend uses the current app's settings and database; only WeChat's hosts (the
simulator), the SMS platform (a sink served here) and the job runner differ. Jobs always
run in this process, even with ``REDIS_URL`` set: then no worker has to be running, and
the demo's rate-limit windows and queued jobs stay out of a shared Redis (a walk repeated
a few times would otherwise meet the binding limits of the same card).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import click
import requests
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import make_url, select
from werkzeug.serving import BaseWSGIServer, make_server

from config.settings import BASE
from core.db import db
from members.holders import registry
from members.holders.binding import OFFICIAL_ACCOUNT
from members.holders.models import Binding, CardHolder, Follower
from members.protection import identity
from members.protection.masking import mask_card, mask_phone
from wechat.sim.sender import CallbackSender
from wechat.sim.server import QuietRequestHandler

DEFAULT_SIM_URL = "http://127.0.0.1:8081"
SIM_COMMAND = ".venv/bin/flask --app app wechat-sim --port 8081"
TIME_BUDGET = 30.0  # seconds for the whole walk, start-up included
HTTP_TIMEOUT = 5.0  # longest wait for any one answer
POLL_INTERVAL = 0.1
TEMPLATE_SEND = "/cgi-bin/message/template/send"
# The simulator takes its account from its own process's settings.
ACCOUNT_HINT = ("The simulator refused the backend: was it started with the same WECHAT_* and "
                "MINIAPP_* settings as this command?")
_OTP = re.compile(r"(?<!\d)\d{6}(?!\d)")  # the contract: the only 6-digit number of the SMS
_BEIJING = timezone(timedelta(hours=8))

T = TypeVar("T")


class DemoFailed(click.ClickException):
    """A step did not go as it should; the message says which and why (exit status 1)."""


@dataclass(frozen=True)
class DemoPerson:
    """The WeChat identities of the walking holder: an openid per app, one unionid for both.

    Fixed, so that a second run finds the same person already bound and changes nothing
    but the new transaction.
    """

    oa_openid: str
    mp_openid: str
    unionid: str


PERSON = DemoPerson(oa_openid="oDEMOofficialAccount00000001",
                    mp_openid="oDEMOminiProgram000000000001",
                    unionid="uDEMOunion000000000000000001")

# name, tier, city, branch of the demo holders; the first one walks.
_HOLDERS = (("张三", "gold", "杭州", "HZ-XH-001"),
            ("李四", "platinum", "宁波", "NB-HS-002"),
            ("王五", "classic", "温州", "WZ-LC-003"))
DEMO_TXN = {"amount_fen": 12800, "currency": "CNY", "direction": "debit",
            "merchant": "示例咖啡（演示）", "channel": "POS", "balance_fen": 1_000_000}


def _luhn_complete(partial: str) -> str:
    """``partial`` and the one check digit the registry's own Luhn validator accepts."""
    return next(partial + digit for digit in "0123456789"
                if identity.luhn_valid(partial + digit))


def demo_holders() -> list[registry.HolderRecord]:
    """The demo's card holders: Luhn-valid cards, mainland mobiles, IDs with their check
    character (born 1990-01-01 in Hangzhou), all different from one another."""
    records = []
    for n, (name, tier, city, branch) in enumerate(_HOLDERS, 1):
        first17 = f"33010619900101{n:03d}"
        records.append(registry.HolderRecord(
            card_no=_luhn_complete(f"621700999900000{n:03d}"), name=name,
            phone=f"1390000{n:04d}", id_no=first17 + identity.id_check_char(first17),
            tier=tier, city=city, branch=branch))
    return records


def _holders_csv(records: list[registry.HolderRecord]) -> io.StringIO:
    """The registry's CSV of ``records``, so they are checked exactly as a file import is."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(registry.HEADER)
    writer.writerows(record.values() for record in records)
    text.seek(0)
    return text


# --- time and servers ---------------------------------------------------------------------

class Deadline:
    """The walk's time budget: every wait and every HTTP call draws on what is left."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.end = self.started + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def timeout(self) -> float:
        """For one HTTP call: what is left, at most HTTP_TIMEOUT, and never zero."""
        return max(0.5, min(HTTP_TIMEOUT, self.end - time.monotonic()))

    def wait_for(self, what: str, probe: Callable[[], T | None]) -> T:
        """``probe()``'s first answer that is not None; DemoFailed once the budget is spent."""
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() >= self.end:
                raise DemoFailed(f"gave up after {self.elapsed():.0f} s waiting for {what}")
            time.sleep(POLL_INTERVAL)


class Served:
    """A WSGI app on a free local port, served from a daemon thread until ``close()``."""

    def __init__(self, wsgi_app: Any) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, wsgi_app, threaded=True, request_handler=QuietRequestHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


class SmsSink:
    """The bank's SMS platform as far as the demo needs it: it keeps every message posted."""

    def __init__(self) -> None:
        self._messages: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        message = json.loads(environ["wsgi.input"].read(length) or b"{}")
        with self._lock:
            self._messages.append(message)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def code_after(self, index: int, phone: str) -> tuple[str, str] | None:
        """(message, code) of the first SMS to ``phone`` from message ``index`` on, if any."""
        with self._lock:
            later = self._messages[index:]
        for message in later:
            codes = _OTP.findall(message.get("message", ""))
            if message.get("phone") == phone and codes:
                return message["message"], codes[0]
        return None


class Http:
    """JSON calls for the demo: each answer is checked, each failure says what was called."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.session = requests.Session()
        self.session.trust_env = False  # every server here is local: no proxy in between

    def call(self, method: str, url: str, *, expect: int = 200, **kwargs: Any) -> Any:
        """The parsed JSON answer; DemoFailed on no answer or another status."""
        try:
            answer = self.session.request(method, url, timeout=self.deadline.timeout(), **kwargs)
        except requests.RequestException as failure:
            raise DemoFailed(f"{method} {url}: no answer ({type(failure).__name__})") from None
        if answer.status_code != expect:
            hint = f"\n{ACCOUNT_HINT}" if '"wechat_error"' in answer.text else ""
            raise DemoFailed(f"{method} {url} answered HTTP {answer.status_code}: "
                             f"{answer.text[:300]}{hint}")
        return answer.json()

    def close(self) -> None:
        self.session.close()


def backend_settings(config: Mapping[str, Any], instance_path: str, sim_url: str,
                     sms_url: str) -> dict[str, Any]:
    """The current app's settings (database and secrets too), pointed at the simulator
    and the SMS sink, with jobs in this process (see the module's docstring)."""
    settings = {key: config[key] for key in BASE if key in config}
    settings.update(
        INSTANCE_PATH=instance_path,
        WECHAT_API_BASE=sim_url, WECHAT_MP_BASE=sim_url, WECHAT_OPEN_BASE=sim_url,
        SMS_GATEWAY_URL=sms_url,
        REDIS_URL="",
        # The walk is the output: the backend's INFO lines would bury it. Errors still show.
        LOG_LEVEL="ERROR",
    )
    return settings


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The demo backend sets the root logger's level (one per process): put it back after."""
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        root.setLevel(level)


# --- the walk -----------------------------------------------------------------------------

class Walk:
    """One run of the demo: its servers, its clients, and the steps in order."""

    def __init__(self, sim_url: str, deadline: Deadline) -> None:
        self.sim_url = sim_url.rstrip("/")
        self.deadline = deadline
        self.http = Http(deadline)
        self.sms = SmsSink()
        self._served: list[Served] = []
        self.app: Flask | None = None
        self.url = ""
        self.token = ""

    # set-up ---------------------------------------------------------------------------------

    def check_simulator(self) -> None:
        try:
            self.http.session.get(f"{self.sim_url}/sim/stats",
                                  timeout=2).raise_for_status()
        except requests.RequestException:
            raise DemoFailed(
                f"no WeChat simulator answers at {self.sim_url}. Start it in another terminal:\n"
                f"    {SIM_COMMAND}\n"
                "then run this again (--sim-url names another address)."
            ) from None
        click.echo(f"WeChat simulator: {self.sim_url}")

    def start_backend(self, config: Mapping[str, Any], instance_path: str) -> None:
        # app.py imports this package: the factory is imported when the command runs.
        from app import create_app

        sink = Served(self.sms)
        self._served.append(sink)
        self.app = create_app(backend_settings(config, instance_path, self.sim_url,
                                               f"{sink.url}/sms"))
        backend = Served(self.app)
        self._served.append(backend)
        self.url = backend.url
        database = make_url(self.app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string()
        click.echo(f"Backend (this demo's own instance): {self.url}, database {database}")
        note = " (REDIS_URL is set, but the demo runs them here)" if config["REDIS_URL"] else ""
        click.echo(f"  jobs in this process{note}; SMS platform stand-in at {sink.url}/sms")

    def close(self) -> None:
        for served in reversed(self._served):
            served.close()
        if self.app is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()  # no idle connection of ours left holding the database
        self.http.close()

    # steps ----------------------------------------------------------------------------------

    def seed(self, records: list[registry.HolderRecord]) -> None:
        with self._context():
            try:
                report = registry.import_holders(_holders_csv(records))
            except registry.ImportRejected as rejected:
                raise DemoFailed("; ".join(map(str, rejected.errors))) from None
            db.session.commit()  # the import leaves the unit of work to its caller
            if report.created:
                registry.refresh_statistics()
                db.session.commit()
        click.echo(f"\n1. Card holders (members.holders.registry): created {report.created}, "
                   f"updated {report.updated}, unchanged {report.unchanged}")
        for record in records:
            click.echo(f"   {mask_card(record.card_no)}  {mask_phone(record.phone)}  "
                       f"{record.tier:<8}  {record.city}")

    def follow(self, person: DemoPerson) -> None:
        click.echo(f"\n2. Follow: {person.oa_openid} follows the official account")
        # The simulator learns of the follow first, so the backend's user/info call finds
        # the follower and its unionid, as `wechat-sim send --type subscribe --unionid` does.
        self.http.call("POST", f"{self.sim_url}/sim/users/activity",
                       json={"openid": person.oa_openid, "action": "subscribe",
                             "unionid": person.unionid})
        config = self._config()
        sender = CallbackSender(f"{self.url}/wechat/callback", config["WECHAT_TOKEN"],
                                config["WECHAT_AES_KEY"], config["WECHAT_APP_ID"],
                                config["WECHAT_ORIGINAL_ID"], timeout=self.deadline.timeout())
        try:
            result = sender.send(sender.pushes.subscribe(person.oa_openid), "safe")
        finally:
            sender.close()
        if not result.accepted:
            raise DemoFailed(f"the follow event was refused: {result.problem}")
        click.echo(f"   POST /wechat/callback (subscribe event, safe mode): HTTP {result.status}")
        reply = result.reply or {}
        click.echo(f"   welcome reply: {reply.get('Content') or reply.get('MsgType') or '(none)'}")

    def login(self, person: DemoPerson) -> None:
        click.echo(f"\n3. Mini-program login: {person.mp_openid}, unionid {person.unionid}")
        code = self.http.call("POST", f"{self.sim_url}/sim/miniapp/code",
                              json={"openid": person.mp_openid, "unionid": person.unionid})
        answer = self.http.call("POST", f"{self.url}/api/miniapp/login",
                                json={"code": code["code"]})
        self.token = answer["token"]
        click.echo(f"   wx.login code from POST /sim/miniapp/code → POST /api/miniapp/login: "
                   f"token {self.token[:6]}…, bound {str(answer['bound']).lower()}")

    def bind(self, record: registry.HolderRecord) -> None:
        card, phone = mask_card(record.card_no), mask_phone(record.phone)
        click.echo(f"\n4. Bind card {card} with phone {phone}")
        sent_before = self.sms.count()
        start = self._member("POST", "/api/members/bind/start",
                             json={"card_no": record.card_no, "phone": record.phone})
        click.echo("   POST /api/members/bind/start → challenge")
        message, code = self.deadline.wait_for(
            f"the SMS code to {phone}", lambda: self.sms.code_after(sent_before, record.phone))
        click.echo(f"   SMS platform got for {phone}: {message}")
        done = self._member("POST", "/api/members/bind/confirm",
                            json={"challenge_id": start["challenge_id"], "otp": code})
        click.echo(f"   POST /api/members/bind/confirm (code {code}): bound, "
                   f"card {mask_card(done['card_last4'])}")

    def linked(self, person: DemoPerson) -> None:
        """The official-account openid is bound too, through the unionid both apps share."""

        def probe() -> tuple[str, str] | None:
            with self._context():
                follower = db.session.scalar(
                    select(Follower).where(Follower.openid == person.oa_openid))
                last4 = db.session.scalar(
                    select(CardHolder.card_last4).join(Binding, Binding.holder_id == CardHolder.id)
                    .where(Binding.app == OFFICIAL_ACCOUNT, Binding.openid == person.oa_openid,
                           Binding.unbound_at.is_(None)))
                if follower is None or not follower.unionid or last4 is None:
                    return None
                return follower.unionid, last4

        unionid, last4 = self.deadline.wait_for(
            "the official account to be linked by unionid", probe)
        click.echo("\n5. Linked by unionid: the follower's user/info and the login's code2session "
                   "both gave")
        click.echo(f"   {unionid}, so {person.oa_openid} is bound to card {mask_card(last4)} "
                   "too: alerts go there")

    def transaction(self, record: registry.HolderRecord) -> None:
        now = datetime.now(_BEIJING)
        txn_id = f"DEMO{now:%Y%m%d%H%M%S}{secrets.token_hex(3).upper()}"
        item = {"txn_id": txn_id, "card_no": record.card_no, **DEMO_TXN,
                "occurred_at": now.isoformat(timespec="seconds")}
        body = json.dumps(item, ensure_ascii=False).encode()
        stamp = str(int(time.time()))
        # What core banking does: HMAC-SHA256(TXN_FEED_SECRET, timestamp + "." + raw body).
        signature = hmac.new(self._config()["TXN_FEED_SECRET"].encode(),
                             stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        answer = self.http.call("POST", f"{self.url}/api/transactions", expect=202, data=body,
                                headers={"Content-Type": "application/json",
                                         "X-Timestamp": stamp, "X-Signature": signature})
        yuan, fen = divmod(DEMO_TXN["amount_fen"], 100)
        click.echo(f"\n6. Transaction {txn_id}: {DEMO_TXN['direction']} {yuan}.{fen:02d} "
                   f"{DEMO_TXN['currency']} at {DEMO_TXN['merchant']}, card "
                   f"{mask_card(record.card_no)}")
        click.echo(f"   signed POST /api/transactions (X-Timestamp, X-Signature): HTTP 202, "
                   f"accepted {answer['accepted']}, duplicate {answer['duplicate']}")

    def alert(self, person: DemoPerson, sent_before: int) -> None:
        messages = self.deadline.wait_for(
            f"the simulator to record a template message to {person.oa_openid}",
            lambda: self._template_messages(person.oa_openid)[sent_before:] or None)
        message = messages[0]["json"]
        click.echo(f"\n7. Alert: the simulator recorded {TEMPLATE_SEND} to {message['touser']}")
        click.echo(f"   template {message['template_id']}, data:")
        data = message.get("data", {})
        for field, keyword in self._config()["WECHAT_TXN_TEMPLATE_FIELDS"].items():
            if keyword in data:
                click.echo(f"   {field:<9} {data[keyword]['value']}")

    def me(self) -> None:
        me = self._member("GET", "/api/members/me")
        click.echo(f"\n8. GET /api/members/me: card {mask_card(me['card_last4'])}, "
                   f"phone {me['phone']}, tier {me['tier']}, points {me['points']}")

    def template_messages_now(self, person: DemoPerson) -> int:
        """How many template messages to the person the simulator recorded so far."""
        return len(self._template_messages(person.oa_openid))

    # helpers --------------------------------------------------------------------------------

    def _template_messages(self, openid: str) -> list[dict[str, Any]]:
        recorded = self.http.call("GET", f"{self.sim_url}/sim/requests",
                                  params={"path": TEMPLATE_SEND})
        return [entry for entry in recorded if (entry.get("json") or {}).get("touser") == openid]

    def _member(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.call(method, f"{self.url}{path}",
                              headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    def _config(self) -> Mapping[str, Any]:
        assert self.app is not None, "start_backend() comes first"
        return self.app.config

    @contextmanager
    def _context(self) -> Iterator[None]:
        assert self.app is not None, "start_backend() comes first"
        with self.app.app_context():
            yield


def run_demo(config: Mapping[str, Any], instance_path: str, sim_url: str) -> None:
    """The whole walk against the simulator at ``sim_url``; DemoFailed if a step fails."""
    if config["APP_ENV"] == "production":
        raise DemoFailed("the demo plays WeChat, the SMS platform and core banking: "
                         "never with APP_ENV=production")
    deadline = Deadline(TIME_BUDGET)
    walk = Walk(sim_url, deadline)
    records = demo_holders()
    walker = records[0]
    with _quiet_logs():
        try:
            walk.check_simulator()
            walk.start_backend(config, instance_path)
            walk.seed(records)
            walk.follow(PERSON)
            walk.login(PERSON)
            walk.bind(walker)
            walk.linked(PERSON)
            sent_before = walk.template_messages_now(PERSON)
            walk.transaction(walker)
            walk.alert(PERSON, sent_before)
            walk.me()
        finally:
            walk.close()
    click.echo(f"\nDone in {deadline.elapsed():.1f} s: from a follow to an alert.")


@click.command("demo")
@click.option("--sim-url", default=DEFAULT_SIM_URL, show_default=True,
              help="The running WeChat simulator (flask --app app wechat-sim).")
@with_appcontext
def demo_command(sim_url: str) -> None:
    """Walk one card holder from a follow to a transaction alert, against the simulator."""
    run_demo(current_app.config, current_app.instance_path, sim_url)
