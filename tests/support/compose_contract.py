"""The production stack's compose file read as data: what each service runs and with which environment.

``compose_services()`` is the contract between ``docker-compose.yaml`` and any test that starts
the same processes without Docker (API server, scheduler, Celery workers, MLflow server): such a
test asserts that its command lines and environment agree with what this returns.
``service_variables()`` says which .env variables reach each service, ``secret_rules()`` what the
start-up check (``docker/check-secrets.sh``) checks of them.

The helpers follow Compose's own rules where they matter here: YAML anchors and ``<<`` merge keys
are resolved, ``$$`` is a literal ``$``, and ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}`` and ``${VAR+alt}`` interpolate as Compose does.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import yaml

# `$$`, or `${NAME<modifier>}`, or `$NAME`. Nested expressions (`${A:-${B}}`) are not supported;
# the compose file does not use them.
_TOKEN = re.compile(
    r"\$\$"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>(?::?[-?+])[^}]*)?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class PortBinding(TypedDict):
    """One published port. ``host_ip`` ``None`` means every interface of the host (Compose's
    default); ``published`` ``None`` means a random host port."""

    host_ip: str | None
    published: str | None
    target: str
    protocol: str


class ServiceSpec(TypedDict):
    """One service as a process: ``entrypoint`` + ``command`` is the argv, ``environment`` its env.

    ``command`` and ``entrypoint`` are ``[]`` when the service keeps the image's default. Values are
    exactly as written in the file: ``${VAR...}`` and ``$$`` are left for the caller to interpolate.
    An environment entry without a value (``- NAME``, or ``NAME:`` with nothing) is ``None``:
    Compose passes it through from the shell. ``ports`` are the published ports.
    """

    command: list[str]
    entrypoint: list[str]
    environment: dict[str, str | None]
    replicas: int
    ports: list[PortBinding]


class SecretRule(NamedTuple):
    """One line of the start-up check's table: the check ``kind`` applied to ``variable`` (as the
    service receives it), which carries the .env variable ``source``."""

    variable: str
    kind: str
    source: str


class InterpolationError(ValueError):
    """A required variable (``${VAR:?...}`` or ``${VAR?...}``) is missing, as Compose would refuse."""


def load_compose(path: Path | str) -> dict[str, Any]:
    """The compose file parsed, anchors and ``<<`` merge keys resolved, nothing interpolated."""
    text = Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ValueError(f"{path}: not a compose file (no 'services' mapping at the top level)")
    return document


def compose_services(path: Path | str) -> dict[str, ServiceSpec]:
    """For each service of the compose file at ``path``: its command, entrypoint, environment, replicas."""
    services: dict[str, Any] = load_compose(path)["services"]
    return {name: _service_spec(name, spec or {}) for name, spec in services.items()}


def _service_spec(name: str, spec: Mapping[str, Any]) -> ServiceSpec:
    deploy = spec.get("deploy") or {}
    replicas = deploy.get("replicas", spec.get("scale", 1))
    return ServiceSpec(
        command=_argv(name, "command", spec.get("command")),
        entrypoint=_argv(name, "entrypoint", spec.get("entrypoint")),
        environment=_environment(name, spec.get("environment")),
        replicas=int(replicas),
        ports=[_port(name, item) for item in spec.get("ports") or []],
    )


def _port(service: str, value: Any) -> PortBinding:
    """A ``ports:`` entry, short (``[[IP:](HOST:)]CONTAINER[/PROTOCOL]``) or long syntax."""
    if isinstance(value, dict):
        published = value.get("published")
        return PortBinding(
            host_ip=value.get("host_ip"),
            published=None if published in (None, "") else str(published),
            target=str(value["target"]),
            protocol=str(value.get("protocol", "tcp")),
        )
    text, _, protocol = str(value).partition("/")
    host_ip: str | None = None
    if text.startswith("["):  # an IPv6 address: [::1]:8080:8080
        address, sep, text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"service {service!r}: cannot read port {value!r}")
        host_ip = address
    parts = text.split(":")
    if len(parts) > 3 or (host_ip is not None and len(parts) != 2):
        raise ValueError(f"service {service!r}: cannot read port {value!r}")
    if len(parts) == 3:
        host_ip = parts[0]
    published = parts[-2] if len(parts) >= 2 else None
    return PortBinding(
        host_ip=host_ip or None,
        published=published or None,
        target=parts[-1],
        protocol=protocol or "tcp",
    )


def _argv(service: str, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # Compose splits a string command with shell-like rules (no shell runs).
        return shlex.split(value)
    if isinstance(value, list):
        return [str(item) for item in value]
    raise ValueError(f"service {service!r}: '{key}' must be a string or a list, not {type(value).__name__}")


def _environment(service: str, value: Any) -> dict[str, str | None]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(key): _scalar(item) for key, item in value.items()}
    if isinstance(value, list):
        env: dict[str, str | None] = {}
        for item in value:
            key, sep, rest = str(item).partition("=")
            env[key] = rest if sep else None
        return env
    raise ValueError(f"service {service!r}: 'environment' must be a mapping or a list")


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def service_variables(path: Path | str) -> dict[str, set[str]]:
    """For each service, the variables interpolated anywhere in its definition (environment,
    command, healthcheck, ...), with YAML anchors resolved: what reaches it from .env."""
    services: dict[str, Any] = load_compose(path)["services"]
    return {
        name: set().union(*(interpolated_variables(value) for value in compose_strings(spec or {})))
        for name, spec in services.items()
    }


def secret_rules(script: Path | str) -> list[SecretRule]:
    """The table of the start-up check script: the lines of its ``<<'RULES'`` here-document."""
    lines = Path(script).read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip().endswith("<<'RULES'")), None)
    if start is None:
        raise ValueError(f"{script}: no <<'RULES' table")
    rules: list[SecretRule] = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if line == "RULES":
            return rules
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{script}:{number}: expected 'VARIABLE KIND SOURCE', got {line!r}")
        rules.append(SecretRule(*fields))
    raise ValueError(f"{script}: the RULES table is not closed")


def render(path: Path | str, env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file as ``docker compose`` sees it with ``env`` as its .env: every string value
    interpolated (keys and comments are not, as in Compose)."""
    return _map_strings(load_compose(path), lambda value: interpolate(value, env))


