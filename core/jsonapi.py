"""Strict JSON request bodies for the APIs: one parser, the contract's errors.

``json_body`` serves the member API (one object per request). The pieces it is
made of serve other bodies too (the core-banking feed takes an object or a
list of them): ``read_body`` (size cap before reading), ``parse_json`` (no
duplicate keys, no NaN/Infinity) and ``object_problems`` (exact fields, exact
types, every problem of an object rather than the first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, request

from core.errors import ApiError

# A field's accepted type: one type, or a tuple of them (``(int, type(None))`` for nullable).
FieldType = type | tuple[type, ...]
_TIME_MAX_CHARS = 40  # "2026-11-21T12:00:00.123456+08:00" is 32
# Times before 2000 or after 2099 are faults upstream; the bound also keeps conversion to
# UTC clear of datetime's year 1 / 9999 edges.
TIME_YEARS = range(2000, 2100)


@dataclass(frozen=True)
class FieldProblem:
    """One way a JSON object is not what was asked; names the field, never its value."""

    code: str  # unknown_field | missing_field | invalid_type
    field: str
    reason: str


def read_body(limit: int) -> bytes:
    """The raw request body, refused (413) over ``limit`` bytes before it is read.

    The declared Content-Length is checked first; the read is bounded anyway, so
    a chunked body or a lying header cannot make the server buffer more.
    """
    if (request.content_length or 0) > limit:
        raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"amount": 1, "amount": 9} means one thing to us and maybe another to the sender's
    # parser; a signed or validated body must have one reading.
    body = dict(pairs)
    if len(body) != len(pairs):
        raise ValueError("duplicate key")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    """No string in ``value`` holds a lone surrogate ("\\ud800" is valid JSON, not text)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def parse_json(raw: bytes) -> Any:
    """Strict JSON: duplicate keys, NaN/Infinity (Python extensions) and strings that are no
    text (lone surrogates, which no database or log can store) are refused (400)."""
    try:
        body = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    if not _encodable(body):
        raise ApiError(400, "invalid_json", "the body holds a string that is not text")
    return body


def utc_time(value: str) -> datetime:
    """An ISO-8601 date and time carrying its UTC offset, in UTC; ValueError naming the rule
    it breaks (never the value).

    A time without an offset is refused: our senders run on Beijing time, we on UTC, and
    a naive time is 8 hours ambiguous.
    """
    if len(value) > _TIME_MAX_CHARS:
        raise ValueError("is too long for an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 date and time") from None
    if moment.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. +08:00")
    if moment.year not in TIME_YEARS:
        raise ValueError(f"must be within the years {TIME_YEARS.start}-{TIME_YEARS.stop - 1}")
    return moment.astimezone(UTC)


def _type_name(kind: FieldType) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", bool: "a boolean", float: "a number",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def type_ok(value: Any, kind: FieldType) -> bool:
    """``isinstance``, except that a JSON true/false is never a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def object_problems(body: Any, fields: Mapping[str, FieldType],
                    optional: frozenset[str] = frozenset()) -> list[FieldProblem]:
    """Every way ``body`` is not an object of exactly ``fields`` (of those types); [] if none."""
    if not isinstance(body, dict):
        return [FieldProblem("invalid_type", "", "must be a JSON object")]
    problems = [FieldProblem("unknown_field", name, "is not a known field")
                for name in sorted(set(body) - set(fields))]
    for name, kind in fields.items():
        if name not in body:
            if name not in optional:
                problems.append(FieldProblem("missing_field", name, "is required"))
        elif not type_ok(body[name], kind):
            problems.append(FieldProblem("invalid_type", name, f"must be {_type_name(kind)}"))
    return problems


def json_body(fields: Mapping[str, type], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's JSON object, holding exactly ``fields`` (of those types) and no others.

    Bodies over API_MAX_BYTES are refused (413) before they are read.
    """
    body = parse_json(read_body(current_app.config["API_MAX_BYTES"]))
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    problems = object_problems(body, fields, optional)
    if problems:
        first = problems[0]
        raise ApiError(400, first.code, f"{first.field} {first.reason}")
    return body
