"""What the account may still send and what it has sent: ids, quotas, grants, mass jobs."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable

from .clock import SimClock
from .config import SimLimits
from .errors import ApiError
from .windows import RecentKeys, WindowCounter

MAX_CLIENTMSGID_BYTES = 64


class Outbox:
    def __init__(self, clock: SimClock, limits: SimLimits, templates: Iterable[str]) -> None:
        self._clock = clock
        self._limits = limits
        # msgids are 64-bit on WeChat's side; start high so a 32-bit column would show the bug.
        self._msgids = itertools.count(3_000_000_000 + secrets.randbelow(10**9))
        self._quota = WindowCounter()
        self._template_replays = RecentKeys(clock, limits.template_dedupe_window)
        self._clientmsgids = RecentKeys(clock, limits.clientmsgid_window)
        self._grants: dict[tuple[str, str], int] = {}
        self._granted_users: set[str] = set()
        self._mass_jobs: dict[int, str] = {}
        self.subscribe_templates: set[str] = set(templates)

    def next_msgid(self) -> int:
        return next(self._msgids)

    # template/send ------------------------------------------------------------------------

    def take_template_quota(self) -> None:
        if not self._quota.take("template", self._clock.day(), self._limits.template_daily_limit):
            raise ApiError(45009)

    def template_replay(self, openid: str, client_msg_id: str | None) -> int | None:
        """The msgid already sent for (openid, client_msg_id) within the window, if any."""
        return self._template_replays.get((openid, client_msg_id)) if client_msg_id else None

    def remember_template(self, openid: str, client_msg_id: str | None, msgid: int) -> None:
        if client_msg_id:
            self._template_replays.put((openid, client_msg_id), msgid)

    # subscription grants (OA bizsend and MP subscribe/send) -------------------------------

    def grant(self, openid: str, template_id: str, count: int) -> None:
        """Seeding a grant also registers the template, as the user could only accept a real one."""
        key = (openid, template_id)
        self._grants[key] = self._grants.get(key, 0) + count
        self._granted_users.add(openid)
        self.subscribe_templates.add(template_id)

    def consume_grant(self, openid: str, template_id: str) -> None:
        key = (openid, template_id)
        if self._grants.get(key, 0) <= 0:
            raise ApiError(43101)
        self._grants[key] -= 1

    def has_granted(self, openid: str) -> bool:
        return openid in self._granted_users

    def grants_left(self, openid: str, template_id: str) -> int:
        return self._grants.get((openid, template_id), 0)

    # mass send ----------------------------------------------------------------------------

    def check_clientmsgid(self, clientmsgid: str | None) -> None:
        """45067 when too long; 45065 (with the first job's msg_id) when already used."""
        if not clientmsgid:
            return
        if len(clientmsgid.encode()) > MAX_CLIENTMSGID_BYTES:
            raise ApiError(45067)
        previous = self._clientmsgids.get(clientmsgid)
        if previous is not None:
            raise ApiError(45065, msg_id=previous)

    def take_mass_call(self, to_all: bool) -> None:
        """The per-minute API limit, and for is_to_all sends the account's monthly quota."""
        if not self._quota.take("mass-call", self._clock.minute(), self._limits.mass_per_minute):
            raise ApiError(45011)
        month = self._clock.month()
        if to_all and not self._quota.take("mass-all", month, self._limits.mass_to_all_monthly):
            raise ApiError(45028)

    def deliverable(self, openids: Iterable[str]) -> list[str]:
        """Users still under their 4-a-month mass quota; each one that gets it is counted."""
        month, limit = self._clock.month(), self._limits.mass_user_monthly
        return [o for o in openids if self._quota.take(("mass-user", o), month, limit)]

    def record_mass(self, msg_id: int, clientmsgid: str | None) -> None:
        self._mass_jobs[msg_id] = "SEND_SUCCESS"
        if clientmsgid:
            self._clientmsgids.put(clientmsgid, msg_id)

    def mass_status(self, msg_id: int) -> str | None:
        return self._mass_jobs.get(msg_id)
