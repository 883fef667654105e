"""Charts drawn on the server as SVG by pygal: no script and no internet needed by the
browser, and readable on a phone as on a desktop."""

from __future__ import annotations

import sys

import pygal  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

# pygal appends an old-style import hook for its map plugins (unused here); left in
# place, every later failed import lookup in the process warns (ImportWarning).
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

# The page's own font list (console.css): Chinese labels need a CJK font.
FONTS = 'system-ui, "WP Han", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    colors=("#1f6feb", "#9aa5b1"),
    font_family=FONTS,
)


def hourly(today: list[int], last_week: list[int], today_label: str, last_week_label: str) -> str:
    """Yuan paid per hour: today against the same weekday a week before (the labels in
    the reader's language)."""
    chart = pygal.Bar(
        style=_STYLE,
        height=260,
        width=720,
        js=[],  # no tooltip script fetched from elsewhere
        disable_xml_declaration=True,
        show_legend=True,
        legend_at_bottom=True,
        x_label_rotation=0,
        show_minor_x_labels=False,
        x_labels_major_every=3,
        print_values=False,
    )
    chart.x_labels = [f"{h:02d}" for h in range(24)]
    chart.add(today_label, [round(f / 100, 2) for f in today])
    chart.add(last_week_label, [round(f / 100, 2) for f in last_week])
    svg: str = chart.render(is_unicode=True)
    return svg
