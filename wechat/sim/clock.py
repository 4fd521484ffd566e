"""The simulator's notion of time: wall time plus an offset tests can move forward."""

from __future__ import annotations

import time

BEIJING_OFFSET = 8 * 3600  # WeChat's daily and monthly quotas roll over at Beijing midnight


class SimClock:
    """Wall clock with a forward-only offset, so expiry can be tested without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulator clock only moves forward")
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0

    def day(self) -> int:
        """Days since the epoch, counted in Beijing time."""
        return int((self.now() + BEIJING_OFFSET) // 86400)

    def minute(self) -> int:
        return int(self.now() // 60)

    def month(self) -> tuple[int, int]:
        """(year, month) in Beijing time."""
        local = time.gmtime(self.now() + BEIJING_OFFSET)
        return local.tm_year, local.tm_mon
