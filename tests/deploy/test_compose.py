"""The production stack, checked statically: docker-compose.yaml, .env.example, docker/.

Nothing here needs Docker. The file must be a valid Compose file, every credential must come
from .env (and .env.example must hold none), Airflow must run Celery with two workers against
the production settings, and each service must run the process the platform expects.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.compose_contract import (
    InterpolationError,
    compose_services,
    compose_strings,
    interpolate,
    interpolated_variables,
    load_compose,
    read_env_file,
    render,
    variable_defaults,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
POSTGRES_INIT = REPO / "docker" / "postgres-init" / "01-databases.sql"
PACKAGE = REPO / "include" / "mlops"
# The Compose specification's JSON schema (compose-spec/compose-spec, Apache-2.0, see the LICENSE
# beside it), kept in the repository so this check runs on every clone.
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"

# .env.example entries that may hold a real-looking value, and why it is not a secret.
# Everything else must be empty or start with "change-me".
NON_SECRET = {
    "POSTGRES_USER": "a database role name; the password is POSTGRES_PASSWORD",
    "AIRFLOW_ADMIN_USERNAME": "a login name; the password is AIRFLOW_ADMIN_PASSWORD",
}
# A variable named like this is a credential, whatever the allowlist says.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|WEBHOOK|FERNET|_KEY)(_ID|_URL)?$")
# A variable named like this may default to nothing at all, never to a value.
CREDENTIAL_NAME = re.compile(r"USER|PASSWORD|SECRET|TOKEN|WEBHOOK|FERNET|KEY")

# The settings without which the platform silently falls back to its embedded default.
PRODUCTION_SETTINGS = ("MLOPS_LAKE_URI", "MLOPS_LANDING_URI", "MLOPS_FEATURE_STORE", "MLFLOW_TRACKING_URI")

EXPECTED_COMMANDS = [
    pytest.param("airflow-api-server", ["airflow", "api-server"], id="api-server"),
    pytest.param("airflow-scheduler", ["airflow", "scheduler"], id="scheduler"),
    pytest.param("airflow-dag-processor", ["airflow", "dag-processor"], id="dag-processor"),
    pytest.param("airflow-triggerer", ["airflow", "triggerer"], id="triggerer"),
]


# Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return compose_services(COMPOSE)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def rendered(env_example: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose` would see it with .env copied from .env.example."""
    return render(COMPOSE, env_example)


def airflow_services(services: dict[str, Any]) -> dict[str, Any]:
    """The services that run an Airflow component (the image's `airflow ...` commands)."""
    return {
        name: spec
        for name, spec in services.items()
        if spec["command"][:1] == ["airflow"] or "AIRFLOW__CORE__EXECUTOR" in spec["environment"]
    }


def worker_services(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if s["command"][:3] == ["airflow", "celery", "worker"]}


def s3_bucket(uri: str) -> str:
    """The bucket of an s3:// URI, with or without a `conn_id@` in front of it."""
    match = re.fullmatch(r"s3://(?:[^@/]+@)?([^/]+)(/.*)?", uri)
    assert match, f"{uri!r} is not an s3:// URI"
    return match.group(1)


# The file itself -----------------------------------------------------------------------------


def _schema_errors(document: Any) -> list[str]:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    ]


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    errors = _schema_errors(compose)
    assert not errors, "docker-compose.yaml breaks the Compose spec:\n" + "\n".join(errors)


def test_compose_file_stays_valid_once_interpolated(rendered: dict[str, Any]) -> None:
    errors = _schema_errors(rendered)
    assert not errors, "docker-compose.yaml, interpolated with .env.example, breaks the spec:\n" + "\n".join(
        errors
    )


def test_airflow_services_share_one_anchor() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert re.search(r"^x-airflow-common: &airflow-common$", text, re.MULTILINE)
    assert re.search(r"^\s+<<: \*airflow-common$", text, re.MULTILINE)


# Credentials: all from .env, none in .env.example -------------------------------------------


def _variables_used(compose: dict[str, Any]) -> set[str]:
    return set().union(*(interpolated_variables(value) for value in compose_strings(compose)))


