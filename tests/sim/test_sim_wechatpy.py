"""wechatpy's own clients, pointed at the simulator, work unchanged (the backend's path)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.oauth import WeChatOAuth

from tests.fixtures.simkit import MP_APP_ID, MP_SECRET, OA_APP_ID, OA_SECRET, TEMPLATE, Api


class _Redirect(requests.adapters.HTTPAdapter):
    """Sends https://api.weixin.qq.com/… to the simulator, as the backend's adapter does."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        request.url = request.url.replace("https://api.weixin.qq.com", self.base, 1)
        kwargs["timeout"] = kwargs.get("timeout") or 5
        return super().send(request, **kwargs)


def _client(api: Api, appid: str, secret: str) -> WeChatClient:
    client = WeChatClient(appid, secret)
    client._http.mount("https://api.weixin.qq.com/", _Redirect(api.url))
    return client


def test_official_account_calls(api: Api) -> None:
    api.sim("/users", {"openid": "o_f", "unionid": "u_f"})
    client = _client(api, OA_APP_ID, OA_SECRET)
    assert client.user.get("o_f")["unionid"] == "u_f"
    data = {"thing1": {"value": "hello"}}
    assert client.message.send_template("o_f", TEMPLATE, data)["msgid"] > 0
    with pytest.raises(WeChatClientException) as refused:
        client.message.send_template("o_f", "unknown", data)
    assert refused.value.errcode == 40037
    assert client.qrcode.create(
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 1}}}
    )["ticket"]
    assert client.tag.create("vip")["name"] == "vip"


def test_auto_retry_refreshes_an_expired_token_once(api: Api) -> None:
    api.sim("/users", {"openid": "o_f"})
    client = _client(api, OA_APP_ID, OA_SECRET)
    client.user.get("o_f")
    api.sim("/tokens/expire", {"appid": OA_APP_ID})
    assert client.user.get("o_f")["subscribe"] == 1
    assert api.server.state.stats_snapshot()["token_calls"][OA_APP_ID] == 2


def test_mini_program_calls(api: Api) -> None:
    client = _client(api, MP_APP_ID, MP_SECRET)
    code = api.sim("/miniapp/code", {"openid": "o_mp", "unionid": "u_mp"})["code"]
    session = client.wxa.code_to_session(code)  # also sends an access_token
    assert session["openid"] == "o_mp" and session["unionid"] == "u_mp"
    image = client.wxa.get_wxa_code_unlimited("c=1", page="pages/index/index")
    assert image.content.startswith(b"\x89PNG")


def test_web_oauth_exchange(api: Api) -> None:
    oauth = WeChatOAuth(OA_APP_ID, OA_SECRET, "https://bank.example/cb")
    oauth._http.mount("https://api.weixin.qq.com/", _Redirect(api.url))
    # The browser leg: WeChatOAuth builds the authorize URL for open.weixin.qq.com.
    authorize = oauth.authorize_url.replace("https://open.weixin.qq.com", api.url)
    page = api.http.get(authorize, params={"sim_openid": "o_web"}, allow_redirects=False)
    code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
    assert oauth.fetch_access_token(code)["openid"] == "o_web"
