"""What the trainer's drift policy buys: retrain at once, or wait for post-detection labels.

In-process, no Kafka: .venv/bin/python benchmarks/drift_policy.py

A card stream whose concept (the hidden rule from features to label) changes abruptly
at event 10,000; the detector is assumed to fire `--delay` events later. Each policy
trains gradient boosting (the trainer's default) on the rows it would use and is scored
on events 14,000 - 20,000, all under the new concept. "at once" trains on the last
N labels at detection, mostly of the old concept; "wait N" trains on the N labelled
events after the detection point, which costs the time those labels take to arrive.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from tideline import evaluation, learners, project
from tideline.training import TrainingSet

from ops import synthetic
from services.trainer.fitting import fit

PROJECT = project.load("examples/cards/project.yaml")
COLUMNS = learners.Columns.of(PROJECT)
DRIFT_AT, TOTAL, TEST_FROM = 10_000, 20_000, 14_000


def frame(seed: int) -> pd.DataFrame:
    events = list(
        synthetic.Generator(PROJECT, entities=500, seed=seed).stream(
            datetime(2026, 11, 24, tzinfo=UTC), TOTAL, timedelta(seconds=1)
        )
    )
    before, after = synthetic.Concept(PROJECT, seed=7), synthetic.Concept(PROJECT, seed=8)
    rows = []
    for i, (vector, _) in enumerate(synthetic.labelled_vectors(PROJECT, events, before)):
        concept = before if i < DRIFT_AT else after
        label = concept.label({"payload": events[i]["payload"]})
        rows.append({"event_time": vector["event_time"], **vector["values"], "is_fraud": label})
    return pd.DataFrame(rows)


def accuracy(data: pd.DataFrame, rows: slice) -> float:
    train = data.iloc[rows]
    cut = int(len(train) * 0.8)
    test = TrainingSet(data.iloc[TEST_FROM:], {})
    fitted = fit(
        PROJECT,
        "gradient_boosting",
        {},
        TrainingSet(train.iloc[:cut], {}),
        TrainingSet(train.iloc[cut:], {}),
        min_rows=100,
    )
    scores = learners.scores(fitted.model, "classification", COLUMNS.frame(test.frame))
    return evaluation.evaluate("classification", test.frame["is_fraud"].tolist(), scores)[
        "accuracy"
    ]


def main(delay: int = typer.Option(300, help="events from the change to detection")) -> None:
    detected = DRIFT_AT + delay
    data = frame(seed=11)
    table = Table("policy", "trains on", "of them after the change", "accuracy, new concept")
    table.add_row(
        "no retrain (old model)",
        f"events {DRIFT_AT - 2000:,} - {DRIFT_AT:,}",
        "0%",
        f"{accuracy(data, slice(DRIFT_AT - 2000, DRIFT_AT)):.3f}",
    )
    table.add_row(
        "at once, last 2,000",
        f"events {detected - 2000:,} - {detected:,}",
        f"{delay / 2000:.0%}",
        f"{accuracy(data, slice(detected - 2000, detected)):.3f}",
    )
    for wait in (250, 500, 1000, 2000):
        table.add_row(
            f"wait for {wait:,}",
            f"events {detected:,} - {detected + wait:,}",
            "100%",
            f"{accuracy(data, slice(detected, detected + wait)):.3f}",
        )
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
