"""Rate limits: sliding windows in the app's Redis, hashed keys, stricter for non-local clients."""

from __future__ import annotations

import time

import limits.storage.redis
import pytest

from config import ConfigError, load_settings
from config.settings import BASE
from members.protection import limits as rate
from members.protection.pii import vault

CARD = "6217000012345678901"
PHONE = "13800138000"
OPENID = "oTestOpenid0000000000000001"
IP = "203.0.113.9"


class Clock:
    """Stands in for ``time`` where the windows read it: the storage and Retry-After."""

    def __init__(self) -> None:
        # Whole seconds: Redis's Lua hands timestamps back with 14 significant digits.
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    # Entries carry the client's timestamp (passed into the Lua scripts), so this
    # moves the windows in real Redis and in fakeredis alike.
    monkeypatch.setattr(limits.storage.redis, "time", fake)
    monkeypatch.setattr(rate, "time", fake)
    return fake


@pytest.fixture
def ctx(app, monkeypatch):
    """An app context with small test limits (restored afterwards)."""
    monkeypatch.setitem(app.config, "RATE_LIMITS", {
        "try": {"card": "3/minute", "ip": "10/minute"},
        "burst": {"openid": "2/minute;3/hour"},
    })
    monkeypatch.setitem(app.config, "RATE_LIMITS_NONLOCAL", {"try": {"card": "1/minute"}})
    with app.app_context():
        yield app


def _refused(action, keys, local=True):
    with pytest.raises(rate.RateLimited) as caught:
        rate.enforce(action, keys, local=local)
    return caught.value


def test_the_window_slides(ctx, clock):
    keys = {"card": CARD, "ip": IP}
    for _ in range(3):
        rate.enforce("try", keys, local=True)
        clock.advance(20)  # hits at 0, 20, 40
    clock.advance(-10)  # t=50
    refused = _refused("try", keys)
    assert (refused.status, refused.code) == (429, "too_many_requests")
    assert refused.headers == {"Retry-After": "10"}  # the hit at 0 leaves the window at 60
    assert refused.dimensions == frozenset({"card"}) and refused.retry_after == 10
    clock.advance(11)  # t=61: one slot free, not a whole fresh window
    rate.enforce("try", keys, local=True)
    assert _refused("try", keys).headers == {"Retry-After": "19"}  # next frees at 20 + 60


def test_retry_after_waits_for_every_full_window(ctx, clock):
    keys = {"openid": OPENID}
    rate.enforce("burst", keys, local=True)
    clock.advance(30)
    rate.enforce("burst", keys, local=True)
    assert _refused("burst", keys).retry_after == 30  # the minute window
    clock.advance(31)
    rate.enforce("burst", keys, local=True)  # 3 in the hour now
    clock.advance(60)
    # The minute window has room; the hour window frees at 0 + 3600.
    assert _refused("burst", keys).retry_after == 3600 - 121


def test_refused_attempts_consume_no_other_window(ctx, clock):
    for _ in range(3):
        rate.enforce("try", {"card": CARD, "ip": IP}, local=True)
    for _ in range(20):
        _refused("try", {"card": CARD, "ip": IP})
    # The address was refused 20 times over the card, yet only the 3 admitted tries count.
    for n in range(7):
        rate.enforce("try", {"card": f"62170000123456{n:05d}", "ip": IP}, local=True)
    assert _refused("try", {"card": "6217000099999999999", "ip": IP}).dimensions == {"ip"}


def test_non_local_clients_meet_stricter_windows_on_top(ctx, clock):
    keys = {"card": CARD, "ip": IP}
    rate.enforce("try", keys, local=False)
    assert _refused("try", keys, local=False).dimensions == {"card"}
    # The non-local try counted in the card's local window too: 2 more from home, not 3.
    rate.enforce("try", keys, local=True)
    rate.enforce("try", keys, local=True)
    _refused("try", keys)


