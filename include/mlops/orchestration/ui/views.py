"""View models of the platform's pages: what each page shows, built from the records.

Each ``*_view`` function takes the lake, the use case and today, reads records through
:mod:`~mlops.orchestration.ui.records` and returns plain data (text, numbers, checked links,
chart markup) for a template to lay out. No HTML is written here except by the chart module.
Every link comes from :func:`~mlops.orchestration.ui.hrefs.browser_url`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from markupsafe import Markup

from mlops.core import layout
from mlops.core.results import APPROVAL_ANSWERS, CHAMPION_OUTCOMES, DriftSummary, Outcome, PromotionRecord
from mlops.model.evidence import slice_label
from mlops.orchestration.ui import charts, records
from mlops.orchestration.ui.hrefs import browser_url

if TYPE_CHECKING:
    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

LATE_AFTER = dt.timedelta(hours=12)  # a batch that landed this long after its day closed is late
AWAITING: Outcome = "awaiting_approval"
DayStatus = Literal["passed", "quarantined", "missing", "late", "unvalidated"]
ChampionLookup = Callable[["UseCase"], tuple[str | None, str | None]]


@dataclass(frozen=True)
class Link:
    """A link to show: ``href`` is checked (or "" for none, then the text shows alone)."""

    href: str
    text: str


def _link(value: object, lake: Lake, text: str) -> Link:
    return Link(browser_url(value, lake.root_uri), text)


def _number(value: object) -> float | None:
    """A record's number as a float; None if it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _comparison(entry: PromotionRecord) -> dict[str, Any]:
    return entry.get("comparison") or {}


def improvement_text(entry: PromotionRecord) -> str | None:
    """The challenger's improvement with its confidence bound, as the gate computed it."""
    c = _comparison(entry)
    if not c:
        return None
    return f"{c['improvement']:+.4f} (lower bound {c['ci_low']:+.4f} at {c.get('confidence', 0.95):.0%})"


def version_link(entry: PromotionRecord, lake: Lake) -> Link:
    """``v<n>``, linked to its MLflow run when the record has one."""
    return _link(entry.get("mlflow_run_url"), lake, f"v{entry['version']}")


def pending_approvals(entries: list[PromotionRecord]) -> list[PromotionRecord]:
    """Decisions waiting for a person that no answer (or timeout) has closed yet."""
    answered = {(e["airflow_run_id"], str(e["version"])) for e in entries if e["outcome"] in APPROVAL_ANSWERS}
    waiting = [e for e in entries if e["outcome"] == AWAITING]
    return [e for e in waiting if (e["airflow_run_id"], str(e["version"])) not in answered]


# Overview ----------------------------------------------------------------------------------------


@dataclass
class ChampionCard:
    version: str
    why: str
    run: Link | None
    data_window: str
    feature_partitions: Any
    training_set: Link | None
    git_commit: str | None
    metrics: list[tuple[str, float | None]]


@dataclass
class LastDrift:
    day: str
    drifted: bool
    drift_share: float
    report: Link


@dataclass
class OverviewView:
    champion: ChampionCard | None
    last_decision: str | None
    last_scoring: str | None
    last_drift: LastDrift | None
    open_alerts: list[records.Alert]
    pending: int


def overview_view(
    lake: Lake, use_case: UseCase, today: dt.date, champion_of: ChampionLookup
) -> tuple[OverviewView, str | None]:
    entries = records.ledger(lake, use_case.name)
    champion, problem = champion_of(use_case)
    if champion is None and problem:  # MLflow did not answer: the ledger's last champion
        made = [e for e in entries if e["outcome"] in CHAMPION_OUTCOMES]
        champion = str(made[-1]["version"]) if made else None
    card = None
    if champion is not None:
        trained = (e for e in reversed(entries) if e.get("challenger_metrics"))
        source = next((e for e in trained if str(e["version"]) == champion), None)
        metrics = (source or {}).get("challenger_metrics") or {}
        lineage = (source or {}).get("lineage") or {}
        card = ChampionCard(
            version=champion,
            why=(source or {}).get("reason", "set outside the platform's gate"),
            run=version_link(source, lake) if source else None,
            data_window=" → ".join(str(d) for d in lineage.get("data_window", [])),
            feature_partitions=lineage.get("feature_partitions"),
            training_set=_link(
                lineage.get("training_set_uri"), lake, str(lineage.get("training_set_hash", ""))[:12]
            ),
            git_commit=lineage.get("git_commit"),
            metrics=[(k, _number(v)) for k, v in sorted(metrics.items())],
        )
    last = entries[-1] if entries else None
    scored = records.scoring_manifests(lake, use_case.name)
    drift = records.drift_summaries(lake, use_case.name)
    s = scored[max(scored)] if scored else None
    d = drift[max(drift)] if drift else None
    return OverviewView(
        champion=card,
        last_decision=f"{last['outcome']} v{last['version']} · {last['decided_at'][:16]}" if last else None,
        last_scoring=f"{s['interval']} · {s['rows']:,} rows · v{s['model_version']}" if s else None,
        last_drift=None if d is None else _last_drift(d, lake),
        open_alerts=[a for a in records.alerts(lake, use_case) if a.open],
        pending=len(pending_approvals(entries)),
    ), problem


