"""Jinja2 as every HTML page of the platform uses it: escaping by default, strict about names.

The platform's pages (``mlops.orchestration.ui``) and the promotion evidence pack
(``mlops.model.evidence``) show values that come from data (a slice value, a reason, a column
name): autoescape makes each one text, and a name a template uses but the view does not give is
an error instead of an empty cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


def template_environment(folder: Path, **options: Any) -> jinja2.Environment:
    """An environment loading the templates in ``folder``; ``options`` add to or override the defaults."""
    import jinja2

    settings: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(folder),
        "autoescape": True,
        "undefined": jinja2.StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }
    return jinja2.Environment(**(settings | options))
