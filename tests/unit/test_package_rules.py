"""The architecture as rules a change can break: one-way imports, no cycles, one home per contract.

The package follows the ML loop; a layer may import only the layers before it:

    core -> data -> model -> serving -> monitoring -> orchestration -> dev

Within a layer, modules import each other without cycles (at module level or inside functions).
DAG files and the plugin only wire: at module level they import the standard library, Airflow,
``mlops.core`` and ``mlops.orchestration``; the work of the other layers is imported inside the
task that does it.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "include" / "mlops"
LAYERS = ("core", "data", "model", "serving", "monitoring", "orchestration", "dev")
LAKE_ROOTS = (
    "raw",
    "quarantine",
    "validation",
    "features",
    "labels",
    "predictions",
    "serving",
    "reports",
    "registry",
    "alerts",
    "state",
    "training_sets",
)
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
    assert _env_access(ast.parse(path.read_text())) == [], (
        "read settings through mlops.core.settings.load_settings()"
    )


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
    assert any(
        isinstance(n, ast.JoinedStr) and LAKE_PATH.match(str(n.values[0].value)) for n in ast.walk(tree)
    )


# -- the import graph: no cycles ---------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    line: int
    name: str  # the module named (for ``from a import b``: ``a.b``, resolved below when it is a module)
    parent: str  # ``a`` for ``from a import b``, else the name itself
    in_function: bool


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST, package: str = "") -> list[Import]:
    """Every import that runs: at module level or inside functions, not under ``if TYPE_CHECKING``.

    ``package`` is the importing module's package, to resolve relative imports.
    """
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name, alias.name, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.extend(
                Import(node.lineno, f"{base}.{alias.name}", base, in_function) for alias in node.names
            )
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """``{module: {imported module of the same package: line}}`` for every module under ``root/package``."""
    paths = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for imp in runtime_imports(ast.parse(path.read_text()), own_package):
            # ``from a import b``: b is a module when a file says so, else a name in module a.
            target = imp.name if imp.name in paths else imp.parent
            while target and target not in paths:  # ``import a.b.c`` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, imp.line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [
        f"  {a} imports {b} (line {line})" for a in component for b, line in graph[a].items() if b in members
    ]
    return "import cycle between " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_no_import_cycles() -> None:
    graph = import_graph(PACKAGE.parent, "mlops")
    found = cycles(graph)
    assert not found, "\n".join(describe(component, graph) for component in found)


# -- dags/ and plugins/ only wire ---------------------------------------------------------------------

WIRING_DIRS = ("dags", "plugins")
# At module level (parse time, in every scheduler loop): the wiring layers and Airflow only.
PARSE_TIME = ("airflow", "mlops.core", "mlops.orchestration")
# Inside a task or callback: the package does the work; a DAG file calls it.
RUN_TIME = ("airflow", "mlops")


def wiring_files() -> list[Path]:
    return sorted(p for d in WIRING_DIRS for p in (REPO / d).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def wiring_violations(tree: ast.AST) -> list[str]:
    wrong = []
    for imp in runtime_imports(tree):
        top = imp.parent.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        allowed = RUN_TIME if imp.in_function else PARSE_TIME
        if not _within(imp.name, allowed):
            where = "inside a function" if imp.in_function else "at module level"
            wrong.append(
                f"line {imp.line}: {imp.name} {where} (allowed there: {', '.join(allowed)} and the stdlib)"
            )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and getattr(node.value, "id", None) == "sys"
        ):
            wrong.append(f"line {node.lineno}: sys.path is changed nowhere; the package is installed")
    return wrong


@pytest.mark.parametrize("path", wiring_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_dag_files_and_the_plugin_only_wire(path: Path) -> None:
    wrong = wiring_violations(ast.parse(path.read_text()))
    assert not wrong, f"{path.relative_to(REPO)}:\n" + "\n".join(wrong)


def test_wiring_files_exist() -> None:
    names = {str(p.relative_to(REPO)) for p in wiring_files()}
    assert any(n.startswith("dags/") for n in names) and "plugins/mlops_plugin.py" in names


# -- the new rules can fail -----------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function counts; one through TYPE_CHECKING does not."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/layer/__init__.py": "",
            "pkg/layer/a.py": "from pkg.layer import b\n",
            "pkg/layer/b.py": "def f():\n    from pkg.layer.c import g\n    return g\n",
            "pkg/layer/c.py": "from . import a\n",
            "pkg/layer/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.layer import e\n",
            "pkg/layer/e.py": "import pkg.layer.d\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.layer.a"] == {"pkg.layer.b": 1}
    assert graph["pkg.layer.d"] == {}
    found = cycles(graph)
    assert found == [["pkg.layer.a", "pkg.layer.b", "pkg.layer.c"]]
    assert "pkg.layer.b imports pkg.layer.c (line 2)" in describe(found[0], graph)


def test_a_dag_file_doing_the_work_is_refused() -> None:
    tree = ast.parse(
        "from __future__ import annotations\nimport json\nfrom airflow.sdk import task\n"
        "from mlops.orchestration import dag_support\nfrom mlops.model.scoring import score_partition\n"
        "import sys\nsys.path.append('include')\n"
        "def t():\n    import pandas\n    from mlops.model import scoring\n    return scoring\n"
    )
    wrong = wiring_violations(tree)
    assert [w.split(":")[0] for w in wrong] == ["line 5", "line 9", "line 7"], wrong
