"""Production refuses to start on a missing secret or a developer placeholder."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import DEV_PLACEHOLDERS


class ConfigError(SystemExit):
    """The configuration cannot run; the message lists every setting at fault.

    A SystemExit, so that ``flask``, ``gunicorn`` or a script stops with the
    message alone (exit status 1) instead of a traceback per missing setting.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("the configuration cannot run:\n" +
                         "\n".join(f"  - {problem}" for problem in self.problems))

    def __str__(self) -> str:
        return str(self.code)


REQUIRED_IN_PRODUCTION = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DATA_ENCRYPTION_KEY",
    "PII_INDEX_KEY",
    *DEV_PLACEHOLDERS,
    "SMS_GATEWAY_URL",
)

_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


def _aes_key_problem(value: str) -> str | None:
    """An EncodingAESKey is 43 characters of [A-Za-z0-9] (base64 of 32 bytes, '=' dropped)."""
    return None if _AES_KEY.fullmatch(value or "") else \
        "WECHAT_AES_KEY must be 43 characters of [A-Za-z0-9]"


def check_wechat_aes_key(value: str) -> None:
    problem = _aes_key_problem(value)
    if problem:
        raise ConfigError([problem])


def _production_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in REQUIRED_IN_PRODUCTION:
        if not settings.get(key):
            problems.append(f"production requires {key}")
        elif DEV_PLACEHOLDERS.get(key) == settings[key]:
            problems.append(f"production refuses the development placeholder in {key}")
    if settings["DATABASE_URL"].startswith("sqlite"):
        problems.append("production requires DATABASE_URL to name PostgreSQL, not SQLite")
    if settings["SECRET_KEY"] and len(settings["SECRET_KEY"]) < 32:
        problems.append("production requires SECRET_KEY of at least 32 characters")
    if Path(settings["REGION_IP_RANGES_FILE"]).name == "regions_sample.csv":
        problems.append("production refuses the sample REGION_IP_RANGES_FILE")
    if not settings["PUBLIC_BASE_URL"].startswith("https://"):
        problems.append("production requires PUBLIC_BASE_URL (https://…) for OAuth redirects")
    if "local-dev" in settings["HOME_REGIONS"]:
        problems.append("production refuses 'local-dev' (private ranges) in HOME_REGIONS")
    problems += _cookie_problems(settings)
    problems += _password_hash_problems(settings["STAFF_PASSWORD_HASH"])
    return problems


def _cookie_problems(settings: Mapping[str, Any]) -> list[str]:
    """The session cookie carries the console's login and the H5 pages': https only, out of
    JavaScript's reach, and not sent along with other sites' requests."""
    problems = []
    if settings["SESSION_COOKIE_SECURE"] is not True:
        problems.append("production requires SESSION_COOKIE_SECURE=true (cookies over https only)")
    if settings["SESSION_COOKIE_HTTPONLY"] is not True:
        problems.append("production requires SESSION_COOKIE_HTTPONLY=true")
    if settings["SESSION_COOKIE_SAMESITE"] not in ("Lax", "Strict"):
        problems.append("production requires SESSION_COOKIE_SAMESITE Lax or Strict")
    return problems


# OWASP's smallest argon2id configuration (19 MiB, 2 passes, 1 lane).
_MIN_PASSWORD_HASH = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}


def _password_hash_problems(parameters: Any) -> list[str]:
    if not isinstance(parameters, Mapping) or set(parameters) != set(_MIN_PASSWORD_HASH) or any(
            not isinstance(parameters[name], int) or parameters[name] < least
            for name, least in _MIN_PASSWORD_HASH.items()):
        return [f"production requires STAFF_PASSWORD_HASH of at least {_MIN_PASSWORD_HASH}"]
    return []


def validate(settings: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every setting that cannot run in this profile, at once."""
    problems = [problem for problem in [_aes_key_problem(settings["WECHAT_AES_KEY"])] if problem]
    if settings["APP_ENV"] == "production":
        problems += _production_problems(settings)
    if problems:
        raise ConfigError(problems)
