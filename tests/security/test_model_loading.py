"""Whoever can register a model version cannot run code on the workers: only skops models load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlops.model import registry

NAME = "churn_model"


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does on load
        return (os.makedirs, (str(self.marker),))


def _register_pickle(fresh_home: Path, marker: Path) -> str:
    """A version whose MLmodel says sklearn/pickle and whose file runs code when unpickled."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    client = registry.configure_mlflow()
    # An experiment of its own, its artifacts under this test's home: MLflow's default experiment
    # would store them in ./mlruns, i.e. in whatever directory the tests run from.
    experiment = client.create_experiment(
        "untrusted-models", artifact_location=(fresh_home / "artifacts").as_uri()
    )
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="pickle", registered_model_name=NAME
        )
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri))
    spec = yaml.safe_load((local / "MLmodel").read_text())
    pickled = spec["flavors"]["sklearn"]["pickled_model"]
    stored = Path(
        client.get_model_version_download_uri(NAME, str(info.registered_model_version)).removeprefix(
            "file://"
        )
    )
    (stored / pickled).write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    assert run.info.run_id
    return str(info.registered_model_version)


@pytest.mark.slow  # a model logged and registered in a new MLflow store: tens of seconds
def test_a_pickled_version_is_refused_before_it_is_read(fresh_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    version = _register_pickle(fresh_home, marker)
    with pytest.raises(registry.UntrustedModel, match="loads only skops models"):
        registry.load_model(NAME, version)
    assert not marker.exists()


def test_types_outside_the_trusted_modules_are_refused() -> None:
    assert registry.trusted_types(["sklearn.tree._tree.Tree", "numpy.dtype"], "m") == [
        "sklearn.tree._tree.Tree",
        "numpy.dtype",
    ]
    with pytest.raises(registry.UntrustedModel, match=r"builtins\.eval"):
        registry.trusted_types(["sklearn.tree._tree.Tree", "builtins.eval"], "m")
