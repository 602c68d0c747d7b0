"""A promotion decision's evidence pack: the data (JSON) and a standalone page (HTML) for its reviewer.

Written next to the ledger under the ledger record's stem (``layout.evidence_record`` and
``layout.evidence_page``) by the gate and by the approval's answer, before each records its
decision, so the ledger links the pack. The page is rendered by Jinja2 with autoescape from
``templates/evidence.html``: every record value is text, the only link is the MLflow run's and
only when it is an http(s) URL, and the page carries no script. Same record, same bytes: the
pack holds nothing but the record, so writing it again (a retry) changes nothing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlops.core import layout
from mlops.core.templating import template_environment

if TYPE_CHECKING:
    import jinja2

    from mlops.core.lake import Lake
    from mlops.core.results import PromotionRecord

TEMPLATES = Path(__file__).with_name("templates")
PAGE_TEMPLATE = "evidence.html"
# The record's own links to its pack: left out of the pack, so the pack does not depend on them.
LINK_FIELDS = ("evidence_uri", "evidence_html_uri")
NONE = "\N{EN DASH}"


def write_pack(lake: Lake, record: PromotionRecord) -> tuple[str, str]:
    """Write the record's evidence as JSON and as an HTML page; their lake URIs (json, html).

    Atomic (each file is moved into place whole) and idempotent: the same record gives the
    same bytes at the same paths.
    """
    evidence = {k: v for k, v in record.items() if k not in LINK_FIELDS}
    use_case, decided_at, version = record["use_case"], record["decided_at"], str(record["version"])
    html = render_page(record).encode()
    json_uri = lake.write_json(layout.evidence_record(use_case, decided_at, version), evidence)
    html_uri = lake.write_bytes(layout.evidence_page(use_case, decided_at, version), html)
    return json_uri, html_uri


def render_page(record: PromotionRecord) -> str:
    """The standalone evidence page of a decision (HTML, escaped, without scripts)."""
    return _environment().get_template(PAGE_TEMPLATE).render(page=page_view(record))


def web_url(value: object) -> str:
    """``value`` if it is an http(s) URL with a host (and no whitespace or control characters), else ""."""
    if not isinstance(value, str) or any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in value):
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    return value if parts.scheme.lower() in {"http", "https"} and parts.netloc else ""


def interval(entry: dict[str, Any] | None) -> str:
    """``[low, high] at 95%`` for a paired bootstrap interval; the dash when there is none."""
    if not entry or entry.get("ci_low") is None or entry.get("ci_high") is None:
        return NONE
    confidence = entry.get("confidence")
    at = f" at {confidence:.0%}" if isinstance(confidence, int | float) else ""
    return f"[{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}]{at}"


def fmt(value: Any, digits: int = 4) -> str:
    """A value as the page shows it: floats to ``digits`` places, the dash for a missing value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if value is None or value == "":
        return NONE
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v, digits)}" for k, v in sorted(value.items())) or NONE
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v, digits) for v in value) or NONE
    return str(value)


def signed(value: Any) -> str:
    """A difference with its sign (``+0.0300``); the dash when it is not a number."""
    return f"{value:+.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else fmt(value)


def threshold_text(record: PromotionRecord) -> str:
    """The challenger's decision threshold and what it gives on the holdout, in one line; the dash
    when the record has none (a regressor, or a decision taken before thresholds were chosen)."""
    t = record.get("decision_threshold")
    if not t:
        return NONE
    how = f"{t['objective']} on validation" if t.get("objective") else "the default: none was chosen"
    return (
        f"{fmt(t.get('value'))} ({how}): holdout precision {fmt(t.get('precision'))}, "
        f"recall {fmt(t.get('recall'))}, F1 {fmt(t.get('f1'))}"
    )


def slice_label(entry: dict[str, Any]) -> str:
    """``column=value`` of a slice entry, or the column when it could not be sliced at all."""
    column, value = entry.get("column"), entry.get("value")
    return f"{column}={value}" if value is not None else str(column)


def page_view(record: PromotionRecord) -> dict[str, Any]:
    """What the page shows, from the record: plain values for the template to lay out."""
    slices = []
    for s in record.get("slices") or []:
        slices.append(
            {
                "label": slice_label(s),
                "rows": s.get("rows"),
                "challenger": s.get("challenger"),
                "champion": s.get("champion"),
                "baseline": s.get("baseline"),
                "vs_champion": interval(s.get("vs_champion")),
                "vs_baseline": interval(s.get("vs_baseline")),
                "status": s.get("status"),
                "blocking": s.get("blocking"),
                "blocks": s.get("blocks"),
                "note": s.get("note") or "",
            }
        )
    comparison = record.get("comparison") or None
    baseline = record.get("baseline") or None
    lineage = record.get("lineage") or {}
    cause = record.get("triggered_by") or None
    return {
        "title": f"{record['use_case']} v{record['version']}: {record['outcome']}",
        "record": record,
        "metrics": sorted((record.get("challenger_metrics") or {}).items()),
        "threshold": record.get("decision_threshold") or None,
        "comparison": comparison,
        "comparison_interval": interval(comparison),
        "baseline": baseline,
        "baseline_interval": interval(baseline),
        "slices": slices,
        "sanity": record.get("sanity") or None,
        "failed_checks": record.get("failed_checks") or [],
        "freshness": record.get("freshness") or None,
        "lineage": lineage,
        "data_window": " .. ".join(str(d) for d in lineage.get("data_window") or []) or NONE,
        "cause": cause,
        "mlflow_url": web_url(record.get("mlflow_run_url")),
        "mlflow_text": record.get("mlflow_run_url") or "",
    }


@functools.cache
def _environment() -> jinja2.Environment:
    env = template_environment(TEMPLATES, keep_trailing_newline=True)
    env.filters.update(fmt=fmt, signed=signed)
    env.globals.update(dash=NONE)
    return env
