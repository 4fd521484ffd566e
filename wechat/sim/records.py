"""What the simulator saw: recent WeChat API calls and running counters."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Any


class RequestLog:
    """The most recent calls, oldest first; bounded so long benchmarks keep a flat footprint."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def add(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)

    def matching(self, path: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self._entries if path is None or e["path"] == path]


class Stats:
    """Counters grouped by topic, e.g. ``requests`` by path or ``token_calls`` by appid."""

    def __init__(self) -> None:
        self._groups: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def count(self, group: str, key: str, amount: int = 1) -> None:
        self._groups[group][key] += amount

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {group: dict(counter) for group, counter in self._groups.items()}
