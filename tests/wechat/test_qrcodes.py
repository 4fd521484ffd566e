"""Parametric QR codes and mini-program codes through the client, against the simulator:
the bodies WeChat takes, rules checked before any call, failures told apart from images."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.sim import sim_calls, sim_fault
from tests.fixtures.simkit import Api
from wechat import clients, qrcodes
from wechat.errors import (
    CodeArgumentsRejected,
    CodeLimitReached,
    PageRejected,
    WeChatAPIError,
    api_error,
)
from wechat.sim.config import SimLimits

QR_PATH = "/cgi-bin/qrcode/create"
WXA_PATH = "/wxa/getwxacodeunlimit"


@pytest.fixture
def oa(app, sim):
    with app.app_context():
        yield clients.official_account()


@pytest.fixture
def mp(app, sim):
    with app.app_context():
        yield clients.mini_program()


def test_a_permanent_code_is_a_string_scene_for_ever(oa, sim):
    answer = qrcodes.permanent_qr(oa, "branch_0101")
    assert answer.url.startswith("http://weixin.qq.com/q/") and answer.ticket
    assert answer.expire_seconds is None
    (call,) = sim_calls(sim, QR_PATH)
    assert call["json"] == {"action_name": "QR_LIMIT_STR_SCENE",
                            "action_info": {"scene": {"scene_str": "branch_0101"}}}


def test_a_temporary_code_lives_what_was_asked_up_to_30_days(oa, sim):
    answer = qrcodes.temporary_qr(oa, "spring_sale", 7 * 86400)
    assert answer.expire_seconds == 7 * 86400
    for seconds in (0, 30 * 86400 + 1, True):
        with pytest.raises(ValueError, match="temporary QR code lives"):
            qrcodes.temporary_qr(oa, "spring_sale", seconds)
    assert len(sim_calls(sim, QR_PATH)) == 1


def test_scenes_that_break_the_rules_are_refused_without_a_call(oa, mp, sim):
    with pytest.raises(ValueError, match="1 to 32 characters"):
        qrcodes.wxacode_unlimited(mp, "x" * 33)
    for scene in ("", "中文", "a%20b", "a b"):
        with pytest.raises(ValueError):
            qrcodes.wxacode_unlimited(mp, scene)
    with pytest.raises(ValueError, match="1 to 64"):
        qrcodes.permanent_qr(oa, "x" * 65)
    with pytest.raises(ValueError, match="released page"):
        qrcodes.wxacode_unlimited(mp, "ok", page="/pages/index/index")
    assert sim_calls(sim, WXA_PATH) == [] and sim_calls(sim, QR_PATH) == []


def test_a_mini_program_code_is_the_image_bytes(mp, sim):
    image = qrcodes.wxacode_unlimited(mp, "x" * 32, page="pages/index/index", width=280)
    assert image.startswith(b"\x89PNG")
    (call,) = sim_calls(sim, WXA_PATH)
    assert call["json"] == {"scene": "x" * 32, "page": "pages/index/index", "width": 280,
                            "check_path": True, "env_version": "release"}


def test_a_mini_program_code_failure_comes_back_as_a_typed_error(mp, sim):
    sim_fault(sim, path=WXA_PATH, errcode=41030)
    with pytest.raises(PageRejected):
        qrcodes.wxacode_unlimited(mp, "ok", page="pages/gone/gone")


def _answer(content_type: str, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.headers["Content-Type"] = content_type
    response._content = body
    return response


def test_json_is_an_error_whatever_its_content_type_says():
    error = b'{"errcode": 40169, "errmsg": "invalid length for scene"}'
    with pytest.raises(CodeArgumentsRejected):
        qrcodes._image(_answer("image/jpeg", error))
    with pytest.raises(WeChatAPIError, match="not an image"):
        qrcodes._image(_answer("text/html", b"<html>busy</html>"))
    assert qrcodes._image(_answer("image/jpeg; charset=binary", b"\xff\xd8\xff")) == b"\xff\xd8\xff"


def test_errcodes_of_codes_are_typed():
    assert isinstance(api_error(45029, "qrcode count out of limit", "x"), CodeLimitReached)
    for errcode in (40052, 40053, 40097, 40129, 40169, 85096):
        assert isinstance(api_error(errcode, "bad", "x"), CodeArgumentsRejected)
    assert isinstance(api_error(41030, "invalid page", "x"), PageRejected)


def test_the_simulator_answers_45029_beyond_its_permanent_limit(start_sim):
    api: Api = start_sim(limits=SimLimits(permanent_qr_limit=2))
    token = api.token()

    def create(action: str, scene: str) -> dict:
        body = {"action_name": action, "action_info": {"scene": {"scene_str": scene}}}
        return api.call(QR_PATH, body, access_token=token)

    assert create("QR_LIMIT_STR_SCENE", "a")["url"]
    assert create("QR_LIMIT_STR_SCENE", "b")["url"]
    refused = create("QR_LIMIT_STR_SCENE", "c")
    assert refused["errcode"] == 45029
    assert refused["errmsg"].startswith("qrcode count out of limit")
    assert create("QR_STR_SCENE", "d")["url"]  # temporary codes are not counted
