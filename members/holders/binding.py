"""Binding a WeChat identity to a card holder, after proof by SMS code.

``start`` answers the same way, in the same time, whether or not the card and
phone belong to a holder: it always stores a challenge and always sends a code.
When they do not match, the challenge has no holder and no code can ever
confirm it. ``confirm`` allows a few tries per challenge; wrong codes on a
challenge that did match a holder (someone knows card and phone) count towards
a temporary lock of that card, and the holder is told. Failures on challenges
that matched nobody never lock a real card, so nobody can lock cards at will.

One person, one binding: the mini-program openid and the official-account
openid of the same unionid are both bound to the holder, whichever comes first.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, FromClause, bindparam, func, or_, select

from core.db import db, utcnow
from core.errors import ApiError, Refusal
from core.jobs import enqueue_after_commit
from core.kv import get_redis
from members.holders import sms
from members.holders.models import BindChallenge, Binding, CardHolder, Follower
from members.protection import audit, identity, limits
from members.protection.pii import vault
from wechat import clients
from wechat.errors import WeChatAPIError

log = logging.getLogger(__name__)

MINIAPP = "miniapp"
OFFICIAL_ACCOUNT = "oa"

CODE_SMS = "【联名卡】您的绑卡验证码为 {code}，5分钟内有效。请勿告诉他人。"
LOCK_NOTICE = "【联名卡】您的卡片绑定验证多次失败，已临时锁定。如非本人操作，请致电95500。"
REBIND_NOTICE = (
    "您的联名卡已在另一个微信账号上完成绑定，本账号已解除绑定。如非本人操作，请立即致电95500。"
)


@dataclass(frozen=True)
class Actor:
    """Who is asking: one openid of one app, as proven by a login or OAuth."""

    app: str
    openid: str
    unionid: str | None = None


@dataclass(frozen=True)
class Origin:
    """Where the request came from, for limits and the audit trail."""

    ip: str
    region: str | None
    local: bool


def _code_digest(challenge_id: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _invalid(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


# -- start --------------------------------------------------------------------------------------

def start(actor: Actor, origin: Origin, card_no: str, phone: str) -> str:
    """Send a code to ``phone`` and return the challenge id (identical for every outcome)."""
    try:
        card_no = identity.normalize_card(card_no)
        phone = identity.normalize_phone(phone)
    except identity.InvalidField as exc:
        raise _invalid(f"invalid_{exc.field}", f"{exc.field} is not valid") from exc
    limits.enforce("bind_start", {"openid": actor.openid, "card": card_no, "phone": phone,
                                  "ip": origin.ip}, local=origin.local)
    pii = vault()
    card_index = pii.blind_index("card", card_no)
    holder = db.session.scalar(select(CardHolder).where(CardHolder.card_index == card_index))
    matched = (
        holder is not None
        and hmac.compare_digest(holder.phone_index, pii.blind_index("phone", phone))
        and not _locked(holder)
    )
    code = f"{secrets.randbelow(10**6):06d}"
    challenge = BindChallenge(
        id=secrets.token_hex(16), app=actor.app, openid=actor.openid, unionid=actor.unionid,
        holder_id=holder.id if matched else None, card_index=card_index,
        code_hash="", expires_at=utcnow() + timedelta(seconds=current_app.config["BIND_CODE_TTL"]),
    )
    challenge.code_hash = _code_digest(challenge.id, code)
    db.session.add(challenge)
    sms.send_after_commit(phone, CODE_SMS.format(code=code))
    audit.record("bind_started", openid=actor.openid, card_index=card_index, ip=origin.ip,
                 region=origin.region, matched=matched)
    return challenge.id


def _locked(holder: CardHolder) -> bool:
    return holder.locked_until is not None and holder.locked_until > utcnow()


# -- confirm ------------------------------------------------------------------------------------

def confirm(actor: Actor, origin: Origin, challenge_id: str, code: str) -> CardHolder:
    """Check the code; on success bind the actor (and its unionid twin) to the holder."""
    limits.enforce("bind_confirm", {"openid": actor.openid, "ip": origin.ip}, local=origin.local)
    challenge = _challenge_for_update(challenge_id)
    if challenge is None or (challenge.app, challenge.openid) != (actor.app, actor.openid):
        raise _invalid("invalid_challenge", "no such challenge")  # others' look like none
    if challenge.consumed_at is not None:
        raise _invalid("challenge_used", "this code was already used")
    if challenge.expires_at <= utcnow():
        raise _invalid("challenge_expired", "the code expired; request a new one")
    if challenge.attempts >= current_app.config["BIND_CODE_MAX_TRIES"]:
        # 429 as the contract has it for too many tries; this challenge stays spent, so
        # Retry-After says when it would have expired (a new code can be asked sooner).
        left = max(1, int((challenge.expires_at - utcnow()).total_seconds()))
        raise ApiError(429, "too_many_attempts", "too many wrong codes; request a new one",
                       {"Retry-After": str(left)})
    challenge.attempts += 1
    correct = hmac.compare_digest(challenge.code_hash, _code_digest(challenge.id, code))
    holder = db.session.get(CardHolder, challenge.holder_id) if challenge.holder_id else None
    if not correct or holder is None or _locked(holder):
        _fail(actor, origin, challenge, holder)
        raise Refusal(400, "invalid_code", "the code is not correct")
    challenge.consumed_at = utcnow()
    _bind(holder, actor, origin)
    return holder


def _challenge_for_update(challenge_id: str) -> BindChallenge | None:
    if not isinstance(challenge_id, str) or len(challenge_id) != 32:
        return None
    # Row lock: two concurrent confirms of one challenge cannot both pass or both count once.
    return db.session.scalar(
        select(BindChallenge).where(BindChallenge.id == challenge_id).with_for_update()
    )


def _fail(actor: Actor, origin: Origin, challenge: BindChallenge,
          holder: CardHolder | None) -> None:
    """Count the failed try and lock the card if due; kept by the Refusal that follows."""
    audit.record("code_failed", openid=actor.openid, card_index=challenge.card_index,
                 ip=origin.ip, region=origin.region, attempt=challenge.attempts)
    if holder is not None and not _locked(holder) and _failures_reach_limit(holder):
        config = current_app.config
        holder.locked_until = utcnow() + timedelta(seconds=config["CARD_LOCK_SECONDS"])
        audit.record("card_locked", card_index=holder.card_index, ip=origin.ip,
                     region=origin.region, minutes=config["CARD_LOCK_SECONDS"] // 60)
        phone = vault().decrypt(holder.phone, "card_holder.phone")
        sms.send_after_commit(phone, LOCK_NOTICE)


def _failures_reach_limit(holder: CardHolder) -> bool:
    config = current_app.config
    key = f"bind:failures:{holder.card_index}"
    redis = get_redis()
    failures = redis.incr(key)
    if failures == 1:
        redis.expire(key, config["CARD_LOCK_WINDOW"])
    if failures >= config["CARD_LOCK_FAILURES"]:
        redis.delete(key)
        return True
    return False


# -- bindings -----------------------------------------------------------------------------------

def _active(app: str, openid: str) -> Binding | None:
    return db.session.scalar(select(Binding).where(
        Binding.app == app, Binding.openid == openid, Binding.unbound_at.is_(None)))


def _bind(holder: CardHolder, actor: Actor, origin: Origin) -> None:
    released = _release_card(holder, actor)
    attached = _attach(holder, actor.app, actor.openid, actor.unionid)
    if attached or released:
        audit.record("rebind" if released else "bind", openid=actor.openid,
                     card_index=holder.card_index, ip=origin.ip, region=origin.region,
                     app=actor.app)
    if actor.unionid:
        _link_twin(holder, actor)


def _is_person(row: Binding, actor: Actor) -> bool:
    return row.openid == actor.openid or bool(actor.unionid and row.unionid == actor.unionid)


def _release_card(holder: CardHolder, actor: Actor) -> bool:
    """The card leaves whoever else held it (both apps); they are told. True if anyone did."""
    others = [row for row in db.session.scalars(select(Binding).where(
        Binding.holder_id == holder.id, Binding.unbound_at.is_(None)))
        if not _is_person(row, actor)]
    for row in others:
        row.unbound_at = utcnow()
    for openid in {_official_account_openid(row) for row in others} - {None}:
        enqueue_after_commit(notify_rebound, openid)
    return bool(others)


def _attach(holder: CardHolder, app: str, openid: str, unionid: str | None) -> bool:
    """Bind ``openid`` of ``app`` to ``holder``; False when it already was."""
    current = _active(app, openid)
    if current is not None and current.holder_id == holder.id:
        return False
    if current is not None:  # this openid moves to another card
        current.unbound_at = utcnow()
        db.session.flush()  # the partial unique index must see the old row closed first
    db.session.add(Binding(holder_id=holder.id, app=app, openid=openid, unionid=unionid))
    return True


def _link_twin(holder: CardHolder, actor: Actor) -> None:
    """Bind the other app's openid of the same person, when WeChat told us of it."""
    if actor.app == MINIAPP:
        follower = db.session.scalar(select(Follower).where(Follower.unionid == actor.unionid))
        if follower is not None:
            _attach(holder, OFFICIAL_ACCOUNT, follower.openid, actor.unionid)


