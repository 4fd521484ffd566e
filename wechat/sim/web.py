"""Flask plumbing shared by the API modules: the state, JSON bodies, answers, token checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from .errors import ApiError
from .state import SimState

EXTENSION = "wechat_sim"
View = TypeVar("View", bound=Callable[..., Any])


def sim_state() -> SimState:
    return current_app.extensions[EXTENSION]


def ok(**fields: Any) -> dict[str, Any]:
    """A success body; ``fields`` may override errmsg where WeChat words it differently."""
    return {"errcode": 0, "errmsg": "ok", **fields}


def json_body() -> dict[str, Any]:
    """The POSTed JSON object. WeChat ignores Content-Type; anything but an object is 47001."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(47001)
    return body


def token_required(*roles: str) -> Callable[[View], View]:
    """Check `access_token` before the view: 41001 missing, 40001 unknown, 42001 expired,
    48001 when the token's app (OA or MP) may not call this API. Sets ``g.appid``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            state = sim_state()
            with state.lock:
                appid = state.tokens.resolve(request.args.get("access_token"))
            if state.role_of(appid) not in roles:
                raise ApiError(48001)
            g.appid = appid
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
