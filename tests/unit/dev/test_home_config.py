"""One configuration per home: the config folder a home was first started with is the one its
later commands run, and a command pointed elsewhere is refused before it starts anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.dev.cli import main
from mlops.dev.service import HomeConfigError, config_record, pin_config_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(tmp_path / "config-a"))
    return tmp_path / "home"


def test_the_first_start_records_its_folder_and_later_commands_use_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pin_config_dir(home, record=True) == (tmp_path / "config-a").resolve()
    assert config_record(home).read_text().strip() == str((tmp_path / "config-a").resolve())

    monkeypatch.delenv("MLOPS_CONFIG_DIR")  # a later `make ui-airflow` from a shell without it
    assert pin_config_dir(home, record=True) == (tmp_path / "config-a").resolve()
    assert os.environ["MLOPS_CONFIG_DIR"] == str((tmp_path / "config-a").resolve())


def test_nothing_recorded_before_a_start(home: Path) -> None:
    assert pin_config_dir(home, record=False) is None
    assert not config_record(home).exists()


def test_another_folder_is_refused_naming_both(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_config_dir(home, record=True)
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(tmp_path / "config-b"))
    with pytest.raises(HomeConfigError) as refused:
        pin_config_dir(home, record=True)
    assert "config-a" in str(refused.value) and "config-b" in str(refused.value)
    assert config_record(home).read_text().strip().endswith("config-a")  # the record is kept


def test_the_cli_refuses_to_start_a_home_on_another_folder_but_always_stops(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pin_config_dir(home, record=True)
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(tmp_path / "config-b"))
    for argv in (["service", "start"], ["ui", "airflow"], ["serve", "--use-case", "churn"]):
        assert main(argv) == 2, argv
        assert "runs the use cases of" in capsys.readouterr().err
    assert not (home / "service" / "api-server.pid").exists()  # nothing was started
    assert main(["service", "stop"]) == 0
    assert "nothing was running" in capsys.readouterr().out
