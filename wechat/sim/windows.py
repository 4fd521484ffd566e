"""Time-window bookkeeping: quota counters, anti-replay memories, stale-entry eviction."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from .clock import SimClock

K = TypeVar("K")
V = TypeVar("V")


def drop_leading(entries: dict[K, V], stale: Callable[[V], bool]) -> None:
    """Evict from the front of a dict filled in time order while ``stale`` says so."""
    while entries:
        key = next(iter(entries))
        if not stale(entries[key]):
            return
        del entries[key]


class WindowCounter:
    """Hits per key within the current window; one slot per key, so memory stays bounded."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, tuple[Hashable, int]] = {}

    def used(self, key: Hashable, window: Hashable) -> int:
        slot = self._slots.get(key)
        return slot[1] if slot and slot[0] == window else 0

    def take(self, key: Hashable, window: Hashable, limit: int, amount: int = 1) -> bool:
        """Count ``amount`` hits unless that would pass ``limit``; say whether they were counted."""
        used = self.used(key, window)
        if used + amount > limit:
            return False
        self._slots[key] = (window, used + amount)
        return True


class RecentKeys:
    """Values remembered for ``window`` seconds, e.g. anti-replay ids and what they produced."""

    def __init__(self, clock: SimClock, window: float) -> None:
        self._clock = clock
        self._window = window
        self._entries: dict[Hashable, tuple[Any, float]] = {}  # insertion = time order

    def get(self, key: Hashable) -> Any | None:
        horizon = self._clock.now() - self._window
        drop_leading(self._entries, lambda entry: entry[1] <= horizon)
        entry = self._entries.get(key)
        return entry[0] if entry else None

    def put(self, key: Hashable, value: Any) -> None:
        self._entries.pop(key, None)  # re-inserted at the end to keep the time order
        self._entries[key] = (value, self._clock.now())
