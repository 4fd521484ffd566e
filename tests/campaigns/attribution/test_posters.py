"""Channels' posters: 750×1334 PNGs under 300 KB whose QR code, read back from the poster by
an independent decoder (zxing-cpp), is the url WeChat returned; cached by content (an
unchanged poster is not rendered again, a changed headline is); managers get only their
own; campaigns' uploaded backgrounds, checked before they are believed; the font missing."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import zxingcpp
from PIL import Image
from prometheus_client import REGISTRY
from sqlalchemy import select

from campaigns.attribution import channels, codes, poster_backgrounds, posters
from campaigns.console.models import StaffAction
from core.db import db
from tests.fixtures.benefits import SLUG, make_campaign
from tests.fixtures.browser import SCREENSHOTS
from tests.fixtures.channels import make_channel

POSTER = "/admin/api/channels/{}/poster.png"
BACKGROUND = f"/admin/api/campaigns/{SLUG}/poster-background"


@pytest.fixture
def store(app, tmp_path, monkeypatch):
    """A fresh poster store for the test."""
    monkeypatch.setitem(app.config, "POSTER_STORE_PATH", str(tmp_path / "posters"))
    return tmp_path / "posters"


def renders() -> float:
    return REGISTRY.get_sample_value("poster_renders_total") or 0.0


def stored_url(app, code):
    with app.app_context():
        return codes.permanent_code(channels.find(code)).url


def decoded(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as image:
        return [found.text for found in zxingcpp.read_barcodes(image)]


def check_poster(png: bytes, url: str) -> None:
    assert len(png) <= 300 * 1024
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size) == ("PNG", (750, 1334))
    assert decoded(png) == [url]


def keep(png: bytes, name: str) -> None:
    """Beside the screenshots, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.png").write_bytes(png)


