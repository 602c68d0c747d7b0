"""The architecture as rules a change can break: one-way imports, one home per contract.

The package follows the ML loop; a layer may import only the layers before it:

    core -> data -> model -> serving -> monitoring -> orchestration -> dev
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "mlops"
LAYERS = ("core", "data", "model", "serving", "monitoring", "orchestration", "dev")
LAKE_ROOTS = ("raw", "quarantine", "validation", "features", "labels", "predictions", "serving", "reports", "registry", "alerts", "state", "training_sets")
LAKE_PATH = re.compile(rf"^({'|'.join(LAKE_ROOTS)})/")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``mlops...`` module a file imports, at any depth (functions and TYPE_CHECKING too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mlops":
                found += [(node.lineno, f"mlops.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name == "mlops" or name.startswith("mlops.")]


def test_every_module_lives_in_a_layer() -> None:
    top_level = {p.name for p in PACKAGE.glob("*.py")}
    assert top_level == {"__init__.py", "__main__.py"}
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")} == set(LAYERS)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    own = layer_of(path)
    if own is None:
        return  # mlops/__main__.py is the command line's entry point
    allowed = set(LAYERS[: LAYERS.index(own) + 1])
    wrong = []
    for line, name in imported_modules(ast.parse(path.read_text())):
        parts = name.split(".")
        target = parts[1] if len(parts) > 1 else None
        if target not in allowed:
            wrong.append(f"line {line}: {name} ({own} may import only {sorted(allowed)})")
    assert not wrong, "\n".join(wrong)


def _env_access(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "putenv", "unsetenv"}:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in {"environ", "getenv"} for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_environment_is_read_only_by_settings(path: Path) -> None:
    if path == PACKAGE / "core" / "settings.py":
        return
    assert _env_access(ast.parse(path.read_text())) == [], "read settings through mlops.core.settings.load_settings()"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lake_paths_are_built_only_in_the_layout(path: Path) -> None:
    if path == PACKAGE / "core" / "layout.py":
        return
    tree = ast.parse(path.read_text())
    docstrings = _docstring_nodes(tree)
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = str(node.values[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
        else:
            continue
        if LAKE_PATH.match(text):
            offenders.append(f"line {node.lineno}: {text!r}")
    assert not offenders, "build lake paths with mlops.core.layout:\n" + "\n".join(offenders)


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The checks above can fail: a model module importing orchestration, reading the env, building a path."""
    tree = ast.parse(
        "import os\nfrom mlops.orchestration import dag_support\nx = os.environ['A']\ny = f'raw/{x}/batch.csv'\n"
    )
    assert [name for _, name in imported_modules(tree)] == ["mlops.orchestration"]
    assert _env_access(tree) == [3]
    assert any(isinstance(n, ast.JoinedStr) and LAKE_PATH.match(str(n.values[0].value)) for n in ast.walk(tree))