def _last_drift(summary: DriftSummary, lake: Lake) -> LastDrift:
    report = _link(summary.get("report_uri"), lake, "report")
    return LastDrift(summary["day"], bool(summary["drifted"]), summary["drift_share"], report)


# Promotions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceSummary:
    label: str
    rows: Any
    status: str
    blocking: bool
    blocks: bool


def baseline_text(entry: PromotionRecord) -> str | None:
    """The trivial baseline's value, the challenger's improvement over it with its interval, the verdict."""
    b = entry.get("baseline") or {}
    if not b:
        return None
    verdict = "passed" if b.get("passed") else "failed"
    return (
        f"{b.get('strategy')} baseline {b['value']:.4f}; challenger {b['improvement']:+.4f} "
        f"[{b['ci_low']:+.4f}, {b['ci_high']:+.4f}] at {b.get('confidence', 0.95):.0%}, "
        f"margin {b.get('margin', 0.0):g}: {verdict}"
    )


def slice_summaries(entry: PromotionRecord) -> list[SliceSummary]:
    return [
        SliceSummary(
            label=slice_label(s),
            rows=s.get("rows"),
            status=str(s.get("status")),
            blocking=bool(s.get("blocking")),
            blocks=bool(s.get("blocks")),
        )
        for s in entry.get("slices") or []
    ]


def evidence_link(entry: PromotionRecord, lake: Lake) -> Link:
    """The decision's evidence page (``mlops.model.evidence``), when the record links one."""
    return _link(entry.get("evidence_html_uri"), lake, "evidence")


@dataclass
class PendingCard:
    dag_id: str
    run_id: str
    version: str
    reason: str
    metric: str | None
    challenger: float | None
    champion: float | None
    improvement: str | None
    run: Link
    evidence: Link
    baseline: str | None  # the challenger against the trivial baseline, with its interval
    slices: list[SliceSummary]


@dataclass
class LedgerRow:
    decided: str
    version: str
    run: Link
    outcome: Outcome
    value: float | None
    improvement: str | None
    reason: str
    reviewer: str
    champion_before: str | None
    evidence: Link


@dataclass
class PromotionsView:
    champion: str | None
    metric: str
    pending: list[PendingCard]
    rollback_dag_id: str
    earlier_champions: list[str]  # newest first: what a rollback may go back to
    ledger: list[LedgerRow]  # newest first


def promotions_view(
    lake: Lake, use_case: UseCase, today: dt.date, champion_of: ChampionLookup
) -> tuple[PromotionsView, str | None]:
    entries = records.ledger(lake, use_case.name)
    champion, problem = champion_of(use_case)
    pending = [
        PendingCard(
            dag_id=e["airflow_dag_id"],
            run_id=e["airflow_run_id"],
            version=str(e["version"]),
            reason=e["reason"],
            metric=e.get("metric"),
            challenger=_number(_comparison(e).get("challenger")),
            champion=_number(_comparison(e).get("champion")),
            improvement=improvement_text(e),
            run=version_link(e, lake),
            evidence=evidence_link(e, lake),
            baseline=baseline_text(e),
            slices=slice_summaries(e),
        )
        for e in pending_approvals(entries)
    ]
    earlier: list[str] = []
    for e in entries:
        v = str(e["version"])
        if e["outcome"] in CHAMPION_OUTCOMES and v != champion and v not in earlier:
            earlier.append(v)
    ledger = []
    for e in reversed(entries):
        measured = (e.get("challenger_metrics") or {}).get(e.get("metric", ""))
        value = _comparison(e).get("challenger") or measured
        ledger.append(
            LedgerRow(
                decided=e["decided_at"][:19].replace("T", " "),
                version=str(e["version"]),
                run=version_link(e, lake),
                outcome=e["outcome"],
                value=_number(value),
                improvement=improvement_text(e),
                reason=e["reason"],
                reviewer=e.get("reviewed_by") or "",
                champion_before=e.get("champion_before"),
                evidence=evidence_link(e, lake),
            )
        )
    view = PromotionsView(
        champion=champion,
        metric=use_case.promotion.metric,
        pending=pending,
        rollback_dag_id=use_case.dag_id("rollback"),
        earlier_champions=list(reversed(earlier)),
        ledger=ledger,
    )
    return view, problem


