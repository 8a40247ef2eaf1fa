"""Holdout metrics, computed one way for the trainer, the registry's gate and the monitor.

Classification: accuracy, precision, recall, F1, ROC-AUC, log loss, from the
probability of the positive class (threshold 0.5). Regression: MAE, RMSE.
Each metric knows whether higher is better, so a gate can compare any of them.
"""

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn import metrics

Task = Literal["classification", "regression"]

HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
}


class EvaluationError(ValueError):
    """Scores that cannot be judged: NaN or infinite, or not one per label."""


def scores_are_valid(scores: Sequence[float], labels: Sequence[object]) -> None:
    if len(scores) != len(labels):
        raise EvaluationError(f"{len(scores)} scores for {len(labels)} labels")
    if not all(math.isfinite(s) for s in scores):
        raise EvaluationError("scores hold NaN or infinite values")


def evaluate(task: Task, labels: Sequence[object], scores: Sequence[float]) -> dict[str, float]:
    """Every metric of `task`; for classification, `scores` are positive-class probabilities."""
    scores_are_valid(scores, labels)
    y_score = np.asarray(scores, dtype=float)
    if task == "regression":
        y = np.asarray(labels, dtype=float)
        return {
            "mae": float(metrics.mean_absolute_error(y, y_score)),
            "rmse": float(math.sqrt(metrics.mean_squared_error(y, y_score))),
        }
    y_true = np.asarray(labels, dtype=bool).astype(int)
    y_pred = (y_score >= 0.5).astype(int)
    both_classes = len(set(y_true.tolist())) == 2
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "precision": float(metrics.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(metrics.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(metrics.f1_score(y_true, y_pred, zero_division=0)),
        # ROC-AUC needs both classes in the holdout; without them it is undefined
        "roc_auc": float(metrics.roc_auc_score(y_true, y_score)) if both_classes else math.nan,
        "log_loss": float(
            metrics.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1])
        ),
    }


def better_by(metric: str, candidate: float, champion: float) -> float:
    """How much better `candidate` is than `champion` on `metric` (negative: worse)."""
    if metric not in HIGHER_IS_BETTER:
        raise EvaluationError(f"unknown metric {metric!r}; one of {sorted(HIGHER_IS_BETTER)}")
    return candidate - champion if HIGHER_IS_BETTER[metric] else champion - candidate
