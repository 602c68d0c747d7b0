"""The production stack, checked statically: docker-compose.yaml, .env.example, docker/.

Nothing here needs Docker. The file must be a valid Compose file, every credential must come
from .env (and .env.example must hold none), each service must receive only the secrets its role
needs and publish ports on 127.0.0.1 only, Airflow must run Celery with two workers against the
production settings, and each service must run the process the platform expects, behind the
start-up check (docker/check-secrets.sh), which is run here for real.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
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
    secret_rules,
    service_variables,
    variable_defaults,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
POSTGRES_INIT = REPO / "docker" / "postgres-init" / "01-databases.sh"
CHECK_SECRETS = REPO / "docker" / "check-secrets.sh"
# Where every container has the start-up check (baked into our image, mounted into the others),
# and the entrypoint prefix that runs it before the service's own entrypoint and command.
CHECK_IN_CONTAINER = "/usr/local/bin/check-secrets"
CHECK_PREFIX = ["/bin/sh", CHECK_IN_CONTAINER]
CHECK_MOUNT = f"./docker/check-secrets.sh:{CHECK_IN_CONTAINER}:ro"
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

LAKE_KEYS = {"LAKE_ACCESS_KEY_ID", "LAKE_SECRET_ACCESS_KEY"}
# The .env secrets each service receives, and why (docs/production-stack.md, "Secrets", says the
# same in prose). Anything more is a privilege the role does not need.
SECRETS_BY_SERVICE: dict[str, set[str]] = {
    # The superuser's password, and the per-purpose roles' passwords for its init script.
    "postgres": {
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "CELERY_DB_PASSWORD",
        "MLFLOW_DB_PASSWORD",
        "FEATURES_DB_PASSWORD",
    },
    "redis": set(),
    "minio": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
    # Creates the bucket as root, and the lake user with its keys.
    "minio-init": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", *LAKE_KEYS},
    # Its own database, and the lake keys for the artifacts it proxies.
    "mlflow": {"MLFLOW_DB_PASSWORD", *LAKE_KEYS},
    # `airflow db migrate`, and the password it writes for SimpleAuthManager.
    "airflow-init": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"},
    # Metadata (decrypting connections and variables for the tasks), issues and checks JWTs,
    # signs log requests, reads remote logs and serves the lake viewer.
    "airflow-api-server": {
        "AIRFLOW_DB_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        *LAKE_KEYS,
    },
    # Metadata; signs each task's Execution API token; reads the Celery task states.
    "airflow-scheduler": {
        "AIRFLOW_DB_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "CELERY_DB_PASSWORD",
    },
    # Metadata; runs failure callbacks of tasks that died, which alert through the lake and Slack.
    "airflow-dag-processor": {
        "AIRFLOW_DB_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        *LAKE_KEYS,
        "MLOPS_SLACK_WEBHOOK_URL",
    },
    # Metadata (encrypted trigger arguments); serves its log server and uploads trigger logs.
    "airflow-triggerer": {"AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", *LAKE_KEYS},
    # No metadata URL, Fernet key or JWT secret: the Execution API with the scheduler's token.
    # Celery task states, its log server's key, and what the tasks use.
    "airflow-worker": {
        "CELERY_DB_PASSWORD",
        "AIRFLOW_API_SECRET_KEY",
        *LAKE_KEYS,
        "FEATURES_DB_PASSWORD",
        "MLOPS_SLACK_WEBHOOK_URL",
    },
    # Writes its request log to the lake; models come through the MLflow server's artifact proxy.
    "model-server": {*LAKE_KEYS},
}
# Host addresses a published port may bind: this machine only.
LOOPBACK = {"127.0.0.1", "::1"}

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


@pytest.fixture(scope="module")
def good_env(env_example: dict[str, str]) -> dict[str, str]:
    """.env as an operator fills it in: every placeholder replaced by a freshly generated value."""
    from cryptography.fernet import Fernet

    env = dict(env_example)
    for name, value in env_example.items():
        if not value.startswith("change-me"):
            continue
        if name == "AIRFLOW_FERNET_KEY":
            env[name] = Fernet.generate_key().decode()
        elif name.endswith(("_USER", "_KEY_ID")):
            env[name] = f"mlops-{secrets.token_hex(4)}"
        else:
            env[name] = secrets.token_hex(32)
    return env


def is_secret(name: str) -> bool:
    """An .env variable that is a credential (NON_SECRET allowlists the harmless ones)."""
    return bool(CREDENTIAL_NAME.search(name)) and name not in NON_SECRET


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


# Least privilege: each service receives only the secrets its role needs -----------------------


def test_secrets_table_names_every_service(services: dict[str, Any], env_example: dict[str, str]) -> None:
    assert set(SECRETS_BY_SERVICE) == set(services), "SECRETS_BY_SERVICE must say what each service receives"
    unknown = sorted(set().union(*SECRETS_BY_SERVICE.values()) - {n for n in env_example if is_secret(n)})
    assert not unknown, (
        f"SECRETS_BY_SERVICE names variables .env.example does not declare as secrets: {unknown}"
    )


@pytest.mark.parametrize("service", sorted(SECRETS_BY_SERVICE))
def test_each_service_receives_only_the_secrets_its_role_needs(service: str) -> None:
    received = {name for name in service_variables(COMPOSE)[service] if is_secret(name)}
    expected = SECRETS_BY_SERVICE[service]
    extra, missing = sorted(received - expected), sorted(expected - received)
    assert not extra, f"{service} receives {extra}, which its role does not need"
    assert not missing, f"{service} lacks {missing} (or SECRETS_BY_SERVICE is out of date)"


def test_only_postgres_holds_the_superuser() -> None:
    for name, variables in service_variables(COMPOSE).items():
        if name == "postgres":
            continue
        superuser = variables & {"POSTGRES_USER", "POSTGRES_PASSWORD"}
        assert not superuser, f"{name} receives the PostgreSQL superuser's {sorted(superuser)}"


def test_workers_hold_no_metadata_access(services: dict[str, Any]) -> None:
    # Airflow 3 workers reach Airflow through the Execution API with the token the scheduler
    # signed for each task: a worker holding these could read or forge anything in Airflow.
    for name, spec in worker_services(services).items():
        env = spec["environment"]
        held = sorted(
            key
            for key in (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                "AIRFLOW__CORE__FERNET_KEY",
                "AIRFLOW__API_AUTH__JWT_SECRET",
            )
            if key in env
        )
        assert not held, f"{name} holds {held}"
        assert "AIRFLOW_DB_PASSWORD" not in service_variables(COMPOSE)[name], name


def test_every_database_url_logs_in_as_its_databases_role(services: dict[str, Any]) -> None:
    roles = _provisioned_roles()
    urls = _database_urls(services)
    assert urls
    for (name, key), url in urls.items():
        match = re.fullmatch(r"[\w+]+://(\w+):\$\{(\w+):\?[^}]*\}@postgres:5432/(\w+)", url)
        assert match, f"{name}: {key} is not role:${{PASSWORD:?...}}@postgres:5432/database: {url}"
        user, password, database = match.groups()
        assert user == database, f"{name}: {key} logs in to database {database} as {user}"
        assert roles.get(database) == password, (
            f"{name}: {key} uses {password} for role {database}; {POSTGRES_INIT.name} sets it from {roles.get(database)}"
        )


def test_postgres_creates_the_roles_from_their_own_passwords(services: dict[str, Any]) -> None:
    env = services["postgres"]["environment"]
    for role, variable in _provisioned_roles().items():
        assert env.get(variable) == f"${{{variable}:?set it in .env}}", (
            f"postgres: {variable} for role {role}"
        )
    script = POSTGRES_INIT.read_text(encoding="utf-8")
    # The init script is run (or sourced) by the image; the superuser creates the roles.
    assert script.startswith("#!/bin/sh\n")
    assert "NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    assert "REVOKE ALL ON DATABASE" in script
    assert os.access(POSTGRES_INIT, os.X_OK), f"{POSTGRES_INIT.name} must be executable (else it is sourced)"


# Ports: this machine only ---------------------------------------------------------------------


def test_published_ports_bind_loopback_only(services: dict[str, Any]) -> None:
    published = {name: spec["ports"] for name, spec in services.items() if spec["ports"]}
    assert {"airflow-api-server", "mlflow", "minio"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert port["host_ip"] in LOOPBACK, (
                f"{name} publishes {port['target']} on {port['host_ip'] or 'every interface'}: "
                "bind 127.0.0.1 and put a reverse proxy in front"
            )
    assert {"host_ip": "127.0.0.1", "published": "8080", "target": "8080", "protocol": "tcp"} in published[
        "airflow-api-server"
    ]


# The start-up check: wired into every service that receives a secret, run for real -------------


def test_every_service_with_a_secret_starts_through_the_check(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for name, expected in SECRETS_BY_SERVICE.items():
        if not expected:
            continue
        spec = services[name]
        assert spec["entrypoint"][:2] == CHECK_PREFIX, f"{name}: entrypoint must start with {CHECK_PREFIX}"
        raw = compose["services"][name]
        if raw.get("image") == "mlops-platform:local":
            assert f"COPY docker/check-secrets.sh {CHECK_IN_CONTAINER}\n" in dockerfile
        else:
            assert CHECK_MOUNT in (raw.get("volumes") or []), f"{name}: mount {CHECK_MOUNT}"
            # A third-party image's own entrypoint follows the check, and it needs a command.
            assert len(spec["entrypoint"]) > 2 or spec["command"], name


def test_the_check_covers_every_secret_a_service_receives(
    services: dict[str, Any], env_example: dict[str, str]
) -> None:
    rules = secret_rules(CHECK_SECRETS)
    assert {rule.source for rule in rules} <= set(env_example), "the check names variables .env.example lacks"
    covered = {(rule.variable, rule.source) for rule in rules}
    for name, spec in services.items():
        for key, value in spec["environment"].items():
            for source in sorted(v for v in interpolated_variables(value or "") if is_secret(v)):
                assert (key, source) in covered, (
                    f"{name}: {key} carries {source}, but {CHECK_SECRETS.name} has no rule for it"
                )


SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)] or ["sh"]
# A probe in place of the service's command: prints its pid, argv and environment.
PROBE = [
    sys.executable,
    "-c",
    "import json, os, sys; print(json.dumps({'pid': os.getpid(), 'argv': sys.argv[1:], 'env': dict(os.environ)}))",
    "an argument",
    "$HOME",
]
# What a shell may add to the environment of the command it execs.
SHELL_VARIABLES = {"PWD", "OLDPWD", "SHLVL", "_"}
# The probe's own needs: PATH, and no C-locale coercion (PEP 538), which would add LC_CTYPE.
PROBE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONCOERCECLOCALE": "0"}


def run_check(shell: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, str(CHECK_SECRETS), *PROBE], env=PROBE_ENV | env, capture_output=True, text=True, timeout=60
    )


def service_environment(rendered: dict[str, Any], service: str) -> dict[str, str]:
    """The environment `docker compose` gives the service, after asserting it starts with the check."""
    spec = rendered["services"][service]
    assert spec.get("entrypoint", [])[:2] == CHECK_PREFIX, f"{service} does not start through the check"
    return {
        key: "" if value is None else str(value) for key, value in (spec.get("environment") or {}).items()
    }


def refused(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The .env variables a refusing check named."""
    return set(re.findall(r"^check-secrets: ([A-Z][A-Z0-9_]*) ", result.stderr, re.MULTILINE))


