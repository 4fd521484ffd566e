"""A branch's posters as one ZIP: at once (``posters.zip``) or built in the background by
render jobs fanned out over the workers, with progress; jobs run twice make one ZIP; the
console's branch page, its button and its progress JSON."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from PIL import Image
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import select

from campaigns.attribution import channels, poster_batches
from campaigns.attribution.models import PosterBatch
from campaigns.console.models import StaffAction
from core.db import db
from core.worker import AppWorker
from tests.fixtures.benefits import SLUG, make_campaign
from tests.fixtures.channels import make_channel, maker
from tests.fixtures.staff import csrf_token, log_in

BRANCH = "0101"
CODES = ["branch_0101", "mgr_0101_a", "mgr_0101_b"]  # the branch's active channels


@pytest.fixture
def store(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "POSTER_STORE_PATH", str(tmp_path / "posters"))
    monkeypatch.setitem(app.config, "POSTER_BATCH_CHUNK", 2)  # two render jobs for three
    return tmp_path / "posters"


@pytest.fixture
def branch(app, make_staff):
    """Branch 0101's three active channels, one deactivated, and another branch's."""
    make_staff("manager", username="wang.a")
    make_staff("manager", username="wang.b")
    make_channel(app, "branch_0101", name="杭州西湖支行")
    make_channel(app, "mgr_0101_a", kind="manager", name="王一", staff="wang.a")
    make_channel(app, "mgr_0101_b", kind="manager", name="王二", staff="wang.b")
    make_channel(app, "branch_0101_old", name="旧网点")
    make_channel(app, "branch_0202", name="宁波支行", branch="0202")
    with app.app_context():
        channels.deactivate(maker(), "branch_0101_old")
        db.session.commit()
    return BRANCH


def zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        return {name: archive.read(name) for name in archive.namelist()}


def check_zip(data: bytes) -> None:
    entries = zip_entries(data)
    assert sorted(entries) == [f"{code}.png" for code in CODES]
    for png in entries.values():
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (750, 1334)


def test_a_branch_zip_holds_one_poster_per_active_channel(app, client, sim, make_staff, store,
                                                          branch):
    marketer = make_staff("marketer")
    response = client.get(f"/admin/api/branches/{branch}/posters.zip", headers=marketer.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    check_zip(response.data)
    assert not list((store / "tmp").iterdir())  # the temporary ZIP is gone once sent

    unknown = client.get("/admin/api/branches/9999/posters.zip", headers=marketer.headers)
    assert (unknown.status_code, unknown.json["error"]) == (404, "unknown_branch")
    manager = client.get(f"/admin/api/branches/{branch}/posters.zip",
                         headers=make_staff("manager").headers)
    assert manager.status_code == 403


def test_a_batch_builds_the_zip_in_the_background_with_progress(app, client, sim, make_staff,
                                                                store, branch, run_jobs):
    marketer = make_staff("marketer")
    make_campaign(app)
    started = client.post(f"/admin/api/branches/{branch}/poster-batches?campaign={SLUG}",
                          headers=marketer.headers)
    assert started.status_code == 202
    batch = started.json
    assert (batch["total"], batch["campaign"]) == (3, SLUG)
    run_jobs()

    progress = client.get(started.headers["Location"], headers=marketer.headers).json
    assert progress["state"] == "ready"
    assert progress["done"] == progress["total"] == 3
    assert progress["percent"] == 100
    download = client.get(progress["download"], headers=marketer.headers)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert progress["size"] == len(download.data)
    check_zip(download.data)
    with app.app_context():
        (entry,) = db.session.scalars(select(StaffAction).where(
            StaffAction.action == "poster_batch.start")).all()
    assert entry.after == {"branch": branch, "campaign": SLUG, "total": 3}


def test_jobs_run_twice_count_once_and_make_one_zip(app, sim, store, branch, run_jobs):
    with app.app_context():
        ids = [channels.find(code).id for code in CODES]
        batch = PosterBatch(branch=branch, total=3, created_by="test")
        db.session.add(batch)
        db.session.commit()
        batch_id = batch.id
    with app.app_context():
        poster_batches.render_chunk(batch_id, 0, ids[:2])
        poster_batches.render_chunk(batch_id, 0, ids[:2])  # the same job again
        assert db.session.get(PosterBatch, batch_id).done == 2
        poster_batches.render_chunk(batch_id, 1, ids[2:])
    run_jobs()  # the assembly the last chunk enqueued
    with app.app_context():
        poster_batches.render_chunk(batch_id, 1, ids[2:])
        poster_batches.assemble(batch_id)
        finished = db.session.get(PosterBatch, batch_id)
        assert (finished.state, finished.done, finished.total) == ("ready", 3, 3)
    assert [path.name for path in (store / "batches").iterdir()] == [f"{batch_id}.zip"]
    check_zip((store / "batches" / f"{batch_id}.zip").read_bytes())


def test_batches_refuse_what_they_cannot_do(app, client, sim, make_staff, store, branch):
    marketer, viewer = make_staff("marketer"), make_staff("viewer")
    assert client.post(f"/admin/api/branches/{branch}/poster-batches",
                       headers=viewer.headers).status_code == 403
    for path, code in ((f"/admin/api/branches/{branch}/poster-batches?campaign=nope",
                        "unknown_campaign"),
                       ("/admin/api/branches/9999/poster-batches", "unknown_branch")):
        response = client.post(path, headers=marketer.headers)
        assert (response.status_code, response.json["error"]) == (404, code)
    assert client.get("/admin/api/poster-batches/999", headers=marketer.headers).json["error"] \
        == "unknown_batch"
    with app.app_context():
        queued = PosterBatch(branch=branch, total=3, created_by="test")
        db.session.add(queued)
        db.session.commit()
        queued_id = queued.id
    early = client.get(f"/admin/api/poster-batches/{queued_id}/download",
                       headers=marketer.headers)
    assert (early.status_code, early.json["error"]) == (409, "batch_not_ready")
    with app.app_context():
        assert db.session.scalar(select(PosterBatch.id).order_by(PosterBatch.id.desc())) \
            == queued_id  # the refused starts made no batch


def test_the_console_branch_page_starts_a_batch_and_follows_it(app, client, sim, make_staff,
                                                               store, branch, run_jobs):
    make_staff("marketer", username="lin.marketing")
    log_in(client, "lin.marketing")
    page = client.get(f"/admin/branches/{branch}/posters")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for code in CODES:
        assert f"/admin/posters/{code}.png" in html
    assert "branch_0101_old" not in html and "branch_0202" not in html

    started = client.post(f"/admin/branches/{branch}/posters/batches",
                          data={"csrf_token": csrf_token(html), "campaign": ""})
    assert started.status_code == 303
    assert "batch=" in started.headers["Location"]
    run_jobs()
    with app.app_context():
        batch_id = db.session.scalar(select(PosterBatch.id))
    progress = client.get(f"/admin/posters/batches/{batch_id}").json
    assert (progress["state"], progress["percent"]) == ("ready", 100)
    assert progress["download"] == f"/admin/posters/batches/{batch_id}/posters.zip"
    check_zip(client.get(progress["download"]).data)
    thumbnail = client.get(f"/admin/posters/{CODES[0]}.png")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/png"


def test_a_manager_sees_only_its_own_poster_in_the_console(app, client, sim, make_staff, store,
                                                           branch):
    log_in(client, "wang.a")
    assert client.get("/admin/posters/mgr_0101_a.png").status_code == 200
    assert client.get("/admin/posters/mgr_0101_b.png").status_code == 403
    assert client.get(f"/admin/branches/{branch}/posters").status_code == 403


def test_the_channel_page_shows_its_poster_and_download_link(app, client, sim, make_staff,
                                                             store, branch):
    log_in(client, "wang.a")
    page = client.get("/admin/channels/mgr_0101_a")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'src="/admin/posters/mgr_0101_a.png"' in html
    assert 'href="/admin/posters/mgr_0101_a.png?download=1"' in html
    download = client.get("/admin/posters/mgr_0101_a.png?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "mgr_0101_a.png" in download.headers["Content-Disposition"]


def test_a_chunk_whose_worker_died_is_run_again_and_the_batch_finishes(
        app, client, sim, make_staff, store, branch, run_jobs):
    """A worker killed mid-render leaves its job in RQ's started registry; RQ's clean-up of
    abandoned jobs runs it again (the jobs carry retries), so the batch still gets ready."""
    if app.extensions["redis_embedded"]:
        pytest.skip("RQ's abandoned jobs: real Redis only")
    marketer = make_staff("marketer")
    started = client.post(f"/admin/api/branches/{branch}/poster-batches",
                          headers=marketer.headers)
    assert started.status_code == 202
    queue = app.extensions["jobs"].queues["default"]
    worker = AppWorker([queue], connection=app.extensions["redis"])
    job = Job.fetch(queue.pop_job_id(), connection=app.extensions["redis"])
    worker.prepare_execution(job)  # taken by a worker that dies before it ends
    with app.extensions["redis"].pipeline() as pipeline:
        job.prepare_for_execution(worker.name, pipeline)
        pipeline.execute()
    run_jobs()
    assert client.get(started.headers["Location"], headers=marketer.headers).json["state"] \
        in ("queued", "building")
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)  # found abandoned
    assert job.id in queue.scheduled_job_registry.get_job_ids()  # retried after its back-off
    time.sleep(1.1)
    scheduler = RQScheduler([queue], connection=app.extensions["redis"])
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    run_jobs()
    progress = client.get(started.headers["Location"], headers=marketer.headers).json
    assert (progress["state"], progress["done"]) == ("ready", 3)
