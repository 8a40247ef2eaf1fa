"""The monitor's CPU share at 2,000 events a second with 20 features.

Run against a running stack: .venv/bin/python benchmarks/monitor.py

A 20-feature project (benchmarks/wide.yaml); the trainer and the registry make its v1
(so the monitor has a champion with a reference per feature). Then `tideline run
monitor` reads, per event, its feature vector, its prediction and its label (three
records), at `per_s` events a second for `seconds`; its CPU time (user + system,
from /proc) over the steady part, divided by the wall time, is its share of one core.
Every interval it also compares 20 features and the scores with the reference (PSI,
KS / chi-squared), updates live performance, and runs ADWIN and Page-Hinkley on
every labelled error.
"""

import asyncio
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from featurestore import first_model, fresh, running
from rich.console import Console
from rich.table import Table
from tideline import catalog, kafka, project, serde
from tideline.settings import Settings

from ops import launcher, synthetic

console = Console()
WIDE = str(Path(__file__).with_name("wide.yaml"))
DEFINITION = project.load(WIDE)
PREDICTIONS = catalog.topic("predictions")
MONITOR_PORT = 9175
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def records(count: int, start: datetime, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for `count` events: vector, prediction, label each."""
    events = synthetic.Generator(DEFINITION, entities=5000, seed=seed).stream(
        start, count, timedelta(milliseconds=1)
    )
    rng = random.Random(seed)
    out = []
    pairs = synthetic.labelled_vectors(DEFINITION, events, synthetic.Concept(DEFINITION, 7))
    for vector, label in pairs:
        key = vector["entity_id"].encode()
        prediction = {
            "event_id": vector["event_id"],
            "entity_id": vector["entity_id"],
            "event_time": vector["event_time"],
            "model_name": DEFINITION.name,
            "model_version": 1,
            "shadow": False,
            "score": rng.random(),
            "predicted": None,
            "feature_version": DEFINITION.features.version,
            "latency_ms": 5.0,
            "scored_at": vector["event_time"],
        }
        out.append(("features", key, serde.encode(DEFINITION.feature_schema, vector)))
        out.append(("predictions", key, serde.encode(PREDICTIONS.schema(), prediction)))
        out.append(
            ("labels", label["event_id"].encode(), serde.encode(DEFINITION.label_schema, label))
        )
    return out


async def send(settings: Settings, found: list[tuple[str, bytes, bytes]], per_s: int) -> None:
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        began = time.monotonic()
        for i in range(0, len(found), 300):
            for topic, key, value in found[i : i + 300]:
                await producer.send(catalog.topic(topic).full_name(settings), value, key=key)
            await asyncio.sleep(max(0.0, began + (i + 300) / 3 / per_s - time.monotonic()))
        await producer.flush()


async def history(settings: Settings) -> None:
    """Labelled vectors a day old, for the trainer."""
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        for topic, key, value in records(3000, datetime.now(UTC) - timedelta(days=1), seed=1):
            if topic != "predictions":
                await producer.send(catalog.topic(topic).full_name(settings), value, key=key)


def main(
    per_s: int = typer.Option(2000, help="events a second (three records each)"),
    seconds: int = typer.Option(30, help="seconds of traffic per run"),
    runs: int = typer.Option(3),
) -> None:
    settings = fresh()
    asyncio.run(kafka.create_topics(settings))
    env = {"TIDELINE_PROJECT": WIDE}
    asyncio.run(history(settings))
    first_model(settings, DEFINITION.name, **env)
    shares = []
    backlog = 6000  # the training history: vectors and labels
    for run in range(runs):
        found = records(per_s * seconds, datetime.now(UTC) + timedelta(seconds=5), seed=10 + run)
        group = f"{settings.topic_prefix}monitor.bench-{run}-{time.time_ns()}"
        with running(
            "monitor", settings, MONITOR_PORT, TIDELINE_MONITOR_GROUP_ID=group, **env
        ) as proc:
            launcher.wait_metric(MONITOR_PORT, "tideline_last_poll_timestamp_seconds", 1)
            # it starts from the beginning: all earlier records first, then idle
            launcher.wait_metric(MONITOR_PORT, "tideline_records_consumed_total", backlog)
            cpu, wall = cpu_seconds(proc.pid), time.monotonic()
            asyncio.run(send(settings, found, per_s))
            backlog += len(found)
            launcher.wait_metric(MONITOR_PORT, "tideline_records_consumed_total", backlog)
            shares.append((cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall))
    table = Table("measure", "median", "runs")
    table.add_row(
        f"monitor CPU at {per_s:,} events/s, {len(DEFINITION.features.names)} features",
        f"{statistics.median(shares):.1%} of a core",
        " ".join(f"{s:.1%}" for s in shares),
    )
    console.print(table)
    console.print(f"(records consumed per event: 3; events/run: {per_s * seconds:,})")


if __name__ == "__main__":
    typer.run(main)
