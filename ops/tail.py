"""`tideline monitor tail`: the monitor's topics as an operator reads them, one line a record.

Each `monitor.metrics` record is a line (volume, labels, live performance, the most
drifted features, latency); each `monitor.drift` event stands out in red; the
trainer's statuses and the registry's decisions come in between, so the whole loop
reads in order in one terminal, with no other tool.
"""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord
from rich.console import Console
from tideline import catalog, streams
from tideline.settings import Settings

TOPICS = {
    name: catalog.topic(name)
    for name in ("monitor.metrics", "monitor.drift", "trainer.status", "models.updated")
}
Record = dict[str, Any]


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3g}{unit}"


def metrics_line(record: Record) -> str:
    performance = " ".join(
        f"{k} {v:.3f}"
        for k, v in sorted(record["performance"].items())
        if k in ("accuracy", "f1", "roc_auc", "mae", "rmse")
    )
    drifted = sorted(
        (f for f in record["features"] if f["psi"] is not None), key=lambda f: -f["psi"]
    )[:3]
    features = ", ".join(f"{f['feature']} {f['psi']:.2f}" for f in drifted)
    scores = record["prediction_drift"]
    return (
        f"{_clock(record['emitted_at'])} [bold]{record['model_name']} v{record['model_version']}[/]"
        f" volume {record['volume']} labelled {record['labelled']}"
        f" | {performance or 'performance: too few labels yet'}"
        + (f" | psi {features}" if features else "")
        + (f" | score psi {_number(scores['psi'])}" if scores is not None else "")
        + f" | latency p50 {_number(record['scoring_latency_ms_p50'], ' ms')}"
        f" p99 {_number(record['scoring_latency_ms_p99'], ' ms')}"
        f" | label delay p50 {_number(record['label_delay_ms_p50'], ' ms')}"
    )


def render(topic: str, record: Record) -> str:
    if topic == "monitor.metrics":
        return metrics_line(record)
    if topic == "monitor.drift":
        features = f" features {', '.join(record['features'])}" if record["features"] else ""
        return (
            f"{_clock(record['detected_at'])} [bold red]DRIFT {record['kind']}[/] "
            f"({record['detector']}) {record['model_name']} v{record['model_version']}"
            f" severity {record['severity']:.3f}{features}"
            f" up to event time {_clock(record['window_end'])} [dim]{record['drift_id']}[/]"
        )
    if topic == "trainer.status":
        return (
            f"{_clock(record['at'])} [cyan]trainer[/] {record['model_name']}: {record['state']}"
            f" ({record['trigger']['kind']}) {record['message']}"
        )
    model = record["model"]
    return (
        f"{_clock(record['at'])} [green]registry[/] {model['model_name']} v{model['version']}:"
        f" {record['action']} -> {model['state']} ({record['reason']})"
    )


async def _merged(
    settings: Settings, from_beginning: bool
) -> AsyncGenerator[tuple[str, ConsumerRecord[bytes, bytes]], None]:
    queue: asyncio.Queue[tuple[str, ConsumerRecord[bytes, bytes]]] = asyncio.Queue()

    async def pump(name: str) -> None:
        topic = TOPICS[name].full_name(settings)
        start = None
        if not from_beginning:
            start = {r.partition: r.end for r in await streams.offset_ranges(settings, topic)}
        async with aclosing(streams.follow(settings, topic, start)) as found:
            async for message in found:
                await queue.put((name, message))

    pumps = [asyncio.create_task(pump(name)) for name in TOPICS]
    try:
        while True:
            getting = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait([getting, *pumps], return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                yield getting.result()
                continue
            getting.cancel()
            for task in done:
                await task  # a pump that ended raised: let it show
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def tail(
    settings: Settings, console: Console, from_beginning: bool, limit: int | None
) -> None:
    """Print each record of the monitor topics (and the loop's others) as it comes."""
    bound = {name: topic.bind(settings) for name, topic in TOPICS.items()}
    shown = 0
    async with aclosing(_merged(settings, from_beginning)) as records:
        async for name, message in records:
            console.print(render(name, bound[name].decode(message.value)))
            shown += 1
            if limit is not None and shown >= limit:
                return
