"""Staff accounts: creation, passwords, console logins with lockout, and API tokens.

Passwords are hashed with argon2id (``STAFF_PASSWORD_HASH``: memory-hard, so a stolen
table is slow to crack even on GPUs); a hash made under older parameters is redone at
the next successful login. A password is never stored, logged or audited in clear.

A login counts against ``RATE_LIMITS["staff_login"]`` per account and per client
address; only failures count (a success gives its attempt back, ``limits.refund``), and
unknown accounts count like known ones and get the same answer after the same work, so
neither the message, the lockout nor the time taken tells whether an account exists.

API tokens are 256 random bits (``secrets.token_urlsafe``), shown once; only their SHA-256
is kept, so a leaked table holds no usable token. They expire after ``STAFF_TOKEN_TTL``.

Services: they take the actor (a ``Staff``, or ``audit.CLI``) and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import bindparam, func, select, update

from campaigns.console import audit, roles, sessions
from campaigns.console.metrics import STAFF_LOGINS
from campaigns.console.models import Staff, StaffToken
from core.db import db, utcnow
from core.errors import ApiError, Refusal
from members.protection import limits

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
BRANCH = re.compile(r"[A-Za-z0-9_]{1,32}")
PASSWORD_MAX_LENGTH = 256  # beyond it a login is refused without hashing (argon2 reads it all)
_PASSWORD_MIN_DISTINCT = 6  # "aaaaaaaaaaaa" and "121212121212" are long but no secret
LOGIN_ACTION = "staff_login"  # its windows: RATE_LIMITS["staff_login"]
# last_used_at is written at most this often per token (seconds): a write per API call
# would serialise a script's calls on one row for nothing.
_TOUCH_INTERVAL = 60


# -- passwords ----------------------------------------------------------------------------------

def _hasher() -> PasswordHasher:
    return _hasher_for(**current_app.config["STAFF_PASSWORD_HASH"])


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                          parallelism=parallelism, type=Type.ID)


@lru_cache(maxsize=4)
def _decoy_hash(hasher: PasswordHasher) -> str:
    """A hash of the configured cost that no password opens: checked for unknown accounts,
    so that they take as long as known ones."""
    return hasher.hash(secrets.token_urlsafe(32))


def check_hash_parameters(parameters: object) -> None:
    """ValueError unless ``parameters`` are argon2 parameters argon2-cffi accepts."""
    if not isinstance(parameters, dict) or set(parameters) != {
            "time_cost", "memory_cost", "parallelism"}:
        raise ValueError("STAFF_PASSWORD_HASH must be {time_cost, memory_cost, parallelism}")
    try:
        _hasher_for(**parameters).hash("check")
    except Exception as exc:  # argon2 refuses bad parameters with several exception types
        raise ValueError(f"STAFF_PASSWORD_HASH: {exc}") from None


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` is too weak for ``username``'s account, or None."""
    least = current_app.config["STAFF_PASSWORD_MIN_LENGTH"]
    if len(password) < least:
        return f"the password must have at least {least} characters"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"the password must have at most {PASSWORD_MAX_LENGTH} characters"
    if password != password.strip():
        return "the password must not start or end with a space"
    if username.lower() in password.lower():
        return "the password must not contain the username"
    if len(set(password)) < _PASSWORD_MIN_DISTINCT:
        return f"the password must have at least {_PASSWORD_MIN_DISTINCT} different characters"
    return None


def check_password(account: Staff | None, password: str) -> bool:
    """Whether ``password`` opens ``account``; None (no such account) takes the same time.

    A hash made under other parameters than the configured ones is redone (the caller
    commits).
    """
    hasher = _hasher()
    if len(password) > PASSWORD_MAX_LENGTH:
        return False
    try:
        hasher.verify(account.password_hash if account else _decoy_hash(hasher), password)
    except (VerificationError, InvalidHashError):
        return False
    if account is None:
        return False
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hasher.hash(password)
    return True


# -- accounts -----------------------------------------------------------------------------------

def canonical_username(value: str) -> str:
    return value.strip().lower()


def find(username: str) -> Staff | None:
    name = canonical_username(username)
    if not USERNAME.fullmatch(name):  # no such account can exist: spare the database
        return None
    return db.session.scalar(select(Staff).where(Staff.username == name))