# Data quality ------------------------------------------------------------------------------------


@dataclass
class Day:
    day: str
    status: DayStatus
    rows: int | None = None
    reason: str | None = None
    docs: str | None = None
    received_at: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)


def quality_days(lake: Lake, use_case: UseCase, today: dt.date) -> list[Day]:
    """One entry per day from the first delivery to the last closed day."""
    raw = records.raw_manifests(lake, use_case.name)
    checked = records.validation_summaries(lake, use_case.name)
    seen = sorted(set(raw) | set(checked))
    if not seen:
        return []
    first = dt.date.fromisoformat(seen[0])
    last = max(dt.date.fromisoformat(seen[-1]), today - dt.timedelta(days=1))
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
        status: DayStatus = "passed" if summary["passed"] else "quarantined"
        landed = manifest.get("landed_at")
        next_day = dt.date.fromisoformat(day) + dt.timedelta(days=1)
        closed = dt.datetime.combine(next_day, dt.time(), tzinfo=dt.UTC)
        reason = summary.get("reason")
        if status == "passed" and landed and dt.datetime.fromisoformat(landed) - closed > LATE_AFTER:
            hours = LATE_AFTER.total_seconds() / 3600
            status, reason = "late", f"landed {landed}, more than {hours:g} hours after the day closed"
        docs = summary.get("data_docs_uri")
        received = manifest.get("received_at")
        days.append(Day(day, status, summary.get("rows"), reason, docs, received, dict(summary)))
    return days


@dataclass
class CalendarDay:
    day: str
    status: DayStatus
    rows: int | None
    tip: str
    link: Link  # the day of the month, linked to its Data Docs


@dataclass
class QualityView:
    counts: list[tuple[DayStatus, int]]
    blanks: int  # empty cells before the first day, so weeks line up (Monday first)
    calendar: list[CalendarDay]
    rows_chart: Markup
    problems: list[tuple[Day, Link]]  # newest first, every day that did not pass


def quality_view(
    lake: Lake, use_case: UseCase, today: dt.date, champion_of: ChampionLookup
) -> tuple[QualityView, None]:
    days = quality_days(lake, use_case, today)
    counts: dict[DayStatus, int] = {}
    for d in days:
        counts[d.status] = counts.get(d.status, 0) + 1
    calendar = []
    for d in days:
        tip = f"{d.day}: {d.status}" + (f", {d.rows:,} rows" if d.rows is not None else "")
        tip += f" \N{EM DASH} {d.reason}" if d.reason else ""
        of_month = str(dt.date.fromisoformat(d.day).day)
        calendar.append(CalendarDay(d.day, d.status, d.rows, tip, _link(d.docs, lake, of_month)))
    view = QualityView(
        counts=sorted(counts.items()),
        blanks=dt.date.fromisoformat(days[0].day).weekday() if days else 0,
        calendar=calendar,
        rows_chart=charts.bars(
            "Rows per day", [d.day for d in days], [d.rows for d in days], chart_id="rows-per-day"
        ),
        problems=[(d, _link(d.docs, lake, "Data Docs")) for d in reversed(days) if d.status != "passed"],
    )
    return view, None


# Monitoring --------------------------------------------------------------------------------------


@dataclass
class DriftRow:
    day: str
    drift_share: float
    drifted: bool
    why: str
    model_version: str
    report: Link


@dataclass
class MonitoringView:
    charts: list[Markup]
    checks: list[DriftRow]  # newest first
    alerts: list[records.Alert]  # newest first


def drift_alert_days(
    lake: Lake, use_case: UseCase, alerts: list[records.Alert], days: list[str]
) -> list[str]:
    """The days among ``days`` a drift alert was raised for: the alert names the day's report."""
    report_day = {lake.uri(layout.drift_report(use_case.name, d)): d for d in days}
    drift = [a for a in alerts if a.kind == "drift" and a.report_uri in report_day]
    return sorted({report_day[a.report_uri] for a in drift if a.report_uri is not None})


