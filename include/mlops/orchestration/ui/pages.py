"""The ML platform's pages: overview, promotions, data quality, monitoring, scoring.

A page is records -> view model (:mod:`~mlops.orchestration.ui.views`) -> template. Templates are
Jinja2 files under ``templates/`` with autoescaping on, so every value from a record is text;
the only markup a template places unescaped is the chart module's (``Markup``, escaped there).

Actions call Airflow's own REST API from the browser with the user's session (``static/ui.js``):
Approve/Reject answer the training run's human-in-the-loop request, Roll back triggers the
``<uc>_rollback`` DAG. Airflow checks the user's permissions for each.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.templating import template_environment
from mlops.orchestration.ui import records, views

if TYPE_CHECKING:
    import jinja2

    from mlops.core.config import UseCase
    from mlops.core.lake import Lake

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
PAGES = {
    "overview": "Overview",
    "promotions": "Promotions",
    "quality": "Data quality",
    "monitoring": "Monitoring",
    "scoring": "Scoring",
}
VIEWS: dict[str, Callable[..., tuple[Any, str | None]]] = {
    "overview": views.overview_view,
    "promotions": views.promotions_view,
    "quality": views.quality_view,
    "monitoring": views.monitoring_view,
    "scoring": views.scoring_view,
}
NONE = "\N{EN DASH}"  # shown for a value that is not there


def fmt(value: Any, digits: int = 4) -> str:
    """A number as the pages show it; the dash for a value that is not there."""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return NONE if value is None else str(value)


@functools.cache
def environment() -> jinja2.Environment:
    """The pages' template environment: autoescaped, strict about undefined names."""
    env = template_environment(TEMPLATES)
    env.filters.update(fmt=fmt, num=format)  # num: a format spec, e.g. {{ rows|num(",") }}
    env.globals.update(pages=PAGES, dash=NONE)
    return env


def render(
    lake: Lake,
    use_case: UseCase,
    names: list[str],
    name: str,
    today: dt.date | None = None,
    *,
    champion_of: views.ChampionLookup = records.champion_version,
) -> str:
    """The HTML of page ``name`` of ``use_case`` (``names``: every use case, for the switch)."""
    view, warning = VIEWS[name](lake, use_case, today or dt.datetime.now(dt.UTC).date(), champion_of)
    return (
        environment()
        .get_template(f"{name}.html")
        .render(view=view, use_case=use_case.name, names=names, current=name, warning=warning)
    )


def index(names: list[str], errors: dict[str, str]) -> str:
    """The list of use cases, and those whose config does not load."""
    return environment().get_template("index.html").render(names=names, errors=errors)
