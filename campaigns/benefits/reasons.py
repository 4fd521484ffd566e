"""The catalogue's refusals, which it words in English for the JSON API, in Chinese for the
console's pages.

Each entry matches one reason the catalogue (or the identity rules it uses for titles)
can give for a value the form sends; a reason not listed here is shown as the catalogue
words it, never hidden. Reasons the form cannot cause (a wrong JSON type, a missing field,
a time without an offset) need no entry.
"""

from __future__ import annotations

import re

from campaigns.benefits.operations import SLUG_TAKEN
from campaigns.console.reasons import Reasons

# One field's problem in Chinese.
problem = Reasons((
    (r"must be 1-64 of a-z, 0-9 and '-', starting with a letter or digit",
     "须为 1–64 位小写字母、数字或“-”，以字母或数字开头"),
    (re.escape(SLUG_TAKEN), "已有活动使用该标识，请换一个"),
    (r"is required", "必填"),
    (r"must be at most (\d+) characters", "不能超过 {0} 个字"),
    (r"contains control characters", "不能包含控制字符"),
    (r"is too long for an ISO-8601 time|must be an ISO-8601 date and time.*",
     "请按“年-月-日 时:分”填写"),
    (r"must be within the years (\d+)-(\d+)", "年份须在 {0}–{1} 之间"),
    (r"must be after starts_at", "须晚于开始时间"),
    (r"must be an integer from 0 \(fen\)", "金额不能为负数"),
    (r"must list at least one option", "请至少填写一个权益选项"),
    (r"must list at most (\d+) options", "最多 {0} 个权益选项"),
    (r"must be 1-32 of a-z, 0-9 and '_'", "须为 1–32 位小写字母、数字或“_”"),
    (r"repeats the key of an earlier option", "与上面的选项重复"),
    (r"repeats an earlier tier", "重复选择了同一卡等级"),
    (r"must be an integer from 0", "须为不小于 0 的整数"),
    (r"must be an integer from 1 \(or left out\)", "须为不小于 1 的整数，不限则留空"),
    (r"a published campaign keeps its options' keys: (.*)",
     "活动已发布，权益选项不能增删（现有：{0}）"),
    (r"a published campaign keeps its start", "活动已发布，开始时间不能修改"),
    (r"a published campaign keeps its eligibility", "活动已发布，领取条件不能修改"),
    (r"a published campaign keeps its prices", "活动已发布，积分价格不能修改"),
    (r"these options hold voucher codes and stay: (.*)", "这些选项已有券码，不能删除：{0}"),
))

_CODES = [(re.compile(pattern), chinese) for pattern, chinese in (
    (r"the codes file must be UTF-8 text", "文件须为 UTF-8 编码的纯文本。"),
    (r"nothing of the file was stored: ", "文件未导入任何券码："),
    (r"line (\d+): longer than (\d+) characters", "第 {0} 行超过 {1} 个字符"),
    (r"line (\d+): holds a control or invisible character", "第 {0} 行含有控制字符或不可见字符"),
    (r"; and (\d+) more", "；另有 {0} 行有误"),
    (r"; ", "；"),
)]


def codes_refusal(message: str) -> str:
    """The catalogue's refusal of a codes file (it names lines, never codes) in Chinese."""
    for pattern, chinese in _CODES:
        message = pattern.sub(lambda found, chinese=chinese: chinese.format(*found.groups()),
                              message)
    return message
