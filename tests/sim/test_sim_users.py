"""User info, follower list paging, tags."""

from __future__ import annotations

from tests.fixtures.simkit import Api
from wechat.sim import SimLimits


def test_user_info_shapes(api: Api) -> None:
    token = api.token()
    api.sim("/users", {"openid": "o_f", "unionid": "u_f"})
    api.sim("/users", {"openid": "o_gone", "unionid": "u_g", "subscribed": False})
    info = api.call("/cgi-bin/user/info", access_token=token, openid="o_f", lang="zh_CN")
    assert info["subscribe"] == 1 and info["unionid"] == "u_f"
    assert info["tagid_list"] == [] and "nickname" not in info
    gone = api.call("/cgi-bin/user/info", access_token=token, openid="o_gone")
    assert gone == {"subscribe": 0, "openid": "o_gone"}
    assert api.call("/cgi-bin/user/info", access_token=token, openid="o_x")["errcode"] == 40003
    batch = api.call(
        "/cgi-bin/user/info/batchget",
        {"user_list": [{"openid": "o_f"}, {"openid": "o_gone"}]},
        access_token=token,
    )
    assert [u["subscribe"] for u in batch["user_info_list"]] == [1, 0]


def test_qr_follow_activity_sets_the_scene(api: Api) -> None:
    api.sim(
        "/users/activity",
        {"openid": "o_qr", "action": "subscribe", "scene": "card_ABC", "unionid": "u_qr"},
    )
    info = api.call("/cgi-bin/user/info", access_token=api.token(), openid="o_qr")
    assert info["subscribe_scene"] == "ADD_SCENE_QR_CODE" and info["qr_scene_str"] == "card_ABC"
    assert info["unionid"] == "u_qr"


def test_follower_list_paging_quirk(start_sim) -> None:
    api = start_sim(limits=SimLimits(follower_page_size=2))
    token = api.token()
    for n in range(3):
        api.sim("/users", {"openid": f"o_{n}"})
    api.sim("/users", {"openid": "o_left", "subscribed": False})
    first = api.call("/cgi-bin/user/get", access_token=token)
    assert first == {
        "total": 3,
        "count": 2,
        "data": {"openid": ["o_0", "o_1"]},
        "next_openid": "o_1",
    }
    second = api.call("/cgi-bin/user/get", access_token=token, next_openid="o_1")
    assert second["data"]["openid"] == ["o_2"] and second["next_openid"] == "o_2"
    end = api.call("/cgi-bin/user/get", access_token=token, next_openid="o_2")
    assert end == {"total": 3, "count": 0, "next_openid": "o_2"}  # no data, cursor echoed


def test_tags_lifecycle(api: Api) -> None:
    token = api.token()
    for openid in ("o_a", "o_b"):
        api.sim("/users", {"openid": openid})

    def call(path: str, body: dict | None = None) -> dict:
        return api.call(path, body, access_token=token)

    tag = call("/cgi-bin/tags/create", {"tag": {"name": "金卡"}})["tag"]
    assert tag["id"] >= 100 and tag["name"] == "金卡"
    assert call("/cgi-bin/tags/create", {"tag": {"name": "金卡"}})["errcode"] == 45157
    assert call("/cgi-bin/tags/create", {"tag": {"name": "x" * 31}})["errcode"] == 45158
    tagging = {"openid_list": ["o_a", "o_b"], "tagid": tag["id"]}
    assert call("/cgi-bin/tags/members/batchtagging", tagging)["errcode"] == 0
    assert call("/cgi-bin/tags/getidlist", {"openid": "o_a"}) == {"tagid_list": [tag["id"]]}
    members = call("/cgi-bin/user/tag/get", {"tagid": tag["id"], "next_openid": ""})
    assert members["count"] == 2 and members["data"]["openid"] == ["o_a", "o_b"]
    counts = {t["id"]: t["count"] for t in call("/cgi-bin/tags/get")["tags"]}
    assert counts == {2: 0, tag["id"]: 2}
    untag = {"openid_list": ["o_b"], "tagid": tag["id"]}
    assert call("/cgi-bin/tags/members/batchuntagging", untag)["errcode"] == 0
    assert call("/cgi-bin/tags/update", {"tag": {"id": tag["id"], "name": "白金"}})["errcode"] == 0
    assert call("/cgi-bin/tags/update", {"tag": {"id": 2, "name": "x"}})["errcode"] == 45058
    assert call("/cgi-bin/tags/delete", {"tag": {"id": tag["id"]}})["errcode"] == 0
    assert call("/cgi-bin/tags/getidlist", {"openid": "o_a"}) == {"tagid_list": []}
    assert call("/cgi-bin/tags/delete", {"tag": {"id": tag["id"]}})["errcode"] == 45159
    bad_batch = {"openid_list": ["o_a"] * 51, "tagid": 2}
    assert call("/cgi-bin/tags/members/batchtagging", bad_batch)["errcode"] == 40032


def test_tag_limits(start_sim) -> None:
    api = start_sim(limits=SimLimits(max_tags=2, tags_per_user=1))
    token = api.token()
    api.sim("/users", {"openid": "o_a"})
    ids = [
        api.call("/cgi-bin/tags/create", {"tag": {"name": f"t{n}"}}, access_token=token)
        for n in range(3)
    ]
    assert ids[2]["errcode"] == 45056
    first, second = ids[0]["tag"]["id"], ids[1]["tag"]["id"]
    path = "/cgi-bin/tags/members/batchtagging"
    assert (
        api.call(path, {"openid_list": ["o_a"], "tagid": first}, access_token=token)["errcode"] == 0
    )
    assert (
        api.call(path, {"openid_list": ["o_a"], "tagid": second}, access_token=token)["errcode"]
        == 45059
    )
