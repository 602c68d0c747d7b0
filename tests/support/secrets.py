"""A secrets backend that refuses every lookup, as a vault does when the worker's role lost access."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied
from airflow.secrets import BaseSecretsBackend


class DenyingSecretsBackend(BaseSecretsBackend):
    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> Any:
        raise AirflowSecretsBackendAccessDenied(
            f"access to connection {conn_id!r} denied by the secrets backend"
        )

    def get_connection(self, conn_id: str, team_name: str | None = None) -> Any:
        raise AirflowSecretsBackendAccessDenied(
            f"access to connection {conn_id!r} denied by the secrets backend"
        )
