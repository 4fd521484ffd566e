"""The bank's SMS platform, played by a tiny HTTP server that keeps every message it gets.

The app's SMS job POSTs ``{"phone", "message"}`` to ``SMS_GATEWAY_URL``; point
that at :attr:`SmsSink.url`. Thread-safe; runs in a daemon thread of the bench.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from werkzeug.serving import make_server

from bench.harness import servers
from wechat.sim.server import QuietRequestHandler

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


@dataclass(frozen=True)
class Sms:
    phone: str
    message: str
    received: float  # time.monotonic()

    @property
    def code(self) -> str | None:
        match = _CODE.search(self.message)
        return match[1] if match else None


class SmsSink:
    """Accepts POSTed messages at ``/sms`` and answers 200; keeps them in memory."""

    def __init__(self) -> None:
        self._messages: list[Sms] = []
        self._lock = threading.Condition()
        self._server = make_server(servers.HOST, 0, self._wsgi, threaded=True,
                                   request_handler=QuietRequestHandler)
        self.url = f"http://{servers.HOST}:{self._server.server_port}/sms"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        with self._lock:
            self._messages.append(Sms(body["phone"], body["message"], time.monotonic()))
            self._lock.notify_all()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']

    def messages(self) -> list[Sms]:
        with self._lock:
            return list(self._messages)

    def wait_code(self, phone: str, since: float, timeout: float) -> Sms | None:
        """The first code SMS to ``phone`` received after ``since``, waiting up to ``timeout``."""

        def found() -> Sms | None:
            return next((m for m in self._messages
                         if m.phone == phone and m.received >= since and m.code), None)

        with self._lock:
            self._lock.wait_for(found, timeout)
            return found()

    def __enter__(self) -> SmsSink:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
