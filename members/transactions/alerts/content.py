"""What a transaction alert says: the WeChat request bodies of both channels.

Pure functions of the alert and the settings, so they are tested without
WeChat or a database. The card shows only its last four digits (through
``members.masking``), amounts are exact (``Decimal`` of fen, never floats),
times are Beijing time whatever the server's zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from core.clock import SHANGHAI
from members.protection.masking import mask_card
from wechat import messages

DIRECTIONS = {"debit": "支出", "credit": "入账"}


@dataclass(frozen=True)
class Alert:
    """One delivery and its transaction, as plain values (safe to hand to a thread)."""

    delivery_id: int
    channel: str  # template | subscribe
    openid: str
    txn_id: str
    card_last4: str
    amount_fen: int
    currency: str
    direction: str
    merchant: str
    occurred_at: datetime
    balance_fen: int | None


def client_msg_id(alert: Alert) -> str:
    """Stable per delivery: WeChat sends one message per (openid, client_msg_id) in ~10 min."""
    return f"txn-alert-{alert.delivery_id}"


def marked(channel: str, resend: bool, first_claimed_at: datetime, now: datetime,
           config: Mapping[str, Any]) -> bool:
    """Whether a send at ``now`` carries ALERT_RESEND_MARKER: only a resend WeChat could show
    as a second message.

    A template message repeated under its client_msg_id within WeChat's window is dropped
    by WeChat, so inside it a resend cannot show twice and goes unmarked: it may well be
    the holder's only alert. The window opens when WeChat first took the message, no
    earlier than the delivery's first claim; counting from that claim, and stopping
    ALERT_RESEND_WINDOW_MARGIN short, keeps the decision on the safe side. The subscribe
    message has no client_msg_id: every resend of it may show, and is marked.
    """
    if not resend:
        return False
    if channel != "template":
        return True
    open_for = config["WECHAT_CLIENT_MSG_ID_WINDOW"] - config["ALERT_RESEND_WINDOW_MARGIN"]
    return now >= first_claimed_at + timedelta(seconds=open_for)


def yuan(fen: int, currency: str = "CNY") -> str:
    """``12345`` → ``"123.45元"``; another currency keeps its code."""
    amount = (Decimal(fen) / 100).quantize(Decimal("0.01"))
    return f"{amount}元" if currency == "CNY" else f"{amount} {currency}"


def local_time(moment: datetime) -> str:
    """``"2026-11-21 12:00:00"`` in Asia/Shanghai."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def fields(alert: Alert, marked: bool, config: Mapping[str, Any]) -> dict[str, str]:
    """Our field names → display values; balance only when core banking sent one; the resend
    marker in its field when ``marked``."""
    values = {
        "card": mask_card(alert.card_last4),
        "amount": yuan(alert.amount_fen, alert.currency),
        "direction": DIRECTIONS.get(alert.direction, alert.direction),
        "merchant": alert.merchant,
        "time": local_time(alert.occurred_at),
    }
    if alert.balance_fen is not None:
        values["balance"] = yuan(alert.balance_fen, alert.currency)
    if marked:
        field = config["ALERT_RESEND_FIELD"]
        values[field] = config["ALERT_RESEND_MARKER"] + values[field]
    return values


def _keyword_values(values: Mapping[str, str], keywords: Mapping[str, str]) -> dict[str, str]:
    """Our fields → the template's keywords (only those configured and present)."""
    return {keyword: values[name] for name, keyword in keywords.items() if name in values}


def template_message(alert: Alert, marked: bool, config: Mapping[str, Any]) -> dict[str, Any]:
    """Body of ``message/template/send`` (official account)."""
    base = config["PUBLIC_BASE_URL"].rstrip("/")
    url = base + config["ALERT_H5_PATH"].format(txn_id=quote(alert.txn_id, safe="")) \
        if base else None
    return messages.template(
        alert.openid, config["WECHAT_TXN_TEMPLATE_ID"],
        _keyword_values(fields(alert, marked, config), config["WECHAT_TXN_TEMPLATE_FIELDS"]),
        client_msg_id=client_msg_id(alert), url=url)


def subscribe_message(alert: Alert, marked: bool, config: Mapping[str, Any]) -> dict[str, Any]:
    """Body of ``message/subscribe/send`` (mini-program; it has no client_msg_id)."""
    return messages.miniapp_subscribe(
        alert.openid, config["MINIAPP_TXN_TEMPLATE_ID"],
        _keyword_values(fields(alert, marked, config), config["MINIAPP_TXN_TEMPLATE_FIELDS"]),
        page=config["MINIAPP_TXN_PAGE"].format(txn_id=quote(alert.txn_id, safe="")))
