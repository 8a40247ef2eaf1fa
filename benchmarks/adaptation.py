"""Adaptation: the platform's prequential accuracy on standard concept-drift streams, next to
an in-process baseline with the same model, detector and retraining policy.

Run against a running stack: .venv/bin/python benchmarks/adaptation.py

Streams (river.datasets.synth.SEA, project benchmarks/sea.yaml): the threshold on
x0 + x1 moves from 8 to 9.5 at the drift point, abruptly (width 1) or gradually (a
ConceptDriftStream of width 2,000); the control never moves it.

- Platform: `tideline demo`'s loop with this stream: events through ingest, the
  feature store, serving, the monitor, the trainer and the registry, labels 3 s (1,200
  events) late. Its accuracy is its served predictions joined with the labels.
- Baseline: a plain Python loop over the same events: the same first model (the
  trainer's `fit`, on the same 3,000 bootstrap events, 20% held out), the same
  `Monitor` (its settings as the demo's), labels the same 1,200 events late, the same
  policy (after a detection, wait for 1,000 labels of later events, fit on them, the
  registry's `decide`), and a promotion takes effect at the next event.

Prequential accuracy is over every event from the first model on (before and after
the drift point). The gap is what the platform's real latencies cost (training, the
gate reading Kafka, the swap), during which the old model keeps serving.
"""

import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from river.datasets import synth
from tideline import learners, project
from tideline.scoring import THRESHOLD
from tideline.settings import Settings
from tideline.training import TrainingSet

from ops import demo
from services.monitor.monitor import Monitor
from services.monitor.settings import MonitorSettings
from services.registry.gate import Policy, decide
from services.trainer.fitting import fit

console = Console()
SEA = Path(__file__).with_name("sea.yaml")
DEFINITION = project.load(SEA)
PLAN = demo.Plan()
DRIFT_LABELS = int(demo.SERVICE_ENV["TIDELINE_TRAINER_DRIFT_LABELS"])
MONITOR = MonitorSettings.model_validate(
    {
        name.removeprefix("TIDELINE_MONITOR_").lower(): value
        for name, value in demo.SERVICE_ENV.items()
        if name.startswith("TIDELINE_MONITOR_")
    }
)
POLICY = Policy("roc_auc", 0.005)  # the registry's defaults
Point = tuple[dict[str, Any], bool]


def stream(kind: str, seed: int) -> Iterator[Point]:
    before, after = synth.SEA(variant=0, seed=seed), synth.SEA(variant=3, seed=seed + 1)
    position = PLAN.bootstrap + PLAN.before
    found: Any = before
    if kind == "abrupt":  # river's ConceptDriftStream overflows at width 1: the same, by hand
        found = itertools.chain(itertools.islice(before, position), after)
    elif kind == "gradual":
        found = synth.ConceptDriftStream(before, after, position=position, width=2000, seed=seed)
    for i, (x, y) in enumerate(found):
        yield {"source": f"s{i % 100}", "x0": x[0], "x1": x[1], "x2": x[2]}, bool(y)


def points(kind: str, seed: int) -> list[Point]:
    total = PLAN.bootstrap + PLAN.before + PLAN.after
    return list(itertools.islice(stream(kind, seed), total))


def platform(kind: str, seed: int) -> demo.Report:
    found = iter(points(kind, seed))
    plan = demo.Plan(drift=kind != "control")
    return demo.run(
        Settings(), SEA, plan, False, Console(quiet=True), source=lambda _phase: next(found)
    )


def _set(rows: list[Point]) -> TrainingSet:
    frame = pd.DataFrame([{**x, DEFINITION.label.field: y} for x, y in rows])
    return TrainingSet(frame, {})


def _fit(rows: list[Point]) -> Any:
    cut = int(len(rows) * 0.8)  # the trainer's 20% holdout, the most recent
    return fit(DEFINITION, "gradient_boosting", {}, _set(rows[:cut]), _set(rows[cut:]), 100), rows[
        cut:
    ]


def _version(number: int, fitted: Any, created_ms: int) -> dict[str, Any]:
    return {
        "version": number,
        "aliases": ["champion"],
        "created_at": created_ms,
        "metrics": fitted.metrics,
        "reference": fitted.reference,
        "prediction_reference": fitted.prediction_reference,
    }