def create(actor: audit.Actor, username: str, role: str, password: str,
           branch: str | None = None) -> Staff:
    """A new account (400 for a bad name, role, branch or weak password; 409 if taken)."""
    username = canonical_username(username)
    if not USERNAME.fullmatch(username):
        raise ApiError(400, "invalid_username", "a username is 2 to 32 of a-z, 0-9, '.', "
                                                "'_' and '-', starting with a letter or digit")
    if role not in roles.ROLES:
        raise ApiError(400, "invalid_role", f"role must be one of {', '.join(roles.ROLES)}")
    if role == roles.MANAGER and not branch:
        raise ApiError(400, "branch_required", "a manager needs the code of its branch")
    if role != roles.MANAGER and branch:
        raise ApiError(400, "branch_not_allowed", "only a manager belongs to a branch")
    if branch and not BRANCH.fullmatch(branch):
        raise ApiError(400, "invalid_branch", "a branch code is 1 to 32 of A-Z, a-z, 0-9, '_'")
    problem = password_problem(username, password)
    if problem:
        raise ApiError(400, "weak_password", problem)
    if find(username) is not None:
        raise ApiError(409, "username_taken", f"there is already an account {username!r}")
    account = Staff(username=username, role=role, branch=branch,
                    password_hash=_hasher().hash(password))
    db.session.add(account)
    db.session.flush()  # its id, for the audit entry
    audit.record(actor, "staff.create", f"staff:{username}",
                 after={"username": username, "role": role, "branch": branch})
    return account


# -- console logins -----------------------------------------------------------------------------

def log_in(username: str, password: str, *, ip: str, local: bool) -> Staff:
    """The account ``username`` and ``password`` open, or a Refusal (kept: the audit entry
    and the counted failure): 429 ``too_many_requests`` while the account or the address
    is locked (``limits.RateLimited``, with ``retry_after``), else 401
    ``invalid_credentials`` for an unknown account, a wrong password or a disabled account
    alike. The caller commits a success (the last login, a rehash, the audit entry).
    """
    name = canonical_username(username)
    keys = {"username": name, "ip": ip}
    account = find(name)
    # An unknown name is not written to the trail: people type their password there.
    actor, target = (account, f"staff:{account.username}") if account else (audit.ANONYMOUS, None)
    try:
        limits.enforce(LOGIN_ACTION, keys, local=local)
    except limits.RateLimited as exc:
        audit.record(actor, "login_locked", target, ip=ip,
                     after={"retry_after": exc.retry_after, "locked": sorted(exc.dimensions)})
        STAFF_LOGINS.labels("locked").inc()
        raise
    if not check_password(account, password) or account is None or account.disabled:
        audit.record(actor, "login_failed", target, ip=ip)
        STAFF_LOGINS.labels("failed").inc()
        raise Refusal(401, "invalid_credentials", "wrong username or password")
    limits.refund(LOGIN_ACTION, keys, local=local)
    account.last_login_at = utcnow()
    audit.record(account, "login", target, ip=ip)
    STAFF_LOGINS.labels("success").inc()
    return account


# -- API tokens ---------------------------------------------------------------------------------

def _token_hash(token: str) -> str:
    # 256 random bits: a plain hash cannot be brute-forced, no key needed.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(actor: audit.Actor, account: Staff) -> tuple[str, StaffToken]:
    """A new bearer token of ``account`` (the token itself exists only in the answer)."""
    if account.disabled:
        raise ApiError(409, "account_disabled", f"{account.username} is disabled")
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=current_app.config["STAFF_TOKEN_TTL"])
    row = StaffToken(staff_id=account.id, token_hash=_token_hash(token),
                     expires_at=utcnow() + ttl)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "staff.token", f"staff:{account.username}",
                 after={"token_id": row.id, "expires_at": row.expires_at})
    return token, row


def revoke(actor: audit.Actor, account: Staff) -> int:
    """Revoke every live token of ``account`` and end its console logins; how many tokens."""
    now = utcnow()
    revoked = db.session.execute(
        update(StaffToken)
        .where(StaffToken.staff_id == account.id, StaffToken.revoked_at.is_(None),
               StaffToken.expires_at > now)
        .values(revoked_at=now)
    ).rowcount
    logins = sessions.close_all(account.id)
    audit.record(actor, "staff.revoke", f"staff:{account.username}",
                 after={"tokens_revoked": revoked, "console_logins_ended": logins})
    return revoked


def live_tokens(account: Staff) -> int:
    """How many tokens of ``account`` work now."""
    return db.session.scalar(
        select(func.count()).select_from(StaffToken)
        .where(StaffToken.staff_id == account.id, StaffToken.revoked_at.is_(None),
               StaffToken.expires_at > utcnow())
    )


_BY_TOKEN_HASH = select(StaffToken).where(StaffToken.token_hash == bindparam("hash"))


def authenticate_token(token: str) -> StaffToken:
    """The live token row (with its ``staff``) of a bearer token; 401 for anything else:
    none, unknown, revoked, expired, or of a disabled account."""
    row = db.session.scalar(_BY_TOKEN_HASH, {"hash": _token_hash(token)}) if token else None
    if (row is None or row.revoked_at is not None or row.expires_at <= utcnow()
            or row.staff.disabled):
        raise ApiError(401, "invalid_token", "the staff token is unknown, revoked or expired",
                       {"WWW-Authenticate": 'Bearer realm="admin"'})
    return row


def touch(row: StaffToken) -> bool:
    """Note that ``row`` was used now, at most once a minute; whether it changed."""
    now = utcnow()
    if row.last_used_at is not None and (now - row.last_used_at).total_seconds() < _TOUCH_INTERVAL:
        return False
    row.last_used_at = now
    return True
