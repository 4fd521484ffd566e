"""The client IP: X-Forwarded-For believed only as far as trusted proxies wrote it."""

from __future__ import annotations

import pytest
from flask import Flask

from config import ConfigError
from core.client_ip import client_ip, init_app, ip_limit_key, parse_trusted, request_client_ip

PROXIES = parse_trusted(["10.0.0.0/8", "fd00::/8", "198.51.100.7"])
CLIENT = "203.0.113.9"


@pytest.mark.parametrize("forwarded", [
    None, "", "1.2.3.4", "10.0.0.5", "1.2.3.4, 10.0.0.1", "garbage", "::1",
])
def test_an_untrusted_peer_is_the_client_whatever_it_forwards(forwarded):
    assert client_ip(CLIENT, forwarded, PROXIES) == CLIENT
    assert client_ip(CLIENT, forwarded, ()) == CLIENT  # no proxies configured: same rule


@pytest.mark.parametrize(("forwarded", "expected"), [
    (CLIENT, CLIENT),  # one proxy
    (f"{CLIENT}, 10.0.0.1, 198.51.100.7", CLIENT),  # a chain of ours
    (f"1.1.1.1, {CLIENT}, 10.0.0.1", CLIENT),  # the client's own forgery, left of it, ignored
    (f"10.9.9.9, {CLIENT}", CLIENT),  # a forged "trusted" entry cannot hide the client
    (f"garbage, {CLIENT}", CLIENT),  # garbage the client wrote is never reached
    (f"{CLIENT},, 10.0.0.1,", CLIENT),  # empty entries are skipped
    ("10.0.0.3, 10.0.0.1", "10.0.0.3"),  # all ours: the request began at the leftmost
    (None, "10.0.0.2"),  # a proxy's own request
])
def test_a_trusted_peer_is_walked_from_the_right(forwarded, expected):
    assert client_ip("10.0.0.2", forwarded, PROXIES) == expected


@pytest.mark.parametrize(("forwarded", "expected"), [
    (f"{CLIENT}, not-an-ip", "10.0.0.2"),  # the proxy that wrote garbage stands in
    (f"{CLIENT}, unknown, 10.0.0.1", "10.0.0.1"),  # nginx's "unknown": the hop after it
    (f"{CLIENT}, 300.1.1.1", "10.0.0.2"),
])
def test_garbage_written_by_a_trusted_proxy_is_never_used(forwarded, expected):
    assert client_ip("10.0.0.2", forwarded, PROXIES) == expected


def test_ipv6_and_canonical_forms():
    # Two spellings of one address are one client (rate limits, audit hashes).
    assert client_ip("fd00::1", "2001:DB8:0:0::5", PROXIES) == "2001:db8::5"
    assert client_ip("fd00::1", "[2001:db8::5]:443", PROXIES) == "2001:db8::5"
    assert client_ip("fd00::1", f"{CLIENT}:51234", PROXIES) == CLIENT
    assert client_ip("2001:db8::7", CLIENT, PROXIES) == "2001:db8::7"
    # A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6.
    assert client_ip("::ffff:10.0.0.2", CLIENT, PROXIES) == CLIENT
    assert client_ip("::ffff:203.0.113.9", "1.2.3.4", PROXIES) == CLIENT
    assert client_ip("fd00::1", "::ffff:203.0.113.9", PROXIES) == CLIENT


def test_a_peer_that_is_no_address_is_one_unknown_client():
    assert client_ip("", "1.2.3.4", PROXIES) == ""
    assert client_ip("unix:/run/app.sock", "1.2.3.4", PROXIES) == "unix:/run/app.sock"


def test_trusted_proxies_are_checked():
    with pytest.raises(ValueError, match="every address"):
        parse_trusted(["0.0.0.0/0"])
    with pytest.raises(ValueError, match="every address"):
        parse_trusted(["::/0"])
    with pytest.raises(ValueError):
        parse_trusted(["10.0.0.1/8"])  # host bits: a typo, not a range to guess
    with pytest.raises(ValueError):
        parse_trusted(["proxy.internal"])


def test_ipv6_clients_are_limited_per_64():
    assert ip_limit_key("2001:db8:1:2:aaaa::1") == ip_limit_key("2001:db8:1:2:bbbb::2")
    assert ip_limit_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert ip_limit_key("2001:db8:1:3::1") != ip_limit_key("2001:db8:1:2::1")
    assert ip_limit_key("::ffff:203.0.113.9") == CLIENT
    assert ip_limit_key(" garbage ") == "garbage"


def test_request_client_ip_reads_the_configured_proxies():
    app = Flask(__name__)
    app.config["TRUSTED_PROXIES"] = ["10.0.0.0/8"]
    init_app(app)
    headers = {"X-Forwarded-For": f"1.1.1.1, {CLIENT}"}
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.2"}, headers=headers):
        assert request_client_ip() == CLIENT
    with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.1"}, headers=headers):
        assert request_client_ip() == "192.0.2.1"
    # Parsed once per app, again only when the setting changes.
    app.config["TRUSTED_PROXIES"] = []
    with app.test_request_context(environ_base={"REMOTE_ADDR": "10.0.0.2"}, headers=headers):
        assert request_client_ip() == "10.0.0.2"


def test_a_bad_trusted_proxy_stops_the_start():
    app = Flask(__name__)
    app.config["TRUSTED_PROXIES"] = ["10.0.0.0/33"]
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        init_app(app)
