"""A range read as the registry's gate and serving's swap make them: the offsets of a topic,
then its records, with a new client for each part or with the clients a service keeps
(`kafka.readers`).

Run against a running stack: .venv/bin/python benchmarks/readers.py [--records N] [--runs R]

Topics of a prefix of its own (deleted at the end) get N records of `labels`, 6
partitions. Each run reads them whole three ways, alternating:
- new clients, fetches waiting up to Kafka's default 500 ms (Tideline before the change),
- new clients, fetches waiting up to `kafka.READ_WAIT_MS`,
- inside `kafka.readers`, as every service reads now.
"""

import asyncio
import contextvars
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tideline import catalog, kafka, streams
from tideline.settings import Settings

console = Console()
TOPIC = catalog.topic("labels")
KAFKA_DEFAULT_WAIT_MS = 500
KEPT = "kept (kafka.readers)"


async def _read(settings: Settings) -> int:
    ranges = await streams.offset_ranges(settings, TOPIC.full_name(settings))
    return sum([1 async for _ in streams.read_ranges(settings, ranges)])


async def _fill(settings: Settings, records: int) -> None:
    await kafka.create_topics(settings)
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        sent = [
            await producer.send(TOPIC.full_name(settings), b"x" * 100, key=str(i).encode())
            for i in range(records)
        ]
        await asyncio.gather(*sent)


async def _measure(records: int, runs: int) -> dict[str, list[float]]:
    settings = Settings(topic_prefix=f"bench-readers-{uuid.uuid4().hex[:8]}.")
    await _fill(settings, records)

    async def default_wait() -> int:
        kafka.READ_WAIT_MS, kept = KAFKA_DEFAULT_WAIT_MS, kafka.READ_WAIT_MS
        try:
            return await _read(settings)
        finally:
            kafka.READ_WAIT_MS = kept

    ways: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        f"new clients, {KAFKA_DEFAULT_WAIT_MS} ms fetch wait": default_wait,
        f"new clients, {kafka.READ_WAIT_MS} ms fetch wait": lambda: _read(settings),
        KEPT: lambda: _read(settings),
    }
    found: dict[str, list[float]] = {name: [] for name in ways}
    try:
        async with kafka.readers(settings):
            await _read(settings)  # the clients a service has from its first read on
            for _ in track(range(runs), description="reading", console=console):
                for name, way in ways.items():
                    # the new-client ways run in a context without the open readers
                    context = contextvars.copy_context() if name == KEPT else contextvars.Context()
                    started = time.perf_counter()
                    if await asyncio.create_task(way(), context=context) != records:
                        raise RuntimeError(f"{name}: a read missed records")
                    found[name].append(time.perf_counter() - started)
    finally:
        await kafka.delete_topics(
            settings, await kafka.topics_under(settings, settings.topic_prefix)
        )
    return found


def main(
    records: int = typer.Option(2000, help="records in the topic read"),
    runs: int = typer.Option(9, help="reads of each way, alternating"),
) -> None:
    found = asyncio.run(_measure(records, runs))
    kept = statistics.median(found[KEPT])
    table = Table("reader", "median s", "min s", "ratio to kept")
    for name, seconds in found.items():
        median = statistics.median(seconds)
        table.add_row(name, f"{median:.4f}", f"{min(seconds):.4f}", f"{median / kept:.1f}")
    console.print(table)
    console.print(f"{records} records in 6 partitions, offsets then records; {runs} runs each")


if __name__ == "__main__":
    typer.run(main)
