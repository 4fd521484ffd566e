"""The WeChat client against the simulator over a real socket: tokens, retries, errors."""

from __future__ import annotations

import logging
import threading

import pytest
import requests

from tests.fixtures.sim import sim_calls, sim_fault, sim_post
from wechat import clients
from wechat.errors import WeChatAPIError, WeChatUnavailable
from wechat.transport import qr_image_url

OPENID = "oClientUser00000000000000001"


@pytest.fixture
def oa(app, sim):
    sim_post(sim, "/sim/users", openid=OPENID, unionid="uClient01", subscribed=True)
    with app.app_context():
        yield clients.official_account()


def _token_calls(sim) -> int:
    return len(sim_calls(sim, "/cgi-bin/stable_token"))


def test_fifty_threads_needing_a_token_cause_one_refresh(oa, sim, app):
    barrier = threading.Barrier(50)
    tokens, errors = [], []

    def need_token():
        with app.app_context():
            barrier.wait()
            try:
                tokens.append(clients.official_account().access_token)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=need_token) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(tokens)) == 1
    assert _token_calls(sim) == 1
    assert not sim_calls(sim, "/cgi-bin/token")  # never the quota-burning token API


def test_stable_token_request_never_forces_a_refresh(oa, sim):
    oa.user.get(OPENID)
    (call,) = sim_calls(sim, "/cgi-bin/stable_token")
    assert call["json"]["force_refresh"] is False


def test_40001_refreshes_once_and_retries_once(oa, sim):
    oa.user.get(OPENID)
    sim_post(sim, "/sim/tokens/revoke", appid=oa.appid)
    info = oa.user.get(OPENID)
    assert info["unionid"] == "uClient01"
    assert _token_calls(sim) == 2
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 3


def test_42001_expired_token_is_replaced(oa, sim):
    oa.user.get(OPENID)
    sim_post(sim, "/sim/tokens/expire", appid=oa.appid)
    assert oa.user.get(OPENID)["openid"] == OPENID
    assert _token_calls(sim) == 2


def test_a_token_that_keeps_failing_is_refreshed_once_not_looped(oa, sim):
    sim_fault(sim, path="/cgi-bin/user/info", errcode=40001, times=100)
    with pytest.raises(WeChatAPIError) as caught:
        oa.user.get(OPENID)
    assert caught.value.errcode == 40001
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 2
    assert _token_calls(sim) <= 2


def test_concurrent_40001s_on_one_token_refresh_it_once(oa, sim, app):
    oa.user.get(OPENID)
    sim_post(sim, "/sim/tokens/revoke", appid=oa.appid)
    barrier = threading.Barrier(10)

    def call():
        with app.app_context():
            barrier.wait()
            clients.official_account().user.get(OPENID)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _token_calls(sim) == 2  # the first token, then one refresh for all ten


@pytest.mark.parametrize("fault", [{"errcode": -1}, {"http_status": 502}, {"delay": 2.5}])
def test_transient_failures_are_retried(oa, sim, fault):
    oa.access_token  # noqa: B018 - warm the token so only user/info is faulted
    sim_fault(sim, path="/cgi-bin/user/info", times=2, **fault)
    assert oa.user.get(OPENID)["openid"] == OPENID
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 3


def test_transient_failures_give_up_after_the_configured_attempts(oa, sim, app):
    sim_fault(sim, path="/cgi-bin/user/info", errcode=-1, times=10)
    with pytest.raises(WeChatUnavailable) as caught:
        oa.user.get(OPENID)
    assert caught.value.errcode == -1
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == app.config["WECHAT_RETRY_ATTEMPTS"]


def test_other_errcodes_raise_a_typed_error_at_once(oa, sim):
    sim_post(sim, "/sim/users", openid="oUnfollowed00000000000000001", subscribed=False)
    with pytest.raises(WeChatAPIError) as caught:
        oa.message.send_template("oUnfollowed00000000000000001", "tmpl-txn-alert-test",
                                 {"keyword1": {"value": "x"}})
    assert caught.value.errcode == 43004
    assert caught.value.endpoint == "cgi-bin/message/template/send"
    assert "rid:" in caught.value.errmsg
    assert len(sim_calls(sim, "/cgi-bin/message/template/send")) == 1


