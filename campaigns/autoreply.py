"""Replies the marketing team configures: text keywords, menu clicks, the welcome text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound


class AutoReplies:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.keywords: dict[str, str] = dict(config["WECHAT_KEYWORD_REPLIES"])
        self.menu: dict[str, str] = dict(config["WECHAT_MENU_REPLIES"])
        self.help_text: str = config["WECHAT_HELP_TEXT"]

    def for_text(self, inbound: Inbound) -> str:
        """The keyword's reply (exact match, surrounding blanks ignored), else the help text."""
        return self.keywords.get((inbound.message.content or "").strip(), self.help_text)

    def for_click(self, inbound: Inbound) -> str:
        return self.menu.get(inbound.message.key or "", self.help_text)

    def for_follow(self, inbound: Inbound) -> str:
        return self.help_text

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.on("text", pure=True)(self.for_text)
        dispatcher.on("event:click", pure=True)(self.for_click)
        dispatcher.on("event:subscribe", "event:subscribe_scan", "event:subscribe_scan_product",
                      pure=True)(self.for_follow)
