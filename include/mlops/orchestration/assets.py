"""The Assets that connect the DAGs: a new feature partition starts scoring (and training, if the
use case asks for it); a new champion moves the drift reference."""

from __future__ import annotations

from typing import Any


def features_asset(use_case: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{use_case}_features", uri=f"mlops://feature-store/{use_case}", group="feature_store")


def champion_asset(use_case: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{use_case}_champion", uri=f"mlops://model-registry/{use_case}", group="model")


def predictions_asset(use_case: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{use_case}_predictions", uri=f"mlops://predictions/{use_case}", group="predictions")


def labels_asset(use_case: str) -> Any:
    from airflow.sdk import Asset

    return Asset(name=f"{use_case}_labels", uri=f"mlops://label-store/{use_case}", group="feature_store")
