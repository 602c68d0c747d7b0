"""The evidence pack of a promotion decision: where it goes, what its page shows, and that it is inert."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import get_use_case
from mlops.core.lake import Lake
from mlops.core.results import Cause, PromotionRecord
from mlops.model import evidence
from mlops.model.approval import approval_request

HOSTILE_SLICE = "<script>alert(1)</script>"
QUOTED_REASON = "rejected: \"plan\" slice worse & the <b>champion</b> said 'no'"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def _comparison(challenger: float, reference: float, low: float, high: float) -> dict[str, Any]:
    return {"metric": "roc_auc", "challenger": challenger, "champion": reference,
            "improvement": challenger - reference, "ci_low": low, "ci_high": high, "samples": 200,
            "confidence": 0.95}  # fmt: skip


def _record(**extra: Any) -> PromotionRecord:
    """A gate's decision with every kind of evidence, and a hostile slice value and reason."""
    record = PromotionRecord(
        use_case="churn",
        decided_at="2026-01-03T09:00:00.000001+00:00",
        version="2",
        champion_before="1",
        outcome="awaiting_approval",
        promoted=False,
        reason=QUOTED_REASON,
        airflow_dag_id="churn_training",
        airflow_run_id="manual__2026-01-03",
        metric="roc_auc",
        mode="approval",
        challenger_metrics={"roc_auc": 0.83, "log_loss": 0.41},
        comparison=_comparison(0.83, 0.8, 0.01, 0.05),
        baseline={
            "strategy": "prior",
            "metric": "roc_auc",
            "value": 0.5,
            "challenger": 0.83,
            "improvement": 0.33,
            "ci_low": 0.3,
            "ci_high": 0.36,
            "samples": 200,
            "confidence": 0.95,
            "margin": 0.02,
            "passed": True,
        },
        slices=[
            {
                "column": "plan",
                "value": HOSTILE_SLICE,
                "rows": 120,
                "blocking": True,
                "status": "worse_than_champion",
                "challenger": 0.7,
                "champion": 0.78,
                "baseline": 0.5,
                "vs_champion": _comparison(0.7, 0.78, -0.12, -0.02),
                "vs_baseline": _comparison(0.7, 0.5, 0.1, 0.3),
                "note": "",
                "blocks": True,
            },
            {
                "column": "region",
                "value": "north",
                "rows": 15,
                "blocking": False,
                "status": "too_few_rows",
                "challenger": None,
                "champion": None,
                "baseline": None,
                "vs_champion": None,
                "vs_baseline": None,
                "note": "fewer than 50 rows",
                "blocks": False,
            },
        ],
        sanity={
            "rows": 400,
            "non_finite": 0,
            "score_min": 0.01,
            "score_max": 0.99,
            "problems": [],
            "predicted_classes": [0, 1],
            "threshold": 0.5,
            "label_range": None,
            "out_of_range": 0,
            "passed": True,
        },
        failed_checks=[f"slice plan={HOSTILE_SLICE}: worse than the champion"],
        freshness={
            "challenger_window_end": "2026-01-03",
            "champion_window_end": "2026-01-02",
            "stale": False,
            "accepted_by_request": False,
        },
        lineage={
            "data_window": ["2025-12-01", "2026-01-03"],
            "feature_partitions": 34,
            "training_rows": {"train": 800, "validation": 100, "holdout": 400},
            "training_set_hash": "ab" * 32,
            "training_set_uri": "file:///lake/training_sets/churn/x",
            "git_commit": "0123abc",
        },
        triggered_by=Cause(kind="user", user="alice", ref=None),
        mlflow_run_url="http://mlflow.example/#/experiments/1/runs/abc",
        holdout_rows=400,
    )
    return record | extra  # type: ignore[return-value]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(f"file://{tmp_path}")


def test_the_pack_sits_beside_the_ledger_record_under_its_stem(lake: Lake) -> None:
    record = _record()
    json_uri, html_uri = evidence.write_pack(lake, record)
    ledger = layout.promotion_record("churn", record["decided_at"], "2")
    stem = ledger.rsplit("/", 1)[1].removesuffix(".json")
    assert json_uri == lake.uri(f"registry/churn/evidence/{stem}.json")
    assert html_uri == lake.uri(f"registry/churn/evidence/{stem}.html")
    assert lake.read_json(layout.evidence_record("churn", record["decided_at"], "2")) == json.loads(
        json.dumps(record, default=str)
    )


