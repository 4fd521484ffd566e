"""The periodic refresh of the funnel's facts: reads refresh them too (``funnel``), and
this keeps what a read finds to do small, however long nobody reads."""

from __future__ import annotations

from campaigns.attribution import facts
from core.schedule import PeriodicJob


def refresh_facts() -> None:
    """Bring the funnel's facts up to date (its own transaction; skipped while another
    refresh runs)."""
    facts.refresh()


PERIODIC = (PeriodicJob("attribution.refresh", refresh_facts, "FUNNEL_REFRESH_INTERVAL"),)
