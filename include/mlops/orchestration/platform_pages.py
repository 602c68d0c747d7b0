"""The ML platform's own pages inside the Airflow UI: overview, promotions, data quality, monitoring, scoring.

Served by the plugin's FastAPI app under ``/mlops/ui`` and shown in Airflow's navigation as
"ML platform" (an external view, rendered inside the Airflow UI). Every page sits behind Airflow's
authentication (:func:`~mlops.orchestration.ui_links.require_reader`), reads only the records
the platform already wrote (validation summaries, raw and prediction manifests, drift summaries,
the promotion ledger, alert records: nothing is recomputed per view) and draws its charts as
inline SVG, so it needs no JavaScript library and no network.

Actions call Airflow's own REST API from the browser with the user's session (``ui.js``):
Approve/Reject answer the training run's human-in-the-loop request, Roll back triggers the
``<uc>_rollback`` DAG. Airflow checks the user's permissions for each.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops.core import layout
from mlops.core.results import APPROVAL_ANSWERS, CHAMPION_OUTCOMES

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

NONE = "&ndash;"  # shown for a value that is not there (HTML entity: cells hold HTML)
PAGES = {"overview": "Overview", "promotions": "Promotions", "quality": "Data quality", "monitoring": "Monitoring", "scoring": "Scoring"}
LATE_AFTER = dt.timedelta(hours=12)  # a batch that landed this long after its day closed is late
# Our own pages run our own script and style only; data values are escaped text.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# Records -----------------------------------------------------------------------------------------


def _read_all(lake: Lake, root: str, leaf: Any) -> dict[str, dict[str, Any]]:
    """``{day: record}`` for every day folder under ``root`` whose record ``leaf(day)`` exists."""
    out = {}
    for day in lake.list(root):
        rel = leaf(day)
        if lake.exists(rel):
            out[day] = lake.read_json(rel)
    return out


def ledger(lake: Lake, use_case: str) -> list[dict[str, Any]]:
    """Every promotion decision, oldest first."""
    return [lake.read_json(rel) for rel in lake.children(layout.promotions_dir(use_case), ".json")]


def pending_approvals(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answered = {(e["airflow_run_id"], str(e["version"])) for e in entries if e["outcome"] in APPROVAL_ANSWERS}
    return [e for e in entries if e["outcome"] == "awaiting_approval" and (e["airflow_run_id"], str(e["version"])) not in answered]


def alerts(lake: Lake, use_case: UseCase) -> list[dict[str, Any]]:
    """Drift alerts of the use case and failure alerts of its DAGs, open (outbox) and sent."""
    scopes = [use_case.name] + [layout.failure_scope(d) for d in lake.list(layout.failure_scopes_root()) if d.startswith(f"{use_case.name}_")]
    found = []
    for scope in scopes:
        for box in ("outbox", "sent"):
            for rel in lake.children(layout.alert_box(scope, box), ".json"):  # type: ignore[arg-type]
                record = lake.read_json(rel)
                found.append(record | {"open": box == "outbox"})
    return sorted(found, key=lambda a: a.get("queued_at", ""))


def champion_version(use_case: UseCase) -> tuple[str | None, str | None]:
    """The version holding ``champion`` in the registry, and an error text if MLflow could not say."""
    try:
        from mlops.model import registry

        client = registry.configure_mlflow()
        version = registry.alias_version(client, use_case.registered_model_name, registry.CHAMPION)
    except Exception as exc:  # the page still shows the ledger's view
        return None, f"MLflow could not be asked for the champion ({type(exc).__name__})"
    return (str(version.version) if version is not None else None), None


@dataclass
class Day:
    day: str
    status: str  # passed | quarantined | missing | late | unvalidated
    rows: int | None = None
    reason: str | None = None
    docs: str | None = None
    received_at: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)


def quality_days(lake: Lake, use_case: UseCase, today: dt.date) -> list[Day]:
    """One entry per day from the first delivery to the last closed day."""
    raw = _read_all(lake, layout.raw_root(use_case.name), lambda d: layout.raw_manifest(use_case.name, d))
    checked = _read_all(lake, layout.validation_root(use_case.name), lambda d: layout.validation_summary(use_case.name, d))
    seen = sorted(set(raw) | set(checked))
    if not seen:
        return []
    first, last = dt.date.fromisoformat(seen[0]), max(dt.date.fromisoformat(seen[-1]), today - dt.timedelta(days=1))
    days = []
    for i in range((last - first).days + 1):
        day = (first + dt.timedelta(days=i)).isoformat()
        manifest, summary = raw.get(day), checked.get(day)
        if manifest is None:
            days.append(Day(day, "missing", reason="no batch was archived for this day"))
            continue
        if summary is None:
            days.append(Day(day, "unvalidated", received_at=manifest.get("received_at")))
            continue
        status = "passed" if summary["passed"] else "quarantined"
        landed = manifest.get("landed_at")
        closed = dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        reason = summary.get("reason")
        if status == "passed" and landed and dt.datetime.fromisoformat(landed) - closed > LATE_AFTER:
            status, reason = "late", f"landed {landed}, more than {LATE_AFTER.total_seconds() / 3600:g} hours after the day closed"
        days.append(Day(day, status, summary.get("rows"), reason, summary.get("data_docs_uri"), manifest.get("received_at"), summary))
    return days


def drift_days(lake: Lake, use_case: str) -> dict[str, dict[str, Any]]:
    return _read_all(lake, layout.reports_root(use_case), lambda d: layout.drift_summary(use_case, d))


def scoring_days(lake: Lake, use_case: str) -> dict[str, dict[str, Any]]:
    return _read_all(lake, layout.predictions_root(use_case), lambda d: layout.predictions_manifest(use_case, d))


# HTML --------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def lake_link(uri: str | None, lake_root: str, text: str) -> str:
    from mlops.orchestration.ui_links import browser_url

    url = browser_url(uri, lake_root)
    return f'<a href="{esc(url)}" target="_blank" rel="noopener">{esc(text)}</a>' if url else ""


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return NONE if value is None else esc(value)


def table(headers: list[str], rows: list[list[str]], attrs: list[str] | None = None, cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr {attrs[i] if attrs else ''}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for i, row in enumerate(rows))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body or "<tr><td colspan=99>nothing yet</td></tr>"}</tbody></table>'


def line_chart(title: str, days: list[str], series: dict[str, list[float | None]], *, reference: tuple[str, float] | None = None,
               marks: list[str] | None = None, y_range: tuple[float, float] | None = None, chart_id: str = "") -> str:  # fmt: skip
    """Lines over days; ``reference`` a labelled horizontal line, ``marks`` days with a vertical marker (alerts)."""
    w, h, left, bottom, top = 760, 220, 48, 28, 12
    values = [v for vs in series.values() for v in vs if v is not None] + ([reference[1]] if reference else [])
    if not days or not values:
        return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption><p class="muted">no data yet</p></figure>'
    lo, hi = y_range or (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x = lambda i: left + (w - left - 10) * (i / max(len(days) - 1, 1))  # noqa: E731
    y = lambda v: top + (h - top - bottom) * (1 - (v - lo) / (hi - lo))  # noqa: E731
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    parts = [f'<svg viewBox="0 0 {w} {h}" class="chart" role="img" aria-label="{esc(title)}">']
    for frac in (0, 0.5, 1):
        v = lo + (hi - lo) * frac
        parts.append(f'<line x1="{left}" x2="{w - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/><text x="4" y="{y(v) + 4:.1f}" class="tick">{v:.2f}</text>')
    for day in marks or []:
        if day in days:
            i = days.index(day)
            parts.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top}" y2="{h - bottom}" class="mark"><title>alert on {esc(day)}</title></line>')
    if reference:
        parts.append(f'<line x1="{left}" x2="{w - 10}" y1="{y(reference[1]):.1f}" y2="{y(reference[1]):.1f}" class="reference"><title>{esc(reference[0])}: {reference[1]:.4f}</title></line>')
    for n, (name, vs) in enumerate(series.items()):
        color = colors[n % len(colors)]
        points = [(x(i), y(v), days[i], v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}" for j, (px, py, _, _) in enumerate(points))
            parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for px, py, day, v in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}" data-series="{esc(name)}" data-day="{esc(day)}" data-value="{v:.6f}"><title>{esc(name)} {esc(day)}: {v:.4f}</title></circle>')
    parts.append(f'<text x="{left}" y="{h - 8}" class="tick">{esc(days[0])}</text><text x="{w - 90}" y="{h - 8}" class="tick">{esc(days[-1])}</text></svg>')
    legend = "".join(f'<span class="key" data-color="{colors[n % len(colors)]}">■ {esc(name)}</span>' for n, name in enumerate(series))
    if reference:
        legend += f'<span class="key ref">-- {esc(reference[0])}</span>'
    return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption>{"".join(parts)}<div class="legend">{legend}</div></figure>'


def heatmap(title: str, days: list[str], rows: dict[str, list[float | None]], *, chart_id: str = "", scale: float = 1.0) -> str:
    """One row per name, one column per day; darker is higher (``value / scale``, capped at 1)."""
    if not days or not rows:
        return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption><p class="muted">no data yet</p></figure>'
    cell_w, cell_h, left = max(4, min(24, 700 // len(days))), 16, 150
    w, h = left + cell_w * len(days) + 10, cell_h * len(rows) + 24
    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" class="heatmap" role="img" aria-label="{esc(title)}">']
    for r, (name, values) in enumerate(rows.items()):
        parts.append(f'<text x="4" y="{r * cell_h + 12}" class="tick">{esc(name[:22])}</text>')
        for c, v in enumerate(values):
            if v is None:
                continue
            alpha = max(0.04, min(v / scale, 1.0))
            parts.append(
                f'<rect x="{left + c * cell_w}" y="{r * cell_h}" width="{cell_w - 1}" height="{cell_h - 1}" fill="#b2182b" fill-opacity="{alpha:.3f}" '
                f'data-row="{esc(name)}" data-day="{esc(days[c])}" data-value="{v:.6f}"><title>{esc(name)} {esc(days[c])}: {v:.4f}</title></rect>'
            )
    parts.append(f'<text x="{left}" y="{h - 6}" class="tick">{esc(days[0])}</text><text x="{w - 90}" y="{h - 6}" class="tick">{esc(days[-1])}</text></svg>')
    return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption>{"".join(parts)}</figure>'


def bars(title: str, days: list[str], values: list[float | None], *, chart_id: str = "", unit: str = "") -> str:
    if not days:
        return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption><p class="muted">no data yet</p></figure>'
    w, h, left = 760, 140, 48
    top = max([v for v in values if v is not None] or [1]) or 1
    bw = (w - left - 10) / len(days)
    parts = [f'<svg viewBox="0 0 {w} {h}" class="chart" role="img" aria-label="{esc(title)}"><text x="4" y="14" class="tick">{top:,.0f}</text>']
    for i, v in enumerate(values):
        if v is None:
            continue
        bh = (h - 30) * v / top
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{h - 20 - bh:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" class="bar" data-day="{esc(days[i])}" data-value="{v}"><title>{esc(days[i])}: {v:,.2f}{esc(unit)}</title></rect>')
    parts.append(f'<text x="{left}" y="{h - 4}" class="tick">{esc(days[0])}</text><text x="{w - 90}" y="{h - 4}" class="tick">{esc(days[-1])}</text></svg>')
    return f'<figure id="{chart_id}"><figcaption>{esc(title)}</figcaption>{"".join(parts)}</figure>'


def page(use_case: UseCase, names: list[str], current: str, body: str, *, warning: str | None = None) -> str:
    tabs = "".join(
        f'<a href="/mlops/ui/{quote(use_case.name)}/{key}" class="{"tab on" if key == current else "tab"}">{esc(label)}</a>' for key, label in PAGES.items()
    )
    cases = "".join(f'<option value="{esc(n)}"{" selected" if n == use_case.name else ""}>{esc(n)}</option>' for n in names)
    banner = f'<p class="warning">{esc(warning)}</p>' if warning else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ML platform · '
        f'{esc(use_case.name)} · {esc(PAGES[current])}</title><link rel="stylesheet" href="/mlops/ui/static/ui.css">'
        '<script src="/mlops/ui/static/ui.js" defer></script></head><body>'
        f'<header><h1>ML platform</h1><form class="switch" method="get" data-page="{current}"><label>Use case <select name="use_case" id="use-case">{cases}</select></label></form>'
        f'<nav>{tabs}</nav></header>{banner}<main id="page-{current}" data-use-case="{esc(use_case.name)}">{body}</main></body></html>'
    )


# Pages -------------------------------------------------------------------------------------------


def _version_cell(entry: dict[str, Any]) -> str:
    url = entry.get("mlflow_run_url")
    text = f"v{esc(entry['version'])}"
    return f'<a href="{esc(url)}" target="_blank" rel="noopener">{text}</a>' if url else text


def _ci(entry: dict[str, Any]) -> str:
    c = entry.get("comparison") or {}
    if not c:
        return NONE
    return esc(f"{c['improvement']:+.4f} (lower bound {c['ci_low']:+.4f} at {c.get('confidence', 0.95):.0%})")


def overview(lake: Lake, use_case: UseCase, today: dt.date) -> tuple[str, str | None]:
    entries = ledger(lake, use_case.name)
    champion, problem = champion_version(use_case)
    if champion is None and problem:
        made = [e for e in entries if e["outcome"] in CHAMPION_OUTCOMES]
        champion = str(made[-1]["version"]) if made else None
    source = next((e for e in reversed(entries) if str(e["version"]) == champion and e.get("challenger_metrics")), None)
    if champion is None:
        card = '<section class="card" id="champion"><h2>Champion</h2><p>No model in production yet.</p></section>'
    else:
        metrics = (source or {}).get("challenger_metrics") or {}
        lineage = (source or {}).get("lineage") or {}
        rows = [[esc(k), fmt(v)] for k, v in sorted(metrics.items())]
        facts = [
            ["Version", f'<span id="champion-version" data-version="{esc(champion)}">v{esc(champion)}</span>'],
            ["Why", esc((source or {}).get("reason", "set outside the platform's gate"))],
            ["MLflow run", _version_cell(source) if source else NONE],
            ["Data window", esc(" → ".join(lineage.get("data_window", []))) or NONE],
            ["Feature partitions", fmt(lineage.get("feature_partitions"))],
            ["Training set", lake_link(lineage.get("training_set_uri"), lake.root_uri, lineage.get("training_set_hash", "")[:12]) or NONE],
            ["Code commit", f"<code>{fmt(lineage.get('git_commit'))}</code>"],
        ]
        card = (
            '<section class="card" id="champion"><h2>Champion</h2>'
            + table(["", ""], facts, cls="facts") + "<h3>Holdout metrics</h3>" + table(["metric", "value"], rows) + "</section>"
        )
    last_training = entries[-1] if entries else None
    scored = scoring_days(lake, use_case.name)
    drift = drift_days(lake, use_case.name)
    last_scored = scored[max(scored)] if scored else None
    last_drift = drift[max(drift)] if drift else None
    open_alerts = [a for a in alerts(lake, use_case) if a["open"]]
    status = [
        ["Last decision", f'<span id="last-decision">{esc(last_training["outcome"]) + " v" + esc(last_training["version"]) + " · " + esc(last_training["decided_at"][:16]) if last_training else "none"}</span>'],
        ["Last scoring", f'<span id="last-scoring">{esc(last_scored["interval"]) + " · " + format(last_scored["rows"], ",") + " rows · v" + esc(last_scored["model_version"]) if last_scored else "none"}</span>'],
        ["Last drift check", f'<span id="last-drift" data-drifted="{esc(last_drift["drifted"]) if last_drift else ""}">'
         + (f'{esc(last_drift["day"])} · {"drift" if last_drift["drifted"] else "no drift"} · share {last_drift["drift_share"]:.0%} ' + lake_link(last_drift.get("report_uri"), lake.root_uri, "report") if last_drift else "none") + "</span>"],
        ["Open alerts", f'<span id="open-alerts" data-count="{len(open_alerts)}">{len(open_alerts)}</span>'],
    ]  # fmt: skip
    alert_rows = [[esc(a.get("queued_at", "")[:16]), esc(a.get("kind")), esc(a.get("text", ""))[:300]] for a in open_alerts]
    pending = pending_approvals(entries)
    note = f'<p class="warning" id="pending-note">{len(pending)} promotion(s) wait for approval: <a href="/mlops/ui/{quote(use_case.name)}/promotions">review</a></p>' if pending else ""
    body = note + card + '<section class="card"><h2>Now</h2>' + table(["", ""], status, cls="facts") + "</section>"
    body += '<section class="card"><h2>Open alerts</h2>' + table(["queued", "kind", "alert"], alert_rows, cls="alerts") + "</section>"
    return body, problem


def promotions(lake: Lake, use_case: UseCase, today: dt.date) -> tuple[str, str | None]:
    entries = ledger(lake, use_case.name)
    champion, problem = champion_version(use_case)
    pending = pending_approvals(entries)
    cards = []
    for e in pending:
        c = e.get("comparison") or {}
        cards.append(
            f'<form class="approval card" data-dag-id="{esc(e["airflow_dag_id"])}" data-run-id="{esc(e["airflow_run_id"])}" data-version="{esc(e["version"])}">'
            f'<h3>v{esc(e["version"])} waits for approval</h3><p>{esc(e["reason"])}</p>'
            f'<p>{esc(e.get("metric"))}: challenger {fmt(c.get("challenger"))} vs champion {fmt(c.get("champion"))} · {_ci(e)} · {_version_cell(e)}</p>'
            '<label>Comment <input name="comment" maxlength="1000" placeholder="why (goes into the ledger)"></label> '
            '<button type="submit" name="choice" value="Approve" class="approve">Approve</button> '
            '<button type="submit" name="choice" value="Reject" class="reject">Reject</button> <output></output></form>'
        )
    earlier = []
    for e in entries:
        v = str(e["version"])
        if e["outcome"] in CHAMPION_OUTCOMES and v != champion and v not in earlier:
            earlier.append(v)
    options = "".join(f'<option value="{esc(v)}">v{esc(v)}</option>' for v in reversed(earlier))
    rollback = (
        f'<form class="rollback card" id="rollback" data-dag-id="{esc(use_case.dag_id("rollback"))}"><h3>Roll back</h3>'
        f'<p>Make an earlier champion the champion again (runs <code>{esc(use_case.dag_id("rollback"))}</code>).</p>'
        f'<label>Version <select name="version" required>{options}</select></label> '
        '<label>Reason <input name="reason" required maxlength="500" placeholder="what is wrong with the current champion"></label> '
        f'<button type="submit"{"" if options else " disabled"}>Roll back</button> <output></output></form>'
    )
    rows, attrs = [], []
    for e in reversed(entries):
        who = f"{esc(e.get('reviewed_by'))}" if e.get("reviewed_by") else ""
        rows.append([esc(e["decided_at"][:19].replace("T", " ")), _version_cell(e), f'<span class="outcome {esc(e["outcome"])}">{esc(e["outcome"])}</span>',
                     fmt((e.get("comparison") or {}).get("challenger") or (e.get("challenger_metrics") or {}).get(e.get("metric", ""))),
                     _ci(e), esc(e["reason"]), who, f"v{esc(e['champion_before'])}" if e.get("champion_before") else NONE])  # fmt: skip
        attrs.append(f'data-version="{esc(e["version"])}" data-outcome="{esc(e["outcome"])}"')
    body = f'<p>Champion: <strong id="champion-version" data-version="{esc(champion or "")}">{"v" + esc(champion) if champion else "none"}</strong></p>'
    body += '<section id="pending"><h2>Pending approvals</h2>' + ("".join(cards) or '<p class="muted">none</p>') + "</section>" + rollback
    body += '<section class="card"><h2>Ledger</h2>' + table(
        ["decided (UTC)", "version", "outcome", use_case.promotion.metric, "improvement (CI)", "reason", "reviewer", "champion before"], rows, attrs, cls="ledger"
    ) + "</section>"
    return body, problem


def quality(lake: Lake, use_case: UseCase, today: dt.date) -> tuple[str, str | None]:
    days = quality_days(lake, use_case, today)
    counts: dict[str, int] = {}
    for d in days:
        counts[d.status] = counts.get(d.status, 0) + 1
    cells = []
    for d in days:
        day = dt.date.fromisoformat(d.day)
        tip = f"{d.day}: {d.status}" + (f", {d.rows:,} rows" if d.rows is not None else "") + (f" — {d.reason}" if d.reason else "")
        link = lake_link(d.docs, lake.root_uri, str(day.day)) or esc(day.day)
        cells.append(f'<div class="day {d.status}" data-day="{d.day}" data-status="{d.status}" data-rows="{d.rows if d.rows is not None else ""}" title="{esc(tip)}">{link}</div>')
    first_weekday = dt.date.fromisoformat(days[0].day).weekday() if days else 0
    calendar = '<div class="calendar">' + "".join('<div class="day blank"></div>' for _ in range(first_weekday)) + "".join(cells) + "</div>"
    legend = " · ".join(f'<span class="day-key {k}">{esc(k)}: <b data-status-count="{k}">{v}</b></span>' for k, v in sorted(counts.items()))
    problems = [
        [esc(d.day), esc(d.status), esc(d.reason or ""), lake_link(d.docs, lake.root_uri, "Data Docs")]
        for d in reversed(days) if d.status != "passed"
    ]  # fmt: skip
    body = f"<p>{legend}</p>" + calendar
    body += bars("Rows per day", [d.day for d in days], [d.rows for d in days], chart_id="rows-per-day")
    body += '<section class="card"><h2>Days that need attention</h2>' + table(["day", "status", "reason", "report"], problems, cls="problems") + "</section>"
    return body, None


def monitoring(lake: Lake, use_case: UseCase, today: dt.date) -> tuple[str, str | None]:
    drift = drift_days(lake, use_case.name)
    days = sorted(drift)
    alert_days = sorted({a.get("fields", {}).get("report_uri", "").split("/")[-2] for a in alerts(lake, use_case) if a.get("kind") == "drift"} & set(days))
    share = line_chart("Share of drifted features", days, {"drift share": [drift[d]["drift_share"] for d in days]},
                       reference=("alert threshold", use_case.drift.drift_share), marks=alert_days, y_range=(0, 1), chart_id="drift-share")  # fmt: skip
    features = sorted({f for d in days for f in drift[d].get("features", {})})
    scores = {f: [drift[d].get("features", {}).get(f, {}).get("score") for d in days] for f in features}
    top = max([v for vs in scores.values() for v in vs if v is not None] or [1.0])
    heat = heatmap("Drift score per feature", days, scores, chart_id="feature-drift", scale=top)
    perf_days = [d for d in days if drift[d].get("performance")]
    metric = use_case.promotion.metric
    holdout = next((drift[d]["performance"]["holdout"] for d in reversed(perf_days)), None)
    by_event: dict[str, float] = {}
    for d in days:
        for entry in drift[d].get("performance_by_day") or []:
            if entry.get("value") is not None:
                by_event[entry["day"]] = entry["value"]
    perf = line_chart(
        f"Live {metric} as labels arrive (by drift check) and per event day",
        sorted(set(perf_days) | set(by_event)),
        {
            f"live {metric} (window)": [drift[d]["performance"]["current"] if d in perf_days else None for d in sorted(set(perf_days) | set(by_event))],
            f"live {metric} (event day)": [by_event.get(d) for d in sorted(set(perf_days) | set(by_event))],
        },
        reference=("holdout", holdout) if holdout is not None else None,
        marks=alert_days,
        chart_id="live-performance",
    )
    scored = scoring_days(lake, use_case.name)
    sdays = sorted(scored)
    dist: dict[str, list[float | None]] = {}
    for d in sdays:
        stats = scored[d].get("prediction_stats") or {}
        if "counts" in stats:
            total = sum(stats["counts"]) or 1
            for i, count in enumerate(stats["counts"]):
                dist.setdefault(f"score {stats['bins'][i]:.1f}-{stats['bins'][i + 1]:.1f}", []).append(count / total)
        elif "quantiles" in stats:
            for q, v in stats["quantiles"].items():
                dist.setdefault(q, []).append(v)
    if dist and all(k.startswith("score") for k in dist):
        prediction = heatmap("Prediction distribution per day (share of rows per score bin)", sdays, dict(reversed(list(dist.items()))), chart_id="prediction-distribution")
    else:
        prediction = line_chart("Prediction quantiles per day", sdays, dist, chart_id="prediction-distribution")
    rows = [
        [esc(d), f"{drift[d]['drift_share']:.0%}", "yes" if drift[d]["drifted"] else "no", esc("; ".join(drift[d].get("reasons", []))),
         f"v{esc(drift[d]['model_version'])}", lake_link(drift[d].get("report_uri"), lake.root_uri, "Evidently report")]
        for d in reversed(days)
    ]  # fmt: skip
    attrs = [f'data-day="{esc(d)}" data-drift-share="{drift[d]["drift_share"]:.6f}"' for d in reversed(days)]
    timeline = [[esc(a.get("queued_at", "")[:16]), esc(a.get("kind")), "open" if a["open"] else esc(a.get("delivered_to", "sent")), esc(a.get("text", ""))[:200]] for a in reversed(alerts(lake, use_case))]
    body = share + heat + perf + prediction
    body += '<section class="card"><h2>Drift checks</h2>' + table(["day", "drift share", "drifted", "why", "model", "report"], rows, attrs, cls="drift") + "</section>"
    body += '<section class="card"><h2>Alerts</h2>' + table(["queued", "kind", "delivery", "alert"], timeline, cls="alerts") + "</section>"
    return body, None


def scoring(lake: Lake, use_case: UseCase, today: dt.date) -> tuple[str, str | None]:
    scored = scoring_days(lake, use_case.name)
    days = sorted(scored)
    body = bars("Rows scored per day", days, [scored[d]["rows"] for d in days], chart_id="rows-scored")
    body += bars("Scoring time per day", days, [scored[d]["seconds"] for d in days], chart_id="scoring-seconds", unit=" s")
    rows = [
        [esc(d), f"{scored[d]['rows']:,}", f"{scored[d]['seconds']:.2f}", f"{scored[d].get('rows_per_second') or 0:,.0f}",
         f"v{esc(scored[d]['model_version'])}", esc(scored[d].get("worker", "")), lake_link(scored[d]["uri"], lake.root_uri, "") or "<code>" + esc(scored[d]["uri"].rsplit("/", 1)[-1]) + "</code>"]
        for d in reversed(days)
    ]  # fmt: skip
    attrs = [f'data-day="{esc(d)}" data-rows="{scored[d]["rows"]}" data-version="{esc(scored[d]["model_version"])}"' for d in reversed(days)]
    body += '<section class="card"><h2>Scored days</h2>' + table(["day", "rows", "seconds", "rows/s", "model", "worker", "file"], rows, attrs, cls="scoring") + "</section>"
    return body, None


RENDER = {"overview": overview, "promotions": promotions, "quality": quality, "monitoring": monitoring, "scoring": scoring}


def render(lake: Lake, use_case: UseCase, names: list[str], name: str, today: dt.date | None = None) -> str:
    body, warning = RENDER[name](lake, use_case, today or dt.datetime.now(dt.UTC).date())
    return page(use_case, names, name, body, warning=warning)


def index(names: list[str], errors: dict[str, str]) -> str:
    items = "".join(f'<li><a href="/mlops/ui/{quote(n)}/overview">{esc(n)}</a></li>' for n in names)
    broken = "".join(f"<li><b>{esc(n)}</b>: {esc(e)[:300]}</li>" for n, e in errors.items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ML platform</title><link rel="stylesheet" href="/mlops/ui/static/ui.css"></head>'
        f"<body><header><h1>ML platform</h1></header><main><h2>Use cases</h2><ul>{items or '<li>none configured</li>'}</ul>"
        + (f'<h2>Use cases whose config does not load</h2><ul class="warning">{broken}</ul>' if broken else "")
        + "</main></body></html>"
    )


def add_pages(app: Any, reader: Any) -> None:
    """Mount the pages and their static files on the plugin's FastAPI app."""
    from pathlib import Path

    from fastapi import Depends, HTTPException
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    static = Path(__file__).with_name("static")

    def use_cases() -> tuple[dict[str, Any], dict[str, str]]:
        from mlops.core.config import load_use_cases
        from mlops.core.settings import load_settings

        good, bad = load_use_cases(load_settings().config_dir)
        return good, {k: str(v) for k, v in bad.items()}

    @app.get("/ui", dependencies=[Depends(reader)])
    def ui_index() -> Response:
        good, bad = use_cases()
        if good and not bad:  # straight to the first use case; the switch at the top changes it
            return RedirectResponse(f"/mlops/ui/{quote(sorted(good)[0])}/overview")
        return HTMLResponse(index(sorted(good), bad), headers=PAGE_HEADERS)

    @app.get("/ui/static/{name}")
    def ui_static(name: str) -> Response:
        types = {"ui.css": "text/css", "ui.js": "text/javascript"}
        if name not in types:
            raise HTTPException(status_code=404)
        return Response((static / name).read_bytes(), media_type=types[name], headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    @app.get("/ui/{use_case}", dependencies=[Depends(reader)])
    def ui_use_case(use_case: str) -> Response:
        return RedirectResponse(f"/mlops/ui/{quote(use_case)}/overview")

    @app.get("/ui/{use_case}/{name}", dependencies=[Depends(reader)])
    def ui_page(use_case: str, name: str) -> Response:
        from mlops.core.lake import get_lake

        good, _ = use_cases()
        if use_case not in good:
            raise HTTPException(status_code=404, detail=f"no use case {use_case!r}")
        if name not in PAGES:
            raise HTTPException(status_code=404, detail=f"no page {name!r}; pages: {', '.join(PAGES)}")
        return HTMLResponse(render(get_lake(), good[use_case], sorted(good), name), headers=PAGE_HEADERS)

