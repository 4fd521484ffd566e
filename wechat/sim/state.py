"""Everything the simulated WeChat remembers, behind one lock, plus the control operations.

Handlers take ``state.lock`` around each read-modify-write; the stores themselves are plain
objects. The control methods here lock for themselves, so tests can call them directly.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .clock import SimClock
from .codes import OneTimeCodes
from .config import SimConfig
from .errors import ApiError
from .events import EventDispatcher
from .faults import Fault, FaultPlan
from .oauth import WebSessions
from .outbox import Outbox
from .pushes import PushFactory
from .qrcodes import QrRegistry
from .records import RequestLog, Stats
from .tags import TagBook
from .tokens import Credential, TokenStore
from .users import Follower, Followers

OA = "oa"
MP = "mp"
USER_ACTIONS = ("subscribe", "unsubscribe", "interact")
# What an "interact" was: a message opens the 48 h customer-service window, a menu click
# (click, scancode_push, scancode_waitmsg) or a follower's QR scan the one-minute one (§8.1).
INTERACTION_KINDS = ("message", "click", "scan")


@dataclass
class MiniappUser:
    openid: str
    unionid: str | None = None
    session_key: str = ""


@dataclass(frozen=True)
class PhoneNumber:
    pure: str
    country_code: str = "86"

    @property
    def full(self) -> str:
        """WeChat shows foreign numbers with their country code, Chinese ones without."""
        return self.pure if self.country_code == "86" else f"+{self.country_code} {self.pure}"


class SimState:
    """One simulated account pair (OA + MP) and its event dispatcher; thread-safe."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.lock = threading.RLock()
        self.clock = SimClock()
        self.pushes = PushFactory(config.oa_original_id, clock=self.clock.now)
        self.events = EventDispatcher(config)
        self._apps = {
            config.oa_app_id: (OA, config.oa_app_secret),
            config.mp_app_id: (MP, config.mp_app_secret),
        }
        self.reset()

    def reset(self) -> None:
        """Forget everything: users, tokens, codes, quotas, faults, records, the clock offset."""
        with self.lock:
            clock, limits = self.clock, self.limits
            clock.reset()
            self.tokens = TokenStore(clock, limits)
            self.followers = Followers()
            self.tags = TagBook(self.followers, limits)
            self.outbox = Outbox(clock, limits, self.config.subscribe_template_ids)
            self.qrcodes = QrRegistry(clock, limits)
            self.web = WebSessions(clock, limits)
            self.login_codes = OneTimeCodes(clock, limits.code_ttl, reuse_errcode=40163)
            self.phone_codes = OneTimeCodes(clock, limits.code_ttl, reuse_errcode=40029)
            self.miniapp_users: dict[str, MiniappUser] = {}
            self.jsapi_tickets: dict[tuple[str, str], Credential] = {}  # (appid, type)
            self.faults = FaultPlan()
            self.records = RequestLog(limits.record_limit)
            self.stats = Stats()
            self.events.clear_log()

    def close(self) -> None:
        self.events.stop()

    # apps ----------------------------------------------------------------------------------

    def role_of(self, appid: str) -> str | None:
        """OA or MP for our two apps, None for any other appid."""
        app = self._apps.get(appid)
        return app[0] if app else None

    def authenticate(
        self,
        appid: str | None,
        secret: str | None,
        roles: tuple[str, ...],
        token_call: bool = False,
    ) -> None:
        """appid/secret checks of /token, jscode2session and the OAuth exchange.

        A wrong secret is 40125 ("invalid appsecret"), except on the token calls where a
        well-formed (32 hex) but wrong one answers 40001, as WeChat does.
        """
        if not appid:
            raise ApiError(41002)
        if not secret:
            raise ApiError(41004)
        app = self._apps.get(appid)
        if app is None or app[0] not in roles:
            raise ApiError(40013)
        if secret != app[1]:
            well_formed = len(secret) == 32 and all(c in "0123456789abcdef" for c in secret)
            raise ApiError(40001 if token_call and well_formed else 40125)

    def miniapp_user_known(self, openid: Any) -> bool:
        return isinstance(openid, str) and (
            openid in self.miniapp_users or self.outbox.has_granted(openid)
        )

    # control operations --------------------------------------------------------------------

    def add_user(
        self,
        openid: str,
        unionid: str | None = None,
        subscribed: bool = True,
        blocks_templates: bool = False,
        last_interaction: float | None = None,
        last_event: float | None = None,
        **fields: Any,
    ) -> Follower:
        """Seed an official-account user, or reset these fields of a known one (tags stay).

        A follower unless ``subscribed`` is false; ``blocks_templates`` makes its template
        messages end in `failed:user block`; ``last_interaction`` (unix time), the user's last
        message, opens the 48 h customer-service window, ``last_event`` (their last follow,
        QR scan or menu click) the one-minute one; both unused unless ``cs_streak`` /
        ``event_streak`` say how many messages they already took.
        """
        with self.lock:
            known = self.followers.find(openid)
            if known is None and subscribed:
                fields.setdefault("subscribe_time", int(self.clock.now()))
            fields.setdefault("cs_streak", 0)
            fields.setdefault("event_streak", 0)
            return self.followers.upsert(
                openid,
                unionid=unionid,
                subscribed=subscribed,
                blocks_templates=blocks_templates,
                last_interaction=last_interaction,
                last_event=last_event,
                **fields,
            )

    def user_acted(
        self,
        openid: str,
        action: str,
        unionid: str | None = None,
        scene: str | None = None,
        kind: str | None = None,
    ) -> Follower:
        """Mirror a push the user caused: follow (optionally by QR scene), unfollow, or an
        interaction of ``kind`` (a message unless told otherwise, as before kinds existed)."""
        if action not in USER_ACTIONS:
            raise ValueError(f"action must be one of {USER_ACTIONS}")
        if action == "interact":
            kind = kind or "message"
            if kind not in INTERACTION_KINDS:
                raise ValueError(f"kind must be one of {INTERACTION_KINDS}")
        elif kind is not None:
            raise ValueError("kind is for action interact only")
        with self.lock:
            now = self.clock.now()
            user = self.followers.find(openid) or self.followers.upsert(openid, subscribed=False)
            if unionid:
                user.unionid = unionid
            if action == "unsubscribe":
                user.subscribed = False
                return user
            if action == "subscribe":
                user.subscribed, user.subscribe_time = True, int(now)
                user.subscribe_scene = "ADD_SCENE_QR_CODE" if scene else "ADD_SCENE_OTHERS"
                user.qr_scene = int(scene) if scene and scene.isdigit() else 0
                user.qr_scene_str = scene if scene and not scene.isdigit() else ""
            if kind == "message":
                user.wrote(now)
            else:  # a follow, a menu click or a scan
                user.acted(now)
            return user

    def user(self, openid: str) -> dict[str, Any] | None:
        with self.lock:
            user = self.followers.find(openid)
            return asdict(user) if user else None

    def mint_login_code(self, openid: str, unionid: str | None = None) -> str:
        """A wx.login code that code2session will turn into this mini-program user."""
        with self.lock:
            user = self.miniapp_users.setdefault(openid, MiniappUser(openid))
            if unionid:
                user.unionid = unionid
            return self.login_codes.mint(openid)

    def mint_phone_code(self, phone: str, country_code: str = "86") -> str:
        with self.lock:
            return self.phone_codes.mint(PhoneNumber(phone, country_code))

    def grant_subscription(self, openid: str, template_id: str, count: int = 1) -> int:
        """The user tapped "allow" ``count`` times; returns the sends now left."""
        with self.lock:
            self.outbox.grant(openid, template_id, count)
            return self.outbox.grants_left(openid, template_id)

    def add_fault(
        self,
        path: str,
        errcode: int | None = None,
        http_status: int | None = None,
        delay: float | None = None,
        times: int = 1,
    ) -> None:
        fault = Fault(path, errcode, http_status, delay, times)
        with self.lock:
            self.faults.add(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = FaultPlan()

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.faults.pending()

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            return self.faults.take(path)

    def expire_tokens(self, appid: str) -> None:
        with self.lock:
            self.tokens.expire(appid)

    def revoke_tokens(self, appid: str) -> None:
        with self.lock:
            self.tokens.revoke(appid)

    def advance_clock(self, seconds: float) -> float:
        with self.lock:
            self.clock.advance(seconds)
            return self.clock.now()

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.records.add(entry)
            self.stats.count("requests", entry["path"])

    def recorded(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return self.records.matching(path)

    def stats_snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return self.stats.snapshot()

    def callbacks(self) -> list[dict[str, Any]]:
        return self.events.log()

    def wait_callbacks(self, timeout: float = 5.0) -> bool:
        return self.events.wait_idle(timeout)


def new_session_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()
