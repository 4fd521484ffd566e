"""Fault injection and the control API."""

from __future__ import annotations

import time

from tests.fixtures.simkit import OA_APP_ID, Api

USER_GET = "/cgi-bin/user/get"


def test_errcode_fault_for_n_calls_then_normal(api: Api) -> None:
    token = api.token()
    api.sim("/faults", {"path": USER_GET, "errcode": -1, "times": 2})
    answers = [api.call(USER_GET, access_token=token) for _ in range(3)]
    assert [a.get("errcode") for a in answers] == [-1, -1, None]
    assert answers[0]["errmsg"].startswith("system error rid: ")


def test_http_status_fault(api: Api) -> None:
    api.sim("/faults", {"path": "*", "http_status": 502})
    assert api.get(USER_GET).status_code == 502
    assert api.get(USER_GET).json()["errcode"] == 41001


def test_delay_fault_then_normal_handling(api: Api) -> None:
    token = api.token()
    api.sim("/faults", {"path": USER_GET, "delay": 0.3})
    started = time.monotonic()
    assert api.call(USER_GET, access_token=token)["total"] == 0
    assert time.monotonic() - started >= 0.3


def test_faults_apply_in_order_and_only_to_their_path(api: Api) -> None:
    api.sim("/faults", {"path": "/cgi-bin/token", "errcode": 45009})
    api.sim("/faults", {"path": "*", "errcode": 40164})
    api.sim("/faults", {"path": "/cgi-bin/token", "errcode": 89503})
    listed = api.http.get(api.url + "/sim/faults").json()["faults"]
    assert [f["errcode"] for f in listed] == [45009, 40164, 89503]
    codes = [api.call("/cgi-bin/token").get("errcode") for _ in range(3)]
    assert codes == [45009, 40164, 89503]
    assert api.call("/cgi-bin/token")["errcode"] == 40002  # normal handling again


def test_fault_until_cleared(api: Api) -> None:
    api.sim("/faults", {"path": USER_GET, "errcode": 45011, "times": -1})
    assert [api.call(USER_GET)["errcode"] for _ in range(3)] == [45011] * 3
    assert api.http.delete(api.url + "/sim/faults").json() == {"faults": []}
    assert api.call(USER_GET)["errcode"] == 41001


def test_bad_control_input_is_a_400(api: Api) -> None:
    assert api.post("/sim/faults", {"path": "*"}).status_code == 400
    assert api.post("/sim/faults", {"path": "*", "errcode": 1, "delay": 1}).status_code == 400
    assert api.post("/sim/users", {"openid": "o", "colour": "red"}).status_code == 400
    assert api.post("/sim/users/activity", {"openid": "o", "action": "dance"}).status_code == 400
    for bad in ({"action": "interact", "kind": "wave"}, {"action": "subscribe", "kind": "click"}):
        assert api.post("/sim/users/activity", {"openid": "o", **bad}).status_code == 400
    assert api.post("/sim/clock", {"advance": -5}).status_code == 400


def test_requests_are_recorded_but_not_control_calls(api: Api) -> None:
    api.sim("/faults", {"path": USER_GET, "errcode": -1})
    api.get(USER_GET, access_token="t")
    api.get(USER_GET, access_token="t")
    recorded = api.http.get(api.url + "/sim/requests", params={"path": USER_GET}).json()
    assert [r["query"] for r in recorded] == [{"access_token": "t"}] * 2
    everything = api.http.get(api.url + "/sim/requests").json()
    assert all(not r["path"].startswith("/sim/") for r in everything)
    assert api.http.get(api.url + "/sim/stats").json()["requests"][USER_GET] == 2


def test_reset_forgets_everything(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_1"})
    api.sim("/faults", {"path": "*", "errcode": -1, "times": -1})
    api.sim("/reset")
    assert api.http.get(api.url + "/sim/requests").json() == []
    assert api.call(USER_GET, access_token=token)["errcode"] == 40001
    assert api.http.get(api.url + "/sim/users/o_1").status_code == 404


def test_state_methods_match_the_control_api(api: Api) -> None:
    """In-process tests may drive the same operations as Python calls."""
    state = api.server.state
    state.add_user("o_py", unionid="u_py")
    token = api.token()
    assert api.call("/cgi-bin/user/info", access_token=token, openid="o_py")["unionid"] == "u_py"
    state.add_fault("/cgi-bin/user/info", errcode=-1)
    assert api.call("/cgi-bin/user/info", access_token=token, openid="o_py")["errcode"] == -1
    state.expire_tokens(OA_APP_ID)
    assert api.call("/cgi-bin/user/info", access_token=token, openid="o_py")["errcode"] == 42001
    assert state.recorded("/cgi-bin/user/info")[0]["query"]["openid"] == "o_py"
