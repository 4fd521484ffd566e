"""The delivery report's chart: how a push's recipients ended (sent, failed, pending) with the
skipped ones by reason, as a horizontal bar chart drawn by pygal.

Shown as an image, as the campaigns' chart is, and made the same way
(``campaigns.benefits.chart``: its look, whole-number axis and script filter), so the
console's strict CSP holds (see that module's docstring).
"""

from __future__ import annotations

import copy

import pygal

from campaigns.benefits import chart as benefits_chart
from campaigns.pushes import wording
from campaigns.pushes.plans import Report

WIDTH = benefits_chart.WIDTH
_BAR_HEIGHT = 34  # pixels per bar; the image grows with the reasons
_MIN_HEIGHT = 180
# sent green, skipped amber, failed red, pending grey: one colour per kind of bar.
_COLOURS = {"sent": "#1f7a3a", "skipped": "#c77d0a", "failed": "#c62828", "pending": "#8f959e"}
_CJK_EXTRA = 7  # pixels a Chinese character needs beyond pygal's estimate
_STYLE = copy.copy(benefits_chart.STYLE)
_STYLE.opacity = _STYLE.opacity_hover = "1"


def bars(report: Report) -> list[tuple[str, str, int]]:
    """The chart's bars, top to bottom: (kind, label, count)."""
    shown = report.progress
    rows = [("sent", wording.OUTCOMES["sent"], shown.sent)]
    rows += [("skipped", f"跳过：{wording.reason(code)}", count)
             for code, count in report.skipped_by_reason]
    rows += [("failed", f"失败：{wording.errcode(code)}", count)
             for code, count in report.failed_by_errcode]
    rows.append(("pending", wording.OUTCOMES["pending"], shown.pending))
    return rows


def height(report: Report) -> int:
    return max(_MIN_HEIGHT, 60 + _BAR_HEIGHT * len(bars(report)))


def svg(report: Report) -> str:
    """The chart of ``report`` as an SVG document."""
    rows = bars(report)
    chart = pygal.HorizontalBar(
        width=WIDTH, height=height(report), explicit_size=True, style=_STYLE,
        disable_xml_declaration=True, js=[], no_prefix=True, show_legend=False,
        # A horizontal chart swaps pygal's axes: these are the value axis's guides only.
        show_x_guides=False, show_y_guides=True, print_values=True, print_zeroes=True,
        print_values_position="top", truncate_label=-1, no_data_text="暂无数据",
        # pygal measures labels as Latin text; Chinese ones are about twice as wide.
        margin=8, margin_left=8 + _CJK_EXTRA * max(len(label) for _, label, _ in rows),
        spacing=6,
    )
    chart.add_xml_filter(benefits_chart.without_scripts)
    # pygal draws a horizontal chart's first label at the bottom: reversed, the chart reads
    # top-down as the tables under it do.
    rows.reverse()
    chart.x_labels = [label for _, label, _ in rows]
    chart.y_labels = benefits_chart.count_labels(max(count for _, _, count in rows))
    # One series, each bar in the colour of its kind.
    chart.add("人数", [{"value": count, "color": _COLOURS[kind]} for kind, _, count in rows])
    return chart.render()
