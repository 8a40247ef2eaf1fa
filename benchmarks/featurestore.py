"""Feature store events/second next to a raw aiokafka passthrough; freshness at a steady load.

Run against a running stack: .venv/bin/python benchmarks/featurestore.py

Rate: N canonical card events (5,000 cards) wait in `events`. The feature store runs as
a user runs it (`tideline run featurestore`, its own process, Redis materialization
on) and is timed from its first processed event to its last, read off its metrics;
the passthrough reads the same records and writes each to another topic. Runs
alternate which side goes first, each on fresh topics.

Freshness: ingest and the feature store run as processes; JSON events go to
`events.raw` at a steady rate, each for a card of its own, and Redis keyspace
notifications say when each card's vector is written. Freshness is that moment minus
the moment just before the event was handed to the producer: the whole path a
business system's event takes, ingest included.
"""

import asyncio
import gc
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import cards
import redis.asyncio
import typer
from passthrough import passthrough, timed
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import catalog, kafka, project, serde
from tideline.durations import epoch_millis
from tideline.settings import Settings

from ops import control, launcher, synthetic

PROJECT = "examples/cards/project.yaml"
console = Console()


def fresh() -> Settings:
    return Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})


def running(
    service: str, settings: Settings, port: int, **extra: str
) -> AbstractContextManager[launcher.Process]:
    """`tideline run SERVICE` on the benchmark's topics, /metrics on `port`."""
    return launcher.started(service, settings, PROJECT, extra, port)


def first_model(settings: Settings, name: str, **env: str) -> None:
    """v1 of `name`, trained and promoted by a trainer and a registry run for it (the
    labelled vectors must be on the topics already)."""
    trainer, registry = 9194, 9196
    with (
        running("trainer", settings, trainer, **env),
        running("registry", settings, registry, **env),
    ):
        launcher.wait_metric(trainer, "tideline_last_poll_timestamp_seconds", 1)
        launcher.wait_metric(registry, "tideline_last_poll_timestamp_seconds", 1)
        outcome = asyncio.run(
            control.train(settings, control.TrainingOrder(name, "bench"), timeout_s=300)
        )
    assert outcome.decision is not None
    assert outcome.decision["action"] == "promoted", outcome.decision["reason"]


async def fill(settings: Settings, n: int) -> None:
    definition = project.load(PROJECT)
    await kafka.create_topics(settings)
    generator = synthetic.Generator(definition, entities=5000, seed=5)
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    start = datetime.now(UTC) - timedelta(minutes=30)
    for event in generator.stream(start, n, timedelta(milliseconds=1)):
        await producer.send(
            catalog.topic("events").full_name(settings),
            serde.encode(definition.event_schema, event),
            key=event["entity_id"].encode(),
            timestamp_ms=epoch_millis(event["event_time"]),
        )
    await producer.flush()
    await producer.stop()


async def featurestore_seconds(settings: Settings, n: int) -> float:
    events = "tideline_featurestore_events_total"
    port = 9152
    with running("featurestore", settings, port) as proc:
        # polling: the events counted are another process's
        while (seen := proc.checked_metric(events)) == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        started, first = time.perf_counter(), seen
        while proc.checked_metric(events) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return (time.perf_counter() - started) * n / (n - first)


async def rates(n: int, runs: int) -> None:
    found: dict[str, list[float]] = {"aiokafka passthrough": [], "tideline featurestore": []}
    for run in track(range(runs), description=f"{runs} runs of {n:,} events"):
        settings = fresh()
        await fill(settings, n)
        sink = passthrough(
            catalog.topic("labels").full_name(settings)
        )  # a topic the feature store leaves alone
        sides = [
            ("aiokafka passthrough", timed(settings, "events", n, sink)),
            ("tideline featurestore", featurestore_seconds(settings, n)),
        ]
        for name, measure in sides if run % 2 == 0 else reversed(sides):
            found[name].append(n / await measure)
    table = Table("pipeline", "events/s (median)", "runs")
    for name, values in found.items():
        table.add_row(
            name, f"{statistics.median(values):,.0f}", ", ".join(f"{v:,.0f}" for v in values)
        )
    console.print(table)
    ratio = statistics.median(found["tideline featurestore"]) / statistics.median(
        found["aiokafka passthrough"]
    )
    console.print(f"featurestore / passthrough = {ratio:.2f}")


