"""Each page built from records in a tmp lake: what it shows, and hostile record values shown as text."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mlops.core import layout
from mlops.core.config import UseCase, get_use_case
from mlops.core.lake import Lake
from mlops.orchestration.ui import pages, records
from tests.unit.orchestration.ui_history import HOSTILE, write_history

TODAY = dt.date(2026, 1, 13)
PAGES = list(pages.PAGES)


class Elements(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def select(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [a for t, a in self.found if t == tag and all(a.get(k) == v for k, v in want.items())]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    records.CACHE.clear()


@pytest.fixture
def use_case() -> UseCase:
    return get_use_case("churn")


def render(
    lake: Lake, use_case: UseCase, page: str, champion: tuple[str | None, str | None] = ("1", None)
) -> str:
    return pages.render(lake, use_case, ["churn", "fraud"], page, TODAY, champion_of=lambda uc: champion)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_its_frame(tmp_path: Path, use_case: UseCase, page: str) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 12)
    html = Elements(render(lake, use_case, page))
    assert html.select("main", id=f"page-{page}", data_use_case="churn")
    assert html.select("form", data_page=page)
    assert [a["value"] for a in html.select("option")][:2] == ["churn", "fraud"]
    assert html.select("option", value="churn", selected="")
    tabs = [a["href"] for a in html.select("a") if "tab" in a.get("class", "")]
    assert tabs == [f"/mlops/ui/churn/{p}" for p in PAGES]
    assert html.select("script", src="/mlops/ui/static/ui.js")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_an_empty_lake(tmp_path: Path, use_case: UseCase, page: str) -> None:
    html = render(Lake(f"file://{tmp_path}"), use_case, page, champion=(None, None))
    assert f'id="page-{page}"' in html


def test_overview(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 12)
    doc = render(lake, use_case, "overview")
    html = Elements(doc)
    assert html.select("span", id="champion-version", data_version="1")
    assert "2026-01-12 · 111 rows · v1" in doc
    assert html.select("span", id="open-alerts", data_count="1")
    assert html.select("p", id="pending-note") and html.select("a", href="/mlops/ui/churn/promotions")
    assert html.select("a", href=f"/mlops/lake/view?path={layout.drift_report('churn', '2026-01-12')}")
    assert html.select("a", href="http://mlflow.example/#/runs/1", target="_blank", rel="noopener")


def test_overview_falls_back_to_the_ledger_without_mlflow(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    doc = render(lake, use_case, "overview", champion=(None, "MLflow could not be asked <for> the champion"))
    assert Elements(doc).select("span", id="champion-version", data_version="1")
    assert '<p class="warning">MLflow could not be asked &lt;for&gt; the champion</p>' in doc


def test_promotions(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    html = Elements(render(lake, use_case, "promotions", champion=("2", None)))
    assert html.select("strong", id="champion-version", data_version="2")
    assert html.select("form", data_dag_id="churn_training", data_run_id="manual__2", data_version="2")
    assert html.select("form", id="rollback", data_dag_id="churn_rollback")
    assert [a["value"] for a in html.select("option") if a["value"] not in {"churn", "fraud"}] == ["1"]
    assert [(a["data-version"], a["data-outcome"]) for a in html.select("tr") if "data-outcome" in a] == [
        ("2", "awaiting_approval"), ("1", "promoted")
    ]  # fmt: skip
    assert html.select("span", **{"class": "outcome promoted"})


def test_promotions_without_an_earlier_champion_cannot_roll_back(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    html = Elements(render(lake, use_case, "promotions", champion=("1", None)))
    assert html.select("button", type="submit", disabled="")


def test_an_answered_approval_is_no_longer_pending(tmp_path: Path, use_case: UseCase) -> None:
    from tests.unit.orchestration.ui_history import promotion

    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    answer = promotion("churn", "2", "approved", "2026-01-04T00:00:00+00:00", reviewed_by="admin")
    lake.write_json(layout.promotion_record("churn", answer["decided_at"], "2"), answer)
    html = Elements(render(lake, use_case, "promotions", champion=("2", None)))
    assert not html.select("form", data_run_id="manual__2", data_version="2")


def test_quality(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    made = write_history(lake, "churn", 11)
    html = Elements(render(lake, use_case, "quality"))
    cells = {a["data-day"]: a for a in html.select("div") if "data-day" in a}
    assert [d for d, a in sorted(cells.items()) if a["data-status"] == "quarantined"] == made.quarantined
    assert cells["2026-01-12"]["data-status"] == "missing"  # yesterday: nothing archived
    assert cells["2026-01-01"]["data-rows"] == "100"
    assert len(html.select("div", **{"class": "day blank"})) == dt.date(2026, 1, 1).weekday()
    assert html.select("b", data_status_count="quarantined")
    assert html.select("a", href=f"/mlops/lake/view?path={layout.validation_docs('churn', '2026-01-03')}")
    assert html.select("figure", id="rows-per-day")


def test_monitoring_marks_the_day_of_the_drift_alert(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    made = write_history(lake, "churn", 12)
    doc = render(lake, use_case, "monitoring")
    html = Elements(doc)
    rows = {a["data-day"]: a["data-drift-share"] for a in html.select("tr") if "data-drift-share" in a}
    assert sorted(rows) == made.days and rows["2026-01-06"] == "0.500000"
    assert len(html.select("circle", data_series="drift share")) == 12
    for chart in ("drift-share", "feature-drift", "live-performance", "prediction-distribution"):
        assert html.select("figure", id=chart), chart
    # on the drift share chart and the live performance chart, and on no other day
    assert doc.count(f"<title>alert on {made.drift_alert_day}</title>") == 2
    assert doc.count("<title>alert on ") == 2


def test_scoring(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 4)
    html = Elements(render(lake, use_case, "scoring"))
    rows = [(a["data-day"], a["data-rows"], a["data-version"]) for a in html.select("tr") if "data-rows" in a]
    assert rows == [("2026-01-04", "103", "1"), ("2026-01-03", "102", "1"),
                    ("2026-01-02", "101", "1"), ("2026-01-01", "100", "1")]  # fmt: skip
    assert html.select("figure", id="rows-scored") and html.select("figure", id="scoring-seconds")


@pytest.mark.parametrize("page", PAGES)
def test_hostile_values_are_text_and_links_dropped(tmp_path: Path, use_case: UseCase, page: str) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 12, hostile=True)
    doc = render(lake, use_case, page)
    assert "<script>alert" not in doc
    for scheme in ("javascript:", "vbscript:", "data:text"):
        assert scheme not in doc.lower(), scheme
    hrefs = [a["href"] for a in Elements(doc).select("a")]
    allowed = ("/mlops/ui/", "/mlops/lake/view?path=", "https://", "http://")
    assert all(h.startswith(allowed) for h in hrefs), hrefs
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in doc, f"{page} shows no hostile value"


def test_index_escapes_config_errors() -> None:
    doc = pages.index(["churn"], {"broken": HOSTILE})
    assert "<script>alert" not in doc and "&lt;script&gt;" in doc
    assert Elements(doc).select("a", href="/mlops/ui/churn/overview")


def test_templates_escape_by_default() -> None:
    env = pages.environment()
    assert env.autoescape is True
    assert env.from_string("{{ v }}").render(v=HOSTILE) == "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


def test_promotions_link_the_evidence_and_summarise_it_for_a_pending_approval(
    tmp_path: Path, use_case: UseCase
) -> None:
    from mlops.orchestration.ui.hrefs import lake_view_url
    from tests.unit.orchestration.ui_history import promotion

    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    decided = "2026-01-04T00:00:00+00:00"
    page_uri = lake.uri(layout.evidence_page("churn", decided, "3"))
    waiting = promotion(
        "churn", "3", "awaiting_approval", decided, champion_before="1",
        evidence_uri=lake.uri(layout.evidence_record("churn", decided, "3")), evidence_html_uri=page_uri,
        baseline={"strategy": "prior", "metric": "roc_auc", "value": 0.5, "challenger": 0.83,
                  "improvement": 0.33, "ci_low": 0.3, "ci_high": 0.36, "confidence": 0.95, "margin": 0.0,
                  "passed": True},
        slices=[{"column": "plan", "value": HOSTILE, "rows": 120, "blocking": True,
                 "status": "worse_than_champion", "blocks": True},
                {"column": "region", "value": "north", "rows": 15, "blocking": False,
                 "status": "too_few_rows", "blocks": False}],
    )  # fmt: skip
    lake.write_json(layout.promotion_record("churn", decided, "3"), waiting)
    doc = render(lake, use_case, "promotions", champion=("1", None))
    html = Elements(doc)
    href = lake_view_url(layout.evidence_page("churn", decided, "3"))
    assert len(html.select("a", href=href)) == 2  # in the ledger row and on the pending card
    assert "prior baseline 0.5000; challenger +0.3300 [+0.3000, +0.3600] at 95%, margin 0: passed" in doc
    assert html.select("li", data_status="worse_than_champion", **{"class": "blocks"})
    assert html.select("li", data_status="too_few_rows")
    assert "<script>alert" not in doc and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in doc
    # the records written before evidence packs existed: no link, the dash
    assert "no evidence page" in doc


def test_an_evidence_link_outside_the_lake_is_no_link(tmp_path: Path, use_case: UseCase) -> None:
    from tests.unit.orchestration.ui_history import promotion

    lake = Lake(f"file://{tmp_path}")
    record = promotion("churn", "1", "promoted", "2026-01-02T00:00:00+00:00",
                       evidence_html_uri="javascript:alert(1)")  # fmt: skip
    lake.write_json(layout.promotion_record("churn", record["decided_at"], "1"), record)
    doc = render(lake, use_case, "promotions")
    assert "javascript:" not in doc and not [a for a in Elements(doc).select("a") if "lake/view" in a["href"]]
