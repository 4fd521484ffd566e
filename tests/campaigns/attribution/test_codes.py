"""A channel's WeChat codes: asked once and kept (also when first requests race), the
permanent-code budget, temporary codes, mini-program codes, and the QR image rendered here
and read back by an independent decoder (zxing-cpp)."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select, update

from campaigns.attribution import channels, codes
from campaigns.attribution.models import MINIAPP, OA_PERMANENT, OA_TEMPORARY, ChannelCode
from core.db import db, utcnow
from core.errors import ApiError
from tests.fixtures.channels import make_channel, maker
from tests.fixtures.sim import sim_calls, sim_fault

QR_PATH = "/cgi-bin/qrcode/create"
WXA_PATH = "/wxa/getwxacodeunlimit"


def _permanent(app, code):
    with app.app_context():
        row = codes.permanent_code(channels.find(code))
        db.session.commit()
        return row.ticket, row.url


def _stored(app, kind):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ChannelCode)
                                 .where(ChannelCode.kind == kind))


def _decoded(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as image:
        return [found.text for found in zxingcpp.read_barcodes(image)]


def test_the_permanent_code_is_asked_of_wechat_once(app, sim):
    make_channel(app, "branch_0101")
    first = _permanent(app, "branch_0101")
    assert _permanent(app, "branch_0101") == first
    (call,) = sim_calls(sim, QR_PATH)
    assert call["json"]["action_name"] == "QR_LIMIT_STR_SCENE"
    assert call["json"]["action_info"] == {"scene": {"scene_str": "branch_0101"}}
    assert _stored(app, OA_PERMANENT) == 1


def test_the_qr_image_decodes_to_the_url_wechat_returned(app, sim):
    make_channel(app, "branch_0101")
    _, url = _permanent(app, "branch_0101")
    png = codes.qr_png(url)
    assert _decoded(png) == [url]
    with Image.open(io.BytesIO(png)) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        width, height = image.size
        assert width == height and width >= 500  # print resolution
        gray = image.convert("L")
        margin = codes.QUIET_ZONE * codes.DEFAULT_SCALE
        quiet = [gray.getpixel((x, y)) for x in range(width) for y in (*range(margin),)]
        quiet += [gray.getpixel((x, y)) for x in range(margin) for y in range(height)]
        assert set(quiet) == {255}  # four modules of white on the top and the left
        assert gray.getpixel((margin, margin)) == 0  # the finder pattern starts right there
    small = codes.qr_png(url, scale=4)
    assert _decoded(small) == [url]


def test_concurrent_first_requests_ask_wechat_once_and_store_one_code(app, sim):
    make_channel(app, "branch_0101")
    sim_fault(sim, path=QR_PATH, delay=0.3)  # the first call is slow: the others overlap it
    barrier = threading.Barrier(6)
    answers, errors = [], []

    def ask():
        barrier.wait()
        try:
            answers.append(_permanent(app, "branch_0101"))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(answers) == 6 and len(set(answers)) == 1
    assert len(sim_calls(sim, QR_PATH)) == 1
    assert _stored(app, OA_PERMANENT) == 1


def test_the_budget_warns_at_80_percent_and_refuses_at_its_limit(app, sim, monkeypatch):
    monkeypatch.setitem(app.config, "WECHAT_PERMANENT_QR_LIMIT", 5)
    for number in range(6):
        make_channel(app, f"branch_{number}")
    for number in range(3):
        _permanent(app, f"branch_{number}")
    with app.app_context():
        assert codes.budget() == {"used": 3, "limit": 5, "warning": False}
    _permanent(app, "branch_3")
    with app.app_context():
        assert codes.budget() == {"used": 4, "limit": 5, "warning": True}
    _permanent(app, "branch_4")
    with pytest.raises(ApiError) as refused:
        _permanent(app, "branch_5")
    assert (refused.value.status, refused.value.code) == (409, "qr_budget_exhausted")
    assert len(sim_calls(sim, QR_PATH)) == 5  # the refusal never asked WeChat
    assert _permanent(app, "branch_0")  # a stored code is served at the limit still


def test_wechats_45029_is_the_same_refusal_and_leaves_no_code(app, sim):
    make_channel(app, "branch_0101")
    sim_fault(sim, path=QR_PATH, errcode=45029)
    with pytest.raises(ApiError) as refused:
        _permanent(app, "branch_0101")
    assert (refused.value.status, refused.value.code) == (409, "qr_budget_exhausted")
    assert _stored(app, OA_PERMANENT) == 0
    assert _permanent(app, "branch_0101")[1]  # the claim was undone: asked again, issued


def test_a_failed_call_leaves_no_empty_code_even_if_the_caller_commits(app, sim):
    make_channel(app, "branch_0101")
    sim_fault(sim, path=QR_PATH, errcode=40053)
    with app.app_context():
        with pytest.raises(ApiError) as refused:
            codes.permanent_code(channels.find("branch_0101"))
        db.session.commit()  # a batch job going on to the next channel
    assert (refused.value.status, refused.value.code) == (502, "wechat_error")
    assert _stored(app, OA_PERMANENT) == 0


def test_a_deactivated_channel_keeps_its_code_and_gets_no_new_one(app, sim):
    make_channel(app, "branch_old")
    make_channel(app, "branch_new")
    kept = _permanent(app, "branch_old")
    with app.app_context():
        for code in ("branch_old", "branch_new"):
            channels.deactivate(maker(), code)
        db.session.commit()
    assert _permanent(app, "branch_old") == kept
    with pytest.raises(ApiError) as refused:
        _permanent(app, "branch_new")
    assert (refused.value.status, refused.value.code) == (409, "channel_inactive")
    assert len(sim_calls(sim, QR_PATH)) == 1


def test_a_temporary_code_is_reused_while_it_lives_long_enough(app, sim):
    make_channel(app, "spring_sale", kind="campaign", branch=None)

    def temporary(days):
        with app.app_context():
            row = codes.temporary_code(channels.find("spring_sale"), days)
            db.session.commit()
            return row.ticket, row.expires_at

    ticket, expires_at = temporary(7)
    assert abs(expires_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    assert temporary(7) == (ticket, expires_at)  # asked again soon: the same code
    assert temporary(3)[0] == ticket  # it lives long enough for a shorter campaign
    longer, _ = temporary(14)
    assert longer != ticket  # it does not live long enough for a longer one
    (call, *_) = sim_calls(sim, QR_PATH)
    assert call["json"]["action_name"] == "QR_STR_SCENE"
    assert call["json"]["expire_seconds"] == 7 * 86400
    with app.app_context():  # time passes: both have expired
        db.session.execute(update(ChannelCode).values(expires_at=utcnow() - timedelta(1)))
        db.session.commit()
    assert temporary(7)[0] not in (ticket, longer)
    assert len(sim_calls(sim, QR_PATH)) == 3
    assert _stored(app, OA_TEMPORARY) == 3 and _stored(app, OA_PERMANENT) == 0
    for days in (0, 31):
        with pytest.raises(ApiError, match="days must be 1 to 30"):
            temporary(days)


def test_the_mini_program_code_is_asked_once_and_cached(app, sim, monkeypatch):
    monkeypatch.setitem(app.config, "MINIAPP_CHANNEL_PAGE", "pages/join/index")
    make_channel(app, "m_0101_zhang")

    def image():
        with app.app_context():
            png = codes.miniapp_code(channels.find("m_0101_zhang"))
            db.session.commit()
            return png

    first = image()
    assert first.startswith(codes.PNG_SIGNATURE)
    assert image() == first
    (call,) = sim_calls(sim, WXA_PATH)
    assert call["json"]["scene"] == "m_0101_zhang"
    assert call["json"]["page"] == "pages/join/index"
    assert call["json"]["width"] == app.config["MINIAPP_CODE_WIDTH"]
    assert _stored(app, MINIAPP) == 1
    with app.app_context():
        assert codes.budget()["used"] == 0  # mini-program codes cost no QR budget


def test_a_refused_mini_program_page_is_a_clear_502(app, sim):
    make_channel(app, "branch_0101")
    sim_fault(sim, path=WXA_PATH, errcode=41030)
    with app.app_context(), pytest.raises(ApiError) as refused:
        codes.miniapp_code(channels.find("branch_0101"))
    assert refused.value.status == 502 and "MINIAPP_CHANNEL_PAGE" in refused.value.message
    assert _stored(app, MINIAPP) == 0
