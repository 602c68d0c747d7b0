"""The pages' record readers: a few lake requests per view whatever the history's length, and a
record re-read only when its file changed."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mlops.core import layout
from mlops.core.config import UseCase, get_use_case
from mlops.core.lake import Lake
from mlops.orchestration.ui import pages, records
from tests.unit.orchestration.ui_history import write_history

# fsspec calls that are lake requests on S3 (a listing, a HEAD, a GET).
REQUESTS = frozenset({"ls", "find", "exists", "open", "info", "cat_file", "isdir", "isfile", "walk", "glob"})


class CountingFS:
    """The lake's filesystem, counting each call that is a request on S3."""

    def __init__(self, fs: Any, calls: Counter[str]) -> None:
        self._fs, self._calls = fs, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fs, name)
        if name not in REQUESTS:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def reads(calls: Counter[str]) -> int:
    """Objects read whole (one GET each) or opened."""
    return calls["cat_file"] + calls["open"]


class CountingLake(Lake):
    def __init__(self, root_uri: str) -> None:
        super().__init__(root_uri)
        self.calls: Counter[str] = Counter()

    @property
    def _fs(self) -> Any:
        return CountingFS(self.root.fs, self.calls)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    records.CACHE.clear()


@pytest.fixture
def use_case() -> UseCase:
    return get_use_case("churn")


def test_list_files_lists_every_file_once_with_a_token_that_changes_on_rewrite(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    root = layout.reports_root("churn")
    one, two = layout.drift_summary("churn", "2026-01-01"), layout.drift_summary("churn", "2026-01-02")
    assert lake.list_files(root) == {}
    lake.write_json(one, {"a": 1})
    lake.write_json(two, {"a": 1})
    (tmp_path / layout.reports_dir("churn", "2026-01-02") / ".drift_summary.json.tmp-1").write_text("half")
    first = lake.list_files(root)
    assert sorted(first) == [one, two]
    lake.write_json(two, {"a": 2})
    second = lake.list_files(root)
    assert second[one] == first[one] and second[two] != first[two]


def test_readers_return_each_days_record(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    made = write_history(lake, "churn", 10)
    drift = records.drift_summaries(lake, "churn")
    assert sorted(drift) == made.days and drift[made.days[3]]["day"] == made.days[3]
    assert sorted(records.scoring_manifests(lake, "churn")) == made.days
    summaries = records.validation_summaries(lake, "churn")
    assert [d for d, s in sorted(summaries.items()) if not s["passed"]] == made.quarantined
    assert sorted(records.raw_manifests(lake, "churn")) == made.days
    assert [e["version"] for e in records.ledger(lake, "churn")] == ["1", "2"]


def test_a_day_folder_without_its_record_is_left_out(tmp_path: Path) -> None:
    lake = Lake(f"file://{tmp_path}")
    write_history(lake, "churn", 3)
    # The report is written, its summary not yet.
    lake.write_bytes(layout.drift_report("churn", "2026-02-01"), b"<html></html>")
    assert "2026-02-01" not in records.drift_summaries(lake, "churn")


def test_alerts_of_the_use_case_and_of_its_dags_only(tmp_path: Path, use_case: UseCase) -> None:
    lake = Lake(f"file://{tmp_path}")
    made = write_history(lake, "churn", 8)
    write_history(lake, "fraud", 8)
    found = records.alerts(lake, use_case)
    assert [(a.kind, a.open) for a in found] == [("task_failure", False), ("drift", True)]
    assert found[1].report_uri == lake.uri(layout.drift_report("churn", made.drift_alert_day or ""))


@pytest.mark.parametrize("page", ["overview", "quality", "monitoring", "scoring", "promotions"])
def test_a_page_over_180_days_costs_a_few_requests(tmp_path: Path, use_case: UseCase, page: str) -> None:
    lake = CountingLake(f"file://{tmp_path}")
    write_history(lake, "churn", 180)
    today = dt.date(2026, 6, 30)

    def view() -> Counter[str]:
        lake.calls.clear()
        pages.render(lake, use_case, ["churn"], page, today, champion_of=lambda uc: ("1", None))
        return Counter(lake.calls)

    first = view()
    second = view()
    # The first view reads each record it shows once; a per-day exists() + read was 360+ requests.
    assert first["exists"] <= 10 and reads(first) <= 2 * 180 + 10, first
    # The second view only lists: nothing changed, so nothing is read again.
    assert reads(second) == 0, second
    assert sum(second.values()) <= 12, second

    day = "2026-03-01"
    drift, scored = records.drift_summaries(lake, "churn")[day], records.scoring_manifests(lake, "churn")[day]
    lake.write_json(layout.drift_summary("churn", day), {**drift, "drifted": True})
    lake.write_json(layout.predictions_manifest("churn", day), {**scored, "rows": 1})
    records_read = {"overview": 2, "monitoring": 2, "scoring": 1, "quality": 0, "promotions": 0}[page]
    assert reads(view()) == records_read


def test_the_cache_keeps_only_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = CountingLake(f"file://{tmp_path}")
    write_history(lake, "churn", 20)
    monkeypatch.setattr(records, "CACHE", records._ParsedCache(size=5))
    records.drift_summaries(lake, "churn")
    lake.calls.clear()
    records.drift_summaries(lake, "churn")
    assert reads(lake.calls) == 20  # only 5 kept, and each read pushes out the next one needed
