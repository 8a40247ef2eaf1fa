"""A candidate's version record: what the registry registers of a tideline.ModelCandidate."""

from tideline.registry import Record


def version_record(candidate: Record, artifact: Record) -> Record:
    """The tideline.ModelVersion a candidate registers as (number and state set on registering)."""
    return {
        "model_name": candidate["model_name"],
        "version": 0,
        "state": "candidate",
        "aliases": [],
        "task": candidate["task"],
        "family": candidate["family"],
        "params": candidate["params"],
        "feature_names": candidate["feature_names"],
        "feature_version": candidate["dataset"]["feature_version"],
        "metrics": candidate["metrics"],
        "dataset": candidate["dataset"],
        "holdout": candidate["holdout"],
        "trigger": candidate["trigger"],
        "code_version": candidate["code_version"],
        "artifact": artifact,
        "reference": candidate["reference"],
        "prediction_reference": candidate["prediction_reference"],
        "created_at": candidate["trained_at"],
    }