def test_every_interpolated_variable_is_declared_in_env_example(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    used = _variables_used(compose)
    missing = sorted(used - env_example.keys())
    assert not missing, f"interpolated in docker-compose.yaml but not declared in .env.example: {missing}"
    unused = sorted(env_example.keys() - used)
    assert not unused, f"declared in .env.example but docker-compose.yaml never uses them: {unused}"


def test_env_example_satisfies_every_required_variable(env_example: dict[str, str]) -> None:
    # Raises InterpolationError, naming the variable, as `docker compose` would refuse to start.
    render(COMPOSE, env_example)
    # And a missing one is refused, as `docker compose` does.
    without_password = {k: v for k, v in env_example.items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        render(COMPOSE, without_password)


def test_env_example_documents_every_variable() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    undocumented = [
        line.split("=", 1)[0]
        for i, line in enumerate(lines)
        if line and not line.startswith("#") and (i == 0 or not lines[i - 1].startswith("#"))
    ]
    assert not undocumented, f".env.example: no comment line above {undocumented}"


def test_env_example_holds_no_real_secret(env_example: dict[str, str]) -> None:
    stale = sorted(NON_SECRET.keys() - env_example.keys())
    assert not stale, f"NON_SECRET allowlist names variables .env.example no longer has: {stale}"
    misfiled = sorted(name for name in NON_SECRET if SECRET_NAME.search(name))
    assert not misfiled, f"NON_SECRET allowlists variables named like credentials: {misfiled}"
    offending = {
        name: value
        for name, value in env_example.items()
        if value and not value.startswith("change-me") and name not in NON_SECRET
    }
    assert not offending, (
        f".env.example values must be empty or 'change-me-...' placeholders (or allowlisted in NON_SECRET "
        f"in {Path(__file__).name}): {sorted(offending)}"
    )


def test_credentials_have_no_default_in_the_compose_file(compose: dict[str, Any]) -> None:
    defaults: dict[str, list[str]] = {}
    for value in compose_strings(compose):
        for name, given in variable_defaults(value).items():
            defaults.setdefault(name, []).extend(given)
    offending = {
        name: values
        for name, values in defaults.items()
        if CREDENTIAL_NAME.search(name) and any(value != "" for value in values)
    }
    assert not offending, f"credentials must come from .env, not defaults in docker-compose.yaml: {offending}"


def test_no_service_defaults_to_admin_admin(
    services: dict[str, Any], rendered: dict[str, Any], env_example: dict[str, str]
) -> None:
    # SimpleAuthManager's built-in user list is "admin:admin": every Airflow service must replace it.
    for name, spec in airflow_services(services).items():
        users = spec["environment"].get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS")
        assert users, (
            f"{name}: AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS unset, so Airflow's admin:admin applies"
        )
        assert users.startswith("${") and ":?" in users, f"{name}: the Airflow user must come from .env"
        all_admins = spec["environment"].get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        assert str(all_admins).lower() == "false", f"{name}: SIMPLE_AUTH_MANAGER_ALL_ADMINS disables login"
    assert (env_example["AIRFLOW_ADMIN_USERNAME"], env_example["AIRFLOW_ADMIN_PASSWORD"]) != (
        "admin",
        "admin",
    )
    assert env_example["AIRFLOW_ADMIN_PASSWORD"].startswith("change-me")
    for name, spec in rendered["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            # admin:admin as a user list entry or in a URL, not as the tail of "mlops-admin:admin".
            assert not re.search(r"(?<![\w.-])admin:admin(?![\w.-])", str(value)), (
                f"{name}: {key} is admin:admin"
            )
            if re.search(r"PASSWORD|SECRET", key):
                assert str(value).lower() not in {"admin", "airflow", "password", "minioadmin"}, (
                    f"{name}: {key} is a well-known default"
                )


def test_no_literal_secret_in_the_compose_file(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET_NAME.search(key) and value not in (None, ""):
                assert str(value).startswith("${"), f"{name}: {key} must be interpolated from .env"
            # Passwords inside URLs (scheme://user:password@host) and JSON connections as well.
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", str(value)):
                assert password.startswith("${"), f"{name}: {key} has a literal password in a URL"
            if str(value).lstrip().startswith("{"):
                for field in ("login", "password"):
                    match = re.search(rf'"{field}": "([^"]*)"', str(value))
                    assert match is None or match.group(1).startswith("${"), f"{name}: {key} {field}"


# Airflow: Celery, workers, one consistent environment ----------------------------------------


def test_airflow_uses_the_celery_executor(services: dict[str, Any]) -> None:
    airflow = airflow_services(services)
    assert set(airflow) >= {
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    for name, spec in airflow.items():
        assert spec["environment"].get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
        assert spec["environment"].get("AIRFLOW__CELERY__BROKER_URL") == "redis://redis:6379/0", name
        assert spec["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
        assert spec["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert spec["environment"].get("AIRFLOW__CORE__LOAD_EXAMPLES") == "False", name


def test_at_least_two_celery_workers(services: dict[str, Any]) -> None:
    workers = worker_services(services)
    assert sum(spec["replicas"] for spec in workers.values()) >= 2, f"Celery workers: {workers}"


def test_airflow_components_agree_on_shared_settings(services: dict[str, Any]) -> None:
    # Tokens, connections and platform settings must be identical everywhere, or a task that
    # works on one worker fails on the other (or the API server rejects the workers' tokens).
    airflow = airflow_services(services)
    reference = airflow["airflow-scheduler"]["environment"]
    shared = [key for key in reference if key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "MLOPS_", "MLFLOW_"))]
    for name, spec in airflow.items():
        differs = sorted(key for key in shared if spec["environment"].get(key) != reference[key])
        assert not differs, f"{name} differs from airflow-scheduler on {differs}"
    assert reference["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert reference["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/mlops/dags"
    assert reference["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/mlops/plugins"
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert reference[key].startswith("${") and ":?" in reference[key], f"{key} must come from .env"


def _variables_the_package_reads() -> set[str]:
    # The whole package, not only settings.py and alerts.py: MLOPS_MLFLOW_UI_URL (links to runs)
    # is read where the link is built, in the training pipeline.
    names: set[str] = set()
    for source in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r"\bMLOPS_[A-Z0-9_]*[A-Z0-9]\b", source.read_text(encoding="utf-8")))
    return names


def test_every_mlops_variable_is_one_the_platform_reads(services: dict[str, Any]) -> None:
    read = _variables_the_package_reads()
    assert {"MLOPS_LAKE_URI", "MLOPS_SLACK_WEBHOOK_URL"} <= read, "the grep over include/mlops found nothing"
    for name, spec in airflow_services(services).items():
        unknown = sorted(key for key in spec["environment"] if key.startswith("MLOPS_") and key not in read)
        assert not unknown, f"{name}: no module in include/mlops reads {unknown} (a typo, or a dead setting)"


def test_production_settings_are_set(services: dict[str, Any]) -> None:
    for name, spec in airflow_services(services).items():
        env = spec["environment"]
        missing = [key for key in PRODUCTION_SETTINGS if not env.get(key)]
        assert not missing, f"{name}: {missing} unset, so it falls back to the embedded default"
        assert env["MLOPS_LAKE_URI"] == "s3://aws_lake@mlops-lake/lake", name
        assert env["MLOPS_LANDING_URI"] == "s3://aws_lake@mlops-lake/landing", name
        assert env["MLOPS_FEATURE_STORE"] == "postgres", name
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env.get("MLOPS_MLFLOW_UI_URL") == "http://localhost:5000", name
        # Each connection a setting names exists as an AIRFLOW_CONN_* variable.
        lake_conn = re.fullmatch(r"s3://([^@/]+)@.*", env["MLOPS_LAKE_URI"])
        assert lake_conn, name
        assert f"AIRFLOW_CONN_{lake_conn.group(1).upper()}" in env, name
        fs_conn = env.get("MLOPS_FEATURE_STORE_CONN_ID", "mlops_feature_store")
        assert env.get(f"AIRFLOW_CONN_{fs_conn.upper()}", "").startswith("postgresql://"), name
        assert env[f"AIRFLOW_CONN_{fs_conn.upper()}"].endswith("@postgres:5432/features"), name
        # Set in production, it would bypass the MLflow server's artifact proxy.
        assert "MLOPS_MLFLOW_ARTIFACTS_URI" not in env, name


def test_the_platform_loads_the_production_settings(
    rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops.core.settings import load_settings

    env = rendered["services"]["airflow-worker"]["environment"]
    for key in [k for k in os.environ if k.startswith("MLOPS_") or k == "MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("MLOPS_") or key == "MLFLOW_TRACKING_URI":
            monkeypatch.setenv(key, str(value))
    settings = load_settings()
    assert not settings.embedded
    assert settings.lake_uri == "s3://aws_lake@mlops-lake/lake"
    assert settings.landing_uri == "s3://aws_lake@mlops-lake/landing"
    assert settings.feature_store == "postgres"
    assert settings.feature_store_conn_id == "mlops_feature_store"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    # No artifact root of our own: MLflow's server decides (proxied to S3).
    assert settings.mlflow_artifacts_uri is None
    assert settings.config_dir == Path("/opt/mlops/config")


def test_lake_connection_is_valid_json(rendered: dict[str, Any], env_example: dict[str, str]) -> None:
    conn = json.loads(rendered["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_AWS_LAKE"])
    assert conn == {
        "conn_type": "aws",
        "login": env_example["LAKE_ACCESS_KEY_ID"],
        "password": env_example["LAKE_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"},
    }


# Processes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "argv"), EXPECTED_COMMANDS)
def test_airflow_component_commands(services: dict[str, Any], service: str, argv: list[str]) -> None:
    assert services[service]["command"] == argv
    assert services[service]["entrypoint"] == [], f"{service}: the image's entrypoint must run the command"


def test_workers_run_celery_workers(services: dict[str, Any]) -> None:
    workers = {name: s for name, s in services.items() if name.startswith("airflow-worker")}
    assert workers, "no airflow-worker service"
    for name, spec in workers.items():
        assert spec["command"] == ["airflow", "celery", "worker"], name


def test_airflow_init_migrates_the_database_once(services: dict[str, Any], compose: dict[str, Any]) -> None:
    script = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert compose["services"]["airflow-init"].get("restart") == "no"
    for name in airflow_services(services):
        if name == "airflow-init":
            continue
        condition = compose["services"][name]["depends_on"].get("airflow-init", {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} may start before the migration"


def test_mlflow_serves_artifacts_with_a_postgresql_backend(services: dict[str, Any]) -> None:
    spec = services["mlflow"]
    argv = spec["command"]
    assert argv[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in argv

    def option(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv else None

    backend = option("--backend-store-uri") or spec["environment"].get("MLFLOW_BACKEND_STORE_URI") or ""
    assert backend.startswith("postgresql"), f"MLflow backend store: {backend!r}"
    assert backend.endswith("@postgres:5432/mlflow")
    assert option("--artifacts-destination") == "s3://mlops-lake/mlflow"
    assert option("--host") == "0.0.0.0"
    assert option("--port") == "5000"
    assert spec["environment"].get("MLFLOW_S3_ENDPOINT_URL") == "http://minio:9000"
    # The workers reach it as mlflow:5000; its DNS-rebinding guard must accept that Host header.
    assert "mlflow:5000" in (option("--allowed-hosts") or "").split(",")


# Wiring between services ---------------------------------------------------------------------


def test_depends_on_conditions_can_be_met(compose: dict[str, Any]) -> None:
    all_services = compose["services"]
    for name, spec in all_services.items():
        for dependency, rule in (spec.get("depends_on") or {}).items():
            assert dependency in all_services, f"{name} depends on unknown service {dependency!r}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in all_services[dependency], f"{name} waits for {dependency}'s health"
            if condition == "service_completed_successfully":
                assert all_services[dependency].get("restart") == "no", f"{dependency} must be a one-shot"


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if spec.get("restart") != "no":
            assert "healthcheck" in spec, f"{name} has no healthcheck"


def test_databases_and_bucket_exist_for_every_uri(services: dict[str, Any]) -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+);", POSTGRES_INIT.read_text(encoding="utf-8")))
    assert created == {"airflow", "mlflow", "features"}
    env = services["airflow-scheduler"]["environment"]
    uris = [
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        env["AIRFLOW__CELERY__RESULT_BACKEND"],
        env["AIRFLOW_CONN_MLOPS_FEATURE_STORE"],
        services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"],
    ]
    for uri in uris:
        database = uri.rsplit("/", 1)[-1]
        assert database in created, f"{uri}: database {database!r} is not created by {POSTGRES_INIT.name}"

    buckets = set(
        re.findall(r"mc mb --ignore-existing local/([a-z0-9.-]+)", services["minio-init"]["command"][-1])
    )
    assert buckets == {"mlops-lake"}
    argv = services["mlflow"]["command"]
    s3_uris = [
        env["MLOPS_LAKE_URI"],
        env["MLOPS_LANDING_URI"],
        env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"],
        argv[argv.index("--artifacts-destination") + 1],
    ]
    for uri in s3_uris:
        assert s3_bucket(uri) in buckets, f"{uri}: bucket not created by minio-init"


def test_image_holds_what_the_services_point_at(services: dict[str, Any]) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert "pip install -r /opt/mlops/requirements.lock" in dockerfile
    assert "ENV" in dockerfile and "AIRFLOW_HOME=/opt/airflow" in dockerfile
    for folder in ("include", "dags", "plugins", "config"):
        assert f"COPY {folder}/ /opt/mlops/{folder}/" in dockerfile, folder
        assert (REPO / folder).is_dir(), f"{folder}/ is copied into the image but missing in the checkout"
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}, "the image must end on a non-root user"
    env = services["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "MLOPS_CONFIG_DIR"):
        assert env[key].startswith("/opt/mlops/"), key


# The contract helpers themselves -------------------------------------------------------------


def test_compose_services_reads_commands_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "x-common: &common\n"
        "  environment: &env\n"
        "    A: ${A:?set it}\n"
        "    FLAG: true\n"
        "services:\n"
        "  one:\n"
        "    <<: *common\n"
        "    command: airflow celery worker --queues 'a b'\n"
        "    deploy: {replicas: 3}\n"
        "  two:\n"
        "    command: [mlflow, server, --port, 5000]\n"
        '    environment: ["B=$${HOME}", C]\n',
        encoding="utf-8",
    )
    assert compose_services(path) == {
        "one": {
            "command": ["airflow", "celery", "worker", "--queues", "a b"],
            "entrypoint": [],
            "environment": {"A": "${A:?set it}", "FLAG": "true"},
            "replicas": 3,
        },
        "two": {
            "command": ["mlflow", "server", "--port", "5000"],
            "entrypoint": [],
            "environment": {"B": "$${HOME}", "C": None},
            "replicas": 1,
        },
    }


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        pytest.param("${A}", {"A": "x"}, "x", id="plain"),
        pytest.param("$A-$$A", {"A": "x"}, "x-$A", id="bare-and-escape"),
        pytest.param("${A:-d}|${B:-d}|${C-d}", {"A": "x", "C": ""}, "x|d|", id="defaults"),
        pytest.param("${A:+set}|${B:+set}", {"A": "x"}, "set|", id="alternative"),
        pytest.param("${A:?must}", {"A": "x"}, "x", id="required-present"),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


@pytest.mark.parametrize(
    ("text", "env"),
    [
        pytest.param("${A:?set it in .env}", {}, id="absent"),
        pytest.param("${A:?set it in .env}", {"A": ""}, id="empty-with-colon"),
        pytest.param("${A?set it in .env}", {}, id="absent-without-colon"),
    ],
)
def test_interpolate_refuses_a_missing_required_variable(text: str, env: dict[str, str]) -> None:
    with pytest.raises(InterpolationError, match="A is missing"):
        interpolate(text, env)


def test_interpolated_variables_skips_escapes() -> None:
    assert interpolated_variables("$$HOME ${A:?x} $B $${C} ${D:-}") == {"A", "B", "D"}