def link_follower(openid: str, unionid: str) -> None:
    """A follower's unionid became known: bind it to the holder its mini-program is bound to."""
    twin = db.session.scalar(select(Binding).where(
        Binding.unionid == unionid, Binding.app == MINIAPP, Binding.unbound_at.is_(None)))
    if twin is None:
        return
    holder = db.session.get(CardHolder, twin.holder_id)
    if _attach(holder, OFFICIAL_ACCOUNT, openid, unionid):
        audit.record("bind", openid=openid, card_index=holder.card_index, app=OFFICIAL_ACCOUNT,
                     via="unionid")


def bound_holder_id(app: ColumnElement[Any] | str, openid: ColumnElement[Any],
                    unionid: ColumnElement[Any], *,
                    correlate: FromClause | None = None) -> ColumnElement[int]:
    """The id of the holder bound to ``openid`` of ``app``, else to its ``unionid`` twin, as
    a SQL expression: of bound parameters, or of the columns of an enclosing query's table
    ``correlate`` (the bearer session's: ``members.holders.sessions.CALLER_HOLDER_ID``),
    however deep the statement nests it. NULL when there is none.

    Two subqueries, the twin's asked only when the own binding is missing, rather than one
    ordered by "own first": SQLite cannot correlate a subquery's ORDER BY.
    """
    active = Binding.unbound_at.is_(None)
    own = (select(Binding.holder_id)  # one at most: uq_binding_active_openid
           .where(active, Binding.app == app, Binding.openid == openid))
    twin = (select(Binding.holder_id)
            .where(active, Binding.unionid == unionid)  # a NULL unionid matches nothing
            .limit(1))
    if correlate is not None:
        own, twin = own.correlate(correlate), twin.correlate(correlate)
    return func.coalesce(own.scalar_subquery(), twin.scalar_subquery())


