"""The console's JSON API for pushes (``/admin/api/pushes``, staff bearer tokens). Thin:
parse, call ``plans`` (each change with its audit entry), commit, shape the answer.

Roles as the contract has them: marketers create, pause, resume and cancel; approvers
approve (never their own push: 403); viewers read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, stream_with_context

from campaigns.console.auth import staff_api
from campaigns.console.models import Staff
from campaigns.pushes import plans
from campaigns.pushes.models import Push
from core.db import db
from core.jsonapi import parse_json, read_body

bp = Blueprint("pushes_admin_api", __name__, url_prefix="/admin/api/pushes")


def summary(push: Push) -> dict[str, Any]:
    """The contract's answer of ``GET /admin/api/pushes/<id>``, and more of the push."""
    return {"id": push.id, **plans.describe(push), **plans.progress(push).as_dict()}


@bp.post("")
@staff_api("marketer")
def create() -> tuple[Response, int]:
    push = plans.create_push(g.staff, parse_json(read_body(current_app.config["API_MAX_BYTES"])))
    db.session.commit()
    return jsonify(id=push.id, state=push.state), 201


@bp.get("")
@staff_api("viewer")
def index() -> Response:
    return jsonify(pushes=[{"id": push.id, **plans.describe(push)} for push in plans.pushes()])


@bp.get("/<int:push_id>")
@staff_api("viewer")
def show(push_id: int) -> Response:
    return jsonify(summary(plans.find(push_id)))


def deliveries_response(push: Push) -> Response:
    """The push's recipients' CSV, streamed (also the console's download)."""
    return Response(stream_with_context(plans.deliveries_csv(push)), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="push-{push.id}-deliveries.csv"'})


@bp.get("/<int:push_id>/deliveries.csv")
@staff_api("viewer")
def deliveries(push_id: int) -> Response:
    return deliveries_response(plans.find(push_id))


@bp.post("/<int:push_id>/approve")
@staff_api("approver")
def approve(push_id: int) -> Response:
    return _change(push_id, plans.approve)


@bp.post("/<int:push_id>/pause")
@staff_api("marketer")
def pause(push_id: int) -> Response:
    return _change(push_id, plans.pause)


@bp.post("/<int:push_id>/resume")
@staff_api("marketer")
def resume(push_id: int) -> Response:
    return _change(push_id, plans.resume)


@bp.post("/<int:push_id>/cancel")
@staff_api("marketer")
def cancel(push_id: int) -> Response:
    return _change(push_id, plans.cancel)


def _change(push_id: int, change: Callable[[Staff, Push], None]) -> Response:
    """One of a push's state changes by the caller, committed: the push's new state."""
    push = plans.find(push_id)
    change(g.staff, push)
    db.session.commit()
    return jsonify(state=push.state)
