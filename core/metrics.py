"""The metrics page. Metrics themselves are defined next to their feature (``*/metrics.py``),
in prometheus_client's default registry; under gunicorn set PROMETHEUS_MULTIPROC_DIR so
/metrics sums every worker process."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily


class _QueueDepth:
    def __init__(self, depth: dict[str, int]) -> None:
        self.depth = depth

    def collect(self):
        family = GaugeMetricFamily("job_queue_depth", "Jobs waiting per queue", labels=["queue"])
        for name, count in self.depth.items():
            family.add_metric([name], count)
        yield family


def exposition(queue_depth: dict[str, int]) -> tuple[bytes, str]:
    """The metrics page: this process (or all workers in multiprocess mode) plus queue depth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    queues = CollectorRegistry()
    queues.register(_QueueDepth(queue_depth))
    return generate_latest(registry) + generate_latest(queues), CONTENT_TYPE_LATEST
