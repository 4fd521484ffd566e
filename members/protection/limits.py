"""Rate limits: sliding windows per action and per identifier, in Redis.

``enforce("bind_start", {"openid": ..., "card": ..., "phone": ..., "ip": ...},
local=region.local)`` checks every window configured for the action in
``RATE_LIMITS`` (and, for a non-local client, ``RATE_LIMITS_NONLOCAL`` too) and
answers 429 ``too_many_requests`` with ``Retry-After`` when any is full.

Windows are the `limits` library's moving windows: a window of N per hour
admits a request when fewer than N were admitted in the hour before it, so
there is no edge at which a fresh fixed window doubles the budget.

Choices:

* Refused requests do not count. One Lua script tests every window and, only
  if all have room, records the attempt in all of them, atomically and in one
  round trip, so a client stopped on one dimension does not use up another:
  an attacker refused on its own openid does not drain the window of the
  carrier NAT address real customers share, nor of a victim's card. The script
  keeps the `limits` library's moving-window lists (newest first, trimmed to
  the limit, same keys), so the library still reads them for Retry-After and
  clears them; it has no all-or-nothing hit of its own.
* Where only failures should count (a staff login), the attempt is still counted
  first, and a success gives it back (``refund``): checking first and counting
  failures afterwards would let concurrent guesses all pass the check.
* Identifier values are blind indexes (``members.pii``: keyed HMAC per kind), so
  Redis keys hold no card number, phone, openid or address. IPv6 clients are
  counted per /64 (``core.client_ip.ip_limit_key``).
* The windows live in the app's Redis handle (``core.kv``): the real server
  with REDIS_URL, shared by every process; the in-process fakeredis otherwise.
  One code path for both modes, and whatever empties that Redis (the test
  fixtures) empties the windows too. Redis errors propagate: a limiter that
  cannot count refuses (500) rather than waving brute force through.
* Non-local windows are counted apart (their own keys) and on top of the local
  ones, so a card tried from everywhere still meets the local limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from config.settings import BASE
from config.validation import ConfigError
from core.client_ip import ip_limit_key
from core.errors import Refusal
from core.kv import get_redis
from members.protection import audit
from members.protection.pii import vault

# Dimension names are blind-index kinds of members.pii: the value is hashed as that kind.
# ``username`` is a staff account's (the console's login, campaigns.console).
DIMENSIONS = frozenset({"ip", "openid", "card", "phone", "username"})
KEY_PREFIX = "ratelimit"
_EXTENSION = "rate_limiter"
_ADMIT_SCRIPT = "rate_limiter.admit"


class RateLimited(Refusal):
    """429 with Retry-After; names the full dimensions (never their values) for the audit trail."""

    def __init__(self, action: str, dimensions: frozenset[str], retry_after: int) -> None:
        super().__init__(429, "too_many_requests", "too many attempts; retry later",
                         {"Retry-After": str(retry_after)})
        self.action = action
        self.dimensions = dimensions
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Window:
    dimension: str
    item: RateLimitItem
    identifiers: tuple[str, ...]


@lru_cache(maxsize=256)
def _parse(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


def _identifier(dimension: str, value: str) -> str:
    if dimension == "ip":
        value = ip_limit_key(value)
    return vault().blind_index(dimension, value)


def _windows(action: str, keys: Mapping[str, str], *, local: bool,
             exact: bool = True) -> list[_Window]:
    """The windows of ``action`` for these identifiers; ``exact``: keys must match the config."""
    config = current_app.config
    if action not in config["RATE_LIMITS"]:
        raise LookupError(f"no RATE_LIMITS for action {action!r}")
    configured = config["RATE_LIMITS"][action]
    given, wanted = set(keys), set(configured)
    if exact and given != wanted:
        # Never skip silently: a dimension nobody feeds would be a limit nobody enforces.
        raise ValueError(f"{action}: pass exactly the dimensions {sorted(wanted)}, "
                         f"not {sorted(given)}")
    tiers = [(action, configured)]
    if not local:
        tiers.append((f"{action}:nonlocal", config["RATE_LIMITS_NONLOCAL"].get(action, {})))
    windows = []
    for namespace, limits_by_dimension in tiers:
        for dimension, spec in sorted(limits_by_dimension.items()):
            if dimension not in keys:
                continue
            identifiers = (namespace, dimension, _identifier(dimension, keys[dimension]))
            windows.extend(_Window(dimension, item, identifiers) for item in _parse(spec))
    return windows


def _limiter() -> MovingWindowRateLimiter:
    """The app's limiter over its Redis handle, built once."""
    limiter = current_app.extensions.get(_EXTENSION)
    if limiter is None:
        # The URI only names the client library; the connections are the app's own pool.
        storage = RedisStorage("redis://", connection_pool=get_redis().connection_pool,
                               key_prefix=KEY_PREFIX)
        limiter = current_app.extensions[_EXTENSION] = MovingWindowRateLimiter(storage)
    return limiter