# Built once: on the hot paths (login, /me) building and keying a statement for each call
# costs as much as running it.
_ACTOR_HOLDER_ID = bound_holder_id(bindparam("app"), bindparam("openid"), bindparam("unionid"))
# The holder bound to an actor, directly or else through its unionid twin (``holder_keys``).
HOLDER_OF = select(CardHolder).where(CardHolder.id == _ACTOR_HOLDER_ID)
_BOUND = select(_ACTOR_HOLDER_ID)


def holder_keys(actor: Actor) -> dict[str, str | None]:
    """The parameters of ``HOLDER_OF`` for ``actor``."""
    return {"app": actor.app, "openid": actor.openid, "unionid": actor.unionid}


def holder_of(actor: Actor) -> CardHolder | None:
    """The holder bound to this actor, directly or else through its unionid twin (one query)."""
    return db.session.scalar(HOLDER_OF, holder_keys(actor))


def is_bound(actor: Actor) -> bool:
    """Whether ``holder_of`` would find a holder, without loading one (every login asks)."""
    return db.session.scalar(_BOUND, holder_keys(actor)) is not None


def unbind(actor: Actor, origin: Origin) -> None:
    """Unbind this person (both apps of the same unionid) from their card."""
    holder = holder_of(actor)
    if holder is None:
        return
    mine = [Binding.openid == actor.openid]
    if actor.unionid:
        mine.append(Binding.unionid == actor.unionid)
    for binding in db.session.scalars(select(Binding).where(
            Binding.holder_id == holder.id, Binding.unbound_at.is_(None), or_(*mine))):
        binding.unbound_at = utcnow()
    audit.record("unbind", openid=actor.openid, card_index=holder.card_index, ip=origin.ip,
                 region=origin.region, app=actor.app)


# -- telling the previous openid ----------------------------------------------------------------

def _official_account_openid(row: Binding) -> str | None:
    """Where a binding's owner can be told: its own OA openid, or its unionid's follower."""
    if row.app == OFFICIAL_ACCOUNT:
        return row.openid
    if row.unionid:
        return db.session.scalar(select(Follower.openid).where(Follower.unionid == row.unionid))
    return None


def notify_rebound(openid: str) -> None:
    """Job: customer-service message to the openid whose card was bound by someone else."""
    try:
        clients.official_account().message.send_text(openid, REBIND_NOTICE)
    except WeChatAPIError as exc:
        # 45015/45047: outside the 48 h window; the SMS platform remains the channel of record.
        log.warning("rebind notice not delivered", extra={"errcode": exc.errcode})
