"""A channel's funnel as a pygal chart (SVG), shown as an image on the console's
funnel page: made as the campaigns' chart is (``campaigns.benefits.chart``: its look and its
script filter), so the console's strict CSP holds (see that module's docstring)."""

from __future__ import annotations

import copy

import pygal

from campaigns.attribution.funnel import STEPS, Funnel
from campaigns.benefits import chart as benefits_chart

WIDTH, HEIGHT = benefits_chart.WIDTH, 320
STEP_NAMES = {"scans": "扫码", "follows": "关注", "binds": "绑卡", "transacting": "用卡交易",
              "redemptions": "领取权益"}
_STYLE = copy.copy(benefits_chart.STYLE)
_STYLE.value_font_size = 14


def svg(funnel: Funnel) -> str:
    """The five steps top to bottom as horizontal bars, each as long as its count: the
    funnel narrowing from scans to redemptions. (pygal's own Funnel chart draws its first
    step as a point and prints a stray 0 per series; bars read more plainly.)"""
    counts = list(funnel.as_dict().values())
    chart = pygal.HorizontalBar(
        width=WIDTH, height=HEIGHT, explicit_size=True, style=_STYLE,
        disable_xml_declaration=True, js=[], no_prefix=True, show_legend=False,
        show_x_guides=True, show_y_guides=False, print_values=True, print_zeroes=True,
        print_values_position="top", margin=8, spacing=12, truncate_label=-1,
        # pygal measures labels as Latin text: Chinese step names need room on the left.
        margin_left=40,
        no_data_text="暂无数据",
    )
    chart.add_xml_filter(benefits_chart.without_scripts)
    # pygal draws a horizontal chart's first label at the bottom: steps go in reversed.
    chart.x_labels = [STEP_NAMES[step] for step in reversed(STEPS)]
    chart.y_labels = benefits_chart.count_labels(max(counts, default=0))
    chart.add("人数", counts[::-1])
    return chart.render()
