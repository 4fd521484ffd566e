"""A branch's posters as one ZIP, built in the background with progress for the console.

``start(actor, branch, campaign)`` records a ``PosterBatch`` (``total``: the branch's active
channels), audited, and, once the caller commits, fans the rendering out on the default
queue: one ``render_chunk`` job per ``POSTER_BATCH_CHUNK`` channels, so every worker takes
a share. A chunk renders its posters into the store (asking WeChat for codes not asked yet)
and adds its size to ``done``; the chunk that brings ``done`` to ``total`` enqueues
``assemble``, which writes the ZIP from the store (every active channel of the branch at
that moment: one rendered since is drawn then) to ``batches/<id>.zip`` and marks the batch
``ready``.

Jobs may run twice and still have one effect: a chunk is counted once (its number is added
to ``chunks_done`` in the same conditional UPDATE that adds to ``done``, so a second run
changes nothing and enqueues nothing); its posters are files named by content, rendered
again to the same bytes at worst; the ZIP's name is the batch's, replaced whole by a
rename; a batch already ``ready`` is left as it is. A job that fails marks the batch
``failed`` with the reason, for the console to say so; starting a new batch is the retry.
A job whose worker died is run again (``JOB_RETRIES``), so a batch never stays half built.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import url_for
from sqlalchemy import select, update

from campaigns.attribution import channel_posters, posters
from campaigns.attribution.models import Channel, PosterBatch
from campaigns.console import audit
from campaigns.console.models import Staff
from core.clock import SHANGHAI
from core.db import db, utcnow
from core.errors import ApiError
from core.files import atomic_file
from core.jobs import enqueue_after_commit

log = logging.getLogger(__name__)

QUEUED, BUILDING, READY, FAILED = "queued", "building", "ready", "failed"
BRANCH_MAX = 32  # PosterBatch.branch
ERROR_MAX = 500
# A worker killed mid-job leaves the job in RQ's started registry; RQ's clean-up of abandoned
# jobs runs it again while it has retries (a job that raised has failed the batch already:
# its retry finds it failed and stops).
JOB_RETRIES = 2


def start(actor: Staff, branch: str, campaign: str | None, chunk: int) -> PosterBatch:
    """A new batch of ``branch``'s posters for ``campaign`` (404 ``unknown_campaign``; 404
    ``unknown_branch`` when the branch has no active channel), rendered ``chunk`` channels a
    job once the caller commits."""
    content = channel_posters.content_of(campaign)
    ids = list(db.session.scalars(select(Channel.id).where(Channel.branch == branch,
                                                           Channel.active.is_(True))
                                  .order_by(Channel.id))) if len(branch) <= BRANCH_MAX else []
    if not ids:
        raise ApiError(404, "unknown_branch", "the branch has no active channel")
    batch = PosterBatch(branch=branch, campaign=content.campaign, state=QUEUED, total=len(ids),
                        done=0, chunks_done=",", created_by=actor.username, created_at=utcnow())
    db.session.add(batch)
    db.session.flush()
    audit.record(actor, "poster_batch.start", f"poster_batch:{batch.id}",
                 after={"branch": branch, "campaign": content.campaign, "total": len(ids)})
    for number, first in enumerate(range(0, len(ids), chunk)):
        enqueue_after_commit(render_chunk, batch.id, number, ids[first:first + chunk],
                             retries=JOB_RETRIES)
    return batch


def find(batch_id: int) -> PosterBatch:
    batch = db.session.get(PosterBatch, batch_id)
    if batch is None:
        raise ApiError(404, "unknown_batch", "there is no poster batch with this id")
    return batch


def describe(batch: PosterBatch, download: str | None = None) -> dict[str, Any]:
    """The batch as the API and the console's progress bar show it; ``download`` is the URL
    of its ZIP (given once it is ready)."""
    return {"id": batch.id, "branch": batch.branch, "campaign": batch.campaign,
            "state": batch.state, "done": batch.done, "total": batch.total,
            "percent": 100 if batch.state == READY else _rendered_percent(batch),
            "size": batch.size, "error": batch.error,
            "download": download if batch.state == READY else None,
            "created_by": batch.created_by,
            "created_at": batch.created_at.astimezone(SHANGHAI).isoformat(),
            "finished_at": batch.finished_at.astimezone(SHANGHAI).isoformat()
            if batch.finished_at else None}


def _rendered_percent(batch: PosterBatch) -> int:
    # 100 % is the ZIP ready: while it is written after the last poster, 99.
    return min(99, batch.done * 100 // batch.total) if batch.total else 0


def api_download_url(batch: PosterBatch) -> str:
    return url_for("poster_api.batch_download", batch_id=batch.id)


# -- jobs ---------------------------------------------------------------------------------------

def _fail(batch_id: int, exc: BaseException) -> None:
    db.session.rollback()
    reason = exc.message if isinstance(exc, ApiError) else type(exc).__name__
    db.session.execute(update(PosterBatch).where(PosterBatch.id == batch_id,
                                                 PosterBatch.state != READY)
                       .values(state=FAILED, error=reason[:ERROR_MAX], finished_at=utcnow()))
    db.session.commit()


def render_chunk(batch_id: int, number: int, channel_ids: list[int]) -> None:
    """Job: render chunk ``number`` of a batch into the store and count it in ``done``."""
    batch = db.session.get(PosterBatch, batch_id)
    if batch is None or batch.state in (READY, FAILED):
        return
    try:
        content = channel_posters.content_of(batch.campaign)
        channels = list(db.session.scalars(select(Channel).where(Channel.id.in_(channel_ids))))
        # Each code WeChat issues kept at once (asked once, whatever happens next).
        entries = channel_posters.specs_for(channels, content, kept=db.session.commit)
        db.session.commit()
        root = posters.store()
        for _channel, spec in entries:
            posters.ensure(spec, root)
        mark = f"{number},"
        counted = db.session.execute(
            update(PosterBatch)
            .where(PosterBatch.id == batch_id, PosterBatch.state.in_((QUEUED, BUILDING)),
                   ~PosterBatch.chunks_done.contains(f",{mark}"))
            .values(done=PosterBatch.done + len(channel_ids),
                    chunks_done=PosterBatch.chunks_done + mark, state=BUILDING)
            .returning(PosterBatch.done, PosterBatch.total)).first()
        if counted is not None and counted.done >= counted.total:
            enqueue_after_commit(assemble, batch_id, retries=JOB_RETRIES)
        db.session.commit()
    except Exception as exc:
        log.exception("poster batch %s: chunk %s failed", batch_id, number)
        _fail(batch_id, exc)
        raise


def assemble(batch_id: int) -> None:
    """Job: the batch's ZIP from the store, ``batches/<id>.zip``; the batch ``ready``."""
    batch = db.session.get(PosterBatch, batch_id)
    if batch is None or batch.state in (READY, FAILED):
        return
    try:
        content = channel_posters.content_of(batch.campaign)
        entries = channel_posters.specs_for(channel_posters.branch_channels(batch.branch),
                                            content)
        db.session.commit()
        root = posters.store()
        path = root / "batches" / f"{batch_id}.zip"
        with atomic_file(path) as file:
            channel_posters.write_zip(file, entries, root)
        db.session.execute(update(PosterBatch).where(PosterBatch.id == batch_id,
                                                     PosterBatch.state != READY)
                           .values(state=READY, path=str(path.relative_to(root)),
                                   size=path.stat().st_size, finished_at=utcnow()))
        db.session.commit()
    except Exception as exc:
        log.exception("poster batch %s: the ZIP failed", batch_id)
        _fail(batch_id, exc)
        raise
