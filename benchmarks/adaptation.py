"""Adaptation: the platform's prequential accuracy on river's drifting streams, next to
in-process learners and the same retraining policy in a plain loop, on the same events.

Run against a running stack: .venv/bin/python benchmarks/adaptation.py
[--cases sea_noise:abrupt,agrawal:gradual] [--rates 50,500,2000] [--online river_tree]

Streams: benchmarks/drifting.py's, each with a project of its fields
(`drifting.project`). The plan is the demo's: 3,000 bootstrap events, 3,000 under the
first concept, then the drift point and 10,000 more (gradual: 2,000 events wide;
recurring: back to the first concept 5,000 events after the drift point), labels 1,200
events late at every rate (`--label-delay`, in events).

- Platform: `tideline demo`'s loop with this stream: events through ingest, the
  feature store, serving, the monitor, the trainer and the registry. With `--online`,
  the trainer also keeps that family's online line (docs/models.md) and the registry's
  gate chooses between it and the drift runs. Its accuracy is its served predictions
  joined with the labels.
- batch: a plain Python loop over the same events: the same first model (the trainer's
  `fit`, on the same 3,000 bootstrap events, 20% held out), the same `Monitor` (its
  settings as the demo's), labels as late, the same policy (after a detection, wait for
  the demo's TIDELINE_TRAINER_DRIFT_LABELS labels of later events, fit on them, the registry's `decide`), and a promotion
  takes effect at the next event.
- HAT, ARF, river_tree: river's Hoeffding Adaptive Tree and Adaptive Random Forest
  (defaults) and Tideline's river_tree family, each predicting every event and learning
  its label as late as the platform gets it.

Prequential accuracy is over every event from the first model on (before and after
the drift point), the same events for all.
"""

import collections
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from drifting import CASES, Point, points, project, with_entity
from online import LEARNERS
from rich.console import Console
from rich.table import Table
from tideline import learners
from tideline import project as projects
from tideline.scoring import THRESHOLD
from tideline.settings import Settings
from tideline.training import TrainingSet

from ops import demo
from services.monitor.monitor import Monitor
from services.monitor.settings import MonitorSettings
from services.registry.gate import Policy, decide
from services.trainer.fitting import fit

console = Console()
DRIFT_LABELS = int(demo.SERVICE_ENV["TIDELINE_TRAINER_DRIFT_LABELS"])
MONITOR = MonitorSettings.model_validate(
    {
        name.removeprefix("TIDELINE_MONITOR_").lower(): value
        for name, value in demo.SERVICE_ENV.items()
        if name.startswith("TIDELINE_MONITOR_")
    }
)
POLICY = Policy("roc_auc", 0.005)  # the registry's defaults
WIDTH = 2000  # a gradual drift's width, in events
IN_PROCESS: dict[str, Callable[[list[Point]], Any]] = {
    name: LEARNERS[name] for name in ("HAT", "ARF", "river_tree")
}


def _plan(rate: int, label_delay: int, drift: bool) -> demo.Plan:
    return demo.Plan(rate=rate, label_delay_s=label_delay / rate, drift=drift)


def _data(stream: str, kind: str, seed: int, plan: demo.Plan) -> list[Point]:
    # the demo streams up to as many events again after the drift point while the loop
    # catches up: enough for that
    total, at = plan.bootstrap + plan.before + 2 * plan.after, plan.bootstrap + plan.before
    return points(stream, kind, seed, total, at, WIDTH, back=at + plan.after // 2)


def platform(path: Path, data: list[Point], plan: demo.Plan) -> demo.Report:
    found = iter(enumerate(data))

    def source(_phase: str) -> tuple[dict[str, Any], bool]:
        i, (x, y) = next(found)
        return with_entity(i, x), y

    return demo.run(Settings(), path, plan, False, Console(quiet=True), source=source)


def _set(definition: projects.Project, rows: list[Point]) -> TrainingSet:
    frame = pd.DataFrame([{**x, definition.label.field: y} for x, y in rows])
    return TrainingSet(frame, {})


def _fit(definition: projects.Project, rows: list[Point]) -> tuple[Any, list[Point]]:
    cut = int(len(rows) * 0.8)  # the trainer's 20% holdout, the most recent
    train, holdout = _set(definition, rows[:cut]), _set(definition, rows[cut:])
    return fit(definition, "gradient_boosting", {}, train, holdout, 100), rows[cut:]


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


def batch(definition: projects.Project, data: list[Point], plan: demo.Plan) -> Outcome:
    """The drift-triggered batch policy, with the platform's model and monitor, in a loop."""
    data = data[: plan.bootstrap + plan.before + plan.after]
    columns = learners.Columns.of(definition)
    delay = round(plan.rate * plan.label_delay_s)  # labels arrive this many events late
    tick = max(1, int(plan.rate * MONITOR.interval.total_seconds()))
    ms = 1000 / plan.rate
    start, onset = plan.bootstrap, plan.bootstrap + plan.before
    fitted, _ = _fit(definition, data[:start])
    model, number = fitted.model, 1
    monitor = Monitor(definition, definition.name, MONITOR, now_ms=0)
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
            now=i / plan.rate,
        )
        if (j := i - delay) >= start:
            label = {
                "event_id": str(j),
                "label_time": int(i * ms),
                "payload": {definition.label.field: data[j][1]},
            }
            monitor.label(label, now=i / plan.rate)
        if i % tick == 0:
            monitor.tick(now=i / plan.rate, now_ms=int(i * ms))
        for event in monitor.drain(now_ms=int(i * ms)):
            if waiting_since is None:
                waiting_since = int(event["window_end"] / ms) + 1  # events after the detection
                detected = detected if detected is not None else waiting_since - onset
        labelled = i - delay  # labels in so far are those of events up to this one
        if waiting_since is not None and labelled - waiting_since >= DRIFT_LABELS:
            retrains += 1
            candidate, holdout = _fit(
                definition, data[waiting_since : waiting_since + DRIFT_LABELS]
            )
            x = columns.frame([x for x, _ in holdout])
            decision = decide(
                POLICY,
                "classification",
                [y for _, y in holdout],
                learners.scores(candidate.model, "classification", x),
                learners.scores(model, "classification", x),
                definition.features.version,
                definition.features.version,
            )
            waiting_since = None
            if decision.promote:
                model, number = candidate.model, number + 1
                monitor.set_versions([_version(number, candidate, int(i * ms))])
                scores, offset = scores_from(i + 1), i + 1
    return Outcome(correct / (len(data) - start), detected, retrains)


