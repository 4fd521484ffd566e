"""Payload rules WeChat enforces on message data and mini-program pages (§3.12)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError

_DATE = r"\d{4}(?:年\d{1,2}月\d{1,2}日|-\d{1,2}-\d{1,2}|/\d{1,2}/\d{1,2})"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_TIME_POINT = rf"(?:{_DATE}\s*)?{_CLOCK}"  # a time, optionally with its date
_DATE_POINT = rf"{_DATE}(?:\s*{_CLOCK})?"  # a date, optionally with its time


def _pattern(regex: str) -> Callable[[str], bool]:
    compiled = re.compile(regex)
    return lambda value: compiled.fullmatch(value) is not None


def _span(point: str) -> Callable[[str], bool]:
    """A point in time, or two joined by `~` (WeChat allows ranges)."""
    return _pattern(rf"{point}(?:\s*~\s*{point})?")


def _name(value: str) -> bool:
    """≤10 Chinese characters, or ≤20 letters when there is no Chinese."""
    has_cjk = re.search(r"[\u4e00-\u9fff]", value) is not None
    return 0 < len(value) <= (10 if has_cjk else 20)


# Value rules by key prefix (`thing1` → `thing`); keys without a known prefix are free text.
VALUE_RULES: dict[str, Callable[[str], bool]] = {
    "thing": lambda value: 0 < len(value) <= 20,
    "number": _pattern(r"\d{1,32}(?:\.\d+)?"),
    "letter": _pattern(r"[A-Za-z]{1,32}"),
    "symbol": _pattern(r"[^\w\s]{1,5}"),
    "character_string": _pattern(r"[\x21-\x7e]{1,32}"),
    "time": _span(_TIME_POINT),
    "date": _span(_DATE_POINT),
    "amount": _pattern(r"[^\d\s]?\d{1,10}(?:\.\d+)?元?"),
    "phone_number": _pattern(r"[\d+\-() ]{1,17}"),
    "car_number": lambda value: 0 < len(value) <= 8,
    "name": _name,
    "phrase": _pattern(r"[\u4e00-\u9fff]{1,5}"),
}
PAGE = re.compile(r"[A-Za-z0-9_\-./]+")


def check_data(data: Any) -> None:
    """`{"key": {"value": "…"}}` with each value obeying its key's type rule, else 47003."""
    if not isinstance(data, dict) or not data:
        raise ApiError(47003, "data")
    for key, item in data.items():
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, str):
            raise ApiError(47003, f"data.{key}.value")
        rule = VALUE_RULES.get(key.rstrip("0123456789"))
        if rule is not None and not rule(value):
            raise ApiError(47003, f"data.{key}.value")


def check_page(page: Any, released: tuple[str, ...] | None, strict: bool) -> None:
    """41030 for a malformed page or, when a released list is configured, one not on it.

    ``strict`` (wxacode): no leading `/` and no query string. Otherwise (subscribe/send) a query
    is allowed and a leading `/` tolerated.
    """
    if not isinstance(page, str):
        raise ApiError(41030)
    path = page if strict else page.partition("?")[0].removeprefix("/")
    if not PAGE.fullmatch(path) or path.startswith("/"):
        raise ApiError(41030)
    if released is not None and path not in released:
        raise ApiError(41030)
