"""Where a client address comes from: the configured IP-range table and the home regions.

``REGION_IP_RANGES_FILE`` is a CSV of ``cidr,region`` rows (``#`` comments and a
``cidr,region`` header allowed); ``HOME_REGIONS`` names the regions that count as
local. An address in no range, or in a range of another region, is non-local:
whatever the table does not vouch for gets the stricter treatment. The shipped
sample labels loopback and private ranges ``local-dev`` and the default home
regions include it, so the dev server and the tests are local; a production
table decides for itself whether private addresses are local.

Lookups are longest-prefix matches: the ranges are grouped by prefix length
into dicts keyed by the masked network address, so a lookup costs one dict probe
per distinct prefix length in the table (a few dozen at most), however many
ranges it holds. A more specific range inside a broader one wins, as in routing.

``NONLOCAL_POLICY`` is ``limit`` (non-local clients get ``RATE_LIMITS_NONLOCAL``
on top of the usual limits) or ``refuse`` (403 ``region_refused``).
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app

from config.validation import ConfigError
from core.client_ip import IPAddress, IPNetwork, parse_ip
from core.errors import ApiError

POLICIES = ("limit", "refuse")
REGION_NAME_MAX = 32  # SecurityEvent.region is String(32)
_EXTENSION = "regions"


@dataclass(frozen=True)
class Region:
    """A client's region: ``name`` from the table (None when unlisted), and whether it is home."""

    name: str | None
    local: bool


class RegionTable:
    """Longest-prefix lookup of region names by address, IPv4 and IPv6."""

    def __init__(self, ranges: Iterable[tuple[IPNetwork, str]]) -> None:
        # {version: {prefixlen: {network address as int: region}}}
        by_prefix: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for network, name in ranges:
            bucket = by_prefix[network.version].setdefault(network.prefixlen, {})
            key = int(network.network_address)
            if key in bucket:
                raise ValueError(f"{network} is listed twice")
            bucket[key] = name
        self._size = sum(len(b) for v in by_prefix.values() for b in v.values())
        bits = {4: 32, 6: 128}
        # Most specific first; each entry carries its netmask as an int.
        self._probes = {
            version: [(((1 << bits[version]) - 1) ^ ((1 << (bits[version] - length)) - 1), bucket)
                      for length, bucket in sorted(buckets.items(), reverse=True)]
            for version, buckets in by_prefix.items()
        }

    def __len__(self) -> int:
        return self._size

    def lookup(self, address: IPAddress) -> str | None:
        """The region of the most specific range holding ``address``, or None."""
        value = int(address)
        for mask, bucket in self._probes[address.version]:
            name = bucket.get(value & mask)
            if name is not None:
                return name
        return None


def load_table(path: str | Path) -> RegionTable:
    """Read a ``cidr,region`` CSV; ConfigError names the file, line and fault."""
    ranges: list[tuple[IPNetwork, str]] = []
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                cells = [cell.strip() for cell in row]
                if not any(cells) or cells[0].startswith("#"):
                    continue
                if [cell.lower() for cell in cells] == ["cidr", "region"]:
                    continue  # the header, below any leading comments
                ranges.append(_parse_row(path, line_no, cells))
        return RegionTable(ranges)
    except OSError as exc:
        raise ConfigError(f"REGION_IP_RANGES_FILE {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"REGION_IP_RANGES_FILE {path}: {exc}") from None


def _parse_row(path: str | Path, line_no: int, cells: list[str]) -> tuple[IPNetwork, str]:
    if len(cells) != 2:
        raise ConfigError(f"{path}:{line_no}: expected 'cidr,region'")
    cidr, name = cells
    try:
        # strict: "10.0.0.1/8" is a typo for some range, not a range to guess at.
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise ConfigError(f"{path}:{line_no}: {cidr!r} is not a CIDR range") from None
    if not name or len(name) > REGION_NAME_MAX:
        raise ConfigError(f"{path}:{line_no}: region name must be 1-{REGION_NAME_MAX} characters")
    return network, name


def _table() -> RegionTable:
    """The current app's table, read once per configured path."""
    path = current_app.config["REGION_IP_RANGES_FILE"]
    cached = current_app.extensions.get(_EXTENSION)
    if cached is None or cached[0] != path:
        cached = (path, load_table(path))
        current_app.extensions[_EXTENSION] = cached
    return cached[1]


def classify(ip: str) -> Region:
    """The region of a client address (canonical or not); unparsable means unknown, non-local."""
    address = parse_ip(ip)
    name = _table().lookup(address) if address is not None else None
    return Region(name=name, local=name is not None and name in current_app.config["HOME_REGIONS"])


def enforce_policy(region: Region) -> None:
    """Raise 403 ``region_refused`` for a non-local region when ``NONLOCAL_POLICY`` is refuse."""
    if not region.local and _policy() == "refuse":
        raise ApiError(403, "region_refused", "this service is not available from your region")


def _policy() -> str:
    policy = current_app.config["NONLOCAL_POLICY"]
    if policy not in POLICIES:  # never guess between limiting and refusing
        raise ConfigError(f"NONLOCAL_POLICY must be one of {POLICIES}, not {policy!r}")
    return policy


def init_app(app: Flask) -> None:
    """Read the table and check the policy at start, so a bad file stops the app, not a request."""
    with app.app_context():
        _table()
        _policy()
