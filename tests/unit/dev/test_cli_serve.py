"""``python -m mlops serve``: refuses what it cannot serve before starting anything."""

from __future__ import annotations

import pytest

from mlops.dev.cli import main

# Variables the serve command fills in when unset; restored after each test.
FILLED_IN = (
    "OMP_NUM_THREADS",
    "AIRFLOW__LOGGING__LOGGING_LEVEL",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
)


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FILLED_IN:
        monkeypatch.delenv(name, raising=False)


def test_an_unknown_use_case_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--use-case", "fraud", "--port", "1"]) == 2
    assert "no use case named 'fraud'" in capsys.readouterr().err


def test_a_use_case_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["serve"])
    assert raised.value.code == 2
    assert "--use-case" in capsys.readouterr().err
