"""The console's JSON API for audiences (``/admin/api``, staff bearer tokens). Thin: parse,
call ``audiences`` (the change with its audit entry), commit, shape the answer."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify

from campaigns.console.auth import staff_api
from campaigns.pushes import audiences
from campaigns.pushes.models import Audience
from core.db import db
from core.errors import ApiError
from core.jsonapi import object_problems, parse_json, read_body

bp = Blueprint("audiences_api", __name__, url_prefix="/admin/api")


def _body(fields: dict[str, type], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The request's JSON object of ``fields`` (their types are the service's to check, so
    its problems are all named at once); 400 for anything else."""
    body = parse_json(read_body(current_app.config["API_MAX_BYTES"]))
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    problems = [problem for problem in object_problems(body, fields, optional)
                if problem.code != "invalid_type"]
    if problems:
        first = problems[0]
        raise ApiError(400, first.code, f"{first.field} {first.reason}")
    return body


def describe(audience: Audience) -> dict[str, Any]:
    return {"id": audience.id, "name": audience.name, "filter": audience.filter,
            "size": audiences.count(audience.filter)}


@bp.post("/audiences")
@staff_api("marketer")
def create() -> tuple[Response, int]:
    body = _body({"name": str, "filter": dict})
    audience = audiences.create_audience(g.staff, body["name"], body["filter"])
    size = audiences.count(audience.filter)
    db.session.commit()
    return jsonify(id=audience.id, size=size), 201


@bp.post("/audiences/count")
@staff_api("marketer")
def count() -> Response:
    body = _body({"filter": dict})
    return jsonify(size=audiences.count(audiences.validate_filter(body["filter"])))


@bp.get("/audiences/<int:audience_id>")
@staff_api("viewer")
def show(audience_id: int) -> Response:
    return jsonify(describe(audiences.get_audience(audience_id)))