def photo(size=(1200, 2000), kind="JPEG") -> bytes:
    """A photo-like picture: smooth colour fields and some texture."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.effect_noise(size, 12).point(lambda v: v // 2 + 60)
    image = Image.merge("RGB", (red, green, blue))
    out = io.BytesIO()
    image.save(out, kind, quality=88) if kind == "JPEG" else image.save(out, kind)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels in a few dozen bytes: a decompression
    bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


# -- the poster ---------------------------------------------------------------------------------

def test_a_poster_is_750_by_1334_small_and_its_qr_code_is_wechats_url(app, client, sim,
                                                                      make_staff, store):
    marketer = make_staff("marketer")
    make_channel(app, "branch_0101", name="杭州西湖支行")
    response = client.get(POSTER.format("branch_0101"), headers=marketer.headers)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    check_poster(response.data, stored_url(app, "branch_0101"))
    assert "private" in response.headers["Cache-Control"]
    keep(response.data, "poster-branch-default")

    again = client.get(POSTER.format("branch_0101"), headers={
        **marketer.headers, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_a_campaign_puts_its_title_on_the_poster(app, client, sim, make_staff, store):
    marketer = make_staff("marketer")
    make_campaign(app)
    make_channel(app, "mgr_0101_01", name="西湖支行 张三")
    default = client.get(POSTER.format("mgr_0101_01"), headers=marketer.headers)
    titled = client.get(POSTER.format("mgr_0101_01") + f"?campaign={SLUG}",
                        headers=marketer.headers)
    assert titled.status_code == 200
    assert titled.headers["ETag"] != default.headers["ETag"]
    check_poster(titled.data, stored_url(app, "mgr_0101_01"))
    keep(titled.data, "poster-campaign")


def test_an_unchanged_poster_is_read_from_the_store_and_a_new_headline_renders_anew(
        app, client, sim, make_staff, store):
    marketer = make_staff("marketer")
    body = make_campaign(app)
    make_channel(app, "branch_0101")
    path = POSTER.format("branch_0101") + f"?campaign={SLUG}"
    before = renders()
    first = client.get(path, headers=marketer.headers)
    assert renders() == before + 1
    second = client.get(path, headers=marketer.headers)
    assert renders() == before + 1  # from the store
    assert second.data == first.data

    changed = client.put(f"/admin/api/campaigns/{SLUG}", headers=marketer.headers,
                         json={**body, "title": "QQ音乐绿钻 新年礼"})
    assert changed.status_code == 200, changed.json
    third = client.get(path, headers=marketer.headers)
    assert renders() == before + 2
    assert third.headers["ETag"] != first.headers["ETag"]
    assert len(list(store.glob("posters/*/*.png"))) == 2


def test_a_poster_cut_short_in_the_store_is_rendered_again(app, client, sim, make_staff,
                                                           store):
    marketer = make_staff("marketer")
    make_channel(app, "branch_0101")
    first = client.get(POSTER.format("branch_0101"), headers=marketer.headers)
    (path,) = store.glob("posters/*/*.png")
    path.write_bytes(first.data[:1000])  # as a crash before the disk had it all might leave
    before = renders()
    again = client.get(POSTER.format("branch_0101"), headers=marketer.headers)
    assert renders() == before + 1
    assert again.data == first.data == path.read_bytes()


def test_a_manager_gets_its_own_poster_and_not_anothers(app, client, sim, make_staff, store):
    mine = make_staff("manager", username="zhang.san")
    make_staff("manager", username="li.si")
    make_channel(app, "mgr_zhang", kind="manager", name="张三", staff="zhang.san")
    make_channel(app, "mgr_li", kind="manager", name="李四", staff="li.si")
    own = client.get(POSTER.format("mgr_zhang"), headers=mine.headers)
    assert own.status_code == 200
    check_poster(own.data, stored_url(app, "mgr_zhang"))
    keep(own.data, "poster-manager")

    other = client.get(POSTER.format("mgr_li"), headers=mine.headers)
    assert other.status_code == 403
    assert other.json["error"] == "forbidden"
    with app.app_context():
        refused = db.session.scalars(select(StaffAction).where(
            StaffAction.action == "forbidden", StaffAction.username == "zhang.san")).all()
    assert [entry.target for entry in refused] == ["path:/admin/api/channels/mgr_li/poster.png"]


def test_roles_unknown_channels_and_unknown_campaigns(app, client, sim, make_staff, store):
    viewer, marketer = make_staff("viewer"), make_staff("marketer")
    make_channel(app, "branch_0101")
    assert client.get(POSTER.format("branch_0101")).status_code == 401
    assert client.get(POSTER.format("branch_0101"), headers=viewer.headers).status_code == 403
    unknown = client.get(POSTER.format("nobody"), headers=marketer.headers)
    assert (unknown.status_code, unknown.json["error"]) == (404, "unknown_channel")
    no_campaign = client.get(POSTER.format("branch_0101") + "?campaign=no-such-thing",
                             headers=marketer.headers)
    assert (no_campaign.status_code, no_campaign.json["error"]) == (404, "unknown_campaign")


def test_a_missing_font_is_a_503_naming_the_package(app, client, sim, make_staff, store,
                                                    monkeypatch):
    marketer = make_staff("marketer")
    make_channel(app, "branch_0101")
    monkeypatch.setitem(app.config, "POSTER_FONT_PATH", "/nonexistent/NotoSansCJK-Bold.ttc")
    response = client.get(POSTER.format("branch_0101"), headers=marketer.headers)
    assert response.status_code == 503
    assert response.json["error"] == "poster_font_missing"
    assert "fonts-noto-cjk" in response.json["message"]
    assert not list(store.glob("posters/*/*.png"))


def test_a_font_is_opened_once_per_size():
    posters.font.cache_clear()
    path, index = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2
    assert posters.font(path, index, 40) is posters.font(path, index, 40)
    assert posters.font.cache_info().misses == 1


def test_headlines_wrap_to_the_width_and_punctuation_never_starts_a_line():
    path, index = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2
    text = "联名借记卡专属权益，消费满1000元即享腾讯视频VIP月卡，名额有限，先到先得！"
    face, lines = posters.fit(text, path, index, posters.HEADLINE_SIZES, 630, 3)
    assert 1 < len(lines) <= 3
    assert all(face.getlength(line) <= 630 for line in lines)
    assert not any(line[0] in "，。！" for line in lines)
    assert "1000" in "".join(lines) and "VIP" in "".join(lines)  # words stay whole
    face, lines = posters.fit("很长" * 80, path, index, posters.HEADLINE_SIZES, 630, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")


# -- backgrounds --------------------------------------------------------------------------------

def test_an_uploaded_background_is_fitted_audited_and_on_the_campaigns_posters(
        app, client, sim, make_staff, store):
    marketer = make_staff("marketer")
    make_campaign(app)
    make_channel(app, "branch_0101", name="杭州西湖支行")
    path = POSTER.format("branch_0101") + f"?campaign={SLUG}"
    plain = client.get(path, headers=marketer.headers)

    response = client.put(BACKGROUND, data=photo(), headers={**marketer.headers,
                                                              "Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.json
    assert response.json["uploaded"] == {"width": 1200, "height": 2000}
    digest = response.json["background"]
    with Image.open(posters.background_path(store, digest)) as fitted:
        assert fitted.size == (750, 1334)
    with app.app_context():
        (entry,) = db.session.scalars(select(StaffAction).where(
            StaffAction.action == "campaign.poster_background")).all()
    assert entry.target == f"campaign:{SLUG}"
    assert entry.after["background"] == digest

    on_photo = client.get(path, headers=marketer.headers)
    assert on_photo.headers["ETag"] != plain.headers["ETag"]
    check_poster(on_photo.data, stored_url(app, "branch_0101"))
    keep(on_photo.data, "poster-uploaded-background")


@pytest.mark.parametrize(("body", "content_type", "status", "error"), [
    (b"this is no image", "image/png", 400, "invalid_image"),
    (photo((400, 700), "PNG"), "image/jpeg", 400, "invalid_image"),  # not what it claims
    (photo()[:5000], "image/jpeg", 400, "invalid_image"),  # truncated
    (photo(), "text/plain", 415, "unsupported_media_type"),
    (png_header_only(40_000, 40_000), "image/png", 413, "image_too_large"),  # a bomb
    (png_header_only(5000, 5000), "image/png", 413, "image_too_large"),  # over our limit
])
def test_a_bad_background_is_refused_and_changes_nothing(app, client, make_staff, store, body,
                                                         content_type, status, error):
    marketer = make_staff("marketer")
    make_campaign(app)
    response = client.put(BACKGROUND, data=body, headers={**marketer.headers,
                                                          "Content-Type": content_type})
    assert (response.status_code, response.json["error"]) == (status, error)
    assert poster_backgrounds.current(store, SLUG) is None
    with app.app_context():
        assert not db.session.scalars(select(StaffAction).where(
            StaffAction.action == "campaign.poster_background")).all()


def test_a_background_too_big_or_too_detailed_is_refused(app, client, make_staff, store,
                                                         monkeypatch):
    marketer = make_staff("marketer")
    make_campaign(app)
    # Noise is the most detailed picture there is; the limit lowered, so that even its
    # smallest palette cannot meet it.
    monkeypatch.setattr(posters, "MAX_BYTES", 60_000)
    noise = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((750, 1334), 120) for _ in range(3)]) \
        .save(noise, "JPEG", quality=70)
    detailed = client.put(BACKGROUND, data=noise.getvalue(),
                          headers={**marketer.headers, "Content-Type": "image/jpeg"})
    assert (detailed.status_code, detailed.json["error"]) == (422, "background_too_detailed")

    monkeypatch.setitem(app.config, "POSTER_BACKGROUND_MAX_BYTES", 10_000)
    large = client.put(BACKGROUND, data=photo((400, 700), "PNG"),
                       headers={**marketer.headers, "Content-Type": "image/png"})
    assert (large.status_code, large.json["error"]) == (413, "body_too_large")
    assert poster_backgrounds.current(store, SLUG) is None


def test_backgrounds_need_a_marketer_and_a_known_campaign(app, client, make_staff, store):
    viewer, marketer = make_staff("viewer"), make_staff("marketer")
    headers = {"Content-Type": "image/jpeg"}
    refused = client.put(BACKGROUND, data=photo(), headers={**viewer.headers, **headers})
    assert refused.status_code == 403
    unknown = client.put("/admin/api/campaigns/no-such/poster-background", data=photo(),
                         headers={**marketer.headers, **headers})
    assert (unknown.status_code, unknown.json["error"]) == (404, "unknown_campaign")
