"""WeChat web OAuth: the authorize URL as WeChat wants it, and the code exchange via the client."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fixtures.sim import sim_calls, sim_fault, sim_post
from wechat import oauth
from wechat.errors import WeChatAPIError, WeChatUnavailable

EXCHANGE = "/sns/oauth2/access_token"


def test_authorize_url_is_exactly_what_wechat_expects():
    url = oauth.authorize_url("https://open.weixin.qq.com/", "wx123",
                              "https://bank.example/m/cb?from=menu&x=a b", "snsapi_base", "Ab9")
    assert url == (
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx123"
        "&redirect_uri=https%3A%2F%2Fbank.example%2Fm%2Fcb%3Ffrom%3Dmenu%26x%3Da%20b"
        "&response_type=code&scope=snsapi_base&state=Ab9#wechat_redirect"
    )


@pytest.mark.parametrize(("scope", "state"), [
    ("snsapi_login", "abc"), ("snsapi_base", ""), ("snsapi_base", "a-b"),
    ("snsapi_base", "a" * 129), ("snsapi_base", "状态"),
])
def test_authorize_url_refuses_what_wechat_would_not_echo(scope, state):
    with pytest.raises(ValueError):
        oauth.authorize_url("https://open.weixin.qq.com", "wx123", "https://x/", scope, state)


def test_states_are_long_random_and_alphanumeric():
    states = {oauth.new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", state) for state in states)


def _code(app, sim, openid: str = "oWebUser000000000000000000001") -> str:
    """A code from the simulator's authorize page, as the browser would bring it back."""
    url = oauth.authorize_url(sim.url, app.config["WECHAT_APP_ID"], "https://bank.example/cb",
                              "snsapi_base", "s1")
    answer = requests.get(url.partition("#")[0], params={"sim_openid": openid},
                          allow_redirects=False, timeout=5)
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


@pytest.fixture
def client_oa(app):
    return app.extensions["wechat.clients"]["official_account"]


def test_exchange_gives_openid_and_unionid(app, sim, client_oa):
    sim_post(sim, "/sim/users", openid="oWebUser000000000000000000001", unionid="uWeb1")
    user = oauth.exchange_code(client_oa, _code(app, sim))
    assert user == oauth.WebUser(openid="oWebUser000000000000000000001", unionid="uWeb1",
                                 scope="snsapi_base", snapshot=False)
    call = sim_calls(sim, EXCHANGE)[0]
    assert call["query"]["grant_type"] == "authorization_code"
    assert "access_token" not in call["query"]  # a web call takes no global token


def test_exchange_without_unionid(app, sim, client_oa):
    assert oauth.exchange_code(client_oa, _code(app, sim)).unionid is None


def test_used_invalid_and_malformed_codes(app, sim, client_oa):
    code = _code(app, sim)
    oauth.exchange_code(client_oa, code)
    with pytest.raises(oauth.OAuthCodeRejected) as used:
        oauth.exchange_code(client_oa, code)
    assert used.value.used and used.value.errcode == 40163
    with pytest.raises(oauth.OAuthCodeRejected) as invalid:
        oauth.exchange_code(client_oa, "bogus")
    assert not invalid.value.used and invalid.value.errcode == 40029
    before = len(sim_calls(sim, EXCHANGE))
    for malformed in ("", "a b", "x" * 200, None):
        with pytest.raises(oauth.OAuthCodeRejected):
            oauth.exchange_code(client_oa, malformed)
    assert len(sim_calls(sim, EXCHANGE)) == before  # never sent


def test_transient_failures_are_retried_then_typed(app, sim, client_oa):
    sim_fault(sim, path=EXCHANGE, errcode=-1)
    assert oauth.exchange_code(client_oa, _code(app, sim)).openid
    sim_fault(sim, path=EXCHANGE, errcode=-1, times=3)
    with pytest.raises(WeChatUnavailable):
        oauth.exchange_code(client_oa, _code(app, sim))
    sim_fault(sim, path=EXCHANGE, errcode=40013)
    with pytest.raises(WeChatAPIError) as config_error:
        oauth.exchange_code(client_oa, _code(app, sim))
    assert config_error.value.errcode == 40013
    assert not isinstance(config_error.value, oauth.OAuthCodeRejected)


def test_snapshot_users_are_flagged(client_oa, monkeypatch):
    answer = {"openid": "oVirtual", "scope": "snsapi_base", "is_snapshotuser": 1}
    monkeypatch.setattr(client_oa, "get", lambda *args, **kwargs: dict(answer))
    assert oauth.exchange_code(client_oa, "code1").snapshot is True
