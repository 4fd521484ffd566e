"""The official account's users as WeChat knows them (wechat-platform.md §3.8)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import SimLimits
from .errors import ApiError


@dataclass
class Follower:
    """One openid of the official account, follower or not."""

    openid: str
    unionid: str | None = None
    subscribed: bool = True
    subscribe_time: int = 0
    subscribe_scene: str = "ADD_SCENE_OTHERS"
    qr_scene: int = 0
    qr_scene_str: str = ""
    blocks_templates: bool = False  # TEMPLATESENDJOBFINISH then says "failed:user block"
    # Customer-service windows (wechat-platform.md §8.1), each opened afresh by its trigger:
    last_interaction: float | None = None  # the user's last message: 5 CS messages in 48 h
    cs_streak: int = 0  # CS messages sent since that message (45047 at the limit)
    last_event: float | None = None  # last follow, QR scan or menu click: 3 in 1 minute
    event_streak: int = 0  # CS messages sent since that event
    tag_ids: list[int] = field(default_factory=list)
    remark: str = ""
    language: str = "zh_CN"

    def info(self) -> dict[str, Any]:
        """`user/info` answer; a non-follower shows only subscribe=0 and the openid."""
        if not self.subscribed:
            return {"subscribe": 0, "openid": self.openid}
        info: dict[str, Any] = {
            "subscribe": 1,
            "openid": self.openid,
            "language": self.language,
            "subscribe_time": self.subscribe_time,
        }
        if self.unionid:
            info["unionid"] = self.unionid
        info.update(
            remark=self.remark,
            groupid=0,
            tagid_list=list(self.tag_ids),
            subscribe_scene=self.subscribe_scene,
            qr_scene=self.qr_scene,
            qr_scene_str=self.qr_scene_str,
        )
        return info

    def wrote(self, at: float) -> None:
        """The user sent a message: a fresh 48 h customer-service window."""
        self.last_interaction, self.cs_streak = at, 0

    def acted(self, at: float) -> None:
        """A follow, QR scan or menu click: a fresh one-minute customer-service window."""
        self.last_event, self.event_streak = at, 0

    def take_service_message(self, now: float, limits: SimLimits) -> None:
        """Count one customer-service message against a window the user opened, or refuse:
        45015 when no window is open (or the user left), 45047 when the open ones are used up.

        The one-minute window is used first: it closes soonest, so the 48 h allowance is
        kept for later (which one WeChat counts first is not documented).
        """
        if not self.subscribed:
            raise ApiError(45015)
        event_open = self.last_event is not None and now - self.last_event <= limits.cs_event_window
        message_open = self.last_interaction is not None and now - self.last_interaction <= (
            limits.cs_window
        )
        if event_open and self.event_streak < limits.cs_event_limit:
            self.event_streak += 1
        elif message_open and self.cs_streak < limits.cs_streak_limit:
            self.cs_streak += 1
        else:
            raise ApiError(45047 if event_open or message_open else 45015)


class Followers:
    """openid → Follower, in the order they were first seen (the follower list's order)."""

    def __init__(self) -> None:
        self._users: dict[str, Follower] = {}

    def __len__(self) -> int:
        return len(self._users)

    def upsert(self, openid: str, **fields: Any) -> Follower:
        """Create or update a user; unknown field names are a caller bug (TypeError)."""
        user = self._users.get(openid)
        if user is None:
            user = self._users[openid] = Follower(openid, **fields)
            return user
        for name, value in fields.items():
            if not hasattr(user, name):
                raise TypeError(f"unknown user field {name!r}")
            setattr(user, name, value)
        return user

    def find(self, openid: str | None) -> Follower | None:
        return self._users.get(openid) if openid else None

    def get(self, openid: Any) -> Follower:
        """The user or 40003, which is what WeChat says to an openid it does not know."""
        user = self._users.get(openid) if isinstance(openid, str) else None
        if user is None:
            raise ApiError(40003)
        return user

    def __iter__(self) -> Iterator[Follower]:
        return iter(self._users.values())

    def subscribed_openids(self) -> list[str]:
        return [u.openid for u in self._users.values() if u.subscribed]

    def tagged(self, tag_id: int) -> list[str]:
        """Followers carrying ``tag_id``, in list order."""
        return [u.openid for u in self._users.values() if u.subscribed and tag_id in u.tag_ids]


def page_after(openids: list[str], next_openid: str, size: int) -> tuple[list[str], str]:
    """One page of a follower-style list and the `next_openid` WeChat returns with it.

    The page after the last one is empty and echoes the cursor back, which is the quirk
    wechatpy warns about: stop on an empty page, not on an empty cursor.
    """
    start = 0
    if next_openid:
        try:
            start = openids.index(next_openid) + 1
        except ValueError:
            raise ApiError(40003, "next_openid") from None
    page = openids[start : start + size]
    return page, (page[-1] if page else next_openid)
