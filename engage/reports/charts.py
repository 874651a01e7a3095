"""Charts for the reports: matplotlib (Agg) drawn to SVG strings to inline in HTML.

Text is written as SVG ``<text>`` (``svg.fonttype: none``) so the charts
stay small and need no font file; the page's CSS gives the font. Charts only
ever show numbers, dates and fixed labels: untrusted text (names, titles)
goes in the HTML around them, where Jinja2 escapes it. matplotlib escapes
whatever text it writes into SVG all the same.

Each function returns the ``<svg ...>...</svg>`` element alone (no XML
declaration, no DOCTYPE), ready for the template.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import date
from typing import Any

from markupsafe import Markup

_LOCK = threading.Lock()  # pyplot-free, but figures are not shared between threads
_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "engage",  # stable ids: the same chart gives the same bytes
    "font.size": 8,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "xtick.color": "#555555",
    "ytick.color": "#555555",
}
BLUE = "#2f6db5"
DARK = "#1b3d66"
ORANGE = "#d9822b"
GREY = "#9aa5b1"


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72)
    ax = fig.add_axes((0.1, 0.18, 0.88, 0.74))
    return fig, ax


def _svg(fig: Any, title: str, salt: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    # The salt makes clip-path ids unique among the charts of one page.
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"engage-{salt}"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    # An accessible name for the chart (fixed words and numbers only).
    from xml.sax.saxutils import escape

    head_end = svg.index(">") + 1
    # Markup: our own drawing, to be inlined as is (any text in it was escaped by matplotlib).
    return Markup(
        svg[:head_end].replace("<svg ", '<svg role="img" ', 1)
        + f"<title>{escape(title)}</title>"
        + svg[head_end:]
    )


def _bars_path(heights: Sequence[float], width: float = 0.8) -> Any:
    """All bars as one compound path: one SVG element per series instead of one per day."""
    from matplotlib.path import Path

    vertices: list[tuple[float, float]] = []
    codes: list[int] = []
    for x, h in enumerate(heights):
        if h <= 0:
            continue
        left, right = x - width / 2, x + width / 2
        vertices += [(left, 0), (left, h), (right, h), (right, 0), (left, 0)]
        codes += [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY]
    if not vertices:
        return Path([(0, 0)], [Path.MOVETO])
    return Path(vertices, codes)


_TIMELINE: dict[str, Any] = {}  # one figure, made on first use and redrawn for each account


def timeline_svg(
    days: Sequence[date], items: Sequence[int], decision_makers: Sequence[int], *, salt: str = "timeline"
) -> str:
    """A sparkline of bars: items per day, the decision makers' part darker.

    No axes or text (the page says the dates). The figure is made once and
    only its two bar paths change, so a chart takes about 3 ms: with hundreds
    of accounts, that matters.
    """
    import matplotlib
    from matplotlib.patches import PathPatch

    with _LOCK, matplotlib.rc_context(_STYLE):
        if not _TIMELINE:
            fig, ax = _figure(3.2, 0.55)
            ax.set_position((0.0, 0.0, 1.0, 1.0))
            ax.set_axis_off()
            ax.axhline(0, color=GREY, linewidth=1.2, clip_on=False)
            _TIMELINE.update(
                fig=fig,
                ax=ax,
                all=ax.add_patch(PathPatch(_bars_path([]), facecolor=BLUE, edgecolor="none")),
                dm=ax.add_patch(PathPatch(_bars_path([]), facecolor=DARK, edgecolor="none")),
            )
        ax = _TIMELINE["ax"]
        _TIMELINE["all"].set_path(_bars_path(items))
        _TIMELINE["dm"].set_path(_bars_path([min(d, i) for d, i in zip(decision_makers, items, strict=True)]))
        ax.set_xlim(-0.6, len(days) - 0.4)
        top = max([1, *items]) * 1.08
        ax.set_ylim(-top * 0.04, top)  # the baseline inside the picture
        return _svg(
            _TIMELINE["fig"],
            f"{sum(items)} items in {len(days)} days, {sum(decision_makers)} by decision makers",
            salt,
        )


def kpi_svg(
    period_ends: Sequence[date],
    values: Sequence[float | None],
    target: float | None,
    label: str,
    *,
    salt: str = "kpi",
) -> str:
    """A KPI's weekly values as a line, with its target as a dashed line."""
    import matplotlib

    with _LOCK, matplotlib.rc_context(_STYLE):
        fig, ax = _figure(4.2, 1.6)
        x = list(range(len(period_ends)))
        ys = [float("nan") if v is None else float(v) for v in values]
        ax.plot(x, ys, color=BLUE, marker="o", markersize=3, linewidth=1.5)
        if target is not None:
            ax.axhline(target, color=ORANGE, linestyle="--", linewidth=1)
        ticks = sorted({0, len(x) // 2, len(x) - 1}) if x else []
        ax.set_xticks(ticks, [period_ends[i].strftime("%d %b") for i in ticks])
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_ylim(bottom=min(0.0, *[v for v in ys if v == v], *([target] if target is not None else [])))
        return _svg(
            fig,
            f"{label}: weekly values" + (f" against a target of {target:g}" if target is not None else ""),
            salt,
        )


def half_life_svg(buckets: Sequence[str], shares: Sequence[float]) -> str:
    """Share of new engagement by hours since publishing."""
    import matplotlib

    with _LOCK, matplotlib.rc_context(_STYLE):
        fig, ax = _figure(5.0, 1.9)
        ax.set_position((0.09, 0.16, 0.89, 0.76))
        x = list(range(len(buckets)))
        ax.bar(x, [s * 100 for s in shares], color=BLUE, width=0.7)
        ax.set_xticks(x, list(buckets))
        ax.set_ylabel("% of engagement")
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        return _svg(fig, "share of new engagement by hours since publishing", "half-life")
