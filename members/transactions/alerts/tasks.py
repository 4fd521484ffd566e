"""Jobs of transaction alerts: sending batches of deliveries, and the periodic sweep."""

from __future__ import annotations

from core.db import db
from core.schedule import PeriodicJob
from members.transactions.alerts import recovery, sending

QUEUE = "alerts"  # first in RQ_QUEUES: alerts never wait behind marketing or housekeeping


def send_batch(delivery_ids: list[int], due: float | None = None) -> None:
    """Send the still-queued deliveries among ``delivery_ids`` (enqueued when they are
    stored, retried or re-driven). Each sending thread commits its own claims and records:
    ``sending`` is this job's body."""
    sending.send_deliveries(delivery_ids, due)


def sweep() -> dict[str, int]:
    """Re-drive deliveries stuck in ``sending`` or ``queued``; counts by kind."""
    counts = recovery.sweep()
    db.session.commit()  # the re-driven rows' jobs are enqueued once this commits
    return counts


PERIODIC = (PeriodicJob("alerts.sweep", sweep, "ALERT_SWEEP_INTERVAL", queue=QUEUE),)