def _prediction_chart(scored: dict[str, Any]) -> Markup:
    sdays = sorted(scored)
    dist: dict[str, list[float | None]] = {}
    for d in sdays:
        stats = scored[d].get("prediction_stats") or {}
        if "counts" in stats:
            total = sum(stats["counts"]) or 1
            for i, count in enumerate(stats["counts"]):
                low, high = stats["bins"][i], stats["bins"][i + 1]
                dist.setdefault(f"score {low:.1f}-{high:.1f}", []).append(count / total)
        elif "quantiles" in stats:
            for q, v in stats["quantiles"].items():
                dist.setdefault(q, []).append(v)
    if dist and all(k.startswith("score") for k in dist):
        title = "Prediction distribution per day (share of rows per score bin)"
        highest_first = dict(reversed(list(dist.items())))
        return charts.heatmap(title, sdays, highest_first, chart_id="prediction-distribution")
    return charts.line_chart("Prediction quantiles per day", sdays, dist, chart_id="prediction-distribution")


def monitoring_view(
    lake: Lake, use_case: UseCase, today: dt.date, champion_of: ChampionLookup
) -> tuple[MonitoringView, None]:
    drift = records.drift_summaries(lake, use_case.name)
    days = sorted(drift)
    alerts = records.alerts(lake, use_case)
    marks = drift_alert_days(lake, use_case, alerts, days)
    share = charts.line_chart(
        "Share of drifted features",
        days,
        {"drift share": [drift[d]["drift_share"] for d in days]},
        reference=("alert threshold", use_case.drift.drift_share),
        marks=marks,
        y_range=(0, 1),
        chart_id="drift-share",
    )
    features = sorted({f for d in days for f in drift[d].get("features", {})})
    scores = {f: [_number(drift[d].get("features", {}).get(f, {}).get("score")) for d in days]
              for f in features}  # fmt: skip
    top = max([v for vs in scores.values() for v in vs if v is not None] or [1.0])
    heat = charts.heatmap("Drift score per feature", days, scores, chart_id="feature-drift", scale=top)
    perf_days = [d for d in days if drift[d].get("performance")]
    metric = use_case.promotion.metric
    holdouts = (drift[d]["performance"]["holdout"] for d in reversed(perf_days))  # type: ignore[index]
    holdout = next(holdouts, None)
    by_event: dict[str, float] = {}
    for d in days:
        for entry in drift[d].get("performance_by_day") or []:
            if entry.get("value") is not None:
                by_event[entry["day"]] = entry["value"]
    axis = sorted(set(perf_days) | set(by_event))
    window = {d: drift[d]["performance"]["current"] for d in perf_days}  # type: ignore[index]
    perf = charts.line_chart(
        f"Live {metric} as labels arrive (by drift check) and per event day",
        axis,
        {
            f"live {metric} (window)": [window.get(d) for d in axis],
            f"live {metric} (event day)": [by_event.get(d) for d in axis],
        },
        reference=("holdout", holdout) if holdout is not None else None,
        marks=marks,
        chart_id="live-performance",
    )
    checks = [
        DriftRow(
            day=d,
            drift_share=drift[d]["drift_share"],
            drifted=bool(drift[d]["drifted"]),
            why="; ".join(drift[d].get("reasons", [])),
            model_version=str(drift[d]["model_version"]),
            report=_link(drift[d].get("report_uri"), lake, "Evidently report"),
        )
        for d in reversed(days)
    ]
    scored = records.scoring_manifests(lake, use_case.name)
    view = MonitoringView([share, heat, perf, _prediction_chart(scored)], checks, list(reversed(alerts)))
    return view, None


# Scoring -----------------------------------------------------------------------------------------


@dataclass
class ScoredDay:
    day: str
    rows: int
    seconds: float
    rows_per_second: float
    model_version: str
    worker: str
    file: str  # the predictions file's name (Parquet: not viewable in the browser)


@dataclass
class ScoringView:
    charts: list[Markup]
    days: list[ScoredDay]  # newest first


def scoring_view(
    lake: Lake, use_case: UseCase, today: dt.date, champion_of: ChampionLookup
) -> tuple[ScoringView, None]:
    scored = records.scoring_manifests(lake, use_case.name)
    days = sorted(scored)
    rows = charts.bars("Rows scored per day", days, [scored[d]["rows"] for d in days], chart_id="rows-scored")
    secs = charts.bars(
        "Scoring time per day",
        days,
        [scored[d]["seconds"] for d in days],
        chart_id="scoring-seconds",
        unit=" s",
    )
    table = [
        ScoredDay(
            day=d,
            rows=scored[d]["rows"],
            seconds=scored[d]["seconds"],
            rows_per_second=scored[d].get("rows_per_second") or 0,
            model_version=str(scored[d]["model_version"]),
            worker=scored[d].get("worker", ""),
            file=scored[d]["uri"].rpartition("/")[2],
        )
        for d in reversed(days)
    ]
    return ScoringView([rows, secs], table), None
