"""Production refuses to start on a missing secret or a developer placeholder."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import DEV_PLACEHOLDERS


class ConfigError(RuntimeError):
    """The configuration cannot run; the message names the setting at fault."""


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


def check_wechat_aes_key(value: str) -> None:
    """An EncodingAESKey is 43 characters of [A-Za-z0-9] (base64 of 32 bytes, '=' dropped)."""
    if not _AES_KEY.match(value or ""):
        raise ConfigError("WECHAT_AES_KEY must be 43 characters of [A-Za-z0-9]")


def validate(settings: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the first setting that cannot run in this profile."""
    check_wechat_aes_key(settings["WECHAT_AES_KEY"])
    if settings["APP_ENV"] != "production":
        return
    for key in REQUIRED_IN_PRODUCTION:
        if not settings.get(key):
            raise ConfigError(f"production requires {key}")
        if DEV_PLACEHOLDERS.get(key) == settings[key]:
            raise ConfigError(f"production refuses the development placeholder in {key}")
    if settings["DATABASE_URL"].startswith("sqlite"):
        raise ConfigError("production requires DATABASE_URL to name PostgreSQL, not SQLite")
    if len(settings["SECRET_KEY"]) < 32:
        raise ConfigError("production requires SECRET_KEY of at least 32 characters")
    if Path(settings["REGION_IP_RANGES_FILE"]).name == "regions_sample.csv":
        raise ConfigError("production refuses the sample REGION_IP_RANGES_FILE")
    if not settings["PUBLIC_BASE_URL"].startswith("https://"):
        raise ConfigError("production requires PUBLIC_BASE_URL (https://…) for OAuth redirects")
    if "local-dev" in settings["HOME_REGIONS"]:
        raise ConfigError("production refuses 'local-dev' (private ranges) in HOME_REGIONS")
