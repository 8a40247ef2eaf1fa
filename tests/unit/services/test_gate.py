"""The registry's promotion gate: validation first, then the same rows, then the margin."""

import math

from services.registry.gate import Policy, decide, margin

LABELS = [True, False] * 50
GOOD = [0.9, 0.1] * 50  # every row right
HALF = [0.9, 0.9] * 50  # half the rows right
F1 = Policy(metric="f1", margin=0.02)


def test_the_first_model_is_promoted_if_it_validates() -> None:
    decision = decide(F1, "classification", LABELS, HALF, None, "v1", "v1")
    assert decision.promote
    assert "first model" in decision.reason


def test_a_better_candidate_beats_the_champion_by_the_margin() -> None:
    decision = decide(F1, "classification", LABELS, GOOD, HALF, "v1", "v1")
    assert decision.promote
    assert decision.champion is not None
    assert decision.candidate["f1"] == 1.0


def test_a_worse_candidate_is_kept_out_with_its_reason() -> None:
    decision = decide(F1, "classification", LABELS, HALF, GOOD, "v1", "v1")
    assert not decision.promote
    assert "f1 0.6667 vs champion 1.0000 on the same 100 rows: -0.3333" in decision.reason


def test_a_gain_below_the_margin_is_not_enough() -> None:
    slightly = [0.9, 0.1] * 49 + [0.9, 0.9]  # one row worse than GOOD
    decision = decide(Policy("accuracy", 0.02), "classification", LABELS, GOOD, slightly, "v", "v")
    assert not decision.promote  # +0.01 < 0.02


def test_lower_is_better_metrics() -> None:
    truth = [1.0, 2.0, 3.0]
    decision = decide(
        Policy("mae", 0.1), "regression", truth, [1.0, 2.0, 3.5], [2.0, 3.0, 4.0], "v", "v"
    )
    assert decision.promote


def test_validation_failures_are_never_promoted() -> None:
    nan = decide(F1, "classification", LABELS, [math.nan] * 100, None, "v1", "v1")
    assert not nan.promote
    assert "validation failed" in nan.reason
    other = decide(F1, "classification", LABELS, GOOD, None, "v2", "v1")
    assert not other.promote
    assert "feature version v1" in other.reason
    one_class = decide(
        Policy("roc_auc", 0.0), "classification", [True] * 4, [0.9] * 4, None, "v", "v"
    )
    assert not one_class.promote
    assert "undefined" in one_class.reason


def test_a_champion_that_cannot_score_the_holdout_gives_way() -> None:
    decision = decide(F1, "classification", LABELS, GOOD, [math.nan] * 100, "v1", "v1")
    assert decision.promote
    assert "champion cannot score" in decision.reason


def test_a_step_of_the_online_champion_needs_no_gain_only_no_loss_beyond_the_margin() -> None:
    online = {"trigger": {"kind": "online", "id": "600 labels written"}, "family": "river_linear"}
    batch = {"trigger": {"kind": "drift", "id": "d0"}, "family": "gradient_boosting"}
    assert margin(F1.margin, online, online) == -0.02  # the line learning on
    assert margin(F1.margin, online, batch) == 0.02  # the line challenging a batch champion
    assert margin(F1.margin, batch, online) == 0.02  # a retrain challenging the line
    assert margin(F1.margin, online, None) == 0.02
