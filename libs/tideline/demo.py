"""`tideline demo`: the platform as far as it goes today, end to end, on the real stack.

Card transactions go to `events.raw` as a business system would send them (JSON, a few
of them broken), their labels follow, ingest validates, the feature store computes
and materializes; the demo then shows a card's online features, the dead letters and
a point-in-time training set, and stops everything it started.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tideline import kafka, project, synthetic, training
from tideline.online_store import OnlineStore
from tideline.service import metric
from tideline.settings import Settings
from tideline.stack import local

PORTS = {"ingest": 9101, "featurestore": 9102}


@contextlib.contextmanager
def _services(
    settings: Settings, definition: Path
) -> Iterator[dict[str, "subprocess.Popen[bytes]"]]:
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TIDELINE_PROJECT": str(definition)}
    started = {}
    try:
        for name in PORTS:
            with (logs / f"{name}.log").open("ab") as log:
                started[name] = subprocess.Popen(
                    [sys.executable, "-m", "tideline.cli", "run", name],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        yield started
    finally:
        for proc in started.values():
            proc.send_signal(signal.SIGTERM)
        for proc in started.values():
            proc.wait(timeout=60)


def _wait(
    progress: Progress, what: str, service: str, total: int, sample: str, **labels: str
) -> None:
    task = progress.add_task(what, total=total)
    deadline = time.monotonic() + 120
    while (done := metric(PORTS[service], sample, **labels)) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service} did not get through {total} records in 2 minutes")
        progress.update(task, completed=done)
        time.sleep(0.2)
    progress.update(task, completed=total)


Record = tuple[bytes | None, bytes]  # key, value


def _traffic(definition: project.Project, count: int) -> tuple[list[Record], list[Record], int]:
    """JSON events (with a few broken ones among them) and their labels, keyed as the
    catalog says: by entity, so each card's events stay in order through ingest, as a
    business system's must (or they arrive late); labels by event id."""
    # a new seed each run: ingest drops event ids it has seen, and a demo runs again
    generator = synthetic.Generator(definition, entities=200, seed=time.time_ns())
    start = datetime.now(UTC) - timedelta(minutes=20)
    events, labels = [], []
    for i, record in enumerate(generator.stream(start, count, timedelta(minutes=20) / count)):
        payload, event_id = record["payload"], record["event_id"]
        body = {"event_id": event_id, "event_time": record["event_time"].isoformat()}
        events.append((record["entity_id"].encode(), json.dumps(body | payload).encode()))
        risky = payload["amount"] > 40_000 and payload["channel"] == "web"
        label = {"event_id": event_id, "is_fraud": risky or i % 97 == 0}
        labels.append((event_id.encode(), json.dumps(label).encode()))
    first = json.loads(events[0][1])
    broken: list[Record] = [
        (None, b"\x00\xffnot json"),  # garbage
        (None, json.dumps({"event_id": "no-fields"}).encode()),  # fields missing
        (None, json.dumps(first | {"event_id": "fax", "channel": "fax"}).encode()),  # a rule
    ]
    return events + broken, labels, len(broken)


async def _produce(
    settings: Settings, topic: str, records: list[Record], progress: Progress
) -> None:
    task = progress.add_task(f"producing to {settings.topic(topic)}", total=len(records))
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for i, (key, value) in enumerate(records):
            await producer.send(settings.topic(topic), value, key=key)
            if i % 100 == 0:
                progress.update(task, completed=i)
        await producer.flush()
        progress.update(task, completed=len(records))
    finally:
        await producer.stop()


def run(
    settings: Settings, definition_path: Path, events: int, with_stack: bool, console: Console
) -> None:
    definition = project.load(definition_path)
    # stop afterwards only what the demo started
    with_stack = with_stack and not all(server.healthy for server in local.status(settings))
    if with_stack:
        with console.status("starting Kafka and Redis"):
            for line in local.up(settings):
                console.print(line)
    try:
        asyncio.run(kafka.create_topics(settings))
        with _services(settings, definition_path), Progress(console=console) as progress:
            values, labels, broken = _traffic(definition, events)
            asyncio.run(_produce(settings, "events.raw", values, progress))
            asyncio.run(_produce(settings, "labels.raw", labels, progress))
            out = "tideline_ingest_records_out_total"
            _wait(progress, "ingest: labels", "ingest", len(labels), out, topic="labels")
            fs_events = "tideline_featurestore_events_total"
            _wait(progress, "feature store", "featurestore", events, fs_events)
            rejected = "tideline_ingest_rejected_total"
            _wait(progress, "ingest: dead letters", "ingest", broken, rejected)
        _show(settings, definition, console)
        console.print(
            f"dead letters: the {broken} broken records are on {settings.topic('ingest.dlq')}"
        )
    finally:
        if with_stack:
            for line in local.down(settings):
                console.print(line)


def _show(settings: Settings, definition: project.Project, console: Console) -> None:
    store = OnlineStore(settings, definition)
    (card,) = store.get([f"{definition.event.entity_key}-7"])
    store.close()
    console.print(f"online features of [bold]{card.entity}[/bold], as of {card.event_time}")
    table = Table("feature", "value")
    for name, value in card.values.items():
        table.add_row(name, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    built = asyncio.run(training.build(settings, definition))
    again = asyncio.run(training.rebuild(settings, definition, built.ref))
    frame = built.frame
    console.print(
        f"training set: {len(frame)} labelled events, {int(frame[definition.label.field].sum())}"
        f" positive, from {len(built.ref['ranges'])} offset ranges (feature version"
        f" {built.ref['feature_version']}); rebuilt from its reference:"
        f" {'identical' if again.frame.equals(frame) else 'DIFFERENT'}"
    )
