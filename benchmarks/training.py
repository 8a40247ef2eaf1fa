"""Time from a training request to the registry's `models.updated` verdict, and where it goes.

Run against a running stack: .venv/bin/python benchmarks/training.py

For each size, N labelled card events (feature vectors on `features`, labels on
`labels`, as the feature store and ingest write them) wait on fresh topics; the
trainer (gradient boosting, its defaults, trained on all N: 80% train, 20% holdout)
and the registry run as processes, as a user runs them. Each run sends a request and
waits for the verdict on `models.updated`. The shares come from the services' own
metrics: the trainer's read, train, evaluate and publish phases, and the registry's
gate (rebuild the holdout from Kafka, score candidate and champion). The rest is
Kafka hops and the registry's artifact chunking and registration.
"""

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import typer
from featurestore import PROJECT, fresh, running
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import catalog, kafka, project, serde
from tideline.durations import epoch_millis
from tideline.settings import Settings

from ops import control, launcher, synthetic

console = Console()
PHASES = ("read", "train", "evaluate", "publish")
TRAINER_PORT, REGISTRY_PORT = 9154, 9156


async def fill(settings: Settings, rows: int) -> None:
    definition = project.load(PROJECT)
    await kafka.create_topics(settings)
    events = synthetic.Generator(definition, entities=5000, seed=5).stream(
        datetime.now(UTC) - timedelta(days=2), rows, timedelta(milliseconds=500)
    )
    concept = synthetic.Concept(definition, seed=7)
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    try:
        for vector, label in synthetic.labelled_vectors(definition, events, concept):
            await producer.send(
                catalog.topic("features").full_name(settings),
                serde.encode(definition.feature_schema, vector),
                key=vector["entity_id"].encode(),
                timestamp_ms=epoch_millis(vector["event_time"]),
            )
            await producer.send(
                catalog.topic("labels").full_name(settings),
                serde.encode(definition.label_schema, label),
                key=label["event_id"].encode(),
            )
        await producer.flush()
    finally:
        await producer.stop()


def _sums() -> dict[str, float]:
    sums = {
        phase: launcher.metric(TRAINER_PORT, "tideline_trainer_phase_seconds_sum", phase=phase)
        for phase in PHASES
    }
    sums["gate"] = launcher.metric(REGISTRY_PORT, "tideline_registry_gate_seconds_sum")
    return sums


async def measure(rows: int, runs: int) -> dict[str, list[float]]:
    settings = fresh()
    with console.status(f"writing {rows:,} labelled events"):
        await fill(settings, rows)
    found: dict[str, list[float]] = {k: [] for k in ("total", *PHASES, "gate")}
    window = {"TIDELINE_TRAINER_WINDOW_ROWS": str(rows)}
    with (
        running("trainer", settings, TRAINER_PORT, **window) as trainer,
        running("registry", settings, REGISTRY_PORT) as registry,
    ):
        while trainer.checked_metric("tideline_last_poll_timestamp_seconds") == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        while registry.checked_metric("tideline_last_poll_timestamp_seconds") == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for _ in track(range(runs), description=f"{runs} runs on {rows:,} rows"):
            before = _sums()
            started = time.perf_counter()
            outcome = await control.train(
                settings, control.TrainingOrder("cards", "benchmark"), timeout_s=600
            )
            found["total"].append(time.perf_counter() - started)
            if outcome.decision is None:
                raise RuntimeError(f"run failed: {outcome.statuses[-1]['message']}")
            after = _sums()
            for name in after:
                found[name].append(after[name] - before[name])
    return found


def main(
    sizes: str = typer.Option("10000,100000", help="labelled rows, comma-separated"),
    runs: int = typer.Option(5, help="runs per size"),
) -> None:
    table = Table("rows", "request → models.updated (median)", *PHASES, "gate", "other", "runs (s)")
    for rows in (int(s) for s in sizes.split(",")):
        found = asyncio.run(measure(rows, runs))
        total = statistics.median(found["total"])
        medians = {k: statistics.median(v) for k, v in found.items() if k != "total"}
        other = total - sum(medians.values())
        table.add_row(
            f"{rows:,}",
            f"{total:.2f} s",
            *(f"{medians[p]:.2f} s ({medians[p] / total:.0%})" for p in (*PHASES, "gate")),
            f"{other:.2f} s ({other / total:.0%})",
            " ".join(f"{t:.2f}" for t in found["total"]),
        )
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
