"""The monitor as a pure state machine: records in, metrics and drift events out.

It watches the champion: the live feature and score distributions against the
reference recorded with it (data and prediction drift), and its labelled errors with
online detectors and a performance floor (concept drift). Every version with
labelled predictions (the challenger's shadow ones too) gets live performance.

Verdicts are in the stream's units, so a project behaves the same at 5 and at 5,000
events a second: the floor is judged every `check_labels` labelled predictions, the
distributions every `check_vectors` vectors, and `confirm` judgements in a row must
agree. One drift, one event: after any event for a champion, no other event until a
new champion is announced or `cooldown_labels` more of its predictions are labelled
(or the optional `cooldown` has passed); a restart resumes that cooldown from the
last drift event on the topic. The published metrics alone are per wall-clock
interval. Time comes in as arguments (`now`: monotonic seconds, `now_ms`: wall
clock), so tests drive it without waiting.
"""

import dataclasses
import math
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tideline.durations import epoch_millis
from tideline.evaluation import HIGHER_IS_BETTER, evaluate
from tideline.project import Project

from services.monitor import drift
from services.monitor.detectors import Alarm, ErrorStream
from services.monitor.join import Joined, Joiner
from services.monitor.settings import MonitorSettings

Record = dict[str, Any]


@dataclass
class Champion:
    version: Record
    errors: ErrorStream
    scores: deque[float]
    latest_event_time: int = 0  # ms: the newest labelled prediction of it
    labelled: int = 0  # its labelled predictions since it became champion
    fired_labelled: int | None = None  # `labelled` at its last drift event
    fired_at: float | None = None  # `now` at its last drift event
    earlier: frozenset[int] = frozenset()  # the earlier steps of its online line

    @property
    def number(self) -> int:
        return int(self.version["version"])


def one_line(old: Record, new: Record) -> bool:
    """Whether `new` and `old` are steps of the trainer's online line: one model that
    learns on, a version a step (docs/models.md)."""
    steps = all(v.get("trigger", {}).get("kind") == "online" for v in (old, new))
    return steps and old.get("family") == new.get("family")


