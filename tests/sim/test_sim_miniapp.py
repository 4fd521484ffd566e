"""Mini-program APIs: code2session, phone numbers, unlimited wxacode PNGs."""

from __future__ import annotations

import struct
import zlib

from tests.fixtures.simkit import MP_APP_ID, MP_SECRET, OA_APP_ID, OA_SECRET, Api


def _session(api: Api, code: str, **extra: str) -> dict:
    params = {
        "appid": MP_APP_ID,
        "secret": MP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
        **extra,
    }
    return api.call("/sns/jscode2session", **params)


def test_code2session_is_single_use(api: Api) -> None:
    code = api.sim("/miniapp/code", {"openid": "o_mp", "unionid": "u_1"})["code"]
    first = _session(api, code, access_token="tolerated-extra-param")
    assert "errcode" not in first
    assert first["openid"] == "o_mp" and first["unionid"] == "u_1"
    assert len(first["session_key"]) == 24
    assert _session(api, code)["errcode"] == 40163
    assert _session(api, "never-minted")["errcode"] == 40029


def test_code2session_codes_expire_after_five_minutes(api: Api) -> None:
    code = api.sim("/miniapp/code", {"openid": "o_mp"})["code"]
    api.sim("/clock", {"advance": 301})
    assert _session(api, code)["errcode"] == 40029


def test_each_login_rotates_the_session_key(api: Api) -> None:
    keys = {
        _session(api, api.sim("/miniapp/code", {"openid": "o_mp"})["code"])["session_key"]
        for _ in range(2)
    }
    assert len(keys) == 2
    assert "unionid" not in _session(api, api.sim("/miniapp/code", {"openid": "o_x"})["code"])


def test_code2session_app_checks(api: Api) -> None:
    code = api.sim("/miniapp/code", {"openid": "o_mp"})["code"]
    assert _session(api, code, appid=OA_APP_ID, secret=OA_SECRET)["errcode"] == 40013
    assert _session(api, code, secret="0" * 32)["errcode"] == 40125
    assert _session(api, "")["errcode"] == 41008
    assert _session(api, code)["openid"] == "o_mp"  # failed attempts did not use it up


def test_phone_number_code(api: Api) -> None:
    token = api.token("mp")
    code = api.sim("/miniapp/phone-code", {"phone": "13800138000"})["code"]
    path = "/wxa/business/getuserphonenumber"
    answer = api.call(path, {"code": code}, access_token=token)
    assert answer["errcode"] == 0
    info = answer["phone_info"]
    assert info["phoneNumber"] == info["purePhoneNumber"] == "13800138000"
    assert info["countryCode"] == 86 and info["watermark"]["appid"] == MP_APP_ID
    assert api.call(path, {"code": code}, access_token=token)["errcode"] == 40029
    foreign = api.sim("/miniapp/phone-code", {"phone": "2025550123", "country_code": "1"})["code"]
    info = api.call(path, {"code": foreign}, access_token=token)["phone_info"]
    assert info["phoneNumber"] == "+1 2025550123"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    return width, height


def test_wxacode_returns_a_png(api: Api) -> None:
    token = api.token("mp")
    body = {"scene": "c=AB12&x=1", "page": "pages/card/bind", "width": 300}
    answer = api.post("/wxa/getwxacodeunlimit", body, access_token=token)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/png"
    assert _png_size(answer.content) == (300, 300)
    default = api.post("/wxa/getwxacodeunlimit", {"scene": "a"}, access_token=token)
    assert _png_size(default.content) == (430, 430)


def test_wxacode_argument_rules(api: Api) -> None:
    token = api.token("mp")

    def errcode(**body: object) -> int:
        return api.call("/wxa/getwxacodeunlimit", {"scene": "ok", **body}, access_token=token)[
            "errcode"
        ]

    assert errcode(scene="x" * 33) == 40097
    assert errcode(scene="中文") == 40097
    assert errcode(scene="a%20b") == 40097
    assert errcode(width=279) == 40097
    assert errcode(width=1281) == 40097
    assert errcode(env_version="beta") == 40097
    assert errcode(page="/pages/card/bind") == 41030
    assert errcode(page="pages/card/bind?x=1") == 41030
    assert errcode(page="pages/unreleased/page") == 41030
    unchecked = {"page": "pages/unreleased/page", "check_path": False}
    assert (
        api.post(
            "/wxa/getwxacodeunlimit", {"scene": "ok", **unchecked}, access_token=token
        ).headers["Content-Type"]
        == "image/png"
    )
