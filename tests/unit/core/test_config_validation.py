"""Config validation that keeps DAG building safe: dates, schedules, feature and column names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.core.config import (
    RESERVED_FEATURE_NAMES,
    ConfigError,
    UseCase,
    cron_for,
    load_use_case_file,
    load_use_cases,
    parse_use_case,
)

ROOT = Path(__file__).resolve().parents[3]


def _raw(stem: str = "churn") -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"config/use_cases/{stem}.yaml").read_text())


def _with(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``{"features.2.name": value, ...}``: dotted keys, list indices as numbers."""
    for dotted, value in changes.items():
        node: Any = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def _parse(changes: dict[str, Any], stem: str = "churn") -> UseCase:
    return parse_use_case(_with(_raw(stem), changes), f"{stem}.yaml")


def _assert_rejected(
    changes: dict[str, Any], key: str, fragments: tuple[str, ...], stem: str = "churn"
) -> None:
    with pytest.raises(ConfigError) as err:
        _parse(changes, stem)
    assert err.value.key == key, err.value
    for fragment in fragments:
        assert fragment in err.value.problem, err.value
    assert str(err.value).startswith(f"{stem}.yaml: {key}: ")


# --- shipped configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stem", [pytest.param("churn", id="churn"), pytest.param("delivery_time", id="delivery_time")]
)
def test_shipped_config_still_loads(stem: str) -> None:
    use_case = load_use_case_file(ROOT / f"config/use_cases/{stem}.yaml")
    assert use_case.schedules.start_date == dt.date(2026, 1, 1)
    assert use_case.schedules.data == "@daily"


def test_all_shipped_configs_load() -> None:
    good, bad = load_use_cases(ROOT / "config")
    assert bad == {}
    assert {"churn", "delivery_time"} <= set(good)


# --- schedules.start_date ----------------------------------------------------------------------

BAD_DATES = [
    pytest.param("2026-13-01", ("'2026-13-01'", "month must be in 1..12", "YYYY-MM-DD"), id="month-13"),
    pytest.param("2026-02-30", ("'2026-02-30'", "day is out of range", "YYYY-MM-DD"), id="february-30"),
    pytest.param("2026-1-1", ("'2026-1-1'", "YYYY-MM-DD"), id="no-zero-padding"),
    pytest.param("01/02/2026", ("'01/02/2026'", "YYYY-MM-DD"), id="slashes"),
    pytest.param("20260101", ("'20260101'", "YYYY-MM-DD"), id="basic-iso-format"),
    pytest.param("2026-W01-1", ("'2026-W01-1'", "YYYY-MM-DD"), id="iso-week-date"),
    pytest.param("2026-01-01T00:00:00", ("'2026-01-01T00:00:00'", "YYYY-MM-DD"), id="datetime-string"),
    pytest.param(dt.datetime(2026, 1, 1, 6), ("time of day", "YYYY-MM-DD"), id="datetime-object"),
    pytest.param("", ("''", "YYYY-MM-DD"), id="empty"),
    pytest.param(20260101, ("20260101", "YYYY-MM-DD"), id="integer"),
    pytest.param(None, ("None", "YYYY-MM-DD"), id="null"),
]


@pytest.mark.parametrize(("value", "fragments"), BAD_DATES)
def test_bad_start_date_is_rejected(value: object, fragments: tuple[str, ...]) -> None:
    _assert_rejected({"schedules.start_date": value}, "schedules.start_date", fragments)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2024-02-29", id="leap-day-string"),
        pytest.param(dt.date(2024, 2, 29), id="date-object"),
    ],
)
def test_good_start_date_becomes_a_date(value: object) -> None:
    assert _parse({"schedules.start_date": value}).schedules.start_date == dt.date(2024, 2, 29)


def test_unquoted_bad_date_in_yaml_names_the_key(tmp_path: Path) -> None:
    # Plain YAML would fail inside the parser ("month must be in 1..12") without naming the key.
    text = (
        (ROOT / "config/use_cases/churn.yaml")
        .read_text()
        .replace('start_date: "2026-01-01"', "start_date: 2026-13-01")
    )
    assert "start_date: 2026-13-01" in text
    path = tmp_path / "churn.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_use_case_file(path)
    assert err.value.key == "schedules.start_date"
    assert "'2026-13-01'" in err.value.problem


def test_unquoted_good_date_in_yaml_loads(tmp_path: Path) -> None:
    text = (
        (ROOT / "config/use_cases/churn.yaml")
        .read_text()
        .replace('start_date: "2026-01-01"', "start_date: 2026-03-05")
    )
    path = tmp_path / "churn.yaml"
    path.write_text(text)
    assert load_use_case_file(path).schedules.start_date == dt.date(2026, 3, 5)


