"""Scores from a loaded model: one way for the stream, for request time and for tests.

A `Scorer` turns feature values (as on `features`, or from the online store) into the
positive class's probability (or the regression estimate) and the predicted class.
`RequestScorer` is request-time scoring for a business system that cannot wait for
the stream: an entity's latest features from Redis, through the same feature
definitions the stream used, then the same `Scorer`.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tideline import learners
from tideline.errors import TidelineError
from tideline.models import LoadedModel
from tideline.online_store import OnlineStore
from tideline.project import Project
from tideline.settings import Settings

THRESHOLD = 0.5  # the positive class from this probability on, as in tideline.evaluation


class ScoringError(TidelineError):
    """A model that does not fit the project, or a request it cannot score."""


class Scorer:
    """One loaded model of one project, ready to score rows of feature values."""

    def __init__(self, loaded: LoadedModel, project: Project) -> None:
        version = loaded.version
        if version["feature_version"] != project.features.version:
            raise ScoringError(
                f"{loaded.name} v{loaded.number} was trained on feature set"
                f" {version['feature_version']}, this project computes"
                f" {project.features.version}"
            )
        self.loaded = loaded
        self.task = project.label.task
        self.rows = learners.row_scorer(loaded.model, self.task, learners.Columns.of(project))

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def number(self) -> int:
        return self.loaded.number

    def scores(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """One score a row, all rows in one call to the model: a call costs about as much
        for one row as for a thousand."""
        return self.rows(rows)

    def predicted(self, score: float) -> str | None:
        """The predicted class ("true" or "false"); None for regression."""
        if self.task == "regression":
            return None
        return "true" if score >= THRESHOLD else "false"


@dataclass(frozen=True)
class RequestScore:
    entity_id: str
    model_name: str
    model_version: int
    score: float
    predicted: str | None
    features: dict[str, Any]  # what the model saw
    features_as_of: datetime | None  # event time of the entity's latest vector; None: defaults
    feature_version: str
    latency_ms: float


class RequestScorer:
    """Request-time scoring from the online store; one per thread, as its Redis client."""

    def __init__(self, settings: Settings, project: Project) -> None:
        self.store = OnlineStore(settings, project)
        self.names = set(project.features.names)
        self.version = project.features.version

    def score(
        self, scorer: Scorer, entity: str, overrides: Mapping[str, Any] | None = None
    ) -> RequestScore:
        """Score `entity` as of its latest event; `overrides` replace named feature values
        (what only the request knows, such as the amount of the payment being made)."""
        started = time.perf_counter()
        unknown = sorted(set(overrides or {}) - self.names)
        if unknown:
            raise ScoringError(f"unknown features {unknown}; the project's: {sorted(self.names)}")
        (online,) = self.store.get([entity])
        values = {**online.values, **(overrides or {})}
        (score,) = scorer.scores([values])
        return RequestScore(
            entity,
            scorer.name,
            scorer.number,
            score,
            scorer.predicted(score),
            values,
            online.event_time,
            self.version,
            (time.perf_counter() - started) * 1000,
        )

    def close(self) -> None:
        self.store.close()
