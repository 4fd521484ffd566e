"""One client and one quota guard per WeChat app (official account, mini-program) per process."""

from __future__ import annotations

from flask import Flask, current_app

from wechat.client import WeChatAPIClient
from wechat.quota import QuotaGuard
from wechat.transport import build_session


def init_app(app: Flask) -> None:
    config = app.config
    http = build_session(config)
    redis = app.extensions["redis"]
    app.extensions["wechat.quotas"] = {
        "official_account": QuotaGuard(redis, config["WECHAT_APP_ID"], config),
        "mini_program": QuotaGuard(redis, config["MINIAPP_APP_ID"], config),
    }
    app.extensions["wechat.clients"] = {
        "official_account": WeChatAPIClient(
            config["WECHAT_APP_ID"], config["WECHAT_APP_SECRET"],
            redis=redis, http=http, config=config,
        ),
        "mini_program": WeChatAPIClient(
            config["MINIAPP_APP_ID"], config["MINIAPP_APP_SECRET"],
            redis=redis, http=http, config=config,
        ),
    }


def official_account() -> WeChatAPIClient:
    """The service account's client."""
    return current_app.extensions["wechat.clients"]["official_account"]


def mini_program() -> WeChatAPIClient:
    """The mini-program's client."""
    return current_app.extensions["wechat.clients"]["mini_program"]


def official_account_quota() -> QuotaGuard:
    """The service account's quota guard, consulted by every sender on that account."""
    return current_app.extensions["wechat.quotas"]["official_account"]


def mini_program_quota() -> QuotaGuard:
    """The mini-program's quota guard."""
    return current_app.extensions["wechat.quotas"]["mini_program"]