def test_dag_start_date_is_midnight_utc() -> None:
    from mlops.orchestration.dag_support import start_date

    use_case = _parse({"schedules.start_date": "2026-03-05"})
    assert start_date(use_case) == dt.datetime(2026, 3, 5, tzinfo=dt.UTC)


# --- schedules ---------------------------------------------------------------------------------

SCHEDULE_KEYS = ["schedules.data", "training.schedule", "drift.schedule"]
BAD_SCHEDULES = [
    pytest.param("@dialy", ("'@dialy'", "5 fields", "@daily"), id="misspelt-preset"),
    pytest.param("@DAILY", ("'@DAILY'", "@daily"), id="upper-case-preset"),
    pytest.param("@reboot", ("'@reboot'", "@daily"), id="unknown-preset"),
    pytest.param("daily", ("'daily'", "5 fields"), id="preset-without-at"),
    pytest.param("0 0 * *", ("'0 0 * *'", "this one has 4"), id="four-fields"),
    pytest.param("0 0 0 * * *", ("'0 0 0 * * *'", "this one has 6"), id="six-fields-with-seconds"),
    pytest.param("61 * * * *", ("'61 * * * *'", "out of range"), id="minute-out-of-range"),
    pytest.param("0 0 * * 8", ("'0 0 * * 8'", "out of range"), id="weekday-out-of-range"),
    pytest.param("*/0 * * * *", ("'*/0 * * * *'", "not acceptable"), id="zero-step"),
    pytest.param("H 0 * * *", ("'H 0 * * *'", "hash_id"), id="jenkins-hash"),
    pytest.param("0 0 31 2 *", ("'0 0 31 2 *'", "never fires"), id="never-fires"),
    pytest.param("", ("''", "5 fields"), id="empty"),
    pytest.param(3600, ("valid string",), id="number"),
]


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in SCHEDULE_KEYS])
@pytest.mark.parametrize(("value", "fragments"), BAD_SCHEDULES)
def test_bad_schedule_is_rejected(key: str, value: object, fragments: tuple[str, ...]) -> None:
    _assert_rejected({key: value}, key, fragments)


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in SCHEDULE_KEYS])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param("@once", id="once"),
        pytest.param("@hourly", id="hourly"),
        pytest.param("@quarterly", id="quarterly"),
        pytest.param("@annually", id="annually"),
        pytest.param("*/15 * * * *", id="every-15-minutes"),
        pytest.param("30 6 * * mon-fri", id="weekday-names"),
        pytest.param("0 0 29 2 *", id="leap-day"),
        pytest.param("0 0 L * *", id="last-day-of-month"),
    ],
)
def test_good_schedule_is_accepted(key: str, value: str | None) -> None:
    use_case = _parse({key: value})
    section, field = key.split(".")
    assert getattr(getattr(use_case, section), field) == value


def test_continuous_is_rejected_for_the_data_dag() -> None:
    # The data DAG allows several runs at once; Airflow's ContinuousTimetable allows only one.
    _assert_rejected({"schedules.data": "@continuous"}, "schedules.data", ("'@continuous'", "@daily"))


@pytest.mark.parametrize(
    "key", [pytest.param("training.schedule", id="training"), pytest.param("drift.schedule", id="drift")]
)
def test_continuous_is_accepted_for_single_run_dags(key: str) -> None:
    assert _parse({key: "@continuous"})


@pytest.mark.parametrize(
    "preset", [pytest.param("@once", id="once"), pytest.param("@continuous", id="continuous")]
)
def test_training_on_new_features_needs_a_cron_schedule(preset: str) -> None:
    # That combination is built as a CronTriggerTimetable, which needs a cron expression.
    _assert_rejected(
        {"training.schedule": preset, "training.on_new_features": True},
        "training",
        (repr(preset), "on_new_features", "@weekly"),
    )


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param("*/15 * * * *", id="steps"),
        pytest.param("30 6 * * mon-fri", id="names"),
        pytest.param("0 0 L * *", id="last"),
    ],
)
def test_accepted_cron_is_valid_for_airflow(cron: str) -> None:
    from airflow.sdk import CronTriggerTimetable

    assert _parse({"training.schedule": cron}).training.schedule == cron
    CronTriggerTimetable(cron, timezone="UTC").validate()


# --- cron_for ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        pytest.param("@hourly", "0 * * * *", id="hourly"),
        pytest.param("@daily", "0 0 * * *", id="daily"),
        pytest.param("@weekly", "0 0 * * 0", id="weekly"),
        pytest.param("@monthly", "0 0 1 * *", id="monthly"),
        pytest.param("@quarterly", "0 0 1 */3 *", id="quarterly"),
        pytest.param("@yearly", "0 0 1 1 *", id="yearly"),
        pytest.param("@annually", "0 0 1 1 *", id="annually"),
        pytest.param("30 6 * * mon-fri", "30 6 * * mon-fri", id="cron-unchanged"),
    ],
)
def test_cron_for(schedule: str, cron: str) -> None:
    assert cron_for(schedule) == cron