def test_calls_are_counted_and_logged_without_tokens_or_secrets(oa, sim, app, caplog, client):
    caplog.set_level(logging.INFO)
    oa.user.get(OPENID)
    token = oa.access_token
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "cgi-bin/user/info" in logged
    assert token not in logged
    assert app.config["WECHAT_APP_SECRET"] not in logged
    page = client.get("/metrics").get_data(as_text=True)
    assert 'wechat_api_calls_total{endpoint="cgi-bin/user/info",errcode="0"}' in page


def test_every_wechat_host_is_redirected(app, sim):
    """wechatpy's hard-coded hosts (token, wxa, sns) all land on the configured base."""
    code = sim_post(sim, "/sim/miniapp/code", openid="oMini000000000000000000001",
                    unionid="uMini")["code"]
    with app.app_context():
        session = clients.mini_program().wxa.code_to_session(code)
        assert session["openid"] == "oMini000000000000000000001"
        qr = clients.official_account().qrcode.create(
            {"action_name": "QR_LIMIT_STR_SCENE",
             "action_info": {"scene": {"scene_str": "branch_1"}}})
    assert sim_calls(sim, "/sns/jscode2session")
    assert "access_token" not in sim_calls(sim, "/sns/jscode2session")[0]["query"]
    image = requests.get(qr_image_url(app.config, qr["ticket"]), timeout=5)
    assert image.status_code == 200 and image.headers["Content-Type"].startswith("image/")


def test_nothing_leaves_for_real_wechat_hosts(app):
    """Every https://*.weixin.qq.com call is rewritten; a raw qq.com URL never escapes."""
    from wechat.transport import WeChatHTTP

    http = WeChatHTTP({"https://api.weixin.qq.com": "http://127.0.0.1:9"}, timeout=0.5)
    with pytest.raises(requests.ConnectionError) as caught:
        http.get("https://api.weixin.qq.com/cgi-bin/x", params={"a": "1"})
    assert "127.0.0.1" in str(caught.value) and "weixin" not in str(caught.value)


def test_the_transport_answers_as_requests_would(app, sim):
    from wechat.transport import build_session

    http = build_session(app.config)
    answer = http.post("https://api.weixin.qq.com/cgi-bin/stable_token",
                       json={"grant_type": "client_credential", "appid": "wrong",
                             "secret": "wrong"})
    assert answer.status_code == 200 and answer.json()["errcode"] == 40013
    assert answer.headers["content-type"].startswith("application/json")
    missing = http.get("https://api.weixin.qq.com/no/such/api", params=[("a", "1")])
    with pytest.raises(requests.HTTPError):
        missing.raise_for_status()


def test_timeouts_surface_as_requests_timeouts(app, sim):
    from wechat.transport import build_session

    sim_fault(sim, path="/cgi-bin/stable_token", delay=1.0)
    http = build_session({**app.config, "WECHAT_HTTP_TIMEOUT": 0.2})
    with pytest.raises(requests.Timeout):
        http.post("https://api.weixin.qq.com/cgi-bin/stable_token", json={})


def test_qr_image_url_uses_the_configured_host_and_encodes_the_ticket():
    config = {"WECHAT_MP_BASE": "http://127.0.0.1:9/"}
    assert qr_image_url(config, "gQH+8Do/AAA=") == (
        "http://127.0.0.1:9/cgi-bin/showqrcode?ticket=gQH%2B8Do%2FAAA%3D"
    )


def test_the_egress_proxy_comes_from_configuration_only(app, monkeypatch):
    import urllib3

    from wechat.transport import build_session

    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.invalid:3128")
    plain = build_session(app.config)
    assert not isinstance(plain.pool, urllib3.ProxyManager)
    proxied = build_session({**app.config, "WECHAT_HTTP_PROXY": "http://egress:3128"})
    assert isinstance(proxied.pool, urllib3.ProxyManager)
    assert proxied.pool.proxy.host == "egress" and proxied.pool.proxy.port == 3128
