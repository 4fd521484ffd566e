"""access_token semantics: rotation with grace, stable_token idempotency and isolation, errors."""

from __future__ import annotations

import re

from tests.fixtures.simkit import MP_APP_ID, MP_SECRET, OA_APP_ID, OA_SECRET, Api
from wechat.sim import SimLimits

RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


def _user_get(api: Api, token: str | None) -> dict:
    params = {"access_token": token} if token is not None else {}
    return api.call("/cgi-bin/user/get", **params)


def _stable(api: Api, appid: str = OA_APP_ID, secret: str = OA_SECRET, **extra: object) -> dict:
    body = {"grant_type": "client_credential", "appid": appid, "secret": secret, **extra}
    return api.call("/cgi-bin/stable_token", body)


def test_token_call_issues_a_new_token_each_time(api: Api) -> None:
    answer = api.call(
        "/cgi-bin/token", grant_type="client_credential", appid=OA_APP_ID, secret=OA_SECRET
    )
    assert answer["expires_in"] == 7200
    assert len(answer["access_token"]) >= 100
    assert api.token() != answer["access_token"]


def test_previous_token_works_for_five_minutes_then_is_not_latest(api: Api) -> None:
    old = api.token()
    new = api.token()
    assert _user_get(api, old)["total"] == 0
    api.sim("/clock", {"advance": 299})
    assert _user_get(api, old)["total"] == 0
    api.sim("/clock", {"advance": 2})
    assert _user_get(api, old)["errcode"] == 40001
    assert _user_get(api, new)["total"] == 0


def test_token_errors_carry_a_rid(api: Api) -> None:
    missing = _user_get(api, None)
    assert missing["errcode"] == 41001
    assert RID.search(missing["errmsg"])
    assert _user_get(api, "garbage")["errcode"] == 40001


def test_natural_expiry_answers_42001(api: Api) -> None:
    token = api.token()
    api.sim("/clock", {"advance": 7200})
    assert _user_get(api, token)["errcode"] == 42001


def test_control_expire_and_revoke(api: Api) -> None:
    token = api.token()
    api.sim("/tokens/expire", {"appid": OA_APP_ID})
    assert _user_get(api, token)["errcode"] == 42001
    token = api.token()
    api.sim("/tokens/revoke", {"appid": OA_APP_ID})
    assert _user_get(api, token)["errcode"] == 40001


def test_token_call_errors(api: Api) -> None:
    def token(**params: str) -> int:
        return api.call("/cgi-bin/token", **params).get("errcode", 0)

    assert token(grant_type="password", appid=OA_APP_ID, secret=OA_SECRET) == 40002
    assert token(grant_type="client_credential", appid="wxunknown", secret=OA_SECRET) == 40013
    assert token(grant_type="client_credential", appid=OA_APP_ID, secret="0" * 32) == 40001
    assert token(grant_type="client_credential", appid=OA_APP_ID, secret="short") == 40125
    assert token(grant_type="client_credential", appid=MP_APP_ID, secret=MP_SECRET) == 0


def test_daily_token_limit_answers_45009(start_sim) -> None:
    api = start_sim(limits=SimLimits(token_daily_limit=3))
    for _ in range(3):
        api.token()
    answer = api.call(
        "/cgi-bin/token", grant_type="client_credential", appid=OA_APP_ID, secret=OA_SECRET
    )
    assert answer["errcode"] == 45009
    api.sim("/clock", {"advance": 86400})
    assert api.token()
    stats = api.http.get(api.url + "/sim/stats").json()
    assert stats["token_calls"][OA_APP_ID] == 5


def test_stable_token_is_idempotent_and_isolated(api: Api) -> None:
    first = _stable(api)
    assert first["expires_in"] == 7200
    api.sim("/clock", {"advance": 100})
    again = _stable(api)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 7100
    # A /cgi-bin/token call does not touch the stable family, even after its grace period.
    api.token()
    api.token()
    api.sim("/clock", {"advance": 400})
    assert _user_get(api, first["access_token"])["total"] == 0
    assert _stable(api, MP_APP_ID, MP_SECRET)["access_token"] != first["access_token"]


def test_stable_token_rotates_five_minutes_early_with_both_valid(api: Api) -> None:
    first = _stable(api)
    api.sim("/clock", {"advance": 7200 - 300})
    rotated = _stable(api)
    assert rotated["access_token"] != first["access_token"]
    assert rotated["expires_in"] == 7200
    assert _user_get(api, first["access_token"])["total"] == 0
    api.sim("/clock", {"advance": 300})
    assert _user_get(api, first["access_token"])["errcode"] == 42001
    assert _user_get(api, rotated["access_token"])["total"] == 0


def test_stable_token_after_control_expiry_is_fresh(api: Api) -> None:
    first = _stable(api)
    api.sim("/tokens/expire", {"appid": OA_APP_ID})
    fresh = _stable(api)
    assert fresh["access_token"] != first["access_token"]
    assert _user_get(api, fresh["access_token"])["total"] == 0


def test_force_refresh_invalidates_at_once_and_is_rate_limited(api: Api) -> None:
    first = _stable(api)
    forced = _stable(api, force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert _user_get(api, first["access_token"])["errcode"] == 40001
    assert _stable(api, force_refresh=True)["errcode"] == 45011  # < 30 s apart
    api.sim("/clock", {"advance": 30})
    assert "access_token" in _stable(api, force_refresh=True)


def test_force_refresh_daily_limit(start_sim) -> None:
    api = start_sim(limits=SimLimits(stable_force_daily_limit=2, stable_force_interval=0))
    assert "access_token" in _stable(api, force_refresh=True)
    assert "access_token" in _stable(api, force_refresh=True)
    assert _stable(api, force_refresh=True)["errcode"] == 45009


def test_stable_token_wants_a_json_body(api: Api) -> None:
    form = api.http.post(
        api.url + "/cgi-bin/stable_token",
        timeout=5,
        data={"grant_type": "client_credential", "appid": OA_APP_ID},
    )
    assert form.json()["errcode"] == 47001


def test_mini_program_token_cannot_call_official_account_apis(api: Api) -> None:
    assert _user_get(api, api.token("mp"))["errcode"] == 48001


def test_jsapi_ticket_is_cached_until_expiry(api: Api) -> None:
    token = api.token()
    first = api.call("/cgi-bin/ticket/getticket", access_token=token, type="jsapi")
    assert first["errcode"] == 0 and first["expires_in"] == 7200
    again = api.call("/cgi-bin/ticket/getticket", access_token=token, type="jsapi")
    assert again["ticket"] == first["ticket"]
