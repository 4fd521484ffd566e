"""The simulator's Flask app: blueprints, the WeChat error body, recording and faults."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, request

from . import api_messages, api_miniapp, api_oauth, api_qrcode, api_tokens, api_users, control
from .config import SimConfig
from .errors import ApiError, error_body
from .faults import Fault
from .state import SimState
from .web import EXTENSION, sim_state

CONTROL_PREFIX = "/sim/"


def create_sim_app(config: SimConfig, state: SimState | None = None) -> Flask:
    """A Flask app answering like api.weixin.qq.com, mp.weixin.qq.com and open.weixin.qq.com."""
    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # WeChat sends UTF-8 as is
    app.json.sort_keys = False  # type: ignore[attr-defined]  # errcode first, like WeChat
    app.extensions[EXTENSION] = state or SimState(config)
    for module in (
        api_tokens,
        api_messages,
        api_users,
        api_qrcode,
        api_miniapp,
        api_oauth,
        control,
    ):
        app.register_blueprint(module.bp)
    app.register_error_handler(ApiError, _api_error)
    app.before_request(_record_and_inject)
    return app


def _api_error(error: ApiError) -> tuple[dict[str, Any], int]:
    """WeChat answers errors with HTTP 200 and an errcode body."""
    return error_body(error.errcode, error.hint, **error.extra), 200


def _record_and_inject() -> Response | tuple[dict[str, Any], int] | None:
    """Record every WeChat call, then play the first matching scripted fault, if any."""
    if request.path.startswith(CONTROL_PREFIX):
        return None
    state = sim_state()
    state.record(
        {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(),
            "json": request.get_json(force=True, silent=True),
            "time": state.clock.now(),
        }
    )
    fault = state.take_fault(request.path)
    return _play(fault) if fault else None


def _play(fault: Fault) -> Response | tuple[dict[str, Any], int] | None:
    if fault.delay is not None:
        time.sleep(fault.delay)  # then the call is handled normally
        return None
    if fault.http_status is not None:
        page = f"<html><body>{fault.http_status}</body></html>"
        return Response(page, status=fault.http_status, mimetype="text/html")
    return error_body(fault.errcode or -1), 200
