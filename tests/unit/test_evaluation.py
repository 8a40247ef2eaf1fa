"""Holdout metrics with known answers."""

import math

import pytest
from tideline import evaluation


def test_classification_metrics_known_answers() -> None:
    labels = [True, True, False, False]
    scores = [0.9, 0.4, 0.6, 0.1]  # predicted: T, F, T, F
    found = evaluation.evaluate("classification", labels, scores)
    assert found["accuracy"] == 0.5
    assert found["precision"] == 0.5
    assert found["recall"] == 0.5
    assert found["f1"] == 0.5
    assert found["roc_auc"] == 0.75  # 3 of the 4 positive/negative pairs ordered right
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.9)) / 4
    assert found["log_loss"] == pytest.approx(expected)


def test_regression_metrics_known_answers() -> None:
    found = evaluation.evaluate("regression", [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 8.0])
    assert found == {"mae": 1.0, "rmse": 2.0}


def test_roc_auc_is_undefined_with_one_class() -> None:
    assert math.isnan(evaluation.evaluate("classification", [True, True], [0.2, 0.8])["roc_auc"])


@pytest.mark.parametrize("scores", [[0.5, math.nan], [0.5, math.inf], [0.5]])
def test_unjudgeable_scores_are_refused(scores: list[float]) -> None:
    with pytest.raises(evaluation.EvaluationError):
        evaluation.evaluate("classification", [True, False], scores)


def test_better_by_knows_which_way_is_up() -> None:
    assert evaluation.better_by("f1", 0.8, 0.7) == pytest.approx(0.1)
    assert evaluation.better_by("mae", 0.8, 1.0) == pytest.approx(0.2)
    with pytest.raises(evaluation.EvaluationError, match="unknown metric"):
        evaluation.better_by("vibes", 1.0, 0.0)
