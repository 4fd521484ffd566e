"""Serve the simulator on a real socket from a background thread (tests, benchmarks, CLI)."""

from __future__ import annotations

import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_sim_app
from .config import SimConfig
from .state import SimState
from .web import EXTENSION

SHUTDOWN_POLL = 0.05  # seconds; how fast stop() returns


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: at benchmark rates it would cost more than the work."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SimServer:
    """The simulator on ``host:port`` (port 0 picks a free one) in a daemon thread."""

    def __init__(
        self, config: SimConfig, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False
    ) -> None:
        self.app = create_sim_app(config)
        self.state: SimState = self.app.extensions[EXTENSION]
        handler = WSGIRequestHandler if log_requests else QuietRequestHandler
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=handler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread: threading.Thread | None = None

    def start(self) -> SimServer:
        self._thread = threading.Thread(target=self.serve_forever, name="wechat-sim", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() (or Ctrl-C, for the CLI)."""
        self._server.serve_forever(poll_interval=SHUTDOWN_POLL)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self.state.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