def compose_strings(document: Any) -> list[str]:
    """Every string value in a parsed compose document (what Compose interpolates)."""
    found: list[str] = []
    _map_strings(document, lambda value: found.append(value) or value)
    return found


def _map_strings(node: Any, fn: Any) -> Any:
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, dict):
        return {key: _map_strings(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(item, fn) for item in node]
    return node


def interpolated_variables(text: str) -> set[str]:
    """The names of all variables ``text`` interpolates (``$$`` escapes are not variables)."""
    names = set()
    for match in _TOKEN.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name:
            names.add(name)
    return names


def variable_defaults(text: str) -> dict[str, list[str]]:
    """For each variable interpolated with a default (``:-`` or ``-``), the defaults it is given."""
    defaults: dict[str, list[str]] = {}
    for match in _TOKEN.finditer(text):
        modifier = match.group("modifier") or ""
        if match.group("braced") and modifier.lstrip(":").startswith("-"):
            defaults.setdefault(match.group("braced"), []).append(modifier.lstrip(":")[1:])
    return defaults


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every variable replaced from ``env`` the way ``docker compose`` does it."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        modifier = match.group("modifier") or ""
        value = env.get(name)
        if not modifier:
            return value or ""
        colon = modifier.startswith(":")
        op, arg = modifier.lstrip(":")[0], modifier.lstrip(":")[1:]
        # With ':' an empty value counts as unset; without it only an absent one does.
        unset = value is None or (colon and value == "")
        if op == "-":
            return arg if unset else str(value)
        if op == "?":
            if unset:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if unset else arg  # op == "+"

    return _TOKEN.sub(replace, text)


def read_env_file(path: Path | str) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file; blank lines and ``#`` comments skipped, quotes removed."""
    env: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in env:
            raise ValueError(f"{path}:{number}: {key} is declared twice")
        env[key] = value
    return env
