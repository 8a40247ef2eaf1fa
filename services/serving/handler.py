"""Serving as a pure function: a batch of feature vectors and the models in use, to predictions.

The models are passed in per batch, so a swap takes effect between two batches and
every prediction names the version that made it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from tideline import catalog, dlq
from tideline.dlq import RejectionError, Source
from tideline.durations import epoch_millis
from tideline.project import Project
from tideline.scoring import Scorer
from tideline.serde import Record


@dataclass(frozen=True)
class Prediction:
    entity: str
    event_time: int  # ms
    record: bytes  # the tideline.Prediction, single-object encoded
    latency_ms: float
    shadow: bool


@dataclass
class Batch:
    predictions: list[Prediction] = field(default_factory=list)
    rejected: list[tuple[Source, RejectionError]] = field(default_factory=list)


class Predictor:
    def __init__(
        self, project: Project, features: catalog.Bound, predictions: catalog.Bound
    ) -> None:
        self.features, self.predictions = features, predictions
        self.version = project.features.version

    def process(
        self, records: Iterable[Source], champion: Scorer, challenger: Scorer | None, now_ms: int
    ) -> Batch:
        batch = Batch()
        vectors = []
        for source, vector in dlq.decoded(self.features, records, batch.rejected):
            if vector["feature_version"] != self.version:
                message = f"feature set {vector['feature_version']}, serving {self.version}"
                batch.rejected.append((source, RejectionError("schema", "FeatureVersion", message)))
                continue
            vectors.append(vector)
        if not vectors:
            return batch
        rows = [v["values"] for v in vectors]
        for scorer, shadow in ((champion, False), (challenger, True)):
            if scorer is None:
                continue
            for vector, score in zip(vectors, scorer.scores(rows), strict=True):
                batch.predictions.append(self._prediction(vector, scorer, score, shadow, now_ms))
        return batch

    def _prediction(
        self, vector: Record, scorer: Scorer, score: float, shadow: bool, now_ms: int
    ) -> Prediction:
        event_time = epoch_millis(vector["event_time"])
        latency = float(now_ms - epoch_millis(vector["computed_at"]))
        record = {
            "event_id": vector["event_id"],
            "entity_id": vector["entity_id"],
            "event_time": event_time,
            "model_name": scorer.name,
            "model_version": scorer.number,
            "shadow": shadow,
            "score": score,
            "predicted": scorer.predicted(score),
            "feature_version": self.version,
            "latency_ms": latency,
            "scored_at": now_ms,
        }
        return Prediction(
            vector["entity_id"],
            event_time,
            self.predictions.encode(record),
            latency,
            shadow,
        )
