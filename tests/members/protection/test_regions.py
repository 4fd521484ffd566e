"""Regions: the configured IP-range table, home regions and the non-local policy."""

from __future__ import annotations

import ipaddress
import random
import time

import pytest
from flask import Flask

from config import ConfigError, load_settings
from core.errors import ApiError
from members.protection import regions
from members.protection.regions import Region, load_table

TABLE = """\
# a comment, then the header
cidr,region
203.0.113.0/24,home-city
203.0.113.128/25,home-district
198.51.100.0/24,elsewhere
2001:db8::/32,home-city
2001:db8:1::/48,elsewhere
127.0.0.0/8,local-dev
"""


@pytest.fixture
def table_file(tmp_path):
    path = tmp_path / "regions.csv"
    path.write_text(TABLE)
    return path


@pytest.fixture
def region_app(table_file):
    """A bare app with the real settings, the test table and two home regions."""
    app = Flask(__name__)
    app.config.update(load_settings("test", environ={}))
    app.config.update(REGION_IP_RANGES_FILE=str(table_file),
                      HOME_REGIONS=["home-city", "home-district", "local-dev"])
    regions.init_app(app)
    with app.app_context():
        yield app


def test_longest_prefix_wins_for_ipv4_and_ipv6(table_file):
    table = load_table(table_file)
    assert len(table) == 6
    lookups = {
        "203.0.113.5": "home-city", "203.0.113.200": "home-district",
        "198.51.100.1": "elsewhere", "192.0.2.1": None,
        "2001:db8:2::1": "home-city", "2001:db8:1:5::1": "elsewhere", "2001:db9::1": None,
    }
    for ip, region in lookups.items():
        assert table.lookup(ipaddress.ip_address(ip)) == region, ip


def test_classify_marks_home_regions_local(region_app):
    assert regions.classify("203.0.113.5") == Region("home-city", True)
    assert regions.classify("203.0.113.200") == Region("home-district", True)
    assert regions.classify("198.51.100.1") == Region("elsewhere", False)
    assert regions.classify("2001:db8:1::1") == Region("elsewhere", False)
    assert regions.classify("::ffff:203.0.113.5") == Region("home-city", True)
    assert regions.classify("127.0.0.1") == Region("local-dev", True)


@pytest.mark.parametrize("ip", ["192.0.2.1", "::1", "10.1.2.3", "", "garbage", "unix:/run/a"])
def test_what_the_table_does_not_vouch_for_is_non_local(region_app, ip):
    assert regions.classify(ip) == Region(None, False)


def test_the_shipped_sample_makes_dev_and_tests_local():
    app = Flask(__name__)
    app.config.update(load_settings("test", environ={}))
    regions.init_app(app)
    with app.app_context():
        for ip in ("127.0.0.1", "::1", "10.0.0.8", "192.168.1.20", "172.16.5.5"):
            assert regions.classify(ip) == Region("local-dev", True), ip
        assert regions.classify("60.180.1.1") == Region("wenzhou", True)
        assert regions.classify("60.176.1.1") == Region("zhejiang", True)
        assert regions.classify("116.224.1.1") == Region("shanghai", False)
        assert regions.classify("8.8.8.8") == Region(None, False)


def test_policy_limit_admits_and_refuse_refuses_only_non_local(region_app):
    regions.enforce_policy(Region(None, False))  # "limit" is the default
    region_app.config["NONLOCAL_POLICY"] = "refuse"
    regions.enforce_policy(Region("home-city", True))
    with pytest.raises(ApiError) as refused:
        regions.enforce_policy(regions.classify("198.51.100.1"))
    assert (refused.value.status, refused.value.code) == (403, "region_refused")
    with pytest.raises(ApiError, match="not available"):
        regions.enforce_policy(Region(None, False))


def test_an_unknown_policy_is_never_guessed(region_app):
    region_app.config["NONLOCAL_POLICY"] = "refused"
    with pytest.raises(ConfigError, match="NONLOCAL_POLICY"):
        regions.enforce_policy(Region(None, False))
    with pytest.raises(ConfigError, match="NONLOCAL_POLICY"):
        regions.init_app(region_app)


@pytest.mark.parametrize(("row", "fault"), [
    ("203.0.113.1/24,x", r"regions.csv:2: '203.0.113.1/24' is not a CIDR range"),
    ("not-a-range,x", "is not a CIDR range"),
    ("203.0.113.0/24", r"regions.csv:2: expected 'cidr,region'"),
    ("203.0.113.0/24,a,b", "expected 'cidr,region'"),
    ("203.0.113.0/24,", "region name must be 1-32 characters"),
    ("203.0.113.0/24," + "x" * 33, "region name must be 1-32 characters"),
    ("198.51.100.0/24,again", "198.51.100.0/24 is listed twice"),
])
def test_a_bad_table_names_file_line_and_fault(tmp_path, row, fault):
    path = tmp_path / "regions.csv"
    path.write_text(f"198.51.100.0/24,first\n{row}\n")
    with pytest.raises(ConfigError, match=fault):
        load_table(path)


def test_a_missing_table_stops_the_start(region_app, tmp_path):
    region_app.config["REGION_IP_RANGES_FILE"] = str(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="REGION_IP_RANGES_FILE"):
        regions.init_app(region_app)


def test_ten_thousand_ranges_load_and_answer_fast(tmp_path):
    rng = random.Random(7)
    networks = set()
    while len(networks) < 10_000:
        length = rng.choice([16, 20, 22, 24, 28])
        networks.add(ipaddress.ip_network((rng.getrandbits(32), length), strict=False))
    path = tmp_path / "big.csv"
    path.write_text("cidr,region\n" + "".join(f"{net},r{i % 300}\n"
                                             for i, net in enumerate(networks)))
    started = time.perf_counter()
    table = load_table(path)
    probes = [ipaddress.ip_address(rng.getrandbits(32)) for _ in range(20_000)]
    probes += [net.network_address + 1 for net in list(networks)[:5_000]]
    found = sum(table.lookup(ip) is not None for ip in probes)
    elapsed = time.perf_counter() - started
    assert len(table) == 10_000 and found >= 5_000
    assert elapsed < 2.0, f"{elapsed:.2f}s for 10k ranges and 25k lookups"
