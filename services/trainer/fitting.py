"""One model from a training set and its holdout: checks, fit, holdout metrics, references.

Pure (no Kafka), so a run can be redone in-process from a version's dataset
references, and must give the same metrics.
"""

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tideline import artifacts, distributions, evaluation, learners, service
from tideline.errors import TidelineError
from tideline.project import Project
from tideline.training import TrainingSet


class TrainingError(TidelineError):
    """A run that cannot give a model worth offering: too few labels, one class, a library error."""


@dataclass(frozen=True)
class Fitted:
    model: Any
    artifact: bytes
    params: dict[str, str]
    metrics: dict[str, float]
    holdout_scores: list[float]
    reference: list[dict[str, Any]]  # tideline.FeatureReference records, one per feature
    prediction_reference: dict[str, Any]
    seconds: dict[str, float]  # train, evaluate
    openmp_threads: int  # what the fit's thread could start: the services' limit, if held


def _check(
    project: Project, train: TrainingSet, holdout: TrainingSet, min_rows: int, continuing: bool
) -> None:
    if continuing:  # a step of a model that has learnt before: any rows add to it
        min_rows = 1
    if len(train.frame) < min_rows:
        raise TrainingError(f"{len(train.frame)} labelled rows to train on, at least {min_rows}")
    if len(holdout.frame) == 0:
        raise TrainingError("no labelled rows left for the holdout")
    if project.label.task == "classification" and not continuing:
        classes = set(train.frame[project.label.field].astype(bool))
        if len(classes) < 2:
            raise TrainingError(f"the training rows hold a single class: {classes.pop()}")


def references(project: Project, columns: learners.Columns, x: Any) -> list[dict[str, Any]]:
    return [
        distributions.numeric(name, x[name].tolist())
        if name in columns.numeric
        else distributions.categorical(name, x[name].tolist())
        for name in project.features.names
    ]


def fit(
    project: Project,
    family: str,
    params: Mapping[str, str],
    train: TrainingSet,
    holdout: TrainingSet,
    min_rows: int,
    start: Any | None = None,
) -> Fitted:
    """A new model of `family`; or `start` (a fitted model of it, left as it is) learning on
    from where it stopped, when its library learns online."""
    _check(project, train, holdout, min_rows, start is not None)
    task, label = project.label.task, project.label.field
    columns = learners.Columns.of(project)
    effective = learners.parameters(family, params)
    if start is not None and not learners.library(start).online:
        raise TrainingError(f"a {learners.library(start).name} model does not learn online")
    model = (
        learners.make(family, task, columns, effective) if start is None else copy.deepcopy(start)
    )
    x_train = columns.frame(train.frame)
    threads = service.openmp_threads()
    started = time.perf_counter()
    learners.fit(model, task, x_train, train.frame[label].tolist())
    trained = time.perf_counter()
    scores = learners.scores(model, task, columns.frame(holdout.frame))
    try:
        metrics = evaluation.evaluate(task, holdout.frame[label].tolist(), scores)
    except evaluation.EvaluationError as exc:
        raise TrainingError(f"the model cannot be judged on its holdout: {exc}") from exc
    evaluated = time.perf_counter()
    artifact = artifacts.dump(model)
    undeclared = sorted(artifacts.types_in(artifact) - learners.trusted_types())
    if undeclared:  # the registry and serving would refuse it: say why here, not there
        raise TrainingError(f"the {family} model names types no family declares: {undeclared}")
    return Fitted(
        model=model,
        artifact=artifact,
        params=effective,
        metrics=metrics,
        holdout_scores=scores,
        reference=references(project, columns, x_train),
        prediction_reference=distributions.numeric("prediction", scores),
        seconds={"train": trained - started, "evaluate": evaluated - trained},
        openmp_threads=threads,
    )
