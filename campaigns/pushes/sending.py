"""Sending a push: the body of its send jobs, the rules of each channel at send time, and
the state machine of each recipient. Like the alert sender it owns its transactions:
each claim is committed before WeChat is called, a batch's answers as soon as its last
one came (with the thread's next claim).

::

    pending ──claim──▶ claimed ──WeChat accepted──────────────▶ sent
      ▲                  ├─ a rule says no (unfollowed, cap, 48 h, grant) ─▶ skipped, reason
      │                  ├─ WeChat refused for this recipient ─▶ skipped (43004, 45015,
      │                  │  45047, 43101) or failed (any other errcode; -1/5xx/timeouts
      │                  │  after bounded retries)
      ├──────────────────┤─ pause, cancel, quiet hours, quota (45009, 45028, our guard):
      │                  │  back to pending, never called (or refused by WeChat)
      │                  └─ worker died: the sweep ends it failed / interrupted, never resent
      └── resume, quota reset (the sweep), quiet hours over

Exactly once: a recipient is claimed (one conditional UPDATE, ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, committed) before its message goes, so no two workers send it, and a
claim is never undone once WeChat may have the message. Customer-service messages and
subscription notices go in batches of ``PUSH_CLAIM_SIZE`` per sending thread (at most one
second's worth of the rate): one statement claims a batch and skips, with their reason,
the recipients a rule refuses (the follower's row and grant joined in); the others are
sent in turn as their tokens come (``rate.take_size`` at a time, one Redis call each),
and their answers are recorded, in one statement, in the commit of the thread's next
claim: one commit a batch. A worker killed mid-push leaves at most threads × claim size
recipients ``interrupted`` (4 × 12 = 48, under the 50 rows a transaction alerts' send
job can leave ``sending``; the window WeChat cannot close: a message may have gone out
whose answer we never kept), every one of them in its thread's batch in flight. A thread
that stalls instead (a call or a read that does not come back) is the same to the sweep:
no thread starts a call after its slice's time, and a slice lasts at most half of
PUSH_CLAIM_TIMEOUT, so the sweep never ends a claim whose message might still be sent;
the answer of the call in flight is kept whenever it comes.
A Redis lost mid-push (restarted, flushed, unreachable) loses nothing either: every
Redis read a send needs (its token, the quota guard, the access token) comes before
WeChat is called, so a thread that finds Redis gone records the answers it has, puts
the rest back to pending and stops; the chains' keys went with Redis (or expire), and
the sweep starts them again once it answers.

Mass sends go by openid list, up to ``PUSH_MASS_CHUNK`` (≤ 10,000) and at most one
second's worth of the push's rate per call, each call taking one token of the push's
bucket per openid (``rate``: ``rate_per_s`` is recipients a second on every channel) and
one of the account's mass-call bucket. Before a
call, in one commit: its recipients' monthly allowance (``MassAllowance``, 4 a calendar
month in Asia/Shanghai across all pushes, taken in one conditional upsert so that two
pushes racing cannot both take the fourth; the rest ``skipped``/``monthly_cap``), and the
``PushMassJob`` with the ``clientmsgid`` the call carries. A call retried, whether by
us after -1/timeouts or by the sweep after its worker died, carries the same clientmsgid:
WeChat answers 45065 with the first job's msg_id, so no follower gets it twice, and no
mass recipient ever needs to end ``interrupted``. WeChat reports a mass job's failures
only as counts (MASSSENDJOBFINISH, kept on the job): its recipients are ``sent``.

A lone recipient: WeChat's openid-list mass send takes at least 2 openids (40130). A
claim that leaves exactly one sendable recipient while others of the push are still
pending puts it back, so it goes with the next call; only the push's very last sendable
recipient can be alone, and it is ``skipped``/``mass_needs_two`` without calling WeChat
(a preview is no send, and another channel is not what was approved).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import (
    ARRAY,
    CTE,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    String,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite

from campaigns.pushes import chains, quiet_hours, rate
from campaigns.pushes.metrics import PUSH_FAILED, PUSH_QUOTA_PAUSES, PUSH_SENT, PUSH_SKIPPED
from campaigns.pushes.models import (
    CUSTOM,
    DONE,
    MASS,
    PAUSED,
    RECIPIENT_CLAIMED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENT,
    RECIPIENT_SKIPPED,
    SENDING,
    SUBSCRIBE,
    MassAllowance,
    Push,
    PushDelivery,
    PushMassJob,
    SubscriptionGrant,
)
from core.clock import SHANGHAI
from core.db import UTCDateTime, db, utcnow
from members.holders import followers
from members.holders.models import Follower
from wechat import clients, messages
from wechat.dispatch import Dispatcher
from wechat.errors import (
    DuplicateMassSend,
    NoSubscription,
    NotFollowing,
    OutsideServiceWindow,
    QuotaExhausted,
    ServiceWindowUsedUp,
    UserRateLimited,
    WeChatAPIError,
    WeChatUnavailable,
    outcome_label,
)
from wechat.inbound import Inbound
from wechat.quota import MARKETING, QuotaGuard, next_reset
from wechat.token_store import TokenUnavailable

log = logging.getLogger(__name__)
_RANDOM = random.SystemRandom()  # slice lengths only: spread, not secret

APIS = {MASS: messages.MASS_BY_OPENIDS, CUSTOM: messages.CUSTOM,
        SUBSCRIBE: messages.OA_SUBSCRIBE}
INTERRUPTED = "interrupted"
QUOTA_DAILY, QUOTA_MONTHLY = "quota_daily", "quota_monthly"
# WeChat's refusals that are about this recipient: skipped, with the reason kept.
_SKIP_ERRORS: tuple[tuple[type[WeChatAPIError], str], ...] = (
    (NotFollowing, "not_following"), (OutsideServiceWindow, "outside_48h"),
    (ServiceWindowUsedUp, "window_used_up"), (NoSubscription, "no_grant"),
)


def chain_count(channel: str) -> int:
    """Chains of send jobs per push: one for mass (WeChat's mass-call limit is the bound)."""
    return 1 if channel == MASS else int(current_app.config["PUSH_CHAINS"])


@dataclass(frozen=True)
class Plan:
    """What a send job needs of its push, read once per job."""

    id: int
    channel: str
    message: dict[str, Any]
    rate_per_s: int
    quiet_from: str | None
    quiet_to: str | None
    state: str


@dataclass(frozen=True, slots=True, order=True)
class Recipient:
    delivery_id: int
    openid: str


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    state: str
    reason: str | None = None
    errcode: int | None = None
    sent_at: datetime | None = None


class QuotaStop(Exception):
    """The push must pause for a quota: WeChat's 45009/45028, or our guard refused."""

    def __init__(self, reason: str, until: datetime) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until


# -- the job ------------------------------------------------------------------------------------

class Slice:
    """One job's share of the work: its threads stop when ``stop`` is set (pause, cancel,
    quiet hours, quota, a superseded chain, the slice's time up) or when nothing is left.

    Its time is up after ``shortest`` seconds if jobs of a queue ahead of ``pushes`` (the
    alerts) are waiting, else after ``longest``: a hand-over costs every worker of the
    push RQ's bookkeeping and the next job's setup, so slices are long while nobody else
    needs the worker. ``longest`` is drawn from its upper half so that the workers of a
    push, started together, do not all hand over at the same moment: the others take the
    bucket's tokens meanwhile.

    Its sending threads end it at ``last`` themselves (``running``, ``sleep``): no wait of
    theirs outlasts it, and none starts a call after it, even with the job's watcher stuck
    (a read that does not come back), so a thread holds its batch for a slice at most,
    plus the call in flight. ``run_slice`` keeps a slice within half of
    PUSH_CLAIM_TIMEOUT: no call is made for a claim the sweep may have taken over."""

    def __init__(self, plan: Plan, shortest: float, longest: float) -> None:
        self.plan = plan
        self.stop = threading.Event()
        started = time.monotonic()
        self.deadline = started + shortest
        self.last = started + max(shortest, _RANDOM.uniform(longest / 2, longest))
        self.why: str | None = None  # what stopped it
        self.exhausted = False  # a thread found nothing left to claim

    def halt(self, why: str) -> None:
        if not self.stop.is_set():
            self.why = why
            self.stop.set()

    def running(self) -> bool:
        """Whether the slice goes on: not stopped, and its time (``last``) not up."""
        if time.monotonic() >= self.last:
            self.halt("slice")
        return not self.stop.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the slice stops or its time comes first (False)."""
        self.stop.wait(max(0.0, min(seconds, self.last - time.monotonic())))
        return self.running()


def run_slice(push_id: int, chain: int, token: str, due: float | None = None) -> None:
    """One job of chain ``chain``: send for a slice (``Slice``), then hand over, or end
    the chain (push not sending, nothing left, paused) and finish the push when done."""
    if due is not None and time.time() < due - 1:
        return  # run before its time (an eager runner ignores ``at``): the key stays
    if not chains.current(push_id, chain, token):
        return
    config = current_app.config
    with db.engine.connect() as connection:
        plan = _plan(connection, push_id)
    if plan is None or plan.state != SENDING:
        chains.end(push_id, chain, token)
        return
    quiet_end = quiet_hours.quiet_until(plan.quiet_from, plan.quiet_to, utcnow())
    if quiet_end is not None:
        chains.hand_over(push_id, chain, token, at=quiet_end)
        return
    guard = clients.official_account_quota()
    api = APIS[plan.channel]
    until = guard.paused_until(api)
    if until is not None:
        reason = QUOTA_MONTHLY if api in config["WECHAT_MONTHLY_QUOTA_APIS"] else QUOTA_DAILY
        _pause_for_quota(plan, QuotaStop(reason, until))
        chains.end(push_id, chain, token)
        return
    lease = float(config["PUSH_CLAIM_TIMEOUT"]) / 2  # the sweep's after PUSH_CLAIM_TIMEOUT
    work = Slice(plan, min(float(config["PUSH_JOB_SECONDS"]), lease),
                 min(float(config["PUSH_JOB_MAX_SECONDS"]), lease))
    threads = 1 if plan.channel == MASS else int(config["PUSH_SEND_THREADS"])
    worker = _mass_worker if plan.channel == MASS else _single_worker
    app = current_app._get_current_object()
    pool = [threading.Thread(target=_guarded, args=(worker, app, work),
                             name=f"push-{push_id}-{chain}-{n}", daemon=True)
            for n in range(threads)]
    for thread in pool:
        thread.start()
    _watch(work, pool, push_id, chain, token, config)
    _after_slice(work, push_id, chain, token)


def _guarded(worker: Callable[[Flask, Slice], None], app: Flask, work: Slice) -> None:
    try:
        worker(app, work)
    except Exception:
        # Claimed rows stay claimed: the sweep ends them as interrupted, never resends.
        log.exception("push sending thread failed", extra={"push_id": work.plan.id})
        work.halt("error")


def _watch(work: Slice, pool: list[threading.Thread], push_id: int, chain: int, token: str,
           config: Mapping[str, Any]) -> None:
    """While the threads send: re-read the push's state (one indexed read) and the quiet
    hours every PUSH_STATE_CHECK_SECONDS, so a pause holds within a second; past the
    slice's shortest time, look whether alerts wait for this worker (a length per queue)."""
    check = float(config["PUSH_STATE_CHECK_SECONDS"])
    try:
        while alive := [thread for thread in pool if thread.is_alive()]:
            alive[0].join(check)
            if not work.running():
                continue
            if time.monotonic() >= work.deadline and chains.others_waiting():
                work.halt("slice")
                continue
            with db.engine.connect() as connection:
                state = connection.scalar(select(Push.state).where(Push.id == push_id))
            if state != SENDING:
                work.halt("state")
            elif quiet_hours.is_quiet(work.plan.quiet_from, work.plan.quiet_to, utcnow()):
                work.halt("quiet")
            else:
                try:
                    if not chains.current(push_id, chain, token):
                        work.halt("superseded")
                except RedisError:
                    _redis_lost(work)  # its threads stop too, before this job ends
    except BaseException:
        # The job fails (the database lost, RQ's job timeout): its threads stop first and
        # put back what they have not sent, rather than go on with nobody to end the slice.
        work.halt("error")
        raise
    finally:
        for thread in pool:
            thread.join()


def _after_slice(work: Slice, push_id: int, chain: int, token: str) -> None:
    plan = work.plan
    if work.why == "quiet":
        at = quiet_hours.quiet_until(plan.quiet_from, plan.quiet_to, utcnow())
        chains.hand_over(push_id, chain, token, at=at)
    elif work.why in ("slice", None):
        # A thread found nothing left, but threads stopped later with part of a batch unsent
        # put it back: then the chain goes on for it, not the sweep a period later.
        if work.exhausted and not _pending(push_id):
            chains.end(push_id, chain, token)
            finish(push_id)
        else:
            chains.hand_over(push_id, chain, token)
    elif work.why in ("superseded", "redis"):
        # Another job holds the chain, or Redis is lost: then the chain's key went with it
        # or expires, and the sweep starts the chain again once Redis answers.
        return
    else:
        chains.end(push_id, chain, token)


def _pending(push_id: int) -> bool:
    with db.engine.connect() as connection:
        return bool(connection.scalar(select(exists().where(
            _T.c.push_id == push_id, _T.c.state == RECIPIENT_PENDING))))


def finish(push_id: int) -> bool:
    """The push is done once no recipient is pending or claimed; True when this call did it."""
    now = utcnow()
    left = exists().where(_T.c.push_id == push_id,
                          _T.c.state.in_((RECIPIENT_PENDING, RECIPIENT_CLAIMED)))
    with db.engine.connect() as connection:
        done = connection.execute(
            update(Push).where(Push.id == push_id, Push.state == SENDING, ~left)
            .values(state=DONE, finished_at=now, updated_at=now)).rowcount
        connection.commit()
    if done:
        log.info("push done", extra={"push_id": push_id})
    return bool(done)


def _plan(connection: Connection, push_id: int) -> Plan | None:
    row = connection.execute(
        select(Push.id, Push.channel, Push.message, Push.rate_per_s, Push.quiet_from,
               Push.quiet_to, Push.state).where(Push.id == push_id)).first()
    connection.commit()
    return Plan(*row) if row else None


# -- customer-service messages and subscription notices: one call per recipient ------------------

def _single_worker(app: Flask, work: Slice) -> None:
    """A sending thread: claim a batch (the recipients a rule refuses skipped in the same
    statement), send each in turn as its tokens come, and record the answers in the next
    claim's commit; until the slice stops or nothing is left."""
    plan = work.plan
    with app.app_context(), db.engine.connect() as connection, \
            clients.official_account().tokens.held():
        config = current_app.config
        bucket = rate.push_bucket(current_app.extensions["redis"], plan.id, plan.rate_per_s,
                                  plan.channel)
        guard = clients.official_account_quota()
        size = min(int(config["PUSH_CLAIM_SIZE"]), int(bucket.capacity))
        take = rate.take_size(plan.rate_per_s, size)
        claim = _claim_sendable_statement(plan)
        window = timedelta(seconds=config["PUSH_CUSTOM_WINDOW"])
        outcomes: list[Outcome] = []
        try:
            while work.running():
                sendable = _claim_sendable(connection, plan, claim, size, window, outcomes)
                outcomes = []
                if sendable is None:
                    work.exhausted = True
                    return
                try:
                    _send_batch(connection, plan, sendable, take, bucket, guard, work, config,
                                outcomes)
                except QuotaStop as stop:
                    # Kept and given back before the pause's own commit (SQLite has one
                    # writer at a time).
                    _record(connection, plan.channel, outcomes)
                    outcomes = []
                    _pause_for_quota(plan, stop)
                    work.halt("quota")
        finally:
            # The answers that came, and the recipients given back, whatever ended the
            # loop: only a batch whose call raised stays claimed from there on (the sweep's).
            _record(connection, plan.channel, outcomes)


def _send_batch(connection: Connection, plan: Plan, batch: list[Recipient], take: int,
                bucket: rate.TokenBucket, guard: QuotaGuard, work: Slice,
                config: Mapping[str, Any], outcomes: list[Outcome]) -> None:
    """Send each of ``batch`` in turn, ``take`` tokens (``rate.take_size``) taken at a
    time, each answer appended to ``outcomes`` as it comes; those never called go back to
    pending (uncommitted: the next record commits them). QuotaStop when WeChat or our
    guard refused for a quota: the rest was not called."""
    api = APIS[plan.channel]
    called = 0
    try:
        while called < len(batch) and work.running():
            wanted = min(take, len(batch) - called)
            granted = _turn(bucket, guard, api, wanted, work)
            due = called + granted
            while called < due and _ready_to_call(work):
                outcomes.append(_send_one(plan, batch[called], work, config))
                called += 1
            if called < due and work.why != "redis":
                # Stopped with tokens in hand (the slice's end, a pause): they go back, for
                # the next slice.
                with contextlib.suppress(RedisError):
                    bucket.give_back(due - called)
            if granted < wanted and not work.stop.is_set():
                raise QuotaStop(QUOTA_DAILY, _guard_refused(config))
    except QuotaStop:
        _release(connection, batch[called:], commit=False)
        raise
    _release(connection, batch[called:], commit=False)


def _turn(bucket: rate.TokenBucket, guard: QuotaGuard, api: str, wanted: int,
          work: Slice) -> int:
    """The tokens of the next ``wanted`` sends, taken in one go (one Redis call, then a
    wait until they are due) and counted against today's quota: how many of them may go.
    0 when the slice stopped meanwhile, or ended because they come only after its time
    (the thread ends it then, as its watcher would), or Redis is lost (restarting: nothing
    is called without the shared rate); fewer than ``wanted`` when marketing's share of
    the quota is used up (alerts keep theirs). Sends counted but then not made (the slice
    stopped meanwhile) stay counted: the guard errs by at most a take per thread, on the
    safe side."""
    try:
        if not bucket.acquire(wanted, work.stop, work.last):
            work.halt("slice")  # unless stopped already: its time is up
            return 0
        return guard.take(api, wanted, MARKETING)
    except RedisError:
        _redis_lost(work)
        return 0


def _ready_to_call(work: Slice) -> bool:
    """Whether the next call may go: the slice still runs (its time not up), and the
    access token is held.

    The token is read here, into the thread's hold (``TokenStore.held``), so that a Redis
    lost right now stops the send before WeChat is called rather than inside the call,
    where the recipient would have to end interrupted."""
    if not work.running():
        return False
    try:
        # No token from WeChat now: the send asks again, and its retries decide.
        with contextlib.suppress(WeChatAPIError, TokenUnavailable):
            clients.official_account().tokens.get()
    except RedisError:
        _redis_lost(work)
        return False
    return True


def _redis_lost(work: Slice) -> None:
    log.warning("push slice stopped: Redis unreachable; the sweep resumes the push",
                exc_info=True, extra={"push_id": work.plan.id})
    work.halt("redis")


def _body(plan: Plan, recipient: Recipient) -> dict[str, Any]:
    message = plan.message
    if plan.channel == CUSTOM:
        return messages.custom_text(recipient.openid, message["text"])
    values = {keyword: value["value"] if isinstance(value, dict) else str(value)
              for keyword, value in message.get("data", {}).items()}
    return messages.oa_subscribe(recipient.openid, message["template_id"], values,
                                 client_msg_id=f"push-{plan.id}-{recipient.delivery_id}",
                                 page=message.get("page"))


def _send_one(plan: Plan, recipient: Recipient, work: Slice,
              config: Mapping[str, Any]) -> Outcome:
    """Call WeChat for one claimed recipient; what became of it (QuotaStop: nothing did)."""
    body = _body(plan, recipient)
    api = APIS[plan.channel]
    client = clients.official_account()
    for round_ in range(int(config["PUSH_SEND_RETRIES"]) + 1):
        try:
            messages.send(client, api, body)
        except QuotaExhausted as error:
            reason = QUOTA_MONTHLY if error.errcode == QuotaExhausted.MONTHLY_MASS else QUOTA_DAILY
            raise QuotaStop(reason, _reset(clients.official_account_quota(), api, error)) from error
        except (WeChatUnavailable, UserRateLimited) as error:
            if round_ == int(config["PUSH_SEND_RETRIES"]) or not _wait_to_retry(
                    error, round_, work, config):
                return _failed(plan, recipient, error)
            continue
        except WeChatAPIError as error:
            for kind, reason in _SKIP_ERRORS:
                if isinstance(error, kind):
                    if isinstance(error, NotFollowing):
                        followers.mark_not_following(recipient.openid)
                        db.session.commit()  # this thread's own unit of work
                    return Outcome(recipient.delivery_id, RECIPIENT_SKIPPED, reason,
                                   error.errcode)
            return _failed(plan, recipient, error)
        return Outcome(recipient.delivery_id, RECIPIENT_SENT, sent_at=utcnow())
    raise AssertionError("unreachable: the last round returns")


def _wait_to_retry(error: WeChatAPIError, round_: int, work: Slice,
                   config: Mapping[str, Any]) -> bool:
    """Back off before another round; False when the slice stopped or its time came
    meanwhile (the send then ends failed: a timed-out call may have gone through, so it is
    never put back)."""
    if isinstance(error, UserRateLimited):
        delay = float(config["PUSH_RATE_LIMITED_DELAY"])
    else:
        delay = float(config["PUSH_RETRY_BASE_DELAY"]) * 2 ** round_
    log.info("push send retried: WeChat unavailable",
             extra={"push_id": work.plan.id, "errcode": outcome_label(error), "delay": delay})
    return work.sleep(delay)


def _failed(plan: Plan, recipient: Recipient, error: WeChatAPIError) -> Outcome:
    reason = "unavailable" if isinstance(error, (WeChatUnavailable, UserRateLimited)) \
        else "refused"
    log.warning("push recipient failed", extra={"push_id": plan.id, "errcode": error.errcode,
                                                "delivery_id": recipient.delivery_id})
    return Outcome(recipient.delivery_id, RECIPIENT_FAILED, reason, error.errcode)


def _reset(guard: QuotaGuard, api: str, error: QuotaExhausted) -> datetime:
    """WeChat said the quota is used up: ``api`` pauses on the account's guard (every
    sender of it stops) until WeChat's reset."""
    return guard.pause(api, error.errcode)


def _guard_refused(config: Mapping[str, Any]) -> datetime:
    """Our guard refused marketing (its share of today's quota is used; the rest is the
    alerts'): the push waits for tomorrow's quota; WeChat's API is not paused for others."""
    return next_reset(utcnow()) + timedelta(seconds=config["WECHAT_QUOTA_RESET_MARGIN"])


# -- mass sends by openid list ------------------------------------------------------------------

def _mass_worker(app: Flask, work: Slice) -> None:
    """The mass thread: claim a chunk, take its allowances, commit the job, call once."""
    plan = work.plan
    with app.app_context(), db.engine.connect() as connection:
        config = current_app.config
        redis = current_app.extensions["redis"]
        # A call takes one token per openid: it carries at most one second's worth.
        chunk = rate.mass_call_size(plan.rate_per_s, int(config["PUSH_MASS_CHUNK"]))
        bucket = rate.push_bucket(redis, plan.id, plan.rate_per_s, plan.channel, chunk)
        calls = rate.mass_call_bucket(redis, int(config["PUSH_MASS_CALLS_PER_MINUTE"]))
        while work.running():
            claimed = _claim(connection, plan.id, chunk)
            if not claimed:
                work.exhausted = True
                return
            job = _prepare_mass_job(connection, plan, claimed, config)
            if job is None:
                continue
            try:
                ready = (bucket.acquire(len(job.recipients), work.stop, work.last)
                         and calls.acquire(1, work.stop, work.last))
            except RedisError:
                _redis_lost(work)
                ready = False
            if not ready:
                work.halt("slice")  # unless stopped already: the tokens come after its time
                _drop_mass_job(connection, job)
                return
            try:
                _call_mass(connection, plan, job, work, config)
            except QuotaStop as stop:
                _drop_mass_job(connection, job)
                _pause_for_quota(plan, stop)
                work.halt("quota")


@dataclass(frozen=True)
class MassJob:
    id: int
    client_msg_id: str
    recipients: list[Recipient]
    month: str


def _month(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def _prepare_mass_job(connection: Connection, plan: Plan, claimed: list[Recipient],
                      config: Mapping[str, Any]) -> MassJob | None:
    """In one commit: skip the unfollowed, take the others' monthly allowance (skipping
    those at the cap), and store the job and its clientmsgid for those left; None when no
    call is to be made (nothing left, or a lone recipient held back for the next call)."""
    ids = [recipient.delivery_id for recipient in claimed]
    subscribed = dict(connection.execute(
        select(_T.c.id, Follower.subscribed).select_from(_T)
        .outerjoin(Follower, Follower.openid == _T.c.openid).where(_T.c.id.in_(ids))).all())
    skips = [Outcome(r.delivery_id, RECIPIENT_SKIPPED, "unsubscribed")
             for r in claimed if not subscribed.get(r.delivery_id)]
    following = [r for r in claimed if subscribed.get(r.delivery_id)]
    now = utcnow()
    month = _month(now)
    allowed = _take_allowance(connection, [r.openid for r in following], month,
                              int(config["PUSH_MASS_MONTHLY_CAP"]))
    skips += [Outcome(r.delivery_id, RECIPIENT_SKIPPED, "monthly_cap")
              for r in following if r.openid not in allowed]
    sendable = [r for r in following if r.openid in allowed]
    if len(sendable) == 1:
        lone = sendable[0]
        _give_back_allowance(connection, [lone.openid], month)
        others = connection.scalar(select(exists().where(
            _T.c.push_id == plan.id, _T.c.state == RECIPIENT_PENDING)))
        if others:
            _release(connection, sendable, commit=False)  # goes with the next call
        else:
            skips.append(Outcome(lone.delivery_id, RECIPIENT_SKIPPED, "mass_needs_two"))
        sendable = []
    if not sendable:
        _record(connection, MASS, skips)
        return None
    client_msg_id = f"push-{plan.id}-{secrets.token_hex(12)}"
    job_id = connection.scalar(insert(PushMassJob).values(
        push_id=plan.id, client_msg_id=client_msg_id, recipients=len(sendable),
        submitted_at=now).returning(PushMassJob.id))
    connection.execute(update(_T).where(_T.c.id.in_([r.delivery_id for r in sendable]))
                       .values(mass_job_id=job_id))
    _record(connection, MASS, skips)  # commits the allowance, the job and the skips together
    return MassJob(job_id, client_msg_id, sendable, month)


_ALLOWANCE_PG = text(
    "INSERT INTO mass_allowance (openid, month, used) "
    "SELECT openid, :month, 1 FROM unnest(:openids) AS openid "
    "ON CONFLICT (openid, month) DO UPDATE SET used = mass_allowance.used + 1 "
    "WHERE mass_allowance.used < :cap RETURNING openid"
).bindparams(bindparam("openids", type_=ARRAY(String)))
_ALLOWANCE = MassAllowance.__table__
_SQLITE_ROWS = 1000  # rows per VALUES list: 3 parameters each, under SQLite's 32,766


def _take_allowance(connection: Connection, openids: list[str], month: str,
                    cap: int) -> set[str]:
    """Count one more mass message this month for each of ``openids`` still under ``cap``;
    those counted. One conditional upsert: a row at the cap is locked and left as it is, so
    a push racing for the same follower waits and then finds it full. Sorted, so two pushes
    lock shared rows in the same order and never deadlock."""
    if not openids:
        return set()
    ordered = sorted(set(openids))
    if connection.dialect.name == "postgresql":
        return set(connection.scalars(_ALLOWANCE_PG, {"openids": ordered, "month": month,
                                                       "cap": cap}))
    # SQLite: the same upsert, in VALUES lists; its one writer at a time keeps it atomic.
    taken: set[str] = set()
    for start in range(0, len(ordered), _SQLITE_ROWS):
        rows = [{"openid": openid, "month": month, "used": 1}
                for openid in ordered[start:start + _SQLITE_ROWS]]
        statement = (sqlite.insert(_ALLOWANCE).values(rows)
                     .on_conflict_do_update(index_elements=["openid", "month"],
                                            set_={"used": _ALLOWANCE.c.used + 1},
                                            where=_ALLOWANCE.c.used < cap)
                     .returning(_ALLOWANCE.c.openid))
        taken.update(connection.scalars(statement))
    return taken


def _give_back_allowance(connection: Connection, openids: list[str], month: str) -> None:
    """These were not sent after all (WeChat refused the call, or it was never made)."""
    if openids:
        connection.execute(update(_ALLOWANCE)
                           .where(_ALLOWANCE.c.month == month, _ALLOWANCE.c.openid.in_(openids),
                                  _ALLOWANCE.c.used > 0)
                           .values(used=_ALLOWANCE.c.used - 1))


def _drop_mass_job(connection: Connection, job: MassJob) -> None:
    """The job was never called, or WeChat refused the call for a quota: its recipients go
    back to pending with their allowance, and the job is forgotten."""
    _give_back_allowance(connection, [r.openid for r in job.recipients], job.month)
    connection.execute(update(_T).where(_T.c.mass_job_id == job.id,
                                        _T.c.state == RECIPIENT_CLAIMED)
                       .values(state=RECIPIENT_PENDING, claimed_at=None, mass_job_id=None))
    connection.execute(delete(PushMassJob).where(PushMassJob.id == job.id))
    connection.commit()


def _call_mass(connection: Connection, plan: Plan, job: MassJob, work: Slice | None,
               config: Mapping[str, Any]) -> None:
    """mass/send for ``job`` under its clientmsgid, and its outcome recorded (QuotaStop:
    WeChat refused it for a quota; nothing went out)."""
    body = messages.mass_text([r.openid for r in job.recipients], plan.message["text"],
                              client_msg_id=job.client_msg_id)
    guard = clients.official_account_quota()
    api = APIS[MASS]
    if guard.take(api, 1, MARKETING) < 1:
        raise QuotaStop(QUOTA_DAILY, _guard_refused(config))
    rounds = int(config["PUSH_SEND_RETRIES"]) + 1
    for round_ in range(rounds):
        try:
            msg_id = messages.send(clients.official_account(), api, body)
        except DuplicateMassSend as error:
            msg_id = _first_msg_id(error)  # the first call went through: that is the send
        except QuotaExhausted as error:
            reason = QUOTA_MONTHLY if error.errcode == QuotaExhausted.MONTHLY_MASS else QUOTA_DAILY
            raise QuotaStop(reason, _reset(guard, api, error)) from error
        except (WeChatUnavailable, UserRateLimited) as error:
            # Safe to call again: the clientmsgid makes a repeat of a call that got through
            # answer 45065. Out of rounds, it fails; it may still have gone out, so the
            # allowance stays taken.
            stopped = work is None or not _wait_to_retry(error, round_, work, config)
            if round_ == rounds - 1 or stopped:
                _record_mass_failure(connection, job, error, give_back=False)
                return
            continue
        except WeChatAPIError as error:
            _record_mass_failure(connection, job, error, give_back=True)
            return
        _record_mass_sent(connection, job, msg_id)
        return


def _first_msg_id(error: DuplicateMassSend) -> str | None:
    """The msg_id WeChat returns with 45065: the body of the answer wechatpy raised on."""
    response = getattr(error.__cause__, "response", None)
    try:
        value = response.json().get("msg_id") if response is not None else None
    except ValueError:
        value = None
    return None if value is None else str(value)


def _record_mass_sent(connection: Connection, job: MassJob, msg_id: str | None) -> None:
    now = utcnow()
    connection.execute(update(PushMassJob).where(PushMassJob.id == job.id)
                       .values(msg_id=int(msg_id) if msg_id else None))
    sent = connection.execute(
        update(_T).where(_T.c.mass_job_id == job.id, _ANSWERABLE)
        .values(state=RECIPIENT_SENT, sent_at=now, reason=None, errcode=None)).rowcount
    connection.commit()
    PUSH_SENT.labels(channel=MASS).inc(sent)
    if msg_id:
        _apply_stashed_finish(connection, int(msg_id))


def _record_mass_failure(connection: Connection, job: MassJob, error: WeChatAPIError,
                         give_back: bool) -> None:
    reason = "unavailable" if isinstance(error, (WeChatUnavailable, UserRateLimited)) \
        else "refused"
    if give_back:
        _give_back_allowance(connection, [r.openid for r in job.recipients], job.month)
    failed = connection.execute(
        update(_T).where(_T.c.mass_job_id == job.id, _ANSWERABLE)
        .values(state=RECIPIENT_FAILED, reason=reason, errcode=error.errcode)).rowcount
    connection.commit()
    PUSH_FAILED.labels(channel=MASS, errcode=outcome_label(error)).inc(failed)
    log.warning("push mass job failed", extra={"mass_job_id": job.id, "errcode": error.errcode})


def resubmit_mass_job(job_id: int) -> None:
    """Call a mass job again whose worker died before WeChat's answer was kept (the sweep
    found its recipients claimed too long): 45065 means it went, success that it goes now."""
    with db.engine.connect() as connection:
        job_row = connection.execute(
            select(PushMassJob.push_id, PushMassJob.client_msg_id, PushMassJob.msg_id,
                   PushMassJob.submitted_at).where(PushMassJob.id == job_id)).first()
        if job_row is None:
            return
        push_id, client_msg_id, msg_id, submitted_at = job_row
        recipients = [Recipient(*row) for row in connection.execute(
            select(_T.c.id, _T.c.openid).where(_T.c.mass_job_id == job_id,
                                               _T.c.state == RECIPIENT_CLAIMED)
            .order_by(_T.c.id))]
        plan = _plan(connection, push_id)
        if not recipients or plan is None:
            return
        job = MassJob(job_id, client_msg_id, recipients, _month(submitted_at or utcnow()))
        if msg_id is not None:
            _record_mass_sent(connection, job, str(msg_id))
            return
        if len(recipients) < messages.MASS_MIN_OPENIDS:
            # Never called with fewer than two: part of it was recorded; the rest is unknown.
            _interrupt(connection, [r.delivery_id for r in recipients])
            return
        try:
            _call_mass(connection, plan, job, None, current_app.config)
        except QuotaStop as stop:
            # WeChat refused this call before looking at its clientmsgid? Unknowable: the
            # recipients stay claimed for the next sweep, after the quota's reset.
            _pause_for_quota(plan, stop)


def _interrupt(connection: Connection, ids: list[int]) -> None:
    connection.execute(update(_T).where(_T.c.id.in_(ids), _T.c.state == RECIPIENT_CLAIMED)
                       .values(state=RECIPIENT_FAILED, reason=INTERRUPTED))
    connection.commit()
    PUSH_FAILED.labels(channel=MASS, errcode=INTERRUPTED).inc(len(ids))


# -- MASSSENDJOBFINISH ----------------------------------------------------------------------------

_FINISH_STASH = "pushes:mass-finish:{msg_id}"
_FINISH_STASH_TTL = 86400


def _finish_values(data: Mapping[str, Any]) -> dict[str, Any]:
    def count(name: str) -> int | None:
        try:
            return int(data[name])
        except (KeyError, TypeError, ValueError):
            return None

    return {"status": str(data.get("Status") or "")[:64], "total_count": count("TotalCount"),
            "filter_count": count("FilterCount"), "sent_count": count("SentCount"),
            "error_count": count("ErrorCount"), "finished_at": utcnow()}


def on_mass_job_finished(inbound: Inbound) -> None:
    """MASSSENDJOBFINISH: WeChat's status and counts, kept on the job with that msg_id, in
    the callback's transaction. The event can beat our record of the msg_id (it is pushed
    as the job ends, and a small job ends at once): it then waits in Redis, and whichever
    of the two comes second applies it (``_record_mass_sent``)."""
    try:
        msg_id = int(inbound.data["MsgID"])
    except (KeyError, TypeError, ValueError):
        log.warning("MASSSENDJOBFINISH without a usable MsgID")
        return
    values = _finish_values(inbound.data)
    statement = update(PushMassJob).where(PushMassJob.msg_id == msg_id).values(**values)
    if db.session.execute(statement).rowcount:
        return
    try:
        current_app.extensions["redis"].set(
            _FINISH_STASH.format(msg_id=msg_id),
            _encode(inbound.data), ex=_FINISH_STASH_TTL)
    except RedisError:
        log.warning("MASSSENDJOBFINISH for an unknown msg_id not kept", exc_info=True)
    db.session.execute(statement)  # the record may have landed meanwhile


def _encode(data: Mapping[str, Any]) -> str:
    keys = ("Status", "TotalCount", "FilterCount", "SentCount", "ErrorCount")
    return json.dumps({key: data.get(key) for key in keys})


def _apply_stashed_finish(connection: Connection, msg_id: int) -> None:
    try:
        raw = current_app.extensions["redis"].getdel(_FINISH_STASH.format(msg_id=msg_id))
    except RedisError:
        return
    if raw:
        connection.execute(update(PushMassJob).where(PushMassJob.msg_id == msg_id)
                           .values(**_finish_values(json.loads(raw))))
        connection.commit()


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:masssendjobfinish")(on_mass_job_finished)


# -- pausing for a quota --------------------------------------------------------------------------

def _pause_for_quota(plan: Plan, stop: QuotaStop) -> None:
    """The push pauses until WeChat's reset; the sweep resumes it then, by itself."""
    now = utcnow()
    with db.engine.connect() as connection:
        paused = connection.execute(
            update(Push).where(Push.id == plan.id, Push.state == SENDING)
            .values(state=PAUSED, pause_reason=stop.reason, paused_until=stop.until,
                    updated_at=now)).rowcount
        connection.commit()
    if paused:
        PUSH_QUOTA_PAUSES.labels(channel=plan.channel, reason=stop.reason).inc()
        log.error("push paused: WeChat quota used up, resumes by itself at the reset",
                  extra={"push_id": plan.id, "channel": plan.channel, "reason": stop.reason,
                         "until": stop.until.isoformat()})


# -- the statements of the hot path ---------------------------------------------------------------

_T = PushDelivery.__table__
_CLAIMABLE = _T.alias("claimable")
# A claimed row, or one the sweep gave up on while its worker was merely slow: the answer
# that did come is the truth.
_ANSWERABLE = or_(_T.c.state == RECIPIENT_CLAIMED,
                  and_(_T.c.state == RECIPIENT_FAILED, _T.c.reason == INTERRUPTED))


def _chosen(push_id: Any, size: Any, source: FromClause = _CLAIMABLE,
            *facts: ColumnElement[Any]) -> CTE:
    """The next ``size`` pending recipients of the push (and ``facts`` of ``source``, a join
    on them), locked by primary key, skipping rows another worker is claiming right now
    rather than waiting (SKIP LOCKED; SQLite runs one writer at a time and renders no FOR
    UPDATE); the state condition of the UPDATE that uses them, checked on the locked row,
    keeps a row from being claimed twice. ix_push_delivery_push_id_state_id is the way in.

    A materialized CTE, not ``IN (subquery)``: PostgreSQL may run a LIMIT ... SKIP LOCKED
    subquery once per outer row and so claim more than ``size`` (seen: all of them)."""
    return (select(_CLAIMABLE.c.id, *facts).select_from(source)
            .where(_CLAIMABLE.c.push_id == push_id, _CLAIMABLE.c.state == RECIPIENT_PENDING)
            .order_by(_CLAIMABLE.c.id).limit(size)
            .with_for_update(skip_locked=True, of=_CLAIMABLE)
            .cte("chosen").prefix_with("MATERIALIZED"))


def _claim(connection: Connection, push_id: int, size: int) -> list[Recipient]:
    """The next ``size`` pending recipients of the push, claimed and committed."""
    chosen = _chosen(push_id, size)
    rows = connection.execute(
        update(_T).where(_T.c.id.in_(select(chosen.c.id)), _T.c.state == RECIPIENT_PENDING)
        .values(state=RECIPIENT_CLAIMED, claimed_at=utcnow())
        .returning(_T.c.id, _T.c.openid)).all()
    connection.commit()
    return sorted(Recipient(*row) for row in rows)


def _claim_sendable_statement(plan: Plan) -> Update:
    """The claim of the next batch of a customer-service or subscription-notice push, its
    rules applied in the same statement: each recipient locked is claimed, or skipped with
    the reason the first rule refusing it gives. Built once per thread; bound: ``b_push``,
    ``b_size``, ``b_now`` and (custom) ``b_window_opened``."""
    follower = Follower.__table__
    source = _CLAIMABLE.outerjoin(follower, follower.c.openid == _CLAIMABLE.c.openid)
    # No follower row (WeChat never told us of a follow) is not following either.
    refusals: list[tuple[ColumnElement[bool], str]] = [
        (follower.c.subscribed.is_not(True), "unsubscribed")]
    if plan.channel == CUSTOM:
        last = follower.c.last_message_at
        opened = bindparam("b_window_opened", type_=UTCDateTime())
        refusals.append((or_(last.is_(None), last < opened), "outside_48h"))
    else:
        grant = SubscriptionGrant.__table__
        source = source.outerjoin(grant, and_(
            grant.c.openid == _CLAIMABLE.c.openid,
            grant.c.template_id == plan.message.get("template_id")))
        refusals.append((func.coalesce(grant.c.status, "") != "accept", "no_grant"))
    chosen = _chosen(bindparam("b_push"), bindparam("b_size", type_=Integer()), source,
                     case(*refusals).label("refusal"))
    return (update(_T).where(_T.c.id == chosen.c.id, _T.c.state == RECIPIENT_PENDING)
            .values(state=case((chosen.c.refusal.is_(None), RECIPIENT_CLAIMED),
                               else_=RECIPIENT_SKIPPED),
                    reason=chosen.c.refusal, claimed_at=bindparam("b_now", type_=UTCDateTime()))
            .returning(_T.c.id, _T.c.openid, _T.c.reason))


def _claim_sendable(connection: Connection, plan: Plan, claim: Update, size: int,
                    window: timedelta, outcomes: list[Outcome]) -> list[Recipient] | None:
    """In one commit: ``outcomes`` (the last batch's answers) recorded, and the next
    ``size`` pending recipients claimed by ``claim`` (``_claim_sendable_statement``), those
    a rule refuses skipped with their reason (unfollowed; custom: no message within the
    48-hour window; subscribe: no accepted grant). The claimed ones to send, in id order
    ([] when a rule refused them all); None when none was left to claim."""
    _write(connection, outcomes)
    now = utcnow()
    rows = connection.execute(claim, {"b_push": plan.id, "b_size": size, "b_now": now,
                                      "b_window_opened": now - window}).all()
    connection.commit()
    skips = [Outcome(delivery_id, RECIPIENT_SKIPPED, reason)
             for delivery_id, _openid, reason in rows if reason is not None]
    _count(plan.channel, outcomes + skips)
    if not rows:
        return None
    return sorted(Recipient(delivery_id, openid)
                  for delivery_id, openid, reason in rows if reason is None)


def _release(connection: Connection, recipients: list[Recipient], commit: bool = True) -> None:
    """Back to pending: claimed, never called (or refused by WeChat for a quota)."""
    if recipients:
        connection.execute(
            update(_T).where(_T.c.id.in_([r.delivery_id for r in recipients]),
                             _T.c.state == RECIPIENT_CLAIMED)
            .values(state=RECIPIENT_PENDING, claimed_at=None))
    if commit:
        connection.commit()


_RECORD = (update(_T)
           .where(_T.c.id == bindparam("b_id"), _ANSWERABLE)
           .values(state=bindparam("b_state"), reason=bindparam("b_reason"),
                   errcode=bindparam("b_errcode", type_=Integer()),
                   sent_at=bindparam("b_sent_at", type_=UTCDateTime())))


def _write(connection: Connection, outcomes: list[Outcome]) -> None:
    """What became of these recipients, in one statement (executemany), uncommitted."""
    if outcomes:
        connection.execute(_RECORD, [
            {"b_id": o.delivery_id, "b_state": o.state, "b_reason": o.reason,
             "b_errcode": o.errcode, "b_sent_at": o.sent_at} for o in outcomes])


def _count(channel: str, outcomes: list[Outcome]) -> None:
    """The metrics of outcomes committed."""
    counts = Counter((o.state, o.reason, o.errcode) for o in outcomes)
    for (state, reason, errcode), count in counts.items():
        if state == RECIPIENT_SENT:
            PUSH_SENT.labels(channel=channel).inc(count)
        elif state == RECIPIENT_SKIPPED:
            PUSH_SKIPPED.labels(channel=channel, reason=reason).inc(count)
        else:
            label = str(errcode) if errcode is not None else (reason or "unknown")
            PUSH_FAILED.labels(channel=channel, errcode=label).inc(count)


def _record(connection: Connection, channel: str, outcomes: list[Outcome]) -> None:
    """What became of these recipients, in one statement, and commit."""
    _write(connection, outcomes)
    connection.commit()
    _count(channel, outcomes)
