"""Console logins: a random id in the browser's signed session cookie, the login in Redis.

The cookie holds only the id. Redis holds ``console:login:<sha256 of the id>`` → the
account and the time of the login; the key expires after ``CONSOLE_IDLE_TIMEOUT`` seconds
without a request (each request renews it), so idleness is judged by the server, never by
a cookie the browser could keep or replay. A login also ends ``CONSOLE_MAX_AGE`` seconds
after it began, however active. Logging out deletes it, so a copied cookie dies with the
logout, and ``close_all`` (``staff revoke``) ends every login of an account through the
account's set of ids. Losing Redis logs everyone out, nothing more.

Plain arguments in, nothing read from the request: ``campaigns.console.auth`` keeps the
id in Flask's session.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from flask import current_app

from core.kv import get_redis

_LOGIN = "console:login:{}"
_ACCOUNT = "console:staff:{}"


@dataclass(frozen=True)
class ConsoleLogin:
    staff_id: int
    login_at: float  # unix time


def _key(login_id: str) -> str:
    return _LOGIN.format(hashlib.sha256(login_id.encode()).hexdigest())


def open_login(staff_id: int) -> str:
    """A new login of ``staff_id``; the id to keep in the browser's session."""
    config = current_app.config
    login_id = secrets.token_urlsafe(32)
    key, account = _key(login_id), _ACCOUNT.format(staff_id)
    pipeline = get_redis().pipeline()
    pipeline.hset(key, mapping={"staff_id": staff_id, "login_at": time.time()})
    pipeline.expire(key, config["CONSOLE_IDLE_TIMEOUT"])
    pipeline.sadd(account, key)
    # Every login in the set is over by then; the set goes with the last of them.
    pipeline.expire(account, config["CONSOLE_MAX_AGE"])
    pipeline.execute()
    return login_id


def resume(login_id: str) -> ConsoleLogin | None:
    """The live login of ``login_id``, renewed for another idle period; None once it ended
    (idle, too old, logged out, revoked, or never was)."""
    config = current_app.config
    key = _key(login_id)
    pipeline = get_redis().pipeline()
    pipeline.hgetall(key)
    pipeline.expire(key, config["CONSOLE_IDLE_TIMEOUT"])  # no-op when the key is gone
    fields, _ = pipeline.execute()
    if not fields:
        return None
    login = ConsoleLogin(staff_id=int(fields[b"staff_id"]), login_at=float(fields[b"login_at"]))
    if time.time() - login.login_at > config["CONSOLE_MAX_AGE"]:
        get_redis().delete(key)
        return None
    return login


def close(login_id: str) -> None:
    """End the login (a logout)."""
    get_redis().delete(_key(login_id))


def close_all(staff_id: int) -> int:
    """End every login of ``staff_id``; how many were live."""
    redis = get_redis()
    account = _ACCOUNT.format(staff_id)
    keys = list(redis.smembers(account))
    ended = redis.delete(*keys) if keys else 0
    redis.delete(account)
    return ended
