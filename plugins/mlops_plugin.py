"""The platform's Airflow plugin: task buttons that open what a task produced, the lake viewer and pages.

- "GX Data Docs" on `validate_batch`, "MLflow run" on `train_model` / `evaluate_and_promote`,
  "Evidently report" on `check_drift` (each shown only where the task produced one).
- `/mlops/lake/view?path=...`: serves HTML/JSON reports from the lake (local or S3).
- `/mlops/ui/<use case>/<page>`: the platform's pages (overview, promotions, data quality,
  monitoring, scoring), shown as "ML platform" in Airflow's navigation.

Every Airflow process loads plugins; only the API server serves the FastAPI app, so only there
is it built (``serves_api``, the check the edge3 provider makes).
"""

from __future__ import annotations

import sys

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from mlops.orchestration.ui.app import serves_api
from mlops.orchestration.ui_links import LINK_KEYS, result_link


class _ResultLink(BaseOperatorLink):
    name = ""
    key = ""

    def get_link(self, operator, *, ti_key):
        from mlops.core.settings import load_settings

        return result_link(ti_key, self.key, load_settings().lake_uri)


class GXDataDocsLink(_ResultLink):
    name = "GX Data Docs"
    key = LINK_KEYS[name]


class MLflowRunLink(_ResultLink):
    name = "MLflow run"
    key = LINK_KEYS[name]


class EvidentlyReportLink(_ResultLink):
    name = "Evidently report"
    key = LINK_KEYS[name]


def _fastapi_apps() -> list[dict]:
    from mlops.orchestration.ui.app import create_app

    return [{"app": create_app(), "url_prefix": "/mlops", "name": "MLOps lake viewer and pages"}]


class MLOpsPlugin(AirflowPlugin):
    name = "mlops"
    global_operator_extra_links = [GXDataDocsLink(), MLflowRunLink(), EvidentlyReportLink()]
    fastapi_apps = _fastapi_apps() if serves_api(sys.argv) else []
    # "ML platform" in Airflow's navigation: the platform's pages, rendered inside the Airflow UI.
    external_views = [
        {
            "name": "ML platform",
            "href": "/mlops/ui",
            "destination": "nav",
            "url_route": "ml-platform",
            "nav_top_level": True,
        }
    ]
