"""The channels' staff API: roles (a manager's own channels only, another's refused and
audited), bodies it refuses, and the code images with their cache headers."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from campaigns.attribution.models import Channel, ChannelCode
from campaigns.console.models import StaffAction
from core.db import db
from tests.fixtures.channels import make_channel
from tests.fixtures.sim import sim_calls

BODY = {"code": "branch_0101", "kind": "branch", "name": "杭州西湖支行", "branch": "0101"}
CSV = "code,kind,name,branch,staff\nbranch_0202,branch,宁波分行,0202,\n"


def _channels(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Channel))


def _forbidden_entries(app, username):
    with app.app_context():
        return db.session.scalars(select(StaffAction.target).where(
            StaffAction.action == "forbidden", StaffAction.username == username)).all()


@pytest.fixture
def managers(app, make_staff):
    """Two managers of branch 0101, each with a channel; answers their accounts."""
    own = make_staff("manager", username="mgr.own")
    other = make_staff("manager", username="mgr.other")
    make_channel(app, "m_own", kind="manager", staff="mgr.own")
    make_channel(app, "m_other", kind="manager", staff="mgr.other")
    return own, other


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/admin/api/channels"), ("post", "/admin/api/channels/import"),
    ("post", "/admin/api/channels/x/deactivate"), ("get", "/admin/api/channels"),
    ("get", "/admin/api/channels/x"), ("get", "/admin/api/channels/x/qrcode.png"),
    ("get", "/admin/api/channels/x/miniapp-code.png"), ("get", "/admin/api/qrcodes/budget"),
])
def test_every_call_needs_a_staff_token(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 401
    assert response.get_json()["error"] == "missing_token"


def test_a_marketer_creates_a_channel(client, make_staff, app):
    marketer = make_staff("marketer")
    response = client.post("/admin/api/channels", json=BODY, headers=marketer.headers)
    assert response.status_code == 201
    body = response.get_json()
    assert {key: body[key] for key in BODY} == BODY
    assert body["active"] is True and body["staff"] is None and body["created_at"]
    again = client.post("/admin/api/channels", json=BODY, headers=marketer.headers)
    assert again.status_code == 409 and again.get_json()["error"] == "code_taken"
    shown = client.get("/admin/api/channels/branch_0101", headers=marketer.headers)
    assert shown.get_json() == body


def test_viewers_and_managers_may_not_write(client, make_staff, managers, app):
    for account in (make_staff("viewer"), managers[0]):
        assert client.post("/admin/api/channels", json=BODY,
                           headers=account.headers).status_code == 403
        assert client.post("/admin/api/channels/m_own/deactivate",
                           headers=account.headers).status_code == 403
        assert client.post("/admin/api/channels/import", data=CSV, content_type="text/csv",
                           headers=account.headers).status_code == 403
    assert _channels(app) == 2


def test_bad_bodies_are_400_and_change_nothing(client, make_staff, app):
    marketer = make_staff("marketer")

    def post(data, content_type="application/json"):
        return client.post("/admin/api/channels", data=data, content_type=content_type,
                           headers=marketer.headers)

    for data in (b"{", b'{"code": "a", "code": "b"}', b"[1]", b"\xff", b'"x"'):
        response = post(data)
        assert response.status_code == 400, data
        assert response.get_json()["error"] == "invalid_json"
    too_long = post(b'{"code": "' + b"x" * 33 + b'", "kind": "campaign", "name": "n"}')
    assert too_long.status_code == 400
    assert too_long.get_json()["fields"] == {"code": "is longer than 32 characters"}
    assert _channels(app) == 0


def test_a_csv_import_through_the_api(client, make_staff, app):
    marketer = make_staff("marketer")
    answer = client.post("/admin/api/channels/import", data=CSV.encode(),
                         content_type="text/csv; charset=utf-8", headers=marketer.headers)
    assert answer.status_code == 201
    assert answer.get_json() == {"created": 1, "branches": ["0202"]}
    wrong_type = client.post("/admin/api/channels/import", data=CSV, content_type="text/plain",
                             headers=marketer.headers)
    assert wrong_type.status_code == 415
    bad = client.post("/admin/api/channels/import", content_type="text/csv",
                      data=CSV + "=x,branch,y,0202,\n", headers=marketer.headers)
    assert bad.status_code == 400
    assert bad.get_json()["rows"] == [  # line 2 was imported above
        {"row": 2, "field": "code", "reason": "another channel has this code"},
        {"row": 3, "field": "code", "reason": "must be 1 to 32 of A-Z, a-z, 0-9 and '_'"}]
    huge = "code,kind,name,branch,staff\n" + "x" * app.config["CHANNEL_IMPORT_MAX_BYTES"]
    assert client.post("/admin/api/channels/import", data=huge, content_type="text/csv",
                       headers=marketer.headers).status_code == 413
    assert _channels(app) == 1


def test_a_manager_lists_and_reads_only_its_own(client, managers, make_staff, app):
    own, _ = managers
    listed = client.get("/admin/api/channels", headers=own.headers).get_json()
    assert [channel["code"] for channel in listed["channels"]] == ["m_own"]
    assert client.get("/admin/api/channels/m_own", headers=own.headers).status_code == 200
    refused = client.get("/admin/api/channels/m_other", headers=own.headers)
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert _forbidden_entries(app, "mgr.own") == ["path:/admin/api/channels/m_other"]
    viewer = make_staff("viewer")
    everyone = client.get("/admin/api/channels?kind=manager", headers=viewer.headers)
    assert [c["code"] for c in everyone.get_json()["channels"]] == ["m_other", "m_own"]
    for query in ("kind=shop", "active=maybe", "limit=0", "limit=x"):
        bad = client.get(f"/admin/api/channels?{query}", headers=viewer.headers)
        assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_filter"


def test_a_managers_own_qr_code_and_not_anothers(client, managers, app, sim):
    own, _ = managers
    response = client.get("/admin/api/channels/m_own/qrcode.png", headers=own.headers)
    assert response.status_code == 200 and response.mimetype == "image/png"
    with app.app_context():
        url = db.session.scalar(select(ChannelCode.url))
    with Image.open(io.BytesIO(response.data)) as image:
        assert [found.text for found in zxingcpp.read_barcodes(image)] == [url]
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    etag = response.headers["ETag"]
    cached = client.get("/admin/api/channels/m_own/qrcode.png",
                        headers={**own.headers, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""
    for path in ("/admin/api/channels/m_other/qrcode.png",
                 "/admin/api/channels/m_other/miniapp-code.png"):
        assert client.get(path, headers=own.headers).status_code == 403
    assert len(sim_calls(sim, "/cgi-bin/qrcode/create")) == 1
    assert _forbidden_entries(app, "mgr.own") == [
        "path:/admin/api/channels/m_other/qrcode.png",
        "path:/admin/api/channels/m_other/miniapp-code.png"]


def test_codes_need_a_marketer_or_the_owner(client, managers, make_staff, app, sim):
    viewer = make_staff("viewer")
    assert client.get("/admin/api/channels/m_own/qrcode.png",
                      headers=viewer.headers).status_code == 403
    marketer = make_staff("marketer")
    mini = client.get("/admin/api/channels/m_other/miniapp-code.png", headers=marketer.headers)
    assert mini.status_code == 200 and mini.data.startswith(b"\x89PNG")
    assert mini.headers["ETag"]
    assert client.get("/admin/api/channels/nope/qrcode.png",
                      headers=marketer.headers).status_code == 404


def test_deactivate_and_the_budget(client, managers, make_staff, app, sim):
    marketer, viewer = make_staff("marketer"), make_staff("viewer")
    client.get("/admin/api/channels/m_own/qrcode.png", headers=marketer.headers)
    budget = client.get("/admin/api/qrcodes/budget", headers=viewer.headers)
    assert budget.get_json() == {"used": 1, "limit": 100_000, "warning": False}
    assert client.get("/admin/api/qrcodes/budget",
                      headers=managers[0].headers).status_code == 403
    done = client.post("/admin/api/channels/m_other/deactivate", headers=marketer.headers)
    assert done.status_code == 200 and done.get_json()["active"] is False
    refused = client.get("/admin/api/channels/m_other/qrcode.png", headers=marketer.headers)
    assert refused.status_code == 409 and refused.get_json()["error"] == "channel_inactive"
    assert client.post("/admin/api/channels/nope/deactivate",
                       headers=marketer.headers).status_code == 404
