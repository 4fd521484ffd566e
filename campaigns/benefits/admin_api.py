"""The console's JSON API for campaigns (``/admin/api``, staff bearer tokens). Thin: parse,
call the catalogue's operations (each change with its audit entry), commit, shape the answer.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request

from campaigns.benefits import catalogue, operations
from campaigns.benefits.models import PUBLISHED
from campaigns.console.auth import staff_api
from core.db import db
from core.errors import ApiError
from core.jsonapi import parse_json, read_body

bp = Blueprint("benefits_admin_api", __name__, url_prefix="/admin/api")


@bp.put("/campaigns/<slug>")
@staff_api("marketer")
def put_campaign(slug: str) -> tuple[Response, int]:
    spec = catalogue.parse(parse_json(read_body(current_app.config["API_MAX_BYTES"])), slug)
    saved = operations.put(g.staff, spec)
    db.session.commit()
    return jsonify(slug=saved.campaign.slug, state=saved.campaign.state), \
        201 if saved.created else 200


@bp.post("/campaigns/<slug>/publish")
@staff_api("approver")
def publish(slug: str) -> Response:
    operations.publish(g.staff, slug)
    db.session.commit()
    return jsonify(state=PUBLISHED)


@bp.post("/campaigns/<slug>/options/<key>/codes")
@staff_api("marketer")
def add_codes(slug: str, key: str) -> Response:
    if request.mimetype != "text/plain":
        raise ApiError(415, "unsupported_media_type", "send the codes as text/plain, one a line")
    result = operations.add_codes(g.staff, slug, key,
                                  read_body(current_app.config["BENEFIT_CODES_MAX_BYTES"]))
    db.session.commit()
    return jsonify(added=result.added, duplicates=result.duplicates, stock=result.stock)


@bp.get("/campaigns/<slug>")
@staff_api("viewer")
def get_campaign(slug: str) -> Response:
    return jsonify(catalogue.describe_with_stock(catalogue.find(slug)))
