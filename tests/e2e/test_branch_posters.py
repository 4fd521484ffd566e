"""A branch's posters in a real (headless) Chromium on a laptop: a marketer opens the branch's
poster page (thumbnails of every channel's poster), picks a campaign for the headline,
starts the branch's ZIP, watches the progress bar reach 100 % without reloading, and
downloads the ZIP from the link that appears.

Screenshots under test-artifacts/screenshots/ (``console-branch-posters*``), for people to
look at.
"""

from __future__ import annotations

import io
import re
import zipfile

from campaigns.attribution.models import PosterBatch
from core.db import db
from tests.fixtures.benefits import SLUG, make_campaign
from tests.fixtures.browser import save_screenshot
from tests.fixtures.channels import make_channel
from tests.fixtures.staff import STAFF_PASSWORD

BRANCH = "0101"
PAGE = f"/admin/branches/{BRANCH}/posters"


def test_a_marketer_builds_and_downloads_a_branchs_posters(laptop, live_app, app, sim,
                                                           make_staff, run_jobs, tmp_path,
                                                           monkeypatch):
    monkeypatch.setitem(app.config, "POSTER_STORE_PATH", str(tmp_path / "posters"))
    monkeypatch.setitem(app.config, "POSTER_BATCH_CHUNK", 2)
    make_campaign(app)
    make_staff("marketer", username="lin.marketing")
    make_channel(app, "branch_0101", name="杭州西湖支行")
    for number, name in enumerate(("张三", "李四", "王五", "赵六"), start=1):
        username = f"manager.{number}"
        make_staff("manager", username=username)
        make_channel(app, f"mgr_0101_{number:02d}", kind="manager", name=f"西湖支行 {name}",
                     staff=username)
    page = laptop.page

    page.goto(f"{live_app}/admin/login?next={PAGE}")
    page.fill("#username", "lin.marketing")
    page.fill("#password", STAFF_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(PAGE) + "$"))

    page.select_option("#campaign", SLUG)
    with page.expect_navigation():
        page.click("text=预览此标题")
    thumbnails = page.locator("img.poster-thumb")
    assert thumbnails.count() == 5
    # Functions, not expressions: the console's CSP forbids eval.
    page.wait_for_function("() => Array.from(document.querySelectorAll('img.poster-thumb'))"
                           ".every((img) => img.complete && img.naturalWidth === 750)")
    save_screenshot(page, "console-branch-posters")

    with page.expect_navigation():
        page.click("text=生成海报包（ZIP）")
    bar = page.locator("#batch-progress")
    assert bar.is_visible()
    save_screenshot(page, "console-branch-posters-started")
    run_jobs()  # real mode: the workers' part (embedded test jobs ran with the request)

    page.wait_for_function("() => document.querySelector('#batch-progress').value === 100",
                           timeout=15_000)
    download_link = page.locator("[data-batch-download]")
    download_link.wait_for(state="visible")
    assert "已完成" in page.locator("[data-batch-status]").inner_text()
    assert page.locator("[data-batch-percent]").inner_text() == "100%"
    save_screenshot(page, "console-branch-posters-ready")

    with page.expect_download() as waiting:
        download_link.click()
    saved = waiting.value.path()
    with zipfile.ZipFile(io.BytesIO(open(saved, "rb").read())) as archive:
        assert sorted(archive.namelist()) == sorted(
            ["branch_0101.png"] + [f"mgr_0101_{n:02d}.png" for n in range(1, 5)])
    with app.app_context():
        (batch,) = db.session.scalars(db.select(PosterBatch)).all()
        assert (batch.state, batch.done, batch.total, batch.campaign) == ("ready", 5, 5, SLUG)
    assert laptop.problems == []
