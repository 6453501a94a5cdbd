"""Matches per day, by label and by source, drawn at build time to an SVG string (matplotlib, no GUI).

The page needs no script from anywhere to show it. Text stays text in the SVG (small, selectable), math
parsing is off (a `$` in a feed name is just a dollar), and every name is XML-escaped by matplotlib.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
SPIKE_COLOR = "#d62728"
_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none", "svg.hashsalt": "newsmon-report", "text.parse_math": False,
    "font.size": 9, "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False,
}


def matches_chart(days: Sequence[date], per_label: Mapping[str, Sequence[int]],
                  per_source: Mapping[str, Sequence[int]], spike_days: Sequence[date] = ()) -> str:
    """Two stacked-bar panels (by label, by source) sharing the day axis; a red ▼ marks spike days."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(11, 3.1))  # no pyplot: no global figure list, no GUI backend
        axes = fig.subplots(1, 2, sharex=True)
        _panel(axes[0], days, per_label, "Matches per day by label", set(spike_days), stacked=False)
        _panel(axes[1], days, per_source, "Matches per day by source", set(spike_days), stacked=True)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buf.getvalue())


def _panel(ax: Axes, days: Sequence[date], series: Mapping[str, Sequence[int]], title: str,
           spikes: set[date], *, stacked: bool) -> None:
    """Stacked bars when each story counts once (sources); side by side when a story carries several
    (labels), so the bar heights stay story counts."""
    xs = list(range(len(days)))
    bottom = [0] * len(days)
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    for i, (name, counts) in enumerate(series.items()):
        at = xs if stacked else [x - 0.4 + width * (i + 0.5) for x in xs]
        ax.bar(at, counts, bottom=bottom if stacked else 0, width=width, label=_short(name),
               color=PALETTE[i % len(PALETTE)])
        if stacked:
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    top = max((max(bottom, default=0), *(max(c, default=0) for c in series.values())))
    for x, day in enumerate(days):
        if day in spikes:
            marker = ax.plot([x], [top * 1.08 + 0.5], marker="v", color=SPIKE_COLOR, markersize=9,
                             linestyle="none")[0]
            marker.set_gid(f"spike-{day.isoformat()}")
    ax.set_ylim(0, top * 1.18 + 1)
    ax.set_title(title, loc="left", fontsize=10)
    step = max(1, (len(days) + 9) // 10)
    ax.set_xticks(xs[::step], day_labels(days)[::step])
    locator = ax.yaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # bar charts get an AutoLocator, a MaxNLocator
        locator.set_params(integer=True)
    if series:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.text(0.5, 0.5, "no matches in this period", transform=ax.transAxes, ha="center", color="#777")


def day_labels(days: Sequence[date]) -> list[str]:
    """'20\nNov' at the start and at each new month, else just the day: short enough for 10+ ticks."""
    return [f"{d.day}\n{d:%b}" if i == 0 or d.day == 1 else str(d.day) for i, d in enumerate(days)]


def _short(name: str, width: int = 28) -> str:
    name = " ".join(name.split())
    return name if len(name) <= width else name[:width - 1] + "…"


def _inline(svg: str) -> str:
    """The <svg> element alone (no XML declaration or DOCTYPE), scalable to the page width."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img" '
                 r'aria-label="Matches per day by label and by source"', svg, count=1)
    return re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
