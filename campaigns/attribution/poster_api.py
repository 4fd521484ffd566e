"""The console's JSON API for posters (``/admin/api``, staff bearer tokens): a channel's
poster, a branch's posters as one ZIP (at once, or built in the background with progress),
and campaigns' poster backgrounds. Thin: parse, call the services, commit, answer.

Roles: marketers for everything; a manager gets its own channels' posters only
(``channels.channel_for``: another's is 403, audited). A poster is served with its digest
as ETag and ``private, no-cache``: the same URL shows a new poster once its headline
changes, and an unchanged one costs the browser a 304.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file

from campaigns.attribution import (
    channel_posters,
    channels,
    poster_backgrounds,
    poster_batches,
    posters,
)
from campaigns.console import roles
from campaigns.console.auth import staff_api
from core.db import db
from core.errors import ApiError
from core.jsonapi import read_body

bp = Blueprint("poster_api", __name__, url_prefix="/admin/api")

POSTER_CACHE = "private, no-cache"
ZIP_TYPE = "application/zip"


def campaign_arg() -> str | None:
    """``?campaign=<slug>``; absent or empty: the default headline."""
    return request.args.get("campaign", "").strip() or None


def poster_response(poster: posters.Poster, code: str) -> Response:
    """The poster's PNG (``?download=1``: as the attachment ``<code>.png``), 304 for a
    browser that holds it already."""
    response = send_file(poster.path, mimetype="image/png", etag=poster.digest,
                         conditional=True, last_modified=None, max_age=None,
                         as_attachment=request.args.get("download") == "1",
                         download_name=f"{code}.png")
    response.headers["Cache-Control"] = POSTER_CACHE
    return response


def zip_response(source: Path | BinaryIO, branch: str) -> Response:
    """A branch's ZIP, from the store or from a temporary file just written (closed, and so
    gone, once sent)."""
    if not isinstance(source, Path):
        source.seek(0)
    response = send_file(source, mimetype=ZIP_TYPE, as_attachment=True,
                         download_name=f"posters-{branch}.zip", conditional=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/channels/<code>/poster.png")
@staff_api(roles.MARKETER, also=(roles.MANAGER,))
def channel_poster(code: str) -> Response:
    channel = channels.channel_for(g.staff, code)
    spec = channel_posters.channel_spec(channel, channel_posters.content_of(campaign_arg()))
    db.session.commit()  # a permanent code asked of WeChat just now
    return poster_response(posters.ensure(spec), channel.code)


def branch_zip_file(branch: str) -> BinaryIO:
    """The branch's posters written to a temporary file (gone once closed); 404
    ``unknown_branch`` when it has no active channel."""
    content = channel_posters.content_of(campaign_arg())
    entries = channel_posters.specs_for(channel_posters.branch_channels(branch), content)
    db.session.commit()  # codes asked of WeChat for channels that had none
    if not entries:
        raise ApiError(404, "unknown_branch", "the branch has no active channel")
    root = posters.store()
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    # Closed by the response once sent (send_file), and so removed.
    file = tempfile.TemporaryFile(dir=root / "tmp", prefix="zip-")  # noqa: SIM115
    try:
        channel_posters.write_zip(file, entries, root)
    except BaseException:
        file.close()
        raise
    return file


@bp.get("/branches/<branch>/posters.zip")
@staff_api(roles.MARKETER)
def branch_posters(branch: str) -> Response:
    return zip_response(branch_zip_file(branch), branch)


@bp.post("/branches/<branch>/poster-batches")
@staff_api(roles.MARKETER)
def start_batch(branch: str) -> tuple[Response, int, dict[str, str]]:
    batch = poster_batches.start(g.staff, branch, campaign_arg(),
                                 current_app.config["POSTER_BATCH_CHUNK"])
    db.session.commit()  # and the render jobs are enqueued
    db.session.refresh(batch)  # embedded jobs may have run already
    location = f"/admin/api/poster-batches/{batch.id}"
    return jsonify(poster_batches.describe(batch, poster_batches.api_download_url(batch))), \
        202, {"Location": location}


@bp.get("/poster-batches/<int:batch_id>")
@staff_api(roles.MARKETER)
def batch_progress(batch_id: int) -> Response:
    batch = poster_batches.find(batch_id)
    return jsonify(poster_batches.describe(batch, poster_batches.api_download_url(batch)))


def batch_zip(batch_id: int) -> Response:
    """The ZIP of a ready batch: 409 ``batch_not_ready`` before."""
    batch = poster_batches.find(batch_id)
    if batch.state != poster_batches.READY or batch.path is None:
        raise ApiError(409, "batch_not_ready", f"the batch is {batch.state}, not ready")
    path = posters.store() / batch.path
    if not path.exists():
        raise ApiError(404, "batch_zip_missing", "the ZIP is gone from the poster store; "
                                                 "start a new batch")
    return zip_response(path, batch.branch)


@bp.get("/poster-batches/<int:batch_id>/download")
@staff_api(roles.MARKETER)
def batch_download(batch_id: int) -> Response:
    return batch_zip(batch_id)


@bp.put("/campaigns/<slug>/poster-background")
@staff_api(roles.MARKETER)
def put_background(slug: str) -> Response:
    data = read_body(current_app.config["POSTER_BACKGROUND_MAX_BYTES"])
    stored = poster_backgrounds.store_background(g.staff, slug, data, request.mimetype)
    db.session.commit()
    return jsonify(campaign=stored.campaign, background=stored.digest,
                   width=posters.WIDTH, height=posters.HEIGHT,
                   uploaded={"width": stored.width, "height": stored.height})
