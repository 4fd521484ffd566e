"""Parametric QR codes of the official account (wechat-platform.md §3.9)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from .clock import SimClock
from .config import SimLimits
from .errors import ApiError

TEMPORARY = {"QR_SCENE": "scene_id", "QR_STR_SCENE": "scene_str"}
PERMANENT = {"QR_LIMIT_SCENE": "scene_id", "QR_LIMIT_STR_SCENE": "scene_str"}
MAX_EXPIRE = 2_592_000  # 30 days
DEFAULT_EXPIRE = 30
MAX_SCENE_ID = 2**32 - 1  # temporary codes take any non-zero 32-bit scene
MAX_PERMANENT_SCENE_ID = 100_000
MAX_SCENE_STR = 64


@dataclass(frozen=True)
class QrTicket:
    ticket: str
    url: str  # what the code encodes: http://weixin.qq.com/q/…
    scene: str  # scene_id as its decimal string, or scene_str, as EventKey will carry it
    expires_at: float | None  # None: permanent


def _new_ticket() -> str:
    """Base64 ending in `==` like WeChat's tickets, so a client that forgets to URL-encode
    the ticket in the showqrcode link breaks here as it would there."""
    return base64.b64encode(secrets.token_bytes(70)).decode()


def check_scene(action_name: object, action_info: object) -> str:
    """The scene of `action_info.scene` as EventKey will carry it; 40052 for an unknown
    action_name, 40053 for a scene outside its documented range."""
    if action_name not in TEMPORARY and action_name not in PERMANENT:
        raise ApiError(40052)
    kind = TEMPORARY.get(action_name) or PERMANENT[action_name]
    block = action_info.get("scene") if isinstance(action_info, dict) else None
    scene = block.get(kind) if isinstance(block, dict) else None
    if kind == "scene_str":
        if isinstance(scene, str) and 0 < len(scene) <= MAX_SCENE_STR:
            return scene
        raise ApiError(40053, "scene_str")
    top = MAX_PERMANENT_SCENE_ID if action_name in PERMANENT else MAX_SCENE_ID
    if isinstance(scene, int) and not isinstance(scene, bool) and 0 < scene <= top:
        return str(scene)
    raise ApiError(40053, "scene_id")


class QrRegistry:
    def __init__(self, clock: SimClock, limits: SimLimits) -> None:
        self._clock = clock
        self._limits = limits
        self._tickets: dict[str, QrTicket] = {}
        self._permanent = 0

    def create(self, action_name: str, scene: str, expire_seconds: object) -> QrTicket:
        """A new ticket for a scene already checked by `check_scene`."""
        permanent = action_name in PERMANENT
        if permanent and self._permanent >= self._limits.permanent_qr_limit:
            raise ApiError(45029)
        expires_at = None if permanent else self._clock.now() + self._lifetime(expire_seconds)
        url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
        qr = QrTicket(_new_ticket(), url, scene, expires_at)
        self._tickets[qr.ticket] = qr
        self._permanent += permanent
        return qr

    def find(self, ticket: str) -> QrTicket | None:
        qr = self._tickets.get(ticket)
        if qr is None or (qr.expires_at is not None and self._clock.now() >= qr.expires_at):
            return None
        return qr

    @staticmethod
    def _lifetime(expire_seconds: object) -> int:
        if expire_seconds is None:
            return DEFAULT_EXPIRE
        if not isinstance(expire_seconds, int) or isinstance(expire_seconds, bool):
            raise ApiError(40053, "expire_seconds")
        return max(1, min(expire_seconds, MAX_EXPIRE))  # WeChat caps rather than refuses