SERVICES_WITH_SECRETS = sorted(name for name, expected in SECRETS_BY_SERVICE.items() if expected)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("service", SERVICES_WITH_SECRETS)
def test_check_refuses_the_env_example_placeholders(
    service: str, shell: str, env_example: dict[str, str]
) -> None:
    env = service_environment(render(COMPOSE, env_example), service)
    result = run_check(shell, env)
    assert result.returncode == 78, result.stderr
    assert result.stdout == "", "the service's command ran"
    placeholders = {name for name in SECRETS_BY_SERVICE[service] if env_example[name].startswith("change-me")}
    assert placeholders, service
    assert refused(result) == placeholders, result.stderr
    assert "fix the .env variables named above" in result.stderr
    # Never the values themselves.
    assert "change-me-" not in result.stderr.replace("(change-me-...)", "")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("service", SERVICES_WITH_SECRETS)
def test_check_execs_the_command_with_good_secrets(
    service: str, shell: str, good_env: dict[str, str]
) -> None:
    env = service_environment(render(COMPOSE, good_env), service)
    process = subprocess.Popen(
        [shell, str(CHECK_SECRETS), *PROBE],
        env=PROBE_ENV | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    probe = json.loads(stdout)
    assert probe["pid"] == process.pid, "the check must exec the command, not run it as a child"
    assert probe["argv"] == PROBE[3:]
    for key, value in env.items():
        assert probe["env"].get(key) == value, f"{key} changed on its way through the check"
    assert set(probe["env"]) - set(env) - set(PROBE_ENV) <= SHELL_VARIABLES, "the check leaked variables"
    assert re.search(r"check-secrets: [1-9]\d* secret variables checked", stderr), stderr
    for value in good_env.values():
        if len(value) >= 8:
            assert value not in stderr, "the check printed a secret"


BAD_FERNET_KEYS = [
    pytest.param(secrets.token_hex(32), id="hex-secret"),
    pytest.param("A" * 44, id="no-padding"),
    pytest.param("A" * 42 + "==", id="31-bytes"),
    pytest.param("A" * 42 + ".=", id="other-character"),
    pytest.param("A" * 43 + "=,", id="empty-second-key"),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("key", BAD_FERNET_KEYS)
@pytest.mark.parametrize("service", ["airflow-api-server", "airflow-scheduler"])
def test_check_refuses_a_bad_fernet_key(service: str, key: str, shell: str, good_env: dict[str, str]) -> None:
    env = service_environment(render(COMPOSE, good_env | {"AIRFLOW_FERNET_KEY": key}), service)
    result = run_check(shell, env)
    assert result.returncode == 78, result.stderr
    assert result.stdout == ""
    assert refused(result) == {"AIRFLOW_FERNET_KEY"}, result.stderr
    assert "is not a Fernet key" in result.stderr
    assert key not in result.stderr


def _fernet_candidates() -> list[Any]:
    from cryptography.fernet import Fernet

    good = Fernet.generate_key().decode()
    standard = "0gY82lyQ09gTo0sb5ms8bpTmF3aveLXhhe+HwB3t49c="  # standard base64, '+' inside
    return [
        pytest.param(good, id="generated"),
        pytest.param(standard, id="standard-base64"),
        pytest.param(f"{good},{Fernet.generate_key().decode()}", id="rotation-pair"),
        pytest.param("A" * 43 + "=", id="all-A"),
        pytest.param(good.rstrip("="), id="no-padding"),
        pytest.param(good[:-2] + "=", id="short"),
        pytest.param(good[:-1] + "A=", id="long"),
        pytest.param(f"{good},", id="trailing-comma"),
        pytest.param(f"{good},change", id="bad-second-key"),
    ]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("key", _fernet_candidates())
def test_check_agrees_with_cryptography_on_fernet_keys(key: str, shell: str) -> None:
    from cryptography.fernet import Fernet

    try:
        for part in key.split(","):  # as Airflow's get_fernet() reads the setting
            Fernet(part.encode())
        valid = True
    except ValueError:
        valid = False
    result = run_check(shell, {"AIRFLOW__CORE__FERNET_KEY": key})
    assert (result.returncode == 0) == valid, result.stderr


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("variable", "value", "source", "reason"),
    [
        pytest.param("AIRFLOW__API_AUTH__JWT_SECRET", "", "AIRFLOW_JWT_SECRET", "is empty", id="empty"),
        pytest.param(
            "AIRFLOW__API_AUTH__JWT_SECRET",
            secrets.token_hex(16),
            "AIRFLOW_JWT_SECRET",
            "fewer than the 64",
            id="short-key",
        ),
        pytest.param(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "postgresql+psycopg2://airflow:short@postgres:5432/airflow",
            "AIRFLOW_DB_PASSWORD",
            "fewer than the 16",
            id="short-password-in-url",
        ),
        pytest.param(
            "AIRFLOW__CELERY__RESULT_BACKEND",
            "db+postgresql://celery:0123456789abcdef/x@postgres:5432/celery",
            "CELERY_DB_PASSWORD",
            "characters other than",
            id="unsafe-password-in-url",
        ),
        pytest.param(
            "MLFLOW_BACKEND_STORE_URI",
            "postgresql://postgres:5432/mlflow",
            "MLFLOW_DB_PASSWORD",
            "no user:password@",
            id="no-password",
        ),
        pytest.param(
            "AIRFLOW_CONN_AWS_LAKE",
            '{"conn_type": "aws", "login": "lake", "password": "change-me-lake-secret-key"}',
            "LAKE_SECRET_ACCESS_KEY",
            "placeholder",
            id="placeholder-in-json",
        ),
        pytest.param(
            "MC_HOST_local",
            "http://ab:0123456789abcdef@minio:9000",
            "MINIO_ROOT_USER",
            "fewer than the 3",
            id="short-name",
        ),
        pytest.param(
            "MLOPS_SLACK_WEBHOOK_URL",
            "http://hooks.example",
            "MLOPS_SLACK_WEBHOOK_URL",
            "https://",
            id="webhook",
        ),
    ],
)
def test_check_refuses_bad_values(variable: str, value: str, source: str, reason: str, shell: str) -> None:
    result = run_check(shell, {variable: value})
    assert result.returncode == 78, result.stderr
    assert refused(result) == {source}, result.stderr
    assert reason in result.stderr and variable in result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_check_accepts_an_empty_optional_webhook(shell: str) -> None:
    assert run_check(shell, {"MLOPS_SLACK_WEBHOOK_URL": ""}).returncode == 0


def test_check_needs_a_command() -> None:
    result = subprocess.run(["sh", str(CHECK_SECRETS)], capture_output=True, text=True, timeout=60, env={})
    assert result.returncode == 64 and "usage" in result.stderr


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
        assert spec["environment"].get("AIRFLOW__CORE__LOAD_EXAMPLES") == "False", name
    # Celery task states: written by the workers, read by the scheduler, nobody else.
    for name in ("airflow-scheduler", "airflow-worker"):
        backend = services[name]["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+postgresql://celery:"), name
    for name in set(airflow) - {"airflow-worker"}:
        metadata = services[name]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert metadata.startswith("postgresql+psycopg2://airflow:"), name


def test_at_least_two_celery_workers(services: dict[str, Any]) -> None:
    workers = worker_services(services)
    assert sum(spec["replicas"] for spec in workers.values()) >= 2, f"Celery workers: {workers}"


def test_airflow_components_agree_on_shared_settings(services: dict[str, Any]) -> None:
    # Platform settings must be identical everywhere, or a task that works on one worker fails on
    # the other; a secret two components hold must be the same (or the API server rejects the
    # scheduler's tokens). Which component holds which secret is SECRETS_BY_SERVICE's business.
    airflow = airflow_services(services)
    settings: dict[str, str | None] = {}
    for name, spec in airflow.items():
        for key, value in spec["environment"].items():
            if (
                key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "MLOPS_", "MLFLOW_"))
                and key != "AIRFLOW__API__WORKERS"
            ):
                assert settings.setdefault(key, value) == value, (
                    f"{name} differs from another component on {key}"
                )
    for name, spec in airflow.items():
        env = spec["environment"]
        missing = sorted(
            key
            for key, value in settings.items()
            if key not in env and not any(is_secret(v) for v in interpolated_variables(value or ""))
        )
        assert not missing, f"{name} lacks shared settings {missing}"
    assert settings["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert settings["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/mlops/dags"
    assert settings["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/mlops/plugins"
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        value = settings[key] or ""
        assert value.startswith("${") and ":?" in value, f"{key} must come from .env"


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
        # Set in production, it would bypass the MLflow server's artifact proxy.
        assert "MLOPS_MLFLOW_ARTIFACTS_URI" not in env, name
    # Each connection a setting names exists as an AIRFLOW_CONN_* variable where it is used: the
    # lake wherever the lake keys go (tasks, callbacks, logs, the lake viewer), the feature store
    # on the workers, which run the tasks.
    for name, spec in airflow_services(services).items():
        env = spec["environment"]
        lake_conn = re.fullmatch(r"s3://([^@/]+)@.*", env["MLOPS_LAKE_URI"])
        assert lake_conn, name
        lake_var = f"AIRFLOW_CONN_{lake_conn.group(1).upper()}"
        assert (lake_var in env) == (SECRETS_BY_SERVICE[name] >= LAKE_KEYS), f"{name}: {lake_var}"
    worker = services["airflow-worker"]["environment"]
    fs_conn = worker.get("MLOPS_FEATURE_STORE_CONN_ID", "mlops_feature_store")
    assert worker.get(f"AIRFLOW_CONN_{fs_conn.upper()}", "").startswith("postgresql://")
    assert worker[f"AIRFLOW_CONN_{fs_conn.upper()}"].endswith("@postgres:5432/features")


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
    assert services[service]["entrypoint"] == CHECK_PREFIX, (
        f"{service}: the start-up check must exec the command"
    )


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


def test_model_server_runs_the_serve_command_with_least_privilege(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    spec = services["model-server"]
    argv = spec["command"]
    assert argv[:4] == ["python", "-m", "mlops", "serve"], argv
    assert spec["entrypoint"] == CHECK_PREFIX, "the start-up check must exec the server"
    use_cases = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--use-case"]
    assert use_cases, "the server needs at least one --use-case"
    for name in use_cases:
        assert (REPO / "config" / "use_cases" / f"{name}.yaml").exists(), f"--use-case {name}: no such config"
    # It listens in the container on the port it publishes, on this machine only.
    port = argv[argv.index("--port") + 1]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert spec["ports"] == [{"host_ip": "127.0.0.1", "published": port, "target": port, "protocol": "tcp"}]
    # The lake and MLflow exactly as the workers see them, and nothing of Airflow's or the databases'.
    env, worker = spec["environment"], services["airflow-worker"]["environment"]
    shared = ("MLOPS_LAKE_URI", "MLOPS_CONFIG_DIR", "MLFLOW_TRACKING_URI", "AIRFLOW_CONN_AWS_LAKE")
    for key in shared:
        assert env.get(key) == worker[key], f"model-server: {key} differs from the workers'"
    extra = sorted(key for key in env if key not in shared and not key.startswith("MLOPS_SERVING_"))
    assert not extra, f"model-server receives {extra}, which serving does not need"
    unknown = sorted(
        key for key in env if key.startswith("MLOPS_") and key not in _variables_the_package_reads()
    )
    assert not unknown, f"model-server: no module in include/mlops reads {unknown}"
    # Health is readiness (/ready: a champion served and followed, the request log writable), not liveness.
    raw = compose["services"]["model-server"]
    assert f"localhost:{port}/ready" in " ".join(raw["healthcheck"]["test"]), raw["healthcheck"]
    # The request log's write-ahead log is on a named volume: a recreated container ships what the last one left.
    wal = env["MLOPS_SERVING_WAL_DIR"]
    assert any(v.split(":")[1:] == [wal] and v.split(":")[0] in compose["volumes"] for v in raw["volumes"]), (
        raw["volumes"]
    )


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


def _provisioned_roles() -> dict[str, str]:
    """Role (= database) -> the variable its password comes from, as the init script provisions them."""
    text = POSTGRES_INIT.read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*provision (\w+) (\w+)$", text, re.MULTILINE))


def _database_urls(services: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(service, variable) -> every PostgreSQL URL a service receives."""
    return {
        (name, key): value
        for name, spec in services.items()
        for key, value in spec["environment"].items()
        if re.match(r"(db\+)?postgresql(\+\w+)?://", value or "")
    }


def test_databases_and_bucket_exist_for_every_uri(services: dict[str, Any]) -> None:
    created = set(_provisioned_roles())
    assert created == {"airflow", "celery", "mlflow", "features"}
    uris = _database_urls(services)
    assert {key for _, key in uris} >= {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW_CONN_MLOPS_FEATURE_STORE",
        "MLFLOW_BACKEND_STORE_URI",
    }
    for (name, key), uri in uris.items():
        database = uri.rsplit("/", 1)[-1]
        assert database in created, (
            f"{name}: {key}: database {database!r} is not created by {POSTGRES_INIT.name}"
        )

    env = services["airflow-scheduler"]["environment"]
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
    assert f"COPY docker/check-secrets.sh {CHECK_IN_CONTAINER}\n" in dockerfile, "the start-up check"
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
        '    environment: ["B=$${HOME}", C]\n'
        '    ports: ["8080", "8081:80", "127.0.0.1:5000:5000", "127.0.0.1::53/udp", "[::1]:9000:9000",\n'
        "            {target: 443, published: 8443, host_ip: 127.0.0.1}]\n",
        encoding="utf-8",
    )
    assert compose_services(path) == {
        "one": {
            "command": ["airflow", "celery", "worker", "--queues", "a b"],
            "entrypoint": [],
            "environment": {"A": "${A:?set it}", "FLAG": "true"},
            "replicas": 3,
            "ports": [],
        },
        "two": {
            "command": ["mlflow", "server", "--port", "5000"],
            "entrypoint": [],
            "environment": {"B": "$${HOME}", "C": None},
            "replicas": 1,
            "ports": [
                {"host_ip": None, "published": None, "target": "8080", "protocol": "tcp"},
                {"host_ip": None, "published": "8081", "target": "80", "protocol": "tcp"},
                {"host_ip": "127.0.0.1", "published": "5000", "target": "5000", "protocol": "tcp"},
                {"host_ip": "127.0.0.1", "published": None, "target": "53", "protocol": "udp"},
                {"host_ip": "::1", "published": "9000", "target": "9000", "protocol": "tcp"},
                {"host_ip": "127.0.0.1", "published": "8443", "target": "443", "protocol": "tcp"},
            ],
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
