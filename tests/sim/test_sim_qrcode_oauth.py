"""Parametric QR codes and web OAuth."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.fixtures.simkit import OA_APP_ID, OA_SECRET, Api


def _create(api: Api, token: str, action: str, scene: dict, **extra: object) -> dict:
    body = {"action_name": action, "action_info": {"scene": scene}, **extra}
    return api.call("/cgi-bin/qrcode/create", body, access_token=token)


def test_qr_create_ranges(api: Api) -> None:
    token = api.token()
    temporary = _create(
        api, token, "QR_STR_SCENE", {"scene_str": "card_ABC"}, expire_seconds=604800
    )
    assert temporary["expire_seconds"] == 604800
    assert temporary["url"].startswith("http://weixin.qq.com/q/")
    assert _create(api, token, "QR_SCENE", {"scene_id": 7})["expire_seconds"] == 30
    capped = _create(api, token, "QR_SCENE", {"scene_id": 2**32 - 1}, expire_seconds=10**8)
    assert capped["expire_seconds"] == 2_592_000
    permanent = _create(api, token, "QR_LIMIT_SCENE", {"scene_id": 100_000})
    assert "expire_seconds" not in permanent and permanent["ticket"]
    assert _create(api, token, "QR_LIMIT_SCENE", {"scene_id": 100_001})["errcode"] == 40053
    assert _create(api, token, "QR_SCENE", {"scene_id": 0})["errcode"] == 40053
    assert _create(api, token, "QR_STR_SCENE", {"scene_str": "x" * 65})["errcode"] == 40053
    assert _create(api, token, "QR_LIMIT_STR_SCENE", {"scene_str": ""})["errcode"] == 40053
    assert _create(api, token, "QR_BOGUS", {"scene_id": 1})["errcode"] == 40052


def test_showqrcode_serves_the_image_until_expiry(api: Api) -> None:
    token = api.token()
    ticket = _create(api, token, "QR_SCENE", {"scene_id": 1}, expire_seconds=60)["ticket"]
    assert ticket.endswith("==")  # clients must URL-encode it
    image = api.get("/cgi-bin/showqrcode", ticket=ticket)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert api.get("/cgi-bin/showqrcode", ticket="unknown").status_code == 404
    api.sim("/clock", {"advance": 61})
    assert api.get("/cgi-bin/showqrcode", ticket=ticket).status_code == 404


def _authorize(api: Api, scope: str = "snsapi_base", **extra: str) -> dict[str, list[str]]:
    answer = api.http.get(
        api.url + "/connect/oauth2/authorize",
        allow_redirects=False,
        params={
            "appid": OA_APP_ID,
            "redirect_uri": "https://bank.example/h5/cb?from=menu",
            "response_type": "code",
            "scope": scope,
            "state": "xyz123",
            **extra,
        },
        timeout=5,
    )
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "bank.example" and location.path == "/h5/cb"
    return parse_qs(location.query)


def _exchange(api: Api, code: str) -> dict:
    return api.call(
        "/sns/oauth2/access_token",
        appid=OA_APP_ID,
        secret=OA_SECRET,
        code=code,
        grant_type="authorization_code",
    )


def test_oauth_redirect_and_single_use_code(api: Api) -> None:
    api.sim("/users", {"openid": "o_web", "unionid": "u_web"})
    query = _authorize(api, sim_openid="o_web")
    assert query["state"] == ["xyz123"] and query["from"] == ["menu"]
    grant = _exchange(api, query["code"][0])
    assert grant["openid"] == "o_web" and grant["unionid"] == "u_web"
    assert grant["scope"] == "snsapi_base" and grant["expires_in"] == 7200
    assert _exchange(api, query["code"][0])["errcode"] == 40163
    assert _exchange(api, "bogus")["errcode"] == 40029
    late = _authorize(api)["code"][0]
    api.sim("/clock", {"advance": 301})
    assert _exchange(api, late)["errcode"] == 40029


def test_oauth_default_user_and_refusals(api: Api) -> None:
    grant = _exchange(api, _authorize(api)["code"][0])
    assert grant["openid"] == api.server.state.config.default_oauth_openid
    bad = api.http.get(
        api.url + "/connect/oauth2/authorize",
        params={
            "appid": "wxother",
            "redirect_uri": "https://x/",
            "response_type": "code",
            "scope": "snsapi_base",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert bad.status_code == 400


def test_web_token_userinfo_refresh_and_auth(api: Api) -> None:
    api.sim("/users", {"openid": "o_web", "unionid": "u_web"})
    grant = _exchange(api, _authorize(api, "snsapi_userinfo", sim_openid="o_web")["code"][0])
    token = grant["access_token"]
    profile = api.call("/sns/userinfo", access_token=token, openid="o_web", lang="zh_CN")
    assert profile["nickname"] == "微信用户" and profile["unionid"] == "u_web"
    assert api.call("/sns/userinfo", access_token=token, openid="o_other")["errcode"] == 40003
    assert api.call("/sns/auth", access_token=token, openid="o_web") == {
        "errcode": 0,
        "errmsg": "ok",
    }
    refreshed = api.call(
        "/sns/oauth2/refresh_token",
        appid=OA_APP_ID,
        grant_type="refresh_token",
        refresh_token=grant["refresh_token"],
    )
    assert refreshed["access_token"] != token and refreshed["openid"] == "o_web"
    assert (
        api.call(
            "/sns/oauth2/refresh_token",
            appid=OA_APP_ID,
            grant_type="refresh_token",
            refresh_token="bogus",
        )["errcode"]
        == 40030
    )
    api.sim("/clock", {"advance": 7200})
    assert api.call("/sns/auth", access_token=token, openid="o_web")["errcode"] == 42001


def test_base_scope_cannot_read_userinfo(api: Api) -> None:
    grant = _exchange(api, _authorize(api, sim_openid="o_base")["code"][0])
    answer = api.call("/sns/userinfo", access_token=grant["access_token"], openid="o_base")
    assert answer["errcode"] == 48001
