"""What the Airflow UI's task buttons open: GX Data Docs, the MLflow run, the Evidently report.

Tasks return typed results (``mlops.core.results``) holding lake URIs or URLs; each button reads
the field that :data:`~mlops.core.results.RESULT_LINKS` names from the task's XCom in the API
server, and opens it through :func:`~mlops.orchestration.ui.hrefs.browser_url`: an http(s) URL,
or a lake file in the lake viewer (``/mlops/lake/view?path=<path in lake>``, served by the
plugin's app, :mod:`mlops.orchestration.ui.app`), so the same button works for a local lake and S3.
"""

from __future__ import annotations

import json
from typing import Any

from mlops.core.results import RESULT_LINKS
from mlops.orchestration.ui.hrefs import browser_url

LINK_KEYS = {link.name: link.key for link in RESULT_LINKS}


def xcom_result(ti_key: Any) -> dict[str, Any] | None:
    """The task's return value (a dict) from the metadata DB, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="return_value",
                run_id=ti_key.run_id,
                dag_ids=ti_key.dag_id,
                task_ids=ti_key.task_id,
                map_indexes=ti_key.map_index,
            ).with_only_columns(XComModel.value)
        ).first()
    if not row:
        return None
    value = row.value
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def result_link(ti_key: Any, key: str, lake_root_uri: str) -> str:
    """The URL a task button opens: field ``key`` of the task's result, checked; "" for none."""
    return browser_url((xcom_result(ti_key) or {}).get(key), lake_root_uri)
