"""The callback under hostile input and a missing Redis: the contract's answer, never a 5xx."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib
from sqlalchemy import func, select

from campaigns.attribution.models import QrScan
from core.db import db
from members.holders.models import Follower
from tests.fixtures.sim import sim_calls
from tests.fixtures.wechat import push_message, wechat_xml
from wechat.crypto import MessageCrypto, signature

OPENID = "oUserHostile0000000000000001"
pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def endpoint(app):
    return app.wsgi_app  # the CallbackEndpoint in front of Flask


def _followers() -> int:
    db.session.rollback()  # read what the request committed, not a snapshot from before it
    return db.session.scalar(select(func.count()).select_from(Follower))


def _follow(**fields) -> dict:
    return push_message("event", OPENID, Event="subscribe", **fields)


@pytest.mark.parametrize("timestamp", ["١٧٠٠٠٠٠٠٠٠", "²", "１７００００００００", "-1", "1e9", ""])
def test_non_ascii_digits_in_the_timestamp_are_refused_before_anything(pusher, client,
                                                                       timestamp):
    query = {**pusher.query(), "timestamp": timestamp}
    response = client.post("/wechat/callback", query_string=query,
                           data=wechat_xml(_follow()), content_type="text/xml")
    assert response.status_code == 403
    assert _followers() == 0


@pytest.mark.parametrize("length", ["²", "١٠", "10000000000000000000000"])
def test_odd_content_lengths_are_not_a_crash(pusher, client, length):
    response = client.post("/wechat/callback", query_string=pusher.query(), data=b"<xml/>",
                           content_type="text/xml", environ_overrides={"CONTENT_LENGTH": length})
    assert response.status_code < 500


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_push_for_another_account_is_refused(pusher, mode):
    response = pusher.post(_follow(ToUserName="gh_someoneelse01"), mode=mode)
    assert response.status_code == 400
    assert _followers() == 0


def _safe_post(client, pusher, app, inner: bytes, to: str | None = None):
    """Encrypt ``inner`` bytes as they are (any encoding) into a correctly signed envelope."""
    config = app.config
    crypto = MessageCrypto(config["WECHAT_TOKEN"], config["WECHAT_AES_KEY"],
                           config["WECHAT_APP_ID"])
    encrypted = crypto.encrypt(inner)
    query = pusher.query()
    query.update(encrypt_type="aes", msg_signature=signature(
        config["WECHAT_TOKEN"], query["timestamp"], query["nonce"], encrypted))
    body = wechat_xml({"ToUserName": to or config["WECHAT_ORIGINAL_ID"], "Encrypt": encrypted})
    return client.post("/wechat/callback", query_string=query, data=body,
                       content_type="text/xml")


def test_the_envelope_and_the_message_must_name_the_same_account(pusher, client, app):
    assert _safe_post(client, pusher, app, wechat_xml(_follow())).status_code == 200
    db.session.execute(Follower.__table__.delete())
    db.session.commit()
    response = _safe_post(client, pusher, app, wechat_xml(_follow(CreateTime=int(time.time())
                                                                  + 1)), to="gh_someoneelse01")
    assert response.status_code == 400
    assert _followers() == 0


@pytest.mark.parametrize("encoding", ["utf-16", "iso-8859-1", "utf-7"])
def test_the_decrypted_message_goes_through_the_same_hardened_parser(pusher, client, app,
                                                                     encoding):
    # A DTD declared in another encoding, inside a correctly signed and encrypted envelope.
    inner = wechat_xml(push_message("text", OPENID, Content="x")).decode()
    inner = inner.replace("<Content><![CDATA[x]]></Content>", "<Content>&leak;</Content>")
    xml = (f'<?xml version="1.0" encoding="{encoding}"?>'
           f'<!DOCTYPE xml [<!ENTITY leak "ENTITY-EXPANDED">]>{inner}').encode(encoding)
    response = _safe_post(client, pusher, app, xml)
    assert response.status_code == 400
    assert b"ENTITY-EXPANDED" not in response.get_data()


def test_plaintext_is_refused_where_it_is_not_allowed(pusher, endpoint, monkeypatch):
    monkeypatch.setattr(endpoint, "plaintext_allowed", False)
    assert pusher.post(_follow(), mode="plain").status_code == 403
    assert _followers() == 0
    assert pusher.post(_follow(), mode="safe").status_code == 200  # safe mode still works
    assert _followers() == 1


def test_production_takes_safe_mode_only_unless_told(app):
    from config import load_settings

    assert load_settings("production", environ={})["CALLBACK_PLAINTEXT_ALLOWED"] is False
    told = load_settings("production", environ={"CALLBACK_PLAINTEXT_ALLOWED": "true"})
    assert told["CALLBACK_PLAINTEXT_ALLOWED"] is True


@pytest.mark.parametrize("key", ["scanbarcode|EAN_13|6901234567892", "scanimage|1234"])
def test_a_follow_from_a_product_scan_is_a_follow(pusher, sim, run_jobs, key):
    response = pusher.post(_follow(EventKey=key))
    assert response.status_code == 200
    assert pusher.reply(response)["MsgType"] == "text"  # the welcome
    run_jobs()
    follower = db.session.scalar(select(Follower))
    assert (follower.openid, follower.subscribed, follower.first_scene) == (OPENID, True, None)
    assert len(sim_calls(sim, "/cgi-bin/user/info")) == 1
    assert db.session.scalar(select(func.count()).select_from(QrScan)) == 0


@pytest.fixture
def redis_down(endpoint, monkeypatch):
    """The dedupe cache pointed at a port where no Redis answers (a real connection error)."""
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(endpoint.replies, "redis", dead)


@pytest.mark.usefixtures("redis_down")
@pytest.mark.parametrize("fields", [
    {"Event": "subscribe"},
    {"Event": "TEMPLATESENDJOBFINISH", "MsgID": "200163836", "Status": "success"},
])
def test_without_redis_effectful_pushes_get_503_and_change_nothing(pusher, fields):
    response = pusher.post(push_message("event", OPENID, **fields))
    assert response.status_code == 503  # WeChat retries; nothing was done twice or half
    assert _followers() == 0


@pytest.mark.usefixtures("redis_down")
def test_without_redis_reply_only_pushes_still_answer(pusher):
    response = pusher.post(push_message("text", OPENID, Content="积分"))
    assert response.status_code == 200
    assert pusher.reply(response)["Content"] == "您的积分请在小程序查看"


def test_a_stale_push_is_refused_even_when_well_signed(pusher):
    old = str(int(time.time()) - 3600)
    response = pusher.post(_follow(), query=pusher.query(timestamp=old), mode="plain")
    assert response.status_code == 403
