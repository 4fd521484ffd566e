"""The console's JSON API for channels and their codes (``/admin/api``, staff bearer tokens).
Thin: parse, call ``channels`` / ``codes`` (each change audited), commit, shape the answer.

Roles: marketers create, import and deactivate; viewers read; a manager reads (and gets the
codes of) only its own channels, through ``channels.channel_for`` (another's: 403, audited).
A code's image never changes once WeChat issued it, so it is served with a long private
cache lifetime and an ETag (a browser asks again with If-None-Match: 304).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from campaigns.attribution import channels, codes
from campaigns.attribution.models import CHANNEL_KINDS
from campaigns.console import roles
from campaigns.console.auth import staff_api
from core.db import db
from core.errors import ApiError
from core.jsonapi import parse_json, read_body

bp = Blueprint("attribution_admin_api", __name__, url_prefix="/admin/api")

CSV_TYPES = ("text/csv", "application/csv")
IMAGE_CACHE = "private, max-age=31536000, immutable"
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def png_response(image: bytes) -> Response:
    """``image`` as a cacheable PNG, 304 when the browser holds it already."""
    response = Response(image, mimetype="image/png")
    response.headers["Cache-Control"] = IMAGE_CACHE
    response.set_etag(hashlib.sha256(image).hexdigest()[:32])
    return response.make_conditional(request)


def list_filters(args: Any) -> dict[str, Any]:
    """``branch``, ``kind``, ``active`` (true/false), ``after`` and ``limit`` of a channels
    list's query string; 400 for a value none of them takes."""
    filters: dict[str, Any] = {}
    for name in ("branch", "kind", "after"):
        value = args.get(name, "").strip()
        if value:
            filters[name] = value
    if filters.get("kind") not in (None, *CHANNEL_KINDS):
        raise ApiError(400, "invalid_filter", "kind must be branch, manager or campaign")
    active = args.get("active", "").strip().lower()
    if active:
        if active not in _BOOLEANS:
            raise ApiError(400, "invalid_filter", "active must be true or false")
        filters["active"] = _BOOLEANS[active]
    limit = args.get("limit", "").strip()
    if limit:
        if not limit.isdigit() or not 0 < int(limit) <= channels.PAGE_MAX:
            raise ApiError(400, "invalid_filter", f"limit must be 1 to {channels.PAGE_MAX}")
        filters["limit"] = int(limit)
    return filters


@bp.post("/channels")
@staff_api(roles.MARKETER)
def create() -> tuple[Response, int]:
    body = parse_json(read_body(current_app.config["API_MAX_BYTES"]))
    channel = channels.create_channel(g.staff, body)
    db.session.commit()
    return jsonify(channels.describe(channel)), 201


@bp.post("/channels/import")
@staff_api(roles.MARKETER)
def import_csv() -> tuple[Response, int]:
    if request.mimetype not in CSV_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the channels as text/csv: code,kind,name,branch,staff")
    raw = read_body(current_app.config["CHANNEL_IMPORT_MAX_BYTES"])
    result = channels.import_csv(g.staff, raw,
                                 max_rows=current_app.config["CHANNEL_IMPORT_MAX_ROWS"])
    db.session.commit()
    return jsonify(created=result.created, branches=result.branches), 201


@bp.post("/channels/<code>/deactivate")
@staff_api(roles.MARKETER)
def deactivate(code: str) -> Response:
    channel = channels.deactivate(g.staff, code)
    db.session.commit()
    return jsonify(channels.describe(channel))


@bp.get("/channels")
@staff_api(roles.VIEWER, also=(roles.MANAGER,))
def list_channels() -> Response:
    page = channels.list_channels(g.staff, **list_filters(request.args))
    return jsonify(channels=[channels.describe(channel) for channel in page.channels],
                   next=page.next)


@bp.get("/channels/<code>")
@staff_api(roles.VIEWER, also=(roles.MANAGER,))
def get_channel(code: str) -> Response:
    return jsonify(channels.describe(channels.channel_for(g.staff, code)))


@bp.get("/channels/<code>/qrcode.png")
@staff_api(roles.MARKETER, also=(roles.MANAGER,))
def qrcode_png(code: str) -> Response:
    stored = codes.permanent_code(channels.channel_for(g.staff, code))
    db.session.commit()  # WeChat's answer is kept, whatever happens to the response
    return png_response(codes.qr_png(stored.url))


@bp.get("/channels/<code>/miniapp-code.png")
@staff_api(roles.MARKETER, also=(roles.MANAGER,))
def miniapp_code_png(code: str) -> Response:
    image = codes.miniapp_code(channels.channel_for(g.staff, code))
    db.session.commit()
    return png_response(image)


@bp.get("/qrcodes/budget")
@staff_api(roles.VIEWER)
def qr_budget() -> Response:
    return jsonify(codes.budget())