@dataclass(frozen=True)
class Outcome:
    accuracy: float
    detected: int | None  # labelled events from the drift point to detection
    retrains: int


def baseline(kind: str, seed: int) -> Outcome:
    """The same stream, model, monitor and policy in a plain loop."""
    data = points(kind, seed)
    columns = learners.Columns.of(DEFINITION)
    delay = int(PLAN.rate * PLAN.label_delay_s)  # labels arrive this many events late
    tick = int(PLAN.rate * MONITOR.interval.total_seconds())
    ms = 1000 / PLAN.rate
    start, onset = PLAN.bootstrap, PLAN.bootstrap + PLAN.before
    fitted, _ = _fit(data[:start])
    model, number = fitted.model, 1
    monitor = Monitor(DEFINITION, DEFINITION.name, MONITOR, now_ms=0)
    monitor.set_versions([_version(1, fitted, int(start * ms))])

    def scores_from(i: int) -> list[float]:
        return learners.scores(model, "classification", columns.frame([x for x, _ in data[i:]]))

    scores, offset = scores_from(start), start
    correct, detected, waiting_since, retrains = 0, None, None, 0
    for i in range(start, len(data)):
        score = scores[i - offset]
        correct += (score >= THRESHOLD) == data[i][1]
        monitor.prediction(
            {
                "event_id": str(i),
                "model_version": number,
                "shadow": False,
                "event_time": int(i * ms),
                "score": score,
                "latency_ms": 0.0,
            },
            now=i / PLAN.rate,
        )
        if (j := i - delay) >= start:
            label = {
                "event_id": str(j),
                "label_time": int(i * ms),
                "payload": {DEFINITION.label.field: data[j][1]},
            }
            monitor.label(label, now=i / PLAN.rate)
        if i % tick == 0:
            monitor.tick(now=i / PLAN.rate, now_ms=int(i * ms))
        for event in monitor.drain(now_ms=int(i * ms)):
            if waiting_since is None:
                waiting_since = int(event["window_end"] / ms) + 1  # events after the detection
                detected = detected if detected is not None else waiting_since - onset
        labelled = i - delay  # labels in so far are those of events up to this one
        if waiting_since is not None and labelled - waiting_since >= DRIFT_LABELS:
            retrains += 1
            rows = data[waiting_since : waiting_since + DRIFT_LABELS]
            candidate, holdout = _fit(rows)
            x = columns.frame([x for x, _ in holdout])
            decision = decide(
                POLICY,
                "classification",
                [y for _, y in holdout],
                learners.scores(candidate.model, "classification", x),
                learners.scores(model, "classification", x),
                DEFINITION.features.version,
                DEFINITION.features.version,
            )
            waiting_since = None
            if decision.promote:
                model, number = candidate.model, number + 1
                monitor.set_versions([_version(number, candidate, int(i * ms))])
                scores, offset = scores_from(i + 1), i + 1
    return Outcome(correct / (len(data) - start), detected, retrains)


def main(runs: int = typer.Option(3, help="runs per stream")) -> None:
    table = Table("stream", "", "prequential accuracy", "events to detection", "retrains", "runs")
    for kind in ("abrupt", "gradual", "control"):
        ours = [platform(kind, seed) for seed in range(runs)]
        theirs = [baseline(kind, seed) for seed in range(runs)]
        rows: dict[str, list[tuple[float, float | None, float]]] = {
            "platform": [
                (
                    r.accuracy["prequential, from the first model on"][0],
                    r.labelled_to_detection,
                    r.retrains,
                )
                for r in ours
            ],
            "baseline": [(b.accuracy, b.detected, b.retrains) for b in theirs],
        }
        for who, found in rows.items():
            detections = [d for _, d, _ in found if d is not None]
            table.add_row(
                kind,
                who,
                f"{statistics.median(a for a, _, _ in found):.4f}",
                f"{statistics.median(detections):.0f}" if detections else "-",
                f"{statistics.median(r for _, _, r in found):.0f}",
                " ".join(f"{a:.3f}/{'-' if d is None else d}/{r}" for a, d, r in found),
            )
    console.print(table)
    console.print("runs: accuracy/events to detection/retrains")


if __name__ == "__main__":
    typer.run(main)