def test_the_page_escapes_record_values_and_runs_nothing(lake: Lake) -> None:
    record = _record()
    evidence.write_pack(lake, record)
    page = lake.read_bytes(layout.evidence_page("churn", record["decided_at"], "2")).decode()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the slice value, shown as text
    assert "&#34;plan&#34; slice worse &amp; the &lt;b&gt;champion&lt;/b&gt; said &#39;no&#39;" in page
    tags = Tags(page).found
    assert not [t for t, _ in tags if t in {"script", "iframe", "object", "embed", "form", "b"}]
    assert [a["href"] for t, a in tags if t == "a"] == ["http://mlflow.example/#/experiments/1/runs/abc"]
    assert not [a for _, a in tags if any(k.startswith("on") for k in a)]
    for shown in ("worse_than_champion", "[-0.1200, -0.0200] at 95%", "[+0.3000, +0.3600] at 95%", "prior",
                  "2025-12-01 .. 2026-01-03", "0123abc", "alice", "approval", "0.8300"):  # fmt: skip
        assert shown in page, shown


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
        pytest.param(" http://mlflow.example/", id="leading-space"),
        pytest.param("//evil.example/run", id="protocol-relative"),
    ],
)
def test_only_http_links_are_links(lake: Lake, url: str) -> None:
    page = evidence.render_page(_record(mlflow_run_url=url))
    assert not [a for t, a in Tags(page).found if t == "a"]
    assert "<script" not in page.lower()


def test_writing_the_pack_again_changes_nothing(lake: Lake) -> None:
    record = _record()
    first = evidence.write_pack(lake, record)
    paths = (layout.evidence_record("churn", record["decided_at"], "2"),
             layout.evidence_page("churn", record["decided_at"], "2"))  # fmt: skip
    before = [lake.read_bytes(p) for p in paths]
    linked = _record(evidence_uri=first[0], evidence_html_uri=first[1])  # as the ledger then holds it
    assert evidence.write_pack(lake, linked) == first
    assert [lake.read_bytes(p) for p in paths] == before
    assert sorted(lake.list(layout.evidence_dir("churn"))) == sorted(p.rsplit("/", 1)[1] for p in paths)


def test_a_reviewers_answer_is_in_its_pack(lake: Lake) -> None:
    answer = _record(outcome="rejected_by_reviewer", reviewed_by="bob",
                     review_comment="slice <b>plan</b> regressed",
                     decided_at="2026-01-04T10:00:00.000001+00:00")  # fmt: skip
    evidence.write_pack(lake, answer)
    page = lake.read_bytes(layout.evidence_page("churn", answer["decided_at"], "2")).decode()
    assert "bob" in page and "slice &lt;b&gt;plan&lt;/b&gt; regressed" in page
    assert 'data-outcome="rejected_by_reviewer"' in page


def test_a_record_without_evidence_renders(lake: Lake) -> None:
    bare = PromotionRecord(use_case="churn", decided_at="2026-01-03T00:00:00+00:00", version="1",
                           champion_before=None, outcome="rollback", promoted=True, reason="rolled back",
                           airflow_dag_id="churn_rollback", airflow_run_id="manual__r")  # fmt: skip
    _, html_uri = evidence.write_pack(lake, bare)
    assert html_uri.endswith(".html") and "rolled back" in evidence.render_page(bare)


def test_the_approval_request_carries_the_evidence(lake: Lake) -> None:
    record = _record()
    record["evidence_uri"], record["evidence_html_uri"] = evidence.write_pack(lake, record)
    _, body = approval_request(record, get_use_case("churn"))
    baseline = "**Baseline** (prior) roc\\_auc 0.5000 · challenger +0.3300, interval [+0.3000, +0.3600]"
    assert baseline in body
    assert "margin 0.02 · passed" in body
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in body and "<script>" not in body  # the slice, as text
    assert "worse\\_than\\_champion **blocks**" in body and "north" not in body  # only blocking slices
    assert "challenger's window ends 2026-01-03 · champion's ends 2026-01-02" in body
    assert "**Failed checks**" in body and "worse than the champion" in body
    assert f"**Evidence** `{record['evidence_html_uri']}`" in body
    assert "<b>" not in body  # the reason, as text


def test_an_approval_request_without_evidence_says_less() -> None:
    bare = PromotionRecord(use_case="churn", decided_at="2026-01-03T00:00:00+00:00", version="2",
                           champion_before=None, outcome="awaiting_approval", promoted=False,
                           reason="awaiting approval: first model", airflow_dag_id="churn_training",
                           airflow_run_id="manual__r")  # fmt: skip
    _, body = approval_request(bare, get_use_case("churn"))
    assert "**Baseline**" not in body and "**Evidence**" not in body and "**Failed checks**" not in body
