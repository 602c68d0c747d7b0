"""The team's own feature code: a folder of Python files, each function one feature.

A use case names a function as ``transform: code`` with ``function: <file>.<function>``; the
function takes the validated batch (a pandas DataFrame of the raw columns) and returns one value
per row (a Series or array). Training, scoring and online serving all build features with the
same call, so there is no skew. A function is marked with :func:`feature`::

    # include/feature_repo/churn.py
    from mlops.core.feature_repo import feature

    @feature
    def charges_per_contact(batch):
        return batch["monthly_charges"] / (batch["support_contacts_30d"] + 1)

At config load (DAG parse time) the file is only parsed (``ast``), never imported: the function
must exist, carry ``@feature`` and take exactly one parameter. The hash of the file's bytes is
the code's version: it goes into the feature version of every partition and into the training
lineage, so changing the code makes new features and a new training set.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def feature(fn: F) -> F:
    """Mark a function of the batch as a feature (the marker the config check looks for)."""
    fn.__mlops_feature__ = True  # type: ignore[attr-defined]
    return fn


def repo_dir() -> Path:
    from mlops.core.settings import load_settings

    return load_settings().feature_repo


def resolve(ref: str, repo: Path | None = None) -> tuple[Path, str]:
    """The file and function name of ``<file>.<function>``; ValueError if it is not in the repo."""
    module, _, name = ref.partition(".")
    if not module.isidentifier() or not name.isidentifier():
        raise ValueError(
            f"feature function {ref!r} must be '<file>.<function>', e.g. 'churn.charges_per_contact'"
        )
    path = (repo or repo_dir()) / f"{module}.py"
    if not path.is_file():
        raise ValueError(f"feature function {ref!r}: no file {path} in the feature repository")
    return path, name


def check_function(ref: str, repo: Path | None = None) -> str:
    """Check ``ref`` without importing it; return the code version (sha256 of its file)."""
    path, name = resolve(ref, repo)
    source = path.read_bytes()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ValueError(
            f"feature function {ref!r}: {path} does not parse: {exc.msg} (line {exc.lineno})"
        ) from None
    found = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name),
        None,
    )
    if found is None:
        raise ValueError(f"feature function {ref!r}: {path.name} defines no top-level function {name!r}")
    if isinstance(found, ast.AsyncFunctionDef):
        raise ValueError(f"feature function {ref!r} is async; a feature is a plain function of the batch")
    if not any(_decorator_name(d) == "feature" for d in found.decorator_list):
        raise ValueError(
            f"feature function {ref!r} is not marked with @feature (from mlops.core.feature_repo import feature)"
        )
    args = found.args
    positional = args.posonlyargs + args.args
    if len(positional) != 1 or args.vararg or args.kwarg or args.kwonlyargs:
        raise ValueError(
            f"feature function {ref!r} must take exactly one parameter, the batch; it takes ({ast.unparse(args)})"
        )
    return hashlib.sha256(source).hexdigest()


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def load_function(ref: str, repo: Path | None = None) -> Callable[[Any], Any]:
    """Import the function (at run time, inside a task or the model server)."""
    import importlib.util

    path, name = resolve(ref, repo)
    spec = importlib.util.spec_from_file_location(f"mlops_feature_repo.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"feature function {ref!r}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn) or not getattr(fn, "__mlops_feature__", False):
        raise ValueError(f"feature function {ref!r} is not a function marked with @feature")
    return fn
