"""Scripted failures: an errcode, an HTTP status or a delay for the next N calls of a path."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ANY_PATH = "*"
UNTIL_CLEARED = -1


@dataclass
class Fault:
    path: str  # an exact request path, or "*" for every WeChat path
    errcode: int | None = None
    http_status: int | None = None
    delay: float | None = None  # seconds; the call is then handled normally
    times: int = 1  # UNTIL_CLEARED keeps it forever

    def __post_init__(self) -> None:
        actions = [a for a in (self.errcode, self.http_status, self.delay) if a is not None]
        if len(actions) != 1:
            raise ValueError("a fault needs exactly one of errcode, http_status, delay")
        if self.times == 0 or self.times < UNTIL_CLEARED:
            raise ValueError("times must be positive, or -1 for until cleared")
        if self.http_status is not None and not 100 <= self.http_status <= 599:
            raise ValueError("http_status must be an HTTP status code")
        if self.delay is not None and self.delay < 0:
            raise ValueError("delay must not be negative")

    def matches(self, path: str) -> bool:
        return self.path in (ANY_PATH, path)


class FaultPlan:
    """Faults in the order they were added; each call consumes the first one that matches."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(path):
                if fault.times != UNTIL_CLEARED:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        return [asdict(fault) for fault in self._faults]
