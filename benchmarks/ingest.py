"""Ingest events/second next to a raw aiokafka consume→produce passthrough, same run, same input.

Run against a running stack: .venv/bin/python benchmarks/ingest.py [--events N] [--runs R]
Both sides read the same N JSON card events from the start of events.raw with a fresh
consumer group, write one record per input, and commit after every batch is acknowledged.
"""

import asyncio
import statistics
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import cards
import typer
from passthrough import passthrough, timed
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import catalog, kafka, project, service, streams
from tideline.settings import Settings

from services.ingest.handler import Ingest
from services.ingest.stream import Batches

PROJECT = "examples/cards/project.yaml"


def events(n: int) -> list[bytes]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    return [
        cards.json_event(f"e-{i}", start + timedelta(milliseconds=i), f"c-{i % 5000}", i)
        for i in range(n)
    ]


async def fill(settings: Settings, values: list[bytes]) -> None:
    await kafka.create_topics(settings)
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    for value in values:
        await producer.send(catalog.topic("events.raw").full_name(settings), value)
    await producer.flush()
    await producer.stop()


def _handler(
    proj: project.Project, settings: Settings
) -> Callable[[streams.Messages], Awaitable[streams.Outcome]]:
    """The service's batch handler, as the service runs it once its partitions are ready."""
    ready = asyncio.Event()
    ready.set()
    return Batches(Ingest(proj, 100_000), settings, ready).handle


async def bench(n: int, runs: int) -> None:
    settings = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    await fill(settings, events(n))
    proj = project.load(PROJECT)
    rates: dict[str, list[float]] = {"aiokafka passthrough": [], "tideline ingest": []}
    for run in track(range(runs), description=f"{runs} runs of {n:,} events"):
        sides = [
            (
                "aiokafka passthrough",
                lambda: passthrough(catalog.topic("events").full_name(settings)),
                None,
            ),
            (
                "tideline ingest",
                lambda: _handler(proj, settings),
                "ingest",  # with the service's per-poll metrics
            ),
        ]
        for name, make, service_name in sides if run % 2 == 0 else reversed(sides):
            elapsed = await timed(settings, "events.raw", n, make(), service_name)
            rates[name].append(n / elapsed)

    table = Table("pipeline", "events/s (median)", "runs")
    for name, values in rates.items():
        table.add_row(
            name, f"{statistics.median(values):,.0f}", ", ".join(f"{v:,.0f}" for v in values)
        )
    console = Console()
    console.print(table)
    ratio = statistics.median(rates["tideline ingest"]) / statistics.median(
        rates["aiokafka passthrough"]
    )
    console.print(f"ingest / passthrough = {ratio:.2f}")


def main(n: int = typer.Option(30_000, "--events"), runs: int = 5) -> None:
    service.quiet_gc()  # as `tideline run ingest` does; both sides run under it
    asyncio.run(bench(n, runs))


if __name__ == "__main__":
    typer.run(main)
