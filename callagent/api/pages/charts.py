"""Charts as server-rendered SVG (docs/dashboard.md, "Analytics").

No chart library: the dashboard has no build step and fetches nothing, and a bar or a line
over a few dozen days is a handful of ``<rect>`` and ``<polyline>`` elements. The SVG is
inline in the page; its colours are presentation attributes, not ``style`` attributes, so
the pages' Content-Security-Policy (no inline styles) leaves them alone. Every text in it is
escaped. Colours are from the Okabe-Ito palette (told apart with the common colour-vision
deficiencies) and each at least 3:1 against white (WCAG 1.4.11); two lines also differ by
dash and marker. Each chart is ``aria-hidden``: the page gives its summary in words and its
figures in a table next to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 68, 12, 28, 34
BLUE = "#0072B2"
VERMILLION = "#D55E00"
GREEN = "#007A5A"  # Okabe-Ito's bluish green, darkened to 3:1 on white
PURPLE = "#A8518A"  # Okabe-Ito's reddish purple, darkened to 3:1 on white
GRID = "#d0d7de"
INK = "#1b1f24"
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    """One named row of values, one per x label (None: nothing measured there)."""

    name: str
    values: Sequence[float | None]
    colour: str
    dashed: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value`` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


def count_ceiling(value: float) -> float:
    """An axis' top for counts: four steps of 1, 2, 2.5 or 5 × 10^k, each a whole number
    (no "2.5 calls" on the axis)."""
    need = max(value / 4, 1.0)
    power = 10 ** math.floor(math.log10(need))
    for step in (1, 2, 2.5, 5, 10):
        size = step * power
        if size >= need and size == int(size):
            return float(size * 4)
    return float(10 * power * 4)  # pragma: no cover - the loop ends at 10


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _svg(body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" aria-hidden="true" focusable="false" '
        f'font-family="system-ui, sans-serif" font-size="12" fill="{INK}" '
        f'data-chart="{escape(label)}">' + "".join(body) + "</svg>"
    )


def _frame(top: float, unit: str, labels: Sequence[str]) -> tuple[list[str], float, float]:
    """Grid lines with y labels, and the x labels; the plot's width and height."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = []
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value) + unit)}</text>"
        )
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    slot = plot_w / max(1, len(labels))
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + slot * (i + 0.5)
        body.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    return body, plot_w, plot_h


def _legend(series: Sequence[Series]) -> list[str]:
    body, x = [], float(LEFT)
    for one in series:
        dash = ' stroke-dasharray="6 3"' if one.dashed else ""
        body.append(
            f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="12" y2="12" stroke="{one.colour}" '
            f'stroke-width="4"{dash}/>'
            f'<text x="{x + 24:.1f}" y="16">{escape(one.name)}</text>'
        )
        x += 34 + 7 * len(one.name)
    return body


def bar_chart(labels: Sequence[str], series: Sequence[Series], *, label: str) -> Markup:
    """Grouped vertical bars of counts: one group per label, one bar per series."""
    highest = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = count_ceiling(highest)
    body, plot_w, plot_h = _frame(top, "", labels)
    slot = plot_w / max(1, len(labels))
    bar_w = slot * 0.8 / max(1, len(series))
    for i, name in enumerate(labels):
        for j, one in enumerate(series):
            value = one.values[i]
            if not value:
                continue
            h = plot_h * value / top
            x = LEFT + slot * i + slot * 0.1 + bar_w * j
            body.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{one.colour}">'
                f"<title>{escape(f'{name}: {_number(value)} {one.name.lower()}')}</title></rect>"
            )
    return _svg(_legend(series) + body, label)


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, label: str, unit: str = ""
) -> Markup:
    """Lines over the labels; a gap where a value is None. Points are marked (a circle, or
    a square on a dashed line) so a single measured day still shows."""
    highest = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = nice_ceiling(highest)
    body, plot_w, plot_h = _frame(top, unit, labels)
    slot = plot_w / max(1, len(labels))
    for one in series:
        runs: list[list[tuple[float, float]]] = [[]]
        marks = []
        for i, value in enumerate(one.values):
            if value is None:
                runs.append([])
                continue
            x, y = LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * value / top
            runs[-1].append((x, y))
            text = escape(f"{labels[i]}: {one.name} {_number(value)}{unit}")
            if one.dashed:
                marks.append(
                    f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                    f'fill="{one.colour}"><title>{text}</title></rect>'
                )
            else:
                marks.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{one.colour}">'
                    f"<title>{text}</title></circle>"
                )
        dash = ' stroke-dasharray="6 3"' if one.dashed else ""
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                body.append(
                    f'<polyline points="{points}" fill="none" stroke="{one.colour}" '
                    f'stroke-width="2.5"{dash}/>'
                )
        body.extend(marks)
    return _svg(_legend(series) + body, label)


def hbar_chart(items: Sequence[tuple[str, float]], *, label: str, colour: str = BLUE) -> Markup:
    """Horizontal bars, one per (name, value), largest first as given; the value at the end of
    each bar."""
    rows = max(1, len(items))
    row_h = min(28.0, (HEIGHT - 16) / rows)
    name_w = 150
    top = nice_ceiling(max((value for _, value in items), default=0.0))
    plot_w = WIDTH - name_w - 60
    body = []
    for i, (name, value) in enumerate(items):
        y = 8 + row_h * i
        w = plot_w * value / top
        body.append(
            f'<text x="{name_w - 8}" y="{y + row_h * 0.65:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect x="{name_w}" y="{y + row_h * 0.15:.1f}" width="{w:.1f}" '
            f'height="{row_h * 0.7:.1f}" fill="{colour}">'
            f"<title>{escape(f'{name}: {_number(value)}')}</title></rect>"
            f'<text x="{name_w + w + 6:.1f}" y="{y + row_h * 0.65:.1f}">'
            f"{escape(_number(value))}</text>"
        )
    return _svg(body, label)