def late(make: Callable[[list[Point]], Any], data: list[Point], plan: demo.Plan) -> float:
    """A river learner's prequential accuracy from the bootstrap on, each label learnt
    as many events late as the platform gets it."""
    data = data[: plan.bootstrap + plan.before + plan.after]
    delay = round(plan.rate * plan.label_delay_s)
    model, right = make(data), 0
    pending: collections.deque[Point] = collections.deque()
    for i, (x, y) in enumerate(data):
        if i >= plan.bootstrap:
            right += model.predict_one(x) == y
        pending.append((x, y))
        if len(pending) > delay:
            model.learn_one(*pending.popleft())
    return right / (len(data) - plan.bootstrap)


def _cases(spec: str) -> list[tuple[str, str]]:
    if spec == "all":
        return CASES
    chosen = [tuple(c.split(":", 1)) for c in spec.split(",")]
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise typer.BadParameter(f"unknown cases {unknown}; of {CASES}")
    return [(s, k) for s, k in chosen]


def main(
    cases: str = typer.Option("all", help="stream:drift,... of drifting.CASES, or all"),
    rates: str = typer.Option("500", help="events a second, comma-separated"),
    runs: int = typer.Option(1, help="runs a case, seeds 0 on"),
    label_delay: int = typer.Option(1200, help="events a label comes after its event"),
    online: str = typer.Option("river_tree", help="the trainer's online family; '' for none"),
    online_labels: int = typer.Option(2000, help="labels between the online line's steps"),
) -> None:
    if online:  # the services see the benchmark's environment (ops.launcher)
        os.environ["TIDELINE_TRAINER_ONLINE_FAMILY"] = online
        os.environ["TIDELINE_TRAINER_ONLINE_LABELS"] = str(online_labels)
    else:
        os.environ.pop("TIDELINE_TRAINER_ONLINE_FAMILY", None)
    columns = ["platform", "batch", *IN_PROCESS]
    table = Table(
        "stream",
        "drift",
        "ev/s",
        *columns,
        "best",
        "platform - best",
        "detected",
        "retrains",
        "steps",
    )
    folder = Path(tempfile.mkdtemp(prefix="adaptation-"))
    for stream, kind in _cases(cases):
        path = project(stream, folder)
        definition = projects.load(path)
        for rate in (int(r) for r in rates.split(",")):
            plan = _plan(rate, label_delay, kind != "control")
            found: dict[str, list[float]] = {c: [] for c in columns}
            detected: list[str] = []
            retrains: list[str] = []
            steps: list[str] = []
            for seed in range(runs):
                data = _data(stream, kind, seed, plan)
                report = platform(path, data, plan)
                found["platform"].append(report.accuracy["prequential, the plan's events"][0])
                ours = batch(definition, data, plan)
                found["batch"].append(ours.accuracy)
                for name, make in IN_PROCESS.items():
                    found[name].append(late(make, data, plan))
                detected.append(f"{report.labelled_to_detection}/{ours.detected}")
                retrains.append(f"{report.retrains}/{ours.retrains}")
                steps.append(str(report.online_steps))
                console.print(
                    f"{stream} {kind} {rate}/s seed {seed}: "
                    + ", ".join(f"{c} {v[-1]:.4f}" for c, v in found.items())
                    + f"; detected {detected[-1]}, retrains {retrains[-1]} (platform/batch)"
                )
            medians = {c: statistics.median(v) for c, v in found.items()}
            best = max(columns[1:], key=medians.__getitem__)
            table.add_row(
                stream,
                kind,
                str(rate),
                *(f"{medians[c]:.4f}" for c in columns),
                best,
                f"{(medians['platform'] - medians[best]) * 100:+.1f}",
                " ".join(detected),
                " ".join(retrains),
                " ".join(steps),
            )
    console.print(table)
    console.print(
        f"medians of {runs} run(s); detected: events from the drift point to the first"
        " detection, platform/batch; retrains: drift runs published (platform, besides"
        " online steps) / the loop's; steps: the online line's steps published"
    )


if __name__ == "__main__":
    typer.run(main)
