"""What the simulated WeChat account looks like and which platform limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CallbackMode = Literal["safe", "compat", "plain"]
CALLBACK_MODES: tuple[str, ...] = ("safe", "compat", "plain")


@dataclass(frozen=True)
class SimLimits:
    """Platform numbers (wechat-platform.md §3); tests shrink them to reach the edges quickly."""

    token_ttl: int = 7200
    token_grace: int = 300  # a superseded /cgi-bin/token value keeps working this long
    token_daily_limit: int = 2000
    stable_token_daily_limit: int = 500_000
    stable_force_daily_limit: int = 20
    stable_force_interval: int = 30
    stable_rotate_before: int = 300  # stable tokens rotate this early, old and new both valid
    code_ttl: int = 300  # wx.login codes, phone codes, OAuth codes
    web_refresh_ttl: int = 30 * 86400
    template_daily_limit: int = 100_000
    template_dedupe_window: int = 600  # client_msg_id anti-replay window
    cs_window: int = 48 * 3600  # customer service after a user's message (§8.1) …
    cs_streak_limit: int = 5  # … this many messages, then 45047 until they write again
    cs_event_window: int = 60  # after a follow, QR scan or menu click …
    cs_event_limit: int = 3  # … this many messages
    mass_user_monthly: int = 4
    mass_to_all_monthly: int = 4
    mass_per_minute: int = 60
    clientmsgid_window: int = 86400
    follower_page_size: int = 10_000
    permanent_qr_limit: int = 100_000
    max_tags: int = 100
    tags_per_user: int = 20
    record_limit: int = 50_000  # recorded requests kept for /sim/requests


@dataclass(frozen=True)
class SimConfig:
    """One service account (OA) plus one mini-program (MP) and where async events go."""

    oa_app_id: str
    oa_app_secret: str
    oa_token: str
    oa_aes_key: str
    oa_original_id: str
    mp_app_id: str
    mp_app_secret: str
    template_ids: tuple[str, ...] = ()  # template-message templates (template/send)
    subscribe_template_ids: tuple[str, ...] = ()  # bizsend and MP subscribe/send templates
    miniapp_pages: tuple[str, ...] | None = None  # released pages; None = any well-formed page
    callback_url: str | None = None
    callback_mode: CallbackMode = "safe"
    callback_deliveries: int = 3
    callback_timeout: float = 5.0
    callback_workers: int = 2
    callback_delay: float = 0.0  # seconds between a send and its job event (WeChat: ~0.1–1 s)
    default_oauth_openid: str = "oSIMdefaultOAuthUser00000000"
    limits: SimLimits = field(default_factory=SimLimits)

    def __post_init__(self) -> None:
        if self.callback_mode not in CALLBACK_MODES:
            raise ValueError(f"callback_mode must be one of {CALLBACK_MODES}")
        if len(self.oa_aes_key) != 43:
            raise ValueError("oa_aes_key must be the 43-character EncodingAESKey")
        # Lists are accepted for convenience; tuples keep the frozen config hashable and immutable.
        for name in ("template_ids", "subscribe_template_ids", "miniapp_pages"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