def card(i: int, at: datetime) -> bytes:
    return cards.json_event(f"f-{i}", at, f"fresh-{i}", i)


def canonical(definition: project.Project, i: int, at: datetime) -> bytes:
    """The same card as `card`, already ingested: Avro for `events`."""
    record = json.loads(card(i, at))
    event_id, _ = record.pop("event_id"), record.pop("event_time")
    envelope = {
        "event_id": event_id,
        "entity_id": record["card_id"],
        "event_time": at,
        "payload": record,
    }
    return serde.encode(definition.event_schema, envelope)


async def freshness_run(per_s: int, seconds: int, direct: bool) -> tuple[float, float, int]:
    settings = fresh()
    await kafka.create_topics(settings)
    client = redis.asyncio.Redis.from_url(settings.redis_url, **settings.redis_credentials)
    config = await client.config_get("notify-keyspace-events")
    previous = str(config["notify-keyspace-events"])
    await client.config_set("notify-keyspace-events", "K$")
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"__keyspace@0__:{settings.topic_prefix}cards:fresh-*")
    sent: dict[str, float] = {}
    latencies: list[float] = []
    total = per_s * seconds

    async def listen() -> None:
        while len(latencies) < total:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                seen = time.perf_counter()
                entity = message["channel"].decode().rsplit(":", 1)[1]
                if entity in sent:  # not the warm-up card
                    latencies.append(seen - sent[entity])

    producer = kafka.producer(settings)
    await producer.start()
    try:
        definition = project.load(PROJECT)
        topic = catalog.topic("events" if direct else "events.raw").full_name(settings)

        def event(i: int) -> bytes:
            at = datetime.now(UTC)
            return canonical(definition, i, at) if direct else card(i, at)

        with running("ingest", settings, 9151), running("featurestore", settings, 9152):
            # warm up: wait until one event has gone all the way through
            await producer.send_and_wait(topic, event(-1), key=b"fresh--1")
            while not await client.exists(f"{settings.topic_prefix}cards:fresh--1"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            listener = asyncio.create_task(listen())
            gc.disable()  # a pause here would be counted as the pipeline's
            step = per_s // 100  # every 10 ms
            start = time.perf_counter()
            for tick in range(seconds * 100):
                for i in range(tick * step, (tick + 1) * step):
                    sent[f"fresh-{i}"] = time.perf_counter()
                    await producer.send(topic, event(i), key=f"fresh-{i}".encode())
                await asyncio.sleep(max(0.0, start + (tick + 1) / 100 - time.perf_counter()))
            await asyncio.wait_for(listener, timeout=60)
    finally:
        gc.enable()
        await producer.stop()
        close: Callable[[], Awaitable[None]] = pubsub.aclose  # annotated from redis-py 8.2 on
        await close()
        await client.config_set("notify-keyspace-events", previous)
        await client.aclose()
    ordered = sorted(latencies[per_s:])  # the first second is warm-up
    return ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3, len(latencies)


async def freshness(per_s: int, seconds: int, runs: int) -> None:
    table = Table("path", "events/s", "p50 ms (median)", "p99 ms (median)", "runs p50/p99 ms")
    for direct in (False, True):
        path = "events → featurestore → Redis" if direct else "events.raw → ingest → … → Redis"
        results = [
            await freshness_run(per_s, seconds, direct)
            for _ in track(range(runs), description=path)
        ]
        table.add_row(
            path,
            f"{per_s:,}",
            f"{statistics.median(r[0] for r in results):.1f}",
            f"{statistics.median(r[1] for r in results):.1f}",
            ", ".join(f"{p50:.1f}/{p99:.1f}" for p50, p99, _ in results),
        )
    console.print(table)


def main(
    events: int = typer.Option(30_000, "--events"),
    runs: int = 5,
    rate: int = typer.Option(2000, "--rate", help="freshness load, events/s"),
    seconds: int = 15,
    freshness_runs: int = 3,
) -> None:
    asyncio.run(rates(events, runs))
    asyncio.run(freshness(rate, seconds, freshness_runs))


if __name__ == "__main__":
    typer.run(main)