@dataclass
class Interval:
    """What happened since the last published metrics."""

    start_ms: int
    unlabelled_before: int = 0  # the join's counts as the interval began
    orphans_before: int = 0
    volume: int = 0
    labelled: int = 0
    label_delays: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    versions: set[int] = field(default_factory=set)  # with labelled predictions
    # (version, bucket start ms) -> [labelled, errors]: performance by event time
    by_event_time: dict[tuple[int, int], list[float]] = field(default_factory=dict)


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Monitor:
    def __init__(self, project: Project, name: str, own: MonitorSettings, now_ms: int) -> None:
        self.project, self.name, self.own = project, name, own
        self.task = project.label.task
        self.metric = "accuracy" if self.task == "classification" else "mae"
        self.bucket_ms = max(1, int(own.event_time_bucket.total_seconds() * 1000))
        self.vectors: deque[tuple[int, dict[str, Any]]] = deque(maxlen=own.drift_window)
        self.joiner = Joiner(int(own.label_horizon.total_seconds() * 1000))
        # per version: (label, score, event time, event id) of the last labelled predictions
        self.performance: dict[int, deque[tuple[Any, float, int, str]]] = {}
        self.created: dict[int, int] = {}  # version -> created_at, ms
        self.champion: Champion | None = None
        self.alarms = {kind: Alarm(own.confirm) for kind in ("performance", "data", "prediction")}
        self.vectors_seen = 0
        self.interval = Interval(now_ms)
        self.now_ms = now_ms  # of the latest tick
        self.events: list[Record] = []

    # -- input --

    def set_versions(self, versions: list[Record]) -> None:
        """The model's versions as the registry has them now (tideline.ModelVersion records)."""
        for version in versions:
            created = version["created_at"]
            self.created[version["version"]] = (
                created if isinstance(created, int) else epoch_millis(created)
            )
        champions = [v for v in versions if "champion" in v["aliases"]]
        if champions:
            self._set_champion(champions[0])

    def _set_champion(self, version: Record) -> None:
        current = self.champion
        if current is not None and current.number == version["version"]:
            return
        if current is not None and one_line(current.version, version):
            # the online line learning on is judged on as one model: its detectors, its
            # cooldown and the labels of its earlier steps' predictions carry over, or
            # every step would blind it for `min_samples` labels
            earlier = current.earlier | {current.number}
            self.champion = dataclasses.replace(current, version=version, earlier=earlier)
            return
        own = self.own
        self.champion = Champion(
            version,
            ErrorStream(own.adwin_delta, own.page_hinkley_threshold, own.min_samples),
            deque(maxlen=own.drift_window),
        )
        for alarm in self.alarms.values():  # a new champion: judged afresh
            alarm.rearm()

    def resume(self, event: Record, labels_since: int, age_s: float, now: float) -> bool:
        """The last drift event published before a restart (`age_s` old, `labels_since`
        labels on the topic after it): if it was on the champion, its cooldown goes on
        where it was, so the restarted monitor does not report the same drift again."""
        champion = self.champion
        if champion is None or event["model_version"] != champion.number:
            return False
        champion.fired_labelled, champion.fired_at = -labels_since, now - age_s
        return self._quiet(now)

    def vector(self, record: Record, event_time_ms: int, now: float) -> None:
        self.vectors.append((event_time_ms, record["values"]))
        self.vectors_seen += 1
        champion = self.champion
        if self.vectors_seen % self.own.check_vectors or champion is None or self._quiet(now):
            return
        self._check_distributions(
            champion, self._feature_drift(champion), self._prediction_drift(champion), now
        )

    def prediction(self, record: Record, now: float) -> None:
        """A tideline.Prediction, its event_time in ms."""
        champion = self.champion
        if champion is not None and self._is_champions(record, champion):
            self.interval.volume += 1
            self.interval.latencies.append(record["latency_ms"])
            champion.scores.append(record["score"])
        joined = self.joiner.prediction(record)
        if joined is not None:
            self._joined(joined, now)

    def label(self, record: Record, now: float) -> bool:
        """A tideline.Label, its label_time in ms; True when it corrected a joined label."""
        value, event_id = record["payload"][self.project.label.field], record["event_id"]
        corrects = self.joiner.corrects(event_id, value)
        if corrects:
            self._correct(event_id, value)
        for joined in self.joiner.label(event_id, value, record["label_time"]):
            self._joined(joined, now)
        return corrects

    def _correct(self, event_id: str, value: Any) -> None:
        """Live performance as if `value` had come first (corrections are rare: a scan). The
        detectors and the buckets by event time keep what they saw."""
        for window in self.performance.values():
            for i, (_, score, event_time, found) in enumerate(window):
                if found == event_id:
                    window[i] = (value, score, event_time, found)

    def _is_champions(self, prediction: Record, champion: Champion) -> bool:
        version = prediction["model_version"]
        return not prediction["shadow"] and (
            version == champion.number or version in champion.earlier
        )

    def _joined(self, joined: Joined, now: float) -> None:
        prediction, interval = joined.prediction, self.interval
        version = prediction["model_version"]
        interval.labelled += 1
        interval.label_delays.append(joined.label_delay_ms)
        if prediction["event_time"] < self.created.get(version, math.inf):
            return  # a version is judged on events after it was trained, never on its own data
        window = self.performance.setdefault(version, deque(maxlen=self.own.performance_window))
        window.append(
            (joined.label, prediction["score"], prediction["event_time"], prediction["event_id"])
        )
        interval.versions.add(version)
        if self.task == "classification":
            error = float((prediction["score"] >= 0.5) != bool(joined.label))
        else:
            error = abs(prediction["score"] - float(joined.label))
        width = self.bucket_ms
        bucket = interval.by_event_time.setdefault(
            (version, prediction["event_time"] // width * width), [0, 0.0]
        )
        bucket[0] += 1
        bucket[1] += error
        champion = self.champion
        if champion is None or not self._is_champions(prediction, champion):
            return
        champion.latest_event_time = max(champion.latest_event_time, prediction["event_time"])
        champion.labelled += 1
        if champion.labelled % self.own.check_labels == 0 and not self._quiet(now):
            self._check_floor(champion, now)
        detector = champion.errors.update(error)
        if detector is not None:
            holdout = champion.version["metrics"].get(self.metric, math.nan)
            expected = 1 - holdout if self.task == "classification" else holdout
            recent = champion.errors.recent_error
            self._fire(
                "concept",
                detector,
                now,
                severity=recent - expected,
                window_start=window[0][2],
                window_end=champion.latest_event_time,
                details={"recent_error": f"{recent:.4f}", "holdout_error": f"{expected:.4f}"},
            )

    # -- output --

    def _quiet(self, now: float) -> bool:
        champion, own = self.champion, self.own
        if champion is None or champion.fired_labelled is None or champion.fired_at is None:
            return False
        if own.cooldown is not None and now - champion.fired_at >= own.cooldown.total_seconds():
            return False
        return champion.labelled - champion.fired_labelled < own.cooldown_labels

    def _fire(
        self,
        kind: str,
        detector: str,
        now: float,
        severity: float,
        window_start: int,
        window_end: int,
        features: Sequence[str] = (),
        details: dict[str, str] | None = None,
    ) -> None:
        champion = self.champion
        if champion is None or kind not in self.own.drift_kinds or self._quiet(now):
            return
        champion.fired_labelled, champion.fired_at = champion.labelled, now
        self.events.append(
            {
                "drift_id": str(uuid.uuid4()),
                "model_name": self.name,
                "model_version": champion.number,
                "kind": kind,
                "detector": detector,
                "features": list(features),
                "severity": float(severity),
                "window_start": window_start,
                "window_end": window_end,
                "detected_at": 0,  # stamped by drain
                "details": details or {},
            }
        )

    def drain(self, now_ms: int) -> list[Record]:
        """Drift events confirmed since the last call, stamped `now_ms`."""
        events, self.events = self.events, []
        return [event | {"detected_at": now_ms} for event in events]

    def tick(self, now: float, now_ms: int) -> list[Record]:
        """The tideline.MonitorMetrics records of the interval that ends now (the
        champion's, then other versions with labels)."""
        self.now_ms = now_ms
        self.joiner.expire()
        records: list[Record] = []
        champion = self.champion
        if champion is not None:
            features = self._feature_drift(champion)
            prediction_drift = self._prediction_drift(champion)
            performance = self._performance(champion.number)
            records.append(self._metrics(champion.number, performance, features, prediction_drift))
        for version in sorted(self.interval.versions - {champion.number if champion else -1}):
            records.append(self._metrics(version, self._performance(version), [], None))
        self.interval = Interval(now_ms, self.joiner.unlabelled, self.joiner.orphans)
        return records

    def _metrics(
        self,
        version: int,
        performance: dict[str, float],
        features: list[Record],
        prediction_drift: Record | None,
    ) -> Record:
        interval = self.interval
        return {
            "model_name": self.name,
            "model_version": version,
            "window_start": interval.start_ms,
            "window_end": self.now_ms,
            "emitted_at": self.now_ms,
            "volume": interval.volume if features else 0,
            "labelled": interval.labelled,
            "label_delay_ms_p50": _percentile(interval.label_delays, 50),
            "scoring_latency_ms_p50": _percentile(interval.latencies, 50) if features else None,
            "scoring_latency_ms_p99": _percentile(interval.latencies, 99) if features else None,
            "performance": performance,
            "features": features,
            "prediction_drift": prediction_drift,
            "psi_threshold": self.own.psi_threshold,
            "performance_floor": self._floor(version),
            "pending_joins": self.joiner.pending,
            "unlabelled": self.joiner.unlabelled - interval.unlabelled_before,
            "orphan_labels": self.joiner.orphans - interval.orphans_before,
            "by_event_time": [
                {"start": start, "width_ms": self.bucket_ms, "labelled": int(n), "errors": errors}
                for (v, start), (n, errors) in sorted(interval.by_event_time.items())
                if v == version
            ],
        }

    def _performance(self, version: int) -> dict[str, float]:
        window = self.performance.get(version, deque())
        if len(window) < self.own.min_samples:
            return {}
        labels = [entry[0] for entry in window]
        scores = [entry[1] for entry in window]
        found = evaluate(self.task, labels, scores)
        return {name: value for name, value in found.items() if not math.isnan(value)}

    def _feature_drift(self, champion: Champion) -> list[Record]:
        vectors = self.vectors
        return [
            drift.compare(reference, [v.get(reference["name"]) for _, v in vectors])
            for reference in champion.version["reference"]
        ]

    def _prediction_drift(self, champion: Champion) -> Record | None:
        reference = champion.version["prediction_reference"]
        if reference is None:
            return None
        return drift.compare(reference, list(champion.scores))

    def _live(self, version: int) -> float | None:
        """The monitored metric alone over the version's window: cheap enough to judge often."""
        window = self.performance.get(version, deque())
        if len(window) < self.own.min_samples:
            return None
        labels = np.fromiter((entry[0] for entry in window), dtype=float, count=len(window))
        scores = np.fromiter((entry[1] for entry in window), dtype=float, count=len(window))
        if self.task == "classification":
            return float(np.mean((scores >= 0.5) == (labels != 0)))
        return float(np.mean(np.abs(scores - labels)))

    def _check_floor(self, champion: Champion, now: float) -> None:
        live = self._live(champion.number)
        holdout = champion.version["metrics"].get(self.metric)
        if live is None:
            return
        sign = 1 if HIGHER_IS_BETTER[self.metric] else -1  # MAE: the floor is a ceiling
        limits = self._limits(champion)
        below = any(sign * (live - limit) < 0 for limit in limits)
        if self.alarms["performance"].check(below):
            window = self.performance[champion.number]
            self._fire(
                "performance",
                "floor",
                now,
                severity=abs(live - (holdout if holdout is not None else live)),
                window_start=window[0][2],
                window_end=champion.latest_event_time,
                details={f"live_{self.metric}": f"{live:.4f}", "limits": str(limits)},
            )

    def _limits(self, champion: Champion) -> list[float]:
        """The floors of the monitored metric: the configured one, and the champion's
        holdout figure less the margin (for MAE, ceilings)."""
        holdout = champion.version["metrics"].get(self.metric)
        sign = 1 if HIGHER_IS_BETTER[self.metric] else -1
        relative = None if holdout is None else holdout - sign * self.own.floor_margin
        return [x for x in (self.own.floor, relative) if x is not None]

    def _floor(self, version: int) -> float | None:
        champion = self.champion
        if champion is None or champion.number != version or not (limits := self._limits(champion)):
            return None
        return max(limits) if HIGHER_IS_BETTER[self.metric] else min(limits)

    def _check_distributions(
        self,
        champion: Champion,
        features: list[Record],
        prediction_drift: Record | None,
        now: float,
    ) -> None:
        own = self.own
        judged = [f for f in features if f["sample_size"] >= own.min_samples and _scored(f)]
        alpha = own.drift_alpha / max(1, len(judged))  # the rate shared by the features
        shifted = [f for f in judged if _shifted(f, own.psi_threshold, alpha)]
        if self.alarms["data"].check(
            bool(shifted), cleared=all(f["psi"] < own.psi_clear for f in judged)
        ):
            self._fire(
                "data",
                "psi",
                now,
                severity=max(f["psi"] for f in shifted),
                window_start=self.vectors[0][0],
                window_end=self.vectors[-1][0],
                features=[f["feature"] for f in shifted],
                details={f["feature"]: f"{f['psi']:.4f}" for f in shifted},
            )
        scores = prediction_drift
        if scores is None or scores["sample_size"] < own.min_samples or not _scored(scores):
            return
        if self.alarms["prediction"].check(
            _shifted(scores, own.psi_threshold, own.drift_alpha),
            cleared=scores["psi"] < own.psi_clear,
        ):
            self._fire(
                "prediction",
                "psi",
                now,
                severity=scores["psi"],
                window_start=champion.latest_event_time,
                window_end=champion.latest_event_time,
                details={"psi": f"{scores['psi']:.4f}"},
            )


def _scored(found: Record) -> bool:
    return found["psi"] is not None and found["p_value"] is not None


def _shifted(found: Record, psi_threshold: float, alpha: float) -> bool:
    """Material (the shares moved past the PSI threshold) and significant (a stationary
    window moves so far less often than `alpha`): PSI alone fires on small windows'
    noise, a test alone on large windows' trifles."""
    return bool(found["psi"] > psi_threshold and found["p_value"] < alpha)
