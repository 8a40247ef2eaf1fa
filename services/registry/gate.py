"""The promotion gate: may a candidate replace the champion? A pure decision, with its reason.

Both models are scored on the candidate's holdout, so the comparison is on the same
rows. Validation comes first: a candidate that cannot score its holdout, scores NaN,
or was trained on other feature definitions never becomes champion.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tideline import evaluation
from tideline.registry import Record


@dataclass(frozen=True)
class Policy:
    metric: str  # what decides, e.g. "f1" or "mae"
    margin: float  # how much better than the champion, in the metric's units


def margin(base: float, candidate: Record, champion: Record | None) -> float:
    """The gain `candidate` needs: `base`, the registry's margin, or, for a step of the online line
    that is champion (the same family learning on), no loss beyond it: the line keeps
    serving what it has learnt since, unless that made it worse."""
    if (
        champion is not None
        and candidate["trigger"]["kind"] == "online"
        and candidate["family"] == champion["family"]
    ):
        return -base
    return base


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    candidate: dict[str, float]  # metrics on the holdout
    champion: dict[str, float] | None  # the champion's, on the same rows; None: no champion


def decide(
    policy: Policy,
    task: evaluation.Task,
    labels: Sequence[object],
    candidate_scores: Sequence[float],
    champion_scores: Sequence[float] | None,
    feature_version: str,
    candidate_feature_version: str,
) -> Decision:
    if candidate_feature_version != feature_version:
        return Decision(
            False,
            f"trained on feature version {candidate_feature_version}, serving {feature_version}",
            {},
            None,
        )
    try:
        ours = evaluation.evaluate(task, labels, candidate_scores)
    except evaluation.EvaluationError as exc:
        return Decision(False, f"validation failed: {exc}", {}, None)
    if math.isnan(ours.get(policy.metric, math.nan)):
        return Decision(False, f"{policy.metric} is undefined on this holdout", ours, None)
    if champion_scores is None:
        return Decision(True, "first model of its name, and it passes validation", ours, None)
    try:
        theirs = evaluation.evaluate(task, labels, champion_scores)
    except evaluation.EvaluationError as exc:
        return Decision(True, f"the champion cannot score this holdout: {exc}", ours, None)
    gain = evaluation.better_by(policy.metric, ours[policy.metric], theirs[policy.metric])
    verdict = (
        f"{policy.metric} {ours[policy.metric]:.4f} vs champion {theirs[policy.metric]:.4f}"
        f" on the same {len(labels)} rows: {gain:+.4f}, margin {policy.margin}"
    )
    return Decision(gain >= policy.margin, verdict, ours, theirs)
