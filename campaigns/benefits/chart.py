"""The console's chart of a campaign's redemptions per day: an SVG bar chart drawn by pygal.

The console page shows it as an image (``<img src=".../chart.svg">``), not as SVG inline
in the page. pygal always writes a ``<style>`` element, a config ``<script>`` and a
``style=""`` attribute into its SVG: inline, the console's CSP (nothing inline) would
refuse all three and the chart would render black. Loaded as an image, an SVG runs no
script in any browser and its styles apply inside it alone, so the page's CSP stays as
strict as it is. pygal's interactive JS is off (``js=[]``), and the config script it
writes anyway is dropped by an XML filter: the file holds no script at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pygal
from pygal.style import Style

from campaigns.benefits.models import Campaign
from core.clock import SHANGHAI

WIDTH, HEIGHT = 960, 300
_MAX_LABELS = 16  # x labels shown at most; beyond it every n-th day is labelled
_MAX_PRINTED = 31  # bars that carry their value on top (a month); more would collide
# The console's chart look; other packages' charts start from it (``copy.copy``, then their
# own colours).
STYLE = Style(
    background="transparent", plot_background="transparent",
    foreground="#1f2329", foreground_strong="#1f2329", foreground_subtle="#dee0e3",
    colors=("#b3121d",), value_colors=("#1f2329",), opacity=".85", opacity_hover=".85",
    # The console's system fonts, Chinese ones first: the image does not inherit the page's.
    font_family='"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif',
    label_font_size=12, major_label_font_size=12, value_font_size=12,
)


def days(campaign: Campaign, per_day: Sequence[tuple[date, int]], *,
         now: datetime) -> list[tuple[date, int]]:
    """Redemptions on every Asia/Shanghai day of the campaign so far, days without any as 0:
    from its first day to today, or to its last day once it has ended. Empty before it starts.
    """
    first = campaign.starts_at.astimezone(SHANGHAI).date()
    last = min(now, campaign.ends_at).astimezone(SHANGHAI).date()
    counts = dict(per_day)
    return [(first + timedelta(days=n), counts.get(first + timedelta(days=n), 0))
            for n in range((last - first).days + 1)]


def count_labels(top: int) -> list[int]:
    """Whole numbers from 0 to a step above ``top`` (room for the tallest bar's value), in
    about five steps of 1, 2 or 5 × 10ⁿ: redemptions are counted, and pygal's own ticks
    would be fractions for small counts."""
    rough = max(top, 1) / 5
    magnitude = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(multiple * magnitude for multiple in (1, 2, 5, 10)
                if multiple * magnitude >= rough)
    return list(range(0, (top // step + 1) * step + 1, step))


def without_scripts(root: Any) -> Any:
    """pygal's XML filter: remove every ``<script>`` element (pygal's config script)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).rpartition("}")[2] == "script":
                parent.remove(child)
    return root


def svg(per_day: Sequence[tuple[date, int]]) -> str:
    """The bar chart of ``per_day`` (from ``days``) as an SVG document."""
    counts = [count for _, count in per_day]
    every = max(1, math.ceil(len(per_day) / _MAX_LABELS))
    chart = pygal.Bar(
        width=WIDTH, height=HEIGHT, explicit_size=True, style=STYLE,
        disable_xml_declaration=True, js=[], no_prefix=True,
        show_legend=False, show_x_guides=False, show_y_guides=True,
        print_values=len(per_day) <= _MAX_PRINTED, print_zeroes=False,
        print_values_position="top",
        x_labels_major_every=every, show_minor_x_labels=every == 1,
        margin=8, spacing=8, truncate_label=-1, no_data_text="暂无数据",
    )
    chart.add_xml_filter(without_scripts)
    chart.x_labels = [day.strftime("%m-%d") for day, _ in per_day]
    chart.y_labels = count_labels(max(counts, default=0))
    chart.add("领取", counts)
    return chart.render()
