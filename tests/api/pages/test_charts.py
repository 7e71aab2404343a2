"""The dashboard's SVG charts (api/pages/charts.py): escaped text, gaps where nothing was
measured, bars scaled to a round axis."""

from __future__ import annotations

import re

import pytest

from callagent.api.pages.charts import (
    BLUE,
    Series,
    bar_chart,
    count_ceiling,
    hbar_chart,
    line_chart,
    nice_ceiling,
)


def test_axes_end_on_a_round_number() -> None:
    values = (0, 3, 7, 12, 1180, 2450, 2550)
    assert [nice_ceiling(v) for v in values] == [1, 5, 10, 20, 2000, 2500, 5000]


def test_count_axes_step_in_whole_numbers() -> None:
    values = (0, 3, 5, 6, 9, 17, 40, 178, 1000)
    assert [count_ceiling(v) for v in values] == [4, 4, 8, 8, 20, 20, 40, 200, 1000]


def test_text_in_a_chart_is_escaped() -> None:
    svg = str(hbar_chart([("<script>alert(1)</script>", 3)], label='a "b" <c>'))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'data-chart="a &#34;b&#34; &lt;c&gt;"' in svg


def test_a_line_breaks_where_nothing_was_measured() -> None:
    svg = str(
        line_chart(
            ["1 Mar", "2 Mar", "3 Mar", "4 Mar", "5 Mar"],
            [Series("p50", [100.0, 200.0, None, 300.0, 400.0], BLUE)],
            label="latency",
            unit=" ms",
        )
    )
    assert svg.count("<polyline") == 2  # 1-2 Mar and 4-5 Mar, not across the gap
    assert svg.count("<circle") == 4
    assert "3 Mar: p50" not in svg


def test_bars_are_as_tall_as_their_value_on_the_axis() -> None:
    svg = str(bar_chart(["1 Mar", "2 Mar"], [Series("Calls", [5.0, 0.0], BLUE)], label="calls"))
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 1  # a day without calls has no bar
    # 5 calls on an axis of 8 (steps of 2): 5/8 of the plot's height (240 - 28 - 34).
    assert heights == [pytest.approx(178.0 * 5 / 8, abs=0.1)]  # drawn to 0.1 px
