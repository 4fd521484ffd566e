"""Strict JSON request bodies for the APIs: one parser, the contract's errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import current_app, request

from core.errors import ApiError


def json_body(fields: Mapping[str, type], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's JSON object, holding exactly ``fields`` (of those types) and no others.

    Bodies over API_MAX_BYTES are refused (413) before they are read.
    """
    limit = current_app.config["API_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field: {unknown[0]}")
    for name, kind in fields.items():
        if name not in body:
            if name in optional:
                continue
            raise ApiError(400, "missing_field", f"{name} is required")
        # bool is an int in Python; a JSON true is never a number here.
        if not isinstance(body[name], kind) or (kind is not bool and isinstance(body[name], bool)):
            raise ApiError(400, "invalid_type", f"{name} must be {kind.__name__}")
    return body
