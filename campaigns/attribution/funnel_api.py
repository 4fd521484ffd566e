"""The funnel in the console's JSON API: a channel's funnel (viewers; a manager its own,
another's is 403 and audited, through ``channels.channel_for``) and the ranking of every
channel, as JSON or as a CSV export (viewers). Read-only: nothing to audit but refusals.

A period is ``from`` and ``to``, Asia/Shanghai days ``YYYY-MM-DD``, both included, either
optional (all time); anything else is 400 ``invalid_period``. The ladder's roles may ask
for the funnel of any code, with or without a ``Channel`` of it: followers count for the
scene they came through whether or not the console knew it (the ranking lists such codes).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from campaigns.attribution import channels, funnel
from campaigns.console import roles
from campaigns.console import staff as staff_accounts
from campaigns.console.auth import staff_api
from core.errors import ApiError

bp = Blueprint("attribution_funnel_api", __name__, url_prefix="/admin/api")

# A QR scene as WeChat hands it to the callback (and Follower.first_scene keeps it).
SCENE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def period_arg(args: Any) -> funnel.Period:
    try:
        return funnel.period_of(args.get("from", "").strip(), args.get("to", "").strip())
    except ValueError as exc:
        raise ApiError(400, "invalid_period", str(exc)) from None


def checked_code(actor: Any, code: str) -> str:
    """The code whose funnel ``actor`` may read: a manager's own channel (404 / 403
    audited), for the ladder's roles any scene."""
    if actor.role == roles.MANAGER:
        return channels.channel_for(actor, code).code
    if not SCENE.fullmatch(code):
        raise ApiError(404, "unknown_channel", "there is no channel with this code")
    return code


def ranking_args(args: Any) -> dict[str, Any]:
    """``by`` (binds or transacting) and ``branch`` of a ranking's query string; 400 else."""
    by = args.get("by", "binds").strip() or "binds"
    if by not in funnel.RANK_BY:
        raise ApiError(400, "invalid_filter", "by must be binds or transacting")
    branch = args.get("branch", "").strip() or None
    if branch is not None and not staff_accounts.BRANCH.fullmatch(branch):
        raise ApiError(400, "invalid_filter", "branch must be a branch code")
    return {"by": by, "branch": branch}


def csv_response(text: str, filename: str) -> Response:
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/channels/<code>/funnel")
@staff_api(roles.VIEWER, also=(roles.MANAGER,))
def channel_funnel(code: str) -> Response:
    period = period_arg(request.args)
    return jsonify(funnel.funnel(checked_code(g.staff, code), period).as_dict())


@bp.get("/funnel/ranking")
@staff_api(roles.VIEWER)
def ranking() -> Response:
    period = period_arg(request.args)
    filters = ranking_args(request.args)
    output = request.args.get("format", "json").strip() or "json"
    if output not in ("json", "csv"):
        raise ApiError(400, "invalid_filter", "format must be json or csv")
    rows = funnel.ranking(period, **filters)
    if output == "csv":
        return csv_response(funnel.ranking_csv(rows), "funnel-ranking.csv")
    return jsonify(by=filters["by"], branch=filters["branch"],
                   channels=[{"code": row.code, "name": row.name, "kind": row.kind,
                              "branch": row.branch, **row.funnel.as_dict()} for row in rows])
