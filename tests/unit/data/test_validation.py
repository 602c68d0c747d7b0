from __future__ import annotations

import json
from pathlib import Path

from mlops.core.config import load_use_cases
from mlops.data.validation import derive_suite, suite_path

ROOT = Path(__file__).resolve().parents[3]


def test_stored_suites_match_the_configs() -> None:
    good, _ = load_use_cases(ROOT / "config")
    for name, use_case in good.items():
        stored = json.loads(suite_path(ROOT / "config", name).read_text())
        assert stored == derive_suite(use_case), f"run `python -m mlops suites` for {name}"
