"""The pages' SVG charts: every text from a record is escaped; points, marks and cells follow the data."""

from __future__ import annotations

import re

import pytest
from markupsafe import Markup

from mlops.orchestration.ui import charts

HOSTILE = '<script>alert("x")</script>'
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def _no_markup_from_data(svg: str) -> None:
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in svg


def test_line_chart_escapes_title_series_and_reference() -> None:
    svg = charts.line_chart(HOSTILE, DAYS, {HOSTILE: [0.1, 0.2, None]}, reference=(HOSTILE, 0.5),
                            chart_id="c")  # fmt: skip
    assert isinstance(svg, Markup)
    _no_markup_from_data(svg)
    assert 'data-series="&lt;script&gt;' in svg


def test_line_chart_draws_one_point_per_value_and_marks_only_known_days() -> None:
    series = {"a": [0.1, None, 0.3], "b": [0.2, 0.2, 0.2]}
    svg = charts.line_chart("t", DAYS, series, marks=["2026-01-02", "2025-12-31"], chart_id="c")
    assert svg.count('data-series="a"') == 2 and svg.count('data-series="b"') == 3
    assert re.findall(r"alert on ([0-9-]+)", svg) == ["2026-01-02"]
    assert '<figure id="c">' in svg and 'data-value="0.300000"' in svg


def test_heatmap_escapes_row_names_and_skips_missing_values() -> None:
    rows = {HOSTILE: [0.5, None, 1.0], "tenure": [0.0, 0.1, 0.2]}
    svg = charts.heatmap(HOSTILE, DAYS, rows, chart_id="h", scale=1.0)
    _no_markup_from_data(svg)
    assert svg.count("<rect") == 5
    # capped at 1, and floored so that a zero is still a visible cell
    assert 'fill-opacity="1.000"' in svg and 'fill-opacity="0.040"' in svg


def test_bars_escape_days_and_unit() -> None:
    svg = charts.bars("rows", ["2026-01-01", HOSTILE], [10, 20], chart_id="b", unit=HOSTILE)
    _no_markup_from_data(svg)
    assert svg.count('class="bar"') == 2


@pytest.mark.parametrize(
    "chart",
    [
        pytest.param(lambda: charts.line_chart(HOSTILE, [], {}, chart_id="e"), id="line"),
        pytest.param(lambda: charts.heatmap(HOSTILE, DAYS, {}, chart_id="e"), id="heatmap"),
        pytest.param(lambda: charts.bars(HOSTILE, [], [], chart_id="e"), id="bars"),
    ],
)
def test_an_empty_chart_says_so(chart) -> None:
    svg = chart()
    assert "no data yet" in svg and "<svg" not in svg
    _no_markup_from_data(svg)
