"""User tags (wechat-platform.md §3.7); each follower keeps its own tag ids."""

from __future__ import annotations

from typing import Any

from .config import SimLimits
from .errors import ApiError
from .users import Follower, Followers

SYSTEM_TAGS: dict[int, str] = {2: "星标组"}  # present on every account, cannot be changed
FIRST_TAG_ID = 100
MAX_NAME_CHARS = 30
MAX_BATCH = 50


class TagBook:
    def __init__(self, followers: Followers, limits: SimLimits) -> None:
        self._followers = followers
        self._limits = limits
        self._names: dict[int, str] = dict(SYSTEM_TAGS)
        self._next_id = FIRST_TAG_ID

    def create(self, name: Any) -> dict[str, Any]:
        self._check_name(name)
        if len(self._names) - len(SYSTEM_TAGS) >= self._limits.max_tags:
            raise ApiError(45056)
        tag_id, self._next_id = self._next_id, self._next_id + 1
        self._names[tag_id] = name
        return {"id": tag_id, "name": name}

    def listing(self) -> list[dict[str, Any]]:
        """Every tag with the number of current followers carrying it."""
        counts = dict.fromkeys(self._names, 0)
        for user in self._followers:
            if user.subscribed:
                for tag_id in user.tag_ids:
                    counts[tag_id] += 1
        return [{"id": i, "name": n, "count": counts[i]} for i, n in self._names.items()]

    def rename(self, tag_id: Any, name: Any) -> None:
        self._writable(tag_id)
        if self._names[tag_id] != name:
            self._check_name(name)
        self._names[tag_id] = name

    def delete(self, tag_id: Any) -> None:
        self._writable(tag_id)
        del self._names[tag_id]
        for user in self._followers:
            if tag_id in user.tag_ids:
                user.tag_ids.remove(tag_id)

    def tag(self, openids: Any, tag_id: Any) -> None:
        users = self._batch(openids, tag_id)
        for user in users:
            if tag_id not in user.tag_ids and len(user.tag_ids) >= self._limits.tags_per_user:
                raise ApiError(45059)
        for user in users:
            if tag_id not in user.tag_ids:
                user.tag_ids.append(tag_id)

    def untag(self, openids: Any, tag_id: Any) -> None:
        for user in self._batch(openids, tag_id):
            if tag_id in user.tag_ids:
                user.tag_ids.remove(tag_id)

    def exists(self, tag_id: Any) -> bool:
        return tag_id in self._names

    def _batch(self, openids: Any, tag_id: Any) -> list[Follower]:
        if not isinstance(openids, list) or not 0 < len(openids) <= MAX_BATCH:
            raise ApiError(40032)
        if not self.exists(tag_id):
            raise ApiError(45159)
        return [self._followers.get(openid) for openid in openids]

    def _writable(self, tag_id: Any) -> None:
        if tag_id in SYSTEM_TAGS:
            raise ApiError(45058)
        if not self.exists(tag_id):
            raise ApiError(45159)

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ApiError(45157)
        if len(name) > MAX_NAME_CHARS:
            raise ApiError(45158)
        if name in self._names.values():
            raise ApiError(45157, "tag name already exists")
