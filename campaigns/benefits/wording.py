"""How campaigns read to people, in Chinese: the same words on the console and on the holders'
pages (tiers, yuan, times in Asia/Shanghai, why a holder may not redeem yet)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from campaigns.benefits import eligibility
from campaigns.benefits.models import PUBLISHED, Campaign
from core.clock import SHANGHAI

# The registry's tiers as the card's leaflets name them; a tier not listed shows its code.
TIER_NAMES = {"classic": "普卡", "gold": "金卡", "platinum": "白金卡"}


def tier_names(tiers: Iterable[str]) -> str:
    """``["gold", "platinum"]`` → ``"金卡、白金卡"``."""
    return "、".join(TIER_NAMES.get(tier, tier) for tier in tiers)


def yuan(fen: int) -> str:
    """``23000`` → ``"¥230.00"``; ``123456789`` → ``"¥1,234,567.89"``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def local_time(moment: datetime) -> str:
    """``"2026-12-01 00:00"`` in Asia/Shanghai: minutes are what people read."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def period(campaign: Campaign) -> str:
    """``"2026-12-01 00:00 至 2026-12-31 23:59"`` (Asia/Shanghai)."""
    return f"{local_time(campaign.starts_at)} 至 {local_time(campaign.ends_at)}"


def status(campaign: Campaign, now: datetime) -> tuple[str, str]:
    """Where the campaign stands: ``(code, words)``, the code one of draft, upcoming, open,
    ended (the console's tag colours)."""
    if campaign.state != PUBLISHED:
        return "draft", "草稿"
    if now < campaign.starts_at:
        return "upcoming", "已发布 · 未开始"
    if now > campaign.ends_at:
        return "ended", "已结束"
    return "open", "进行中"


def _spend_period(campaign: Campaign) -> str:
    """What the spend rule counts over, in words: spend counts from the campaign's start, so
    "本月" for a campaign within one calendar month, "活动期间" otherwise."""
    starts, ends = (moment.astimezone(SHANGHAI) for moment in
                    (campaign.starts_at, campaign.ends_at))
    return "本月" if (starts.year, starts.month) == (ends.year, ends.month) else "活动期间"


def conditions(campaign: Campaign) -> str:
    """Who may redeem, in a sentence: ``"金卡、白金卡持卡人，活动期间消费满 ¥1,000.00"``."""
    rules = campaign.eligibility
    who = f"{tier_names(rules['tiers'])}持卡人" if "tiers" in rules else "所有已绑定的持卡人"
    if rules.get("min_spend_fen"):
        return f"{who}，{_spend_period(campaign)}消费满 {yuan(rules['min_spend_fen'])}"
    return who


def not_eligible(campaign: Campaign, verdict: eligibility.Eligibility) -> str:
    """Why ``verdict`` is no, as the holder reads it."""
    if verdict.reason == eligibility.NOT_BOUND:
        return "请先绑定联名卡"
    if verdict.reason == eligibility.TIER:
        return f"仅限{tier_names(campaign.eligibility['tiers'])}持卡人"
    return f"{_spend_period(campaign)}再消费 {yuan(verdict.missing_fen)} 即可领取"
