"""The plugin's app: built only in the API server, serving the pages and the lake viewer behind auth."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from mlops.orchestration.ui import app as ui_app
from mlops.orchestration.ui import records

ROOT = Path(__file__).resolve().parents[3]
ORCHESTRATION = ROOT / "include" / "mlops" / "orchestration"


@pytest.mark.parametrize(
    ("argv", "serves"),
    [
        pytest.param(["/usr/bin/airflow", "api-server", "--port", "8080"], True, id="api-server"),
        pytest.param(["/venv/lib/airflow/__main__.py", "api-server"], True, id="python-m-airflow-api-server"),
        pytest.param(["fastapi", "dev", "src/airflow/api_fastapi/main.py"], True, id="fastapi-dev"),
        pytest.param(["/usr/bin/airflow", "scheduler"], False, id="scheduler"),
        pytest.param(["/usr/bin/airflow", "dag-processor"], False, id="dag-processor"),
        pytest.param(["/usr/bin/airflow", "triggerer"], False, id="triggerer"),
        pytest.param(["/usr/bin/airflow", "celery", "worker"], False, id="celery-worker"),
        # airflow standalone starts `airflow api-server` as a child process: that one serves.
        pytest.param(["/usr/bin/airflow", "standalone"], False, id="standalone-parent"),
        pytest.param(["/usr/bin/airflow", "tasks", "run", "api-server"], False, id="task-named-api-server"),
        pytest.param(["pytest"], False, id="pytest"),
    ],
)
def test_serves_api(argv: list[str], serves: bool) -> None:
    assert ui_app.serves_api(argv) is serves


def _load_plugin(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[Any, list[Any]]:
    built: list[Any] = []

    def spy() -> Any:
        built.append(object())
        return built[-1]

    monkeypatch.setattr(ui_app, "create_app", spy)
    monkeypatch.setattr("sys.argv", argv)
    path = ROOT / "plugins" / "mlops_plugin.py"
    spec = importlib.util.spec_from_file_location("mlops_plugin_under_ui_test", path)
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin.MLOpsPlugin, built


@pytest.mark.parametrize("process", ["scheduler", "dag-processor", "triggerer", "celery"])
def test_the_plugin_builds_no_app_outside_the_api_server(
    monkeypatch: pytest.MonkeyPatch, process: str
) -> None:
    plugin, built = _load_plugin(monkeypatch, ["airflow", process])
    assert built == [] and plugin.fastapi_apps == []
    assert plugin.global_operator_extra_links  # the task buttons are there in every process


def test_the_plugin_builds_its_app_in_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin, built = _load_plugin(monkeypatch, ["airflow", "api-server"])
    assert len(built) == 1
    assert [(a["app"], a["url_prefix"]) for a in plugin.fastapi_apps] == [(built[0], "/mlops")]


def _imports(path: Path) -> set[str]:
    """The mlops.orchestration modules ``path`` imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlops.orchestration"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlops.orchestration"))
    return found


def test_orchestration_modules_import_each_other_without_a_cycle() -> None:
    package = ROOT / "include"
    modules = {".".join(p.relative_to(package).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ORCHESTRATION.rglob("*.py")}  # fmt: skip
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}  # fmt: skip
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path[path.index(name) :], name))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


@pytest.fixture
def client(fresh_home: Path) -> Any:
    from fastapi.testclient import TestClient

    records.CACHE.clear()
    return TestClient(ui_app.create_app(reader=lambda: None))


def test_pages_are_served_with_their_security_headers(client: Any, fresh_home: Path) -> None:
    from mlops.core.lake import get_lake
    from tests.unit.orchestration.ui_history import write_history

    write_history(get_lake(), "churn", 5)
    response = client.get("/ui/churn/quality")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == ui_app.PAGE_HEADERS["Content-Security-Policy"]
    assert 'id="page-quality"' in response.text
    assert client.get("/ui/churn/nope").status_code == 404
    assert client.get("/ui/nobody/overview").status_code == 404
    redirect = client.get("/ui/churn", follow_redirects=False)
    assert redirect.status_code in {302, 307} and redirect.headers["location"] == "/mlops/ui/churn/overview"


@pytest.mark.parametrize("name", ["ui.css", "ui.js"])
def test_static_files_are_served(client: Any, name: str) -> None:
    response = client.get(f"/ui/static/{name}")
    assert response.status_code == 200 and response.content
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_lake_viewer_serves_reports_and_refuses_paths_out_of_the_lake(client: Any) -> None:
    from mlops.core import layout
    from mlops.core.lake import get_lake

    report = layout.drift_report("churn", "2026-01-01")
    get_lake().write_bytes(report, b"<html>report</html>")
    ok = client.get("/lake/view", params={"path": report})
    assert ok.status_code == 200 and ok.headers["content-security-policy"].startswith("sandbox")
    assert client.get("/lake/view", params={"path": "../etc/passwd.html"}).status_code == 400
    assert client.get("/lake/view", params={"path": "reports/x.parquet"}).status_code == 400
    assert client.get("/lake/view", params={"path": "reports/missing.html"}).status_code == 404


def test_without_an_airflow_user_every_page_is_refused(fresh_home: Path) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(ui_app.create_app())
    for path in ("/ui", "/ui/churn/overview", "/lake/view?path=reports/x.html"):
        assert client.get(path, follow_redirects=False).status_code in {401, 403}, path
