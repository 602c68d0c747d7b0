"""The plugin's lake viewer and the REST API refuse whoever is not an Airflow user, on a running API server."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from mlops.core import layout
from mlops.core.lake import Lake
from tests.integration.stack import free_port
from tests.support.service import RunningService, clean_env, config_with

# Starts the whole platform service (API server, scheduler, DAG processor) on a free port.
pytestmark = pytest.mark.service
REPORT = layout.drift_report("churn", "2026-01-05")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("security-home")
    config = config_with(
        home, {"churn": {"schedules.data": None, "training.schedule": None, "drift.schedule": None}}
    )
    lake = Lake(f"file://{home / 'lake'}")
    lake.write_bytes(REPORT, b"<html><script>var values=[1,2,3]</script></html>")
    port = free_port()
    env = clean_env(
        {"MLOPS_HOME": str(home), "MLOPS_CONFIG_DIR": str(config), "MLOPS_SERVICE_PORT": str(port)}
    )
    svc = RunningService(home=home, env=env, port=port)
    started = svc.cli("service", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        svc.login()
        yield svc
    finally:
        svc.cli("service", "stop")


def _forged() -> str:
    now = int(time.time())
    claims = {
        "sub": "admin",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "aud": "apache-airflow",
    }
    return jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS512")


def _view(svc: RunningService, path: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{svc.url}/mlops/lake/view", params={"path": path}, headers=headers, timeout=30)


@pytest.mark.parametrize(
    "token, refused",
    [
        pytest.param(None, {401}, id="no-token"),
        pytest.param("forged", {401, 403}, id="forged-token"),
        pytest.param("garbage", {401, 403}, id="garbage-token"),
    ],
)
def test_lake_viewer_refuses_strangers(service: RunningService, token: str | None, refused: set[int]) -> None:
    value = {"forged": _forged(), "garbage": "not.a.jwt"}.get(token or "")
    response = _view(service, REPORT, value)
    assert response.status_code in refused
    assert b"values" not in response.content


def test_lake_viewer_serves_reports_sandboxed_to_users(service: RunningService) -> None:
    response = _view(service, REPORT, service.token)
    assert response.status_code == 200 and b"values" in response.content
    csp = response.headers["Content-Security-Policy"]
    assert "sandbox" in csp and "connect-src 'none'" in csp and "allow-same-origin" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("../../etc/passwd.json", id="parent-steps"),
        pytest.param("reports/../../../root/x.html", id="parent-steps-inside"),
        pytest.param("s3://other-bucket/reports/x.html", id="other-bucket"),
        pytest.param("file:///etc/hosts.json", id="other-scheme"),
        pytest.param(".hidden/x.json", id="hidden"),
        pytest.param("raw/churn/2026-01-05/batch.csv", id="not-a-report"),
    ],
)
def test_lake_viewer_refuses_paths_outside_the_reports(service: RunningService, path: str) -> None:
    response = _view(service, path, service.token)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "token", [pytest.param(None, id="no-token"), pytest.param("forged", id="forged-token")]
)
def test_rest_api_refuses_strangers(service: RunningService, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {_forged()}"} if token else {}
    listed = requests.get(f"{service.url}/api/v2/dags", headers=headers, timeout=30)
    triggered = requests.post(
        f"{service.url}/api/v2/dags/churn_data/dagRuns",
        json={"logical_date": None, "conf": {"interval": "2026-01-05"}},
        headers=headers,
        timeout=30,
    )
    assert listed.status_code in {401, 403} and triggered.status_code in {401, 403}
    assert service.api("GET", "/dags/churn_data/dagRuns").json()["total_entries"] == 0


def test_secret_files_of_the_service_are_private(service: RunningService) -> None:
    for path in (service.home / "service").glob("*"):
        if path.suffix in {".secret", ".json"}:
            assert path.stat().st_mode & 0o077 == 0, path