def test_ipv6_clients_share_their_64(ctx, clock):
    for n in range(10):
        rate.enforce("try", {"card": f"62170000123456{n:05d}", "ip": f"2001:db8:1:2::{n + 1:x}"},
                     local=True)
    refused = _refused("try", {"card": CARD, "ip": "2001:db8:1:2:ffff::1"})
    assert refused.dimensions == {"ip"}
    rate.enforce("try", {"card": CARD, "ip": "2001:db8:1:3::1"}, local=True)


def test_keys_hold_only_blind_indexes(ctx, app):
    ctx.config["RATE_LIMITS"] = BASE["RATE_LIMITS"]
    ctx.config["RATE_LIMITS_NONLOCAL"] = BASE["RATE_LIMITS_NONLOCAL"]
    rate.enforce("bind_start", {"openid": OPENID, "card": CARD, "phone": PHONE, "ip": IP},
                 local=False)
    keys = [key.decode() for key in app.extensions["redis"].keys(f"{rate.KEY_PREFIX}:*")]
    assert len(keys) == 16  # 4 dimensions x 2 windows, local and non-local
    text = " ".join(keys)
    for plaintext in (OPENID, CARD, PHONE, IP, CARD[-4:] + "/", "13800", "203.0.113"):
        assert plaintext not in text
    pii = vault()
    for kind, value in (("openid", OPENID), ("card", CARD), ("phone", PHONE), ("ip", IP)):
        assert f"/{kind}/{pii.blind_index(kind, value)}/" in text


def test_callers_pass_exactly_the_configured_dimensions(ctx):
    with pytest.raises(ValueError, match="exactly the dimensions"):
        rate.enforce("try", {"card": CARD}, local=True)  # ip missing: never skipped silently
    with pytest.raises(ValueError, match="exactly the dimensions"):
        rate.enforce("try", {"card": CARD, "ip": IP, "phone": PHONE}, local=True)
    with pytest.raises(LookupError, match="no RATE_LIMITS"):
        rate.enforce("nothing", {}, local=True)


def test_reset_frees_the_given_identifiers(ctx, clock):
    keys = {"card": CARD, "ip": IP}
    rate.enforce("try", keys, local=False)
    _refused("try", keys, local=False)
    rate.reset("try", {"card": CARD})  # e.g. after a support call
    rate.enforce("try", keys, local=False)


def test_real_time_windows(ctx, monkeypatch):
    """No clock stand-in: the library's own time, one-second windows."""
    monkeypatch.setitem(ctx.config, "RATE_LIMITS", {"quick": {"ip": "2/second"}})
    rate.enforce("quick", {"ip": IP}, local=True)
    rate.enforce("quick", {"ip": IP}, local=True)
    assert _refused("quick", {"ip": IP}).retry_after == 1
    time.sleep(1.05)
    rate.enforce("quick", {"ip": IP}, local=True)


def test_the_shipped_limits_pass_and_overrides_are_checked():
    rate.check_config(load_settings("test", environ={}))
    override = load_settings(environ={"RATE_LIMITS_NONLOCAL": '{"login": {"ip": "1/day"}}'})
    rate.check_config(override)
    bad = [
        {"RATE_LIMITS": {**BASE["RATE_LIMITS"], "login": {"ip": "lots"}}},
        {"RATE_LIMITS": {**BASE["RATE_LIMITS"], "login": {"ip": "1/hour", "card": "1/hour"}}},
        {"RATE_LIMITS": {k: v for k, v in BASE["RATE_LIMITS"].items() if k != "login"}},
        {"RATE_LIMITS_NONLOCAL": {"login": {"phone": "1/hour"}}},
        {"RATE_LIMITS_NONLOCAL": {"bind_confirm": {"ip": ["1/hour"]}}},
        {"RATE_LIMITS_NONLOCAL": []},
    ]
    for values in bad:
        with pytest.raises(ConfigError, match="RATE_LIMITS"):
            rate.check_config(load_settings("test", overrides=values, environ={}))
