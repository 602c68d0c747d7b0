from __future__ import annotations

import os

import pytest

from mlops.core.settings import apply_env_defaults, load_settings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://aws_lake@bucket/lake/")
    monkeypatch.setenv("MLOPS_FEATURE_STORE", "postgres")
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.example/")
    monkeypatch.setenv("MLOPS_GIT_COMMIT", "abc123")
    monkeypatch.setenv("MLOPS_WORKER_NAME", "worker-2")
    monkeypatch.setenv("MLOPS_SLACK_WEBHOOK_URL", "http://127.0.0.1:1/hook-secret")
    settings = load_settings()
    assert settings.lake_uri == "s3://aws_lake@bucket/lake"
    assert settings.feature_store == "postgres"
    assert settings.mlflow_ui_url == "https://mlflow.example"
    assert (settings.git_commit, settings.worker_name) == ("abc123", "worker-2")
    assert settings.slack_webhook_url == "http://127.0.0.1:1/hook-secret"
    assert "hook-secret" not in repr(settings)


def test_embedded_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MLOPS_LAKE_URI",
        "MLOPS_GIT_COMMIT",
        "MLOPS_WORKER_NAME",
        "MLOPS_SLACK_WEBHOOK_URL",
        "MLOPS_MLFLOW_UI_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.lake_uri == f"file://{settings.home / 'lake'}"
    assert settings.embedded
    assert settings.git_commit is None and settings.worker_name is None and settings.slack_webhook_url is None


def test_unknown_feature_store_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_FEATURE_STORE", "redis")
    with pytest.raises(ValueError, match=r"MLOPS_FEATURE_STORE='redis'.*'parquet' or 'postgres'"):
        load_settings()


def test_env_defaults_never_override_what_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TEST_SET", "production")
    monkeypatch.delenv("MLOPS_TEST_UNSET", raising=False)
    values = apply_env_defaults({"MLOPS_TEST_SET": "embedded", "MLOPS_TEST_UNSET": "embedded"})
    assert values == {"MLOPS_TEST_SET": "production", "MLOPS_TEST_UNSET": "embedded"}
    assert os.environ["MLOPS_TEST_UNSET"] == "embedded"
    monkeypatch.delenv("MLOPS_TEST_UNSET")


def test_serving_settings_default_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MLOPS_SERVING_REFRESH_SECONDS",
        "MLOPS_SERVING_MAX_ROWS",
        "MLOPS_SERVING_FLUSH_ROWS",
        "MLOPS_SERVING_FLUSH_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    serving = load_settings().serving
    assert (serving.refresh_seconds, serving.max_rows, serving.flush_rows, serving.flush_seconds) == (
        10.0,
        1000,
        1000,
        60.0,
    )
    monkeypatch.setenv("MLOPS_SERVING_REFRESH_SECONDS", "0.5")
    monkeypatch.setenv("MLOPS_SERVING_MAX_ROWS", "50")
    assert (load_settings().serving.refresh_seconds, load_settings().serving.max_rows) == (0.5, 50)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("MLOPS_SERVING_REFRESH_SECONDS", "0", "is not a number above 0", id="zero"),
        pytest.param("MLOPS_SERVING_REFRESH_SECONDS", "nan", "is not a number above 0", id="nan"),
        pytest.param("MLOPS_SERVING_FLUSH_SECONDS", "soon", "is not a number above 0", id="text"),
        pytest.param("MLOPS_SERVING_MAX_ROWS", "1.5", "is not a whole number above 0", id="fraction"),
        pytest.param("MLOPS_SERVING_FLUSH_ROWS", "-1", "is not a whole number above 0", id="negative"),
    ],
)
def test_bad_serving_settings_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=rf"{name}='{value}' {message}"):
        load_settings()
