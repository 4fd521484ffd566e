"""How the console words pushes in Chinese: states, channels and their WeChat rules,
recipients' outcomes, skip reasons and WeChat's errcodes, and the refusals of ``plans``.

A reason or errcode not listed here is shown by its code, never hidden: the sending engine
may learn new ones before this table does.
"""

from __future__ import annotations

from campaigns.console.reasons import Reasons
from campaigns.pushes.models import (
    CANCELLED,
    CUSTOM,
    DONE,
    MASS,
    PAUSED,
    PENDING_APPROVAL,
    SCHEDULED,
    SENDING,
    SUBSCRIBE,
)
from wechat import messages

STATES = {PENDING_APPROVAL: "待审批", SCHEDULED: "已排期", SENDING: "发送中", PAUSED: "已暂停",
          DONE: "已完成", CANCELLED: "已取消"}
CHANNELS = {MASS: "群发消息", CUSTOM: "客服消息", SUBSCRIBE: "订阅通知"}
# What WeChat allows each channel: shown beside the choice in the composer.
CHANNEL_RULES = {
    MASS: "每人每月最多4条（含后台群发），超出的粉丝计为跳过。",
    CUSTOM: "仅限48小时内发过消息的粉丝，其他粉丝计为跳过。",
    SUBSCRIBE: "仅限已同意订阅的粉丝，未同意的粉丝计为跳过。",
}
OUTCOMES = {"sent": "已发送", "skipped": "已跳过", "failed": "失败", "pending": "待发送"}
REASONS = {
    "monthly_cap": "本月群发已满4条", "outside_48h": "超出48小时互动窗口",
    "not_granted": "未同意订阅", "no_grant": "未同意订阅", "not_following": "已取消关注",
    "unsubscribed": "已取消关注", "cancelled": "推送已取消", "interrupted": "发送中断（未重发）",
    "window_quota": "客服消息条数已用完",
}
ERRCODES = {45015: "超出48小时窗口", 45047: "客服消息超出条数", 43004: "未关注",
            43101: "未订阅或订阅已用完", 45009: "接口调用超限", 45028: "群发额度已用完",
            47003: "参数错误", -1: "微信系统繁忙"}
PAUSE_REASONS = {"staff": "由员工暂停", "quota": "微信额度用完，将自动恢复"}


def reason(code: str | None) -> str:
    return REASONS.get(code or "", code or "未说明")


def errcode(code: int | None) -> str:
    if code is None:
        return "无错误码"
    return f"{code} {ERRCODES[code]}" if code in ERRCODES else str(code)


def pause_reason(code: str | None) -> str:
    return PAUSE_REASONS.get(code or "", "微信额度用完，将自动恢复" if code else "")


def duration(seconds: int | None) -> str:
    """``seconds`` as a reader counts them: "约 3 分 20 秒", "约 2 小时 5 分"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"约 {max(seconds, 1)} 秒"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"约 {minutes} 分 {secs} 秒" if secs else f"约 {minutes} 分"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"约 {hours} 小时 {minutes} 分" if minutes else f"约 {hours} 小时"
    return f"约 {round(hours / 24)} 天"


# -- the refusals of plans.create_push, in Chinese next to their fields --------------------------

# A refusal of ``plans`` in Chinese; unknown ones as ``plans`` words them.
problem = Reasons((
    (r"is required", "必填"),
    (r"must be at most (\d+) bytes of UTF-8.*",
     "客服消息最多 {0} 字节（约 680 个汉字）"),
    (r"must be at most (\d+) characters", "最多 {0} 个字"),
    (r"must be at most (\d+) printable characters", "最多 {0} 个字符，不能含控制字符"),
    (r"must hold no control character.*", "不能包含控制字符"),
    (r"contains control characters", "不能包含控制字符"),
    (r"is no audience", "请选择一个人群"),
    (r"must be one of .*", "请选择发送渠道"),
    (r"must not be in the past.*", "不能早于现在；留空则审批通过后立即发送"),
    (r"is too long for an ISO-8601 time|must be an ISO-8601 date and time.*|"
     r"must carry a UTC offset.*", "请按“年-月-日 时:分”填写"),
    (r"must be within the years (\d+)-(\d+)", "年份须在 {0}–{1} 之间"),
    (r"must be 1-(\d+) messages a second", "须为 1–{0} 的整数"),
    (r"must be an integer", "须为整数"),
    (r"must be a time HH:MM.*", "请按“时:分”填写，如 21:00"),
    (r"must differ from quiet_hours.from", "开始与结束不能相同"),
    (r"must be 1-(\d+) printable characters", "须为 1–{0} 个字符"),
    (r"must hold 1-(\d+) keywords", "请填写 1–{0} 行“关键词: 内容”"),
    (r"keywords are a type and a number.*",
     "每行一个“关键词: 内容”，关键词如 thing1、time2"),
))


def text_limit(channel: str) -> str:
    """The composer's hint of a text message's length."""
    if channel == CUSTOM:
        return f"最多 {messages.CUSTOM_TEXT_MAX_BYTES} 字节（约 680 个汉字）"
    return f"最多 {messages.MASS_TEXT_MAX_CHARS} 个字"
