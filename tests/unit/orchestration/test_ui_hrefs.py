"""Every href the pages and task buttons take from a record: http(s), the lake viewer, or nothing."""

from __future__ import annotations

import pytest

from mlops.orchestration.ui.hrefs import LAKE_VIEW_PREFIX, browser_url, safe_lake_path

ROOT = "s3://aws_default@lake/prod"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("JaVaScRiPt:alert(1)", id="javascript-mixed-case"),
        pytest.param(" javascript:alert(1)", id="leading-space"),
        pytest.param("java\tscript:alert(1)", id="tab-inside"),
        pytest.param("\x01javascript:alert(1)", id="control-character"),
        pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
        pytest.param("vbscript:msgbox(1)", id="vbscript"),
        pytest.param("//evil.example/x", id="protocol-relative"),
        pytest.param("http://", id="no-host"),
        pytest.param("https:\\\\evil.example", id="backslashes"),
        pytest.param("http://[::1", id="unparseable-host"),
        pytest.param("ftp://files.example/a", id="other-scheme"),
        pytest.param("file:///etc/passwd", id="local-file"),
        pytest.param(f"{ROOT}/../secrets.json", id="lake-parent-step"),
        pytest.param(f"{ROOT}/reports/.hidden.html", id="lake-hidden-file"),
        pytest.param("s3://aws_default@other-bucket/x.html", id="other-bucket"),
        pytest.param(f"{ROOT}-other/x.html", id="sibling-of-the-root"),
        pytest.param(f"{LAKE_VIEW_PREFIX}../../etc/passwd", id="viewer-parent-step"),
        pytest.param(f"{LAKE_VIEW_PREFIX}a%2F..%2F..%2Fx", id="viewer-encoded-parent-step"),
        pytest.param(f"{LAKE_VIEW_PREFIX}javascript:alert(1)", id="viewer-with-a-scheme"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(42, id="not-a-string"),
    ],
)
def test_a_hostile_or_foreign_value_gives_no_link(value: object) -> None:
    assert browser_url(value, ROOT) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("https://mlflow.example/#/runs/1", "https://mlflow.example/#/runs/1", id="https"),
        pytest.param("HTTP://mlflow.example/x", "HTTP://mlflow.example/x", id="http-upper-case"),
        pytest.param(
            f"{ROOT}/reports/churn/2026-01-02/drift_report.html",
            f"{LAKE_VIEW_PREFIX}reports/churn/2026-01-02/drift_report.html",
            id="lake-uri",
        ),
        pytest.param(f"{ROOT}/a/b#c?.html", f"{LAKE_VIEW_PREFIX}a/b%23c%3F.html", id="lake-uri-quoted"),
        pytest.param(f"{LAKE_VIEW_PREFIX}a/b.html", f"{LAKE_VIEW_PREFIX}a/b.html", id="viewer-link"),
    ],
)
def test_web_urls_and_lake_files_are_linked(value: str, expected: str) -> None:
    assert browser_url(value, ROOT + "/") == expected


def test_a_quote_in_a_web_url_is_left_to_the_template_to_escape() -> None:
    # Allowed as a URL; the templates escape attribute values (tests/unit/orchestration/test_ui_pages.py).
    url = 'https://x.example/"onmouseover="alert(1)'
    assert browser_url(url, ROOT) == url


@pytest.mark.parametrize("path", ["../x", "a/./b", "~root/x", ".env", "a/b:c", "a\\b", "", "/"])
def test_safe_lake_path_refuses_paths_out_of_the_lake(path: str) -> None:
    with pytest.raises(ValueError, match="not a path inside the lake"):
        safe_lake_path(path)


def test_safe_lake_path_normalises_slashes() -> None:
    assert safe_lake_path("/reports//churn/x.html") == "reports/churn/x.html"
