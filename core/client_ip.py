"""The client's IP address, believing X-Forwarded-For only as far as trusted proxies wrote it.

Each proxy appends the address of the peer it received the connection from.
Everything left of what our own first proxy appended was written by the client
and can be forged, so the chain is read from the right:

* the direct peer (``remote_addr``) that is not a trusted proxy IS the client:
  X-Forwarded-For is ignored, whatever it says;
* otherwise the entries are walked from the right, skipping trusted proxies;
  the first untrusted address is the client;
* when every entry is a trusted proxy (or there are none), the leftmost trusted
  hop is the client: the request started inside our own network;
* an entry that is not an IP address stops the walk, and the trusted hop that
  wrote it is taken as the client. Only a trusted proxy can put anything at that
  position (the client's own entries lie further left), so this happens on a
  misconfigured proxy, never by a client's choice; the garbage itself is never
  used, and all such requests share the proxy's address (its limits, its region).

Addresses come back in canonical form (``ipaddress``'s compressed text, IPv4
for IPv4-mapped IPv6), so two spellings of one address are one client for rate
limits and the audit trail. A ``host:port`` or ``[v6]:port`` entry, as some
proxies write, is read as its address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from flask import Flask, current_app, request

from config.validation import ConfigError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_EXTENSION = "client_ip.trusted"


def parse_ip(text: str | None) -> IPAddress | None:
    """The address in ``text`` (IPv4-mapped IPv6 as IPv4, a port dropped), or None."""
    if not text:
        return None
    value = text.strip()
    if value.startswith("["):  # "[2001:db8::1]:443" or "[2001:db8::1]"
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # "203.0.113.7:51234"; bare IPv6 has two colons or more
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_trusted(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks of ``TRUSTED_PROXIES`` entries (CIDRs or single addresses).

    ValueError names a bad entry. ``0.0.0.0/0`` and ``::/0`` are refused: trusting
    every address lets any client write its own X-Forwarded-For.
    """
    networks = []
    for entry in entries:
        network = ipaddress.ip_network(str(entry).strip(), strict=True)
        if network.prefixlen == 0:
            raise ValueError(f"TRUSTED_PROXIES entry {entry!r} would trust every address")
        networks.append(network)
    return tuple(networks)


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_ip(remote_addr: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The client's canonical address under the module's rules.

    A ``remote_addr`` that is not an address (a Unix socket) is returned as
    given, stripped: callers treat it as one unknown, untrusted client.
    """
    peer = parse_ip(remote_addr)
    if peer is None:
        return (remote_addr or "").strip()
    if not _is_trusted(peer, trusted):
        return str(peer)
    hop = peer  # the nearest hop known to be one of ours
    for entry in reversed((forwarded_for or "").split(",")):
        if not entry.strip():
            continue  # "a, , b" or a trailing comma: nothing was written there
        address = parse_ip(entry)
        if address is None:
            log.warning("X-Forwarded-For entry that is not an address, written by a trusted "
                        "proxy; using that proxy as the client")
            return str(hop)
        if not _is_trusted(address, trusted):
            return str(address)
        hop = address
    return str(hop)


def ip_limit_key(ip: str) -> str:
    """What counts as one client for per-IP rate limits: the address, for IPv6 its /64.

    One IPv6 subscriber is handed a whole /64 (and rotates privacy addresses in
    it), so per-address windows would give them 2**64 of them.
    """
    address = parse_ip(ip)
    if address is None:
        return ip.strip()
    if address.version == 6:
        return str(ipaddress.ip_network((address, 64), strict=False))
    return str(address)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    """The current app's ``TRUSTED_PROXIES``, parsed once (again only if the setting changes)."""
    entries = tuple(current_app.config["TRUSTED_PROXIES"])
    cached = current_app.extensions.get(_EXTENSION)
    if cached is None or cached[0] != entries:
        try:
            cached = (entries, parse_trusted(entries))
        except ValueError as exc:
            raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None
        current_app.extensions[_EXTENSION] = cached
    return cached[1]


def request_client_ip() -> str:
    """The client address of the current request (see the module's rules)."""
    # The WSGI server joins repeated X-Forwarded-For lines with commas, in order (gunicorn).
    return client_ip(request.remote_addr or "", request.headers.get("X-Forwarded-For"),
                     trusted_proxies())


def init_app(app: Flask) -> None:
    """Parse ``TRUSTED_PROXIES`` at start, so a bad entry stops the app instead of a request."""
    with app.app_context():
        trusted_proxies()
