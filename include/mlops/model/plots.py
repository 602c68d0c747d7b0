"""The diagnostic plots logged with each training run: how the model does on the holdout.

Classification: ROC curve, precision-recall curve and confusion matrix (at the model's decision
threshold); regression: the
residuals against the prediction. Each is a PNG under ``plots/`` in the MLflow run.
"""

from __future__ import annotations

from typing import Any


def log_holdout_plots(mlflow: Any, y: Any, scores: Any, task: str, threshold: float = 0.5) -> None:
    """Draw the holdout's diagnostic plots for ``task`` and log them to the active MLflow run;
    a classifier's confusion matrix labels at ``threshold``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    if task == "classification":
        for name, make in (
            ("roc_curve", lambda ax: RocCurveDisplay.from_predictions(y, scores, ax=ax)),
            ("precision_recall", lambda ax: PrecisionRecallDisplay.from_predictions(y, scores, ax=ax)),
            (
                "confusion_matrix",
                lambda ax: ConfusionMatrixDisplay.from_predictions(
                    y, (scores >= threshold).astype(int), ax=ax
                ),
            ),
        ):
            fig, ax = plt.subplots(figsize=(5, 4))
            make(ax)
            at = f" at {threshold:.3g}" if name == "confusion_matrix" else ""
            ax.set_title(f"{name.replace('_', ' ')} (holdout){at}")
            mlflow.log_figure(fig, f"plots/{name}.png")
            plt.close(fig)
    else:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(scores, y - scores, s=4, alpha=0.4)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title("residuals (holdout)")
        mlflow.log_figure(fig, "plots/residuals.png")
        plt.close(fig)
