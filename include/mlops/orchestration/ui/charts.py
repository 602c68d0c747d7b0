"""Charts for the platform's pages: inline SVG, so a page needs no JavaScript library and no network.

Each function returns ``markupsafe.Markup``. Every piece of SVG is made by :func:`_fill`, which
escapes each argument that is not a number, so a name, a day or a title from a record is always
text, never markup. (``Markup.format`` does the same, several times slower: a page of 180 days
draws thousands of cells.) The ``data-*`` attributes carry the values for tests and tooltips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
WIDTH = 760


def _fill(template: str, *args: object) -> str:
    """``template.format(*args)`` with every argument escaped except numbers (format specs apply)."""
    return template.format(*(a if isinstance(a, int | float) else escape(a) for a in args))


def _figure(chart_id: str, title: str, body: Markup, legend: Markup | None = None) -> Markup:
    out = _fill('<figure id="{}"><figcaption>{}</figcaption>{}', chart_id, title, body)
    if legend is not None:
        out += _fill('<div class="legend">{}</div>', legend)
    return Markup(out + "</figure>")


def _svg(parts: list[str]) -> Markup:
    """Pieces made by :func:`_fill` (or constant markup), as one piece of markup."""
    return Markup("".join(parts))


def _empty(chart_id: str, title: str) -> Markup:
    return _figure(chart_id, title, Markup('<p class="muted">no data yet</p>'))


def _ends(days: Sequence[str], left: float, right: float, y: float) -> str:
    """The first and last day under the x axis, and the end of the SVG."""
    tick = '<text x="{}" y="{}" class="tick">{}</text>'
    return _fill(tick + tick + "</svg>", left, y, days[0], right, y, days[-1])


def line_chart(
    title: str,
    days: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    chart_id: str,
    reference: tuple[str, float] | None = None,
    marks: Sequence[str] = (),
    y_range: tuple[float, float] | None = None,
) -> Markup:
    """Lines over days; ``reference`` a labelled horizontal line, ``marks`` days with a vertical marker."""
    w, h, left, bottom, top = WIDTH, 220, 48, 28, 12
    values = [v for vs in series.values() for v in vs if v is not None]
    values += [reference[1]] if reference else []
    if not days or not values:
        return _empty(chart_id, title)
    lo, hi = y_range or (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5

    def x(i: int) -> float:
        return left + (w - left - 10) * (i / max(len(days) - 1, 1))

    def y(v: float) -> float:
        return top + (h - top - bottom) * (1 - (v - lo) / (hi - lo))

    parts = [_fill('<svg viewBox="0 0 {} {}" class="chart" role="img" aria-label="{}">', w, h, title)]
    grid = (
        '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/>'
        '<text x="4" y="{:.1f}" class="tick">{:.2f}</text>'
    )
    for frac in (0, 0.5, 1):
        v = lo + (hi - lo) * frac
        parts.append(_fill(grid, left, w - 10, y(v), y(v), y(v) + 4, v))
    index = {day: i for i, day in enumerate(days)}
    mark = '<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" class="mark"><title>alert on {}</title></line>'
    for day in marks:
        if day in index:
            parts.append(_fill(mark, x(index[day]), x(index[day]), top, h - bottom, day))
    if reference:
        ref = (
            '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="reference"><title>{}: {:.4f}</title></line>'
        )
        parts.append(_fill(ref, left, w - 10, y(reference[1]), y(reference[1]), reference[0], reference[1]))
    point = (
        '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}" data-series="{}" data-day="{}" data-value="{:.6f}">'
        "<title>{} {}: {:.4f}</title></circle>"
    )
    keys = []
    for n, (name, vs) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        points = [(x(i), y(v), days[i], v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            steps = (f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}" for j, (px, py, _, _) in enumerate(points))
            path = " ".join(steps)
            parts.append(_fill('<path d="{}" fill="none" stroke="{}" stroke-width="2"/>', path, color))
        safe_name = escape(name)
        for px, py, day, v in points:
            parts.append(_fill(point, px, py, color, safe_name, day, v, safe_name, day, v))
        keys.append(_fill('<span class="key" data-color="{}">■ {}</span>', color, name))
    parts.append(_ends(days, left, w - 90, h - 8))
    if reference:
        keys.append(_fill('<span class="key ref">-- {}</span>', reference[0]))
    return _figure(chart_id, title, _svg(parts), _svg(keys))


def heatmap(
    title: str,
    days: Sequence[str],
    rows: Mapping[str, Sequence[float | None]],
    *,
    chart_id: str,
    scale: float = 1.0,
) -> Markup:
    """One row per name, one column per day; darker is higher (``value / scale``, capped at 1)."""
    if not days or not rows:
        return _empty(chart_id, title)
    cell_w, cell_h, left = max(4, min(24, 700 // len(days))), 16, 150
    w, h = left + cell_w * len(days) + 10, cell_h * len(rows) + 24
    svg = '<svg viewBox="0 0 {} {}" width="{}" height="{}" class="heatmap" role="img" aria-label="{}">'
    parts = [_fill(svg, w, h, w, h, title)]
    cell = (
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#b2182b" fill-opacity="{:.3f}" '
        'data-row="{}" data-day="{}" data-value="{:.6f}"><title>{} {}: {:.4f}</title></rect>'
    )
    safe_days = [escape(d) for d in days]
    for r, (name, values) in enumerate(rows.items()):
        parts.append(_fill('<text x="4" y="{}" class="tick">{}</text>', r * cell_h + 12, name[:22]))
        safe_name = escape(name)
        for c, v in enumerate(values):
            if v is None:
                continue
            alpha = max(0.04, min(v / scale, 1.0)) if scale else 1.0
            x, y, w_, h_, day = left + c * cell_w, r * cell_h, cell_w - 1, cell_h - 1, safe_days[c]
            parts.append(_fill(cell, x, y, w_, h_, alpha, safe_name, day, v, safe_name, day, v))
    parts.append(_ends(days, left, w - 90, h - 6))
    return _figure(chart_id, title, _svg(parts))


def bars(
    title: str, days: Sequence[str], values: Sequence[float | None], *, chart_id: str, unit: str = ""
) -> Markup:
    """One bar per day, scaled to the highest."""
    if not days:
        return _empty(chart_id, title)
    w, h, left = WIDTH, 140, 48
    top = max([v for v in values if v is not None] or [1]) or 1
    bw = (w - left - 10) / len(days)
    parts = [
        _fill('<svg viewBox="0 0 {} {}" class="chart" role="img" aria-label="{}">', w, h, title),
        _fill('<text x="4" y="14" class="tick">{:,.0f}</text>', top),
    ]
    bar = (
        '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="bar" '
        'data-day="{}" data-value="{}">'
        "<title>{}: {:,.2f}{}</title></rect>"
    )
    for i, v in enumerate(values):
        if v is None:
            continue
        bh = (h - 30) * v / top
        parts.append(_fill(bar, left + i * bw, h - 20 - bh, max(bw - 1, 1), bh, days[i], v, days[i], v, unit))
    parts.append(_ends(days, left, w - 90, h - 4))
    return _figure(chart_id, title, _svg(parts))