@pytest.mark.parametrize("preset", ["@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"])
def test_cron_for_matches_airflow(preset: str) -> None:
    from airflow.sdk import CronTriggerTimetable

    assert CronTriggerTimetable(preset, timezone="UTC").expression == cron_for(preset)


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("@once", id="once"),
        pytest.param("@continuous", id="continuous"),
        pytest.param("@reboot", id="unknown"),
    ],
)
def test_cron_for_rejects_non_cron_presets(schedule: str) -> None:
    with pytest.raises(ValueError, match=repr(schedule)):
        cron_for(schedule)


# --- feature names -----------------------------------------------------------------------------

BAD_FEATURE_NAMES = [
    pytest.param("Tenure", ("'Tenure'", "lowercase", "'tenure'"), id="upper-case"),
    pytest.param("tenure months", ("'tenure months'", "lowercase", "'tenure_months'"), id="space"),
    pytest.param("tenure-months", ("'tenure-months'", "'tenure_months'"), id="dash"),
    pytest.param('ten"ure', ("'ten\"ure'", "'ten_ure'"), id="double-quote"),
    pytest.param("ten'ure", ("ten'ure", "'ten_ure'"), id="single-quote"),
    pytest.param("1st_month", ("'1st_month'", "starting with a letter", "'f_1st_month'"), id="leading-digit"),
    pytest.param("", ("''", "1-63"), id="empty"),
    pytest.param("f" * 64, ("1-63",), id="longer-than-postgres-identifier"),
    pytest.param("préavis", ("'préavis'", "lowercase"), id="non-ascii"),
]


@pytest.mark.parametrize(("name", "fragments"), BAD_FEATURE_NAMES)
def test_feature_name_must_be_identifier_safe(name: str, fragments: tuple[str, ...]) -> None:
    _assert_rejected({"features.2.name": name}, "features[2].name", fragments)


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in sorted(RESERVED_FEATURE_NAMES)])
def test_feature_name_must_not_be_reserved(name: str) -> None:
    _assert_rejected({"features.2.name": name}, "features[2].name", (repr(name), "reserved", "rename"))


def test_reserved_names_cover_the_platform_columns() -> None:
    assert {
        "entity_id", "event_time", "label", "label_available_at", "interval",
        "prediction_value", "score", "prediction", "model_version", "model_run_id",
    } <= RESERVED_FEATURE_NAMES  # fmt: skip


@pytest.mark.parametrize(
    ("stem", "name", "schema_key"),
    [
        pytest.param("churn", "customer_id", "schema.entity", id="entity"),
        pytest.param("churn", "churned", "schema.target", id="target"),
        pytest.param("delivery_time", "ordered_at", "schema.event_time", id="event-time"),
    ],
)
def test_feature_name_must_not_shadow_a_schema_column(stem: str, name: str, schema_key: str) -> None:
    _assert_rejected(
        {"features.1.name": name}, "features[1].name", (repr(name), schema_key, "rename"), stem=stem
    )


@pytest.mark.parametrize(
    "name", [pytest.param("_private", id="leading-underscore"), pytest.param("f" * 63, id="63-chars")]
)
def test_good_feature_name_is_accepted(name: str) -> None:
    assert name in _parse({"features.2.name": name}).feature_names


# --- schema column names -----------------------------------------------------------------------

BAD_COLUMN_NAMES = [
    pytest.param("monthly charges", id="space"),
    pytest.param("monthly-charges", id="dash"),
    pytest.param('monthly"charges', id="double-quote"),
    pytest.param("2nd_plan", id="leading-digit"),
    pytest.param("c" * 64, id="longer-than-postgres-identifier"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("column", BAD_COLUMN_NAMES)
def test_schema_column_name_must_be_identifier_safe(column: str) -> None:
    raw = _raw()
    raw["schema"]["columns"][column] = {"type": "int", "nullable": True}
    with pytest.raises(ConfigError) as err:
        parse_use_case(raw, "churn.yaml")
    assert err.value.key == "schema.columns"
    assert repr(column) in err.value.problem
    assert "letters, digits or underscores" in err.value.problem
    assert "rename" in err.value.problem


@pytest.mark.parametrize(
    "column", [pytest.param("CustomerSegment", id="mixed-case"), pytest.param("_raw", id="underscore")]
)
def test_good_schema_column_name_is_accepted(column: str) -> None:
    raw = _raw()
    raw["schema"]["columns"][column] = {"type": "int", "nullable": True}
    assert column in parse_use_case(raw, "churn.yaml").schema_.columns
