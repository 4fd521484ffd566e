"""Asynchronous job-result events (TEMPLATESENDJOBFINISH and friends), sent off the request
thread as WeChat does, with a log of what was delivered."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

from .config import SimConfig
from .sender import CallbackSender

LOG_LIMIT = 10_000


class EventDispatcher:
    """Queues events and delivers them from a few worker threads, one sender per worker."""

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        # (xml, log metadata, monotonic time it is due), or None to stop a worker
        self._queue: queue.Queue[tuple[str, dict[str, Any], float] | None] = queue.Queue()
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._idle = threading.Condition()
        self._pending = 0
        self._workers: list[threading.Thread] = []

    def submit(self, xml: str, **meta: Any) -> None:
        """Deliver ``xml`` later; ``meta`` (event, openid, msg_id…) goes into the log entry."""
        if not self._config.callback_url:
            self._append({**meta, "xml": xml, "statuses": [], "accepted": None})
            return
        with self._idle:
            self._pending += 1
            if not self._workers:
                self._start_workers()
        self._queue.put((xml, meta, time.monotonic() + self._config.callback_delay))

    def log(self) -> list[dict[str, Any]]:
        with self._idle:
            return list(self._log)

    def clear_log(self) -> None:
        with self._idle:
            self._log.clear()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted event has been delivered (or given up on)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=self._config.callback_timeout * self._config.callback_deliveries)
        self._workers.clear()

    def _start_workers(self) -> None:
        for index in range(self._config.callback_workers):
            worker = threading.Thread(
                target=self._work, name=f"wechat-sim-events-{index}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        config = self._config
        sender = CallbackSender(
            config.callback_url or "",
            config.oa_token,
            config.oa_aes_key,
            config.oa_app_id,
            config.oa_original_id,
            config.callback_timeout,
        )
        try:
            while (item := self._queue.get()) is not None:
                try:
                    self._deliver(sender, *item)
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            sender.close()

    def _deliver(self, sender: CallbackSender, xml: str, meta: dict[str, Any], due: float) -> None:
        config = self._config
        time.sleep(max(0.0, due - time.monotonic()))
        result = sender.send(xml, config.callback_mode, config.callback_deliveries)
        self._append(
            {
                **meta,
                "xml": xml,
                "statuses": result.statuses,
                "accepted": result.accepted,
                "problem": result.problem,
            }
        )

    def _append(self, entry: dict[str, Any]) -> None:
        with self._idle:
            self._log.append(entry)