def enforce(action: str, keys: Mapping[str, str], *, local: bool) -> None:
    """Count one attempt at ``action`` by these identifiers, or raise RateLimited (429).

    ``keys`` maps each dimension configured for the action to its plaintext
    value (an IP address, openid, card or phone number); they are hashed here.
    """
    windows = _windows(action, keys, local=local)
    limiter = _limiter()
    full = _admit(limiter, windows)
    if not full:
        return
    dimensions = frozenset(w.dimension for w in full)
    # Kept although the request fails (a Refusal): the audit trail is where floods show up.
    audit.record("rate_limited", openid=keys.get("openid"), ip=keys.get("ip"),
                     action=action, dimensions=sorted(dimensions))
    raise RateLimited(action, dimensions, _retry_after(limiter, full))


# KEYS: the windows' lists; ARGV: now, then each window's limit and length in seconds.
# Returns the 1-based indexes of the full windows; records the attempt only if none is.
_ADMIT_LUA = """
local now = tonumber(ARGV[1])
local full = {}
for i, key in ipairs(KEYS) do
  local limit, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local oldest = redis.call('lindex', key, limit - 1)
  if oldest and tonumber(oldest) >= now - expiry then
    full[#full + 1] = i
  end
end
if #full == 0 then
  for i, key in ipairs(KEYS) do
    local limit, expiry = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    redis.call('lpush', key, now)
    redis.call('ltrim', key, 0, limit - 1)
    redis.call('expire', key, expiry)
  end
end
return full
"""


def _key(limiter: MovingWindowRateLimiter, window: _Window) -> str:
    """The Redis key of a window's list, as the `limits` library names it."""
    return limiter.storage.prefixed_key(window.item.key_for(*window.identifiers))


def _admit(limiter: MovingWindowRateLimiter, windows: list[_Window]) -> list[_Window]:
    """Record one attempt in every window if all have room; else the full ones (none recorded)."""
    keys = [_key(limiter, w) for w in windows]
    args: list[float | int] = [time.time()]
    for window in windows:
        args += [window.item.amount, window.item.get_expiry()]
    full = current_app.extensions[_ADMIT_SCRIPT](keys=keys, args=args)
    return [windows[index - 1] for index in full]


def _retry_after(limiter: MovingWindowRateLimiter, full: list[_Window]) -> int:
    """Whole seconds until every full window has room again (at least 1)."""
    now = time.time()
    waits = [limiter.get_window_stats(w.item, *w.identifiers).reset_time - now for w in full]
    return max(1, math.ceil(max(waits)))


def refund(action: str, keys: Mapping[str, str], *, local: bool) -> None:
    """Give back the attempt ``enforce`` just counted for these identifiers.

    For actions where only failures should count (a staff login that turned out right):
    the attempt is counted before its outcome is known, so that concurrent attempts cannot
    all pass a check made before any of them was recorded, and a success then returns its
    place. Each window drops its newest entry: this attempt's, or a concurrent one's made
    at the same moment, which leaves the same count.
    """
    limiter = _limiter()
    pipeline = get_redis().pipeline(transaction=False)
    for window in _windows(action, keys, local=local):
        pipeline.lpop(_key(limiter, window))
    pipeline.execute()


def reset(action: str, keys: Mapping[str, str]) -> None:
    """Empty the windows (local and non-local) of ``action`` for the given identifiers.

    Any subset of the action's dimensions may be given, e.g. only ``card`` to
    free a customer's card after a support call.
    """
    limiter = _limiter()
    for window in _windows(action, keys, local=False, exact=False):
        limiter.clear(window.item, *window.identifiers)


def check_config(config: Mapping[str, object]) -> None:
    """ConfigError unless both limit settings parse and keep the shape the code relies on."""
    local = config["RATE_LIMITS"]
    nonlocal_ = config["RATE_LIMITS_NONLOCAL"]
    if not isinstance(local, Mapping) or not isinstance(nonlocal_, Mapping):
        raise ConfigError("RATE_LIMITS and RATE_LIMITS_NONLOCAL must be JSON objects")
    for action, dimensions in BASE["RATE_LIMITS"].items():
        if set(local.get(action) or {}) != set(dimensions):
            raise ConfigError(f"RATE_LIMITS[{action!r}] must limit exactly {sorted(dimensions)}")
    for setting, table in (("RATE_LIMITS", local), ("RATE_LIMITS_NONLOCAL", nonlocal_)):
        for action, dimensions in table.items():
            allowed = set(local.get(action) or {}) & DIMENSIONS
            if not isinstance(dimensions, Mapping) or not set(dimensions) <= allowed:
                raise ConfigError(f"{setting}[{action!r}] may only limit {sorted(allowed)}")
            for dimension, spec in dimensions.items():
                try:
                    _parse(spec)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"{setting}[{action!r}][{dimension!r}]: {spec!r} is not a rate limit"
                    ) from None


def init_app(app: Flask) -> None:
    """Check the limits and build the limiter at start: a bad setting stops the app."""
    check_config(app.config)
    app.extensions[_ADMIT_SCRIPT] = app.extensions["redis"].register_script(_ADMIT_LUA)
    with app.app_context():
        _limiter()
