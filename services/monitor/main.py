"""`tideline run monitor`: features, predictions and labels in; monitor.metrics and monitor.drift out.

Its windows and detectors live in memory and refill after a restart (each needs
`min_samples` before it judges); offsets are committed after each interval's
records are acknowledged.
"""

import asyncio
import contextlib
import logging
import time
from contextlib import aclosing

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError
from tideline import kafka, project, schemas, serde, service
from tideline.durations import epoch_millis
from tideline.errors import DecodeError
from tideline.models import ModelClient
from tideline.registry import Registry
from tideline.settings import Settings

from services.monitor import metrics
from services.monitor.monitor import Monitor, Record
from services.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)

PREDICTION = schemas.load("tideline.Prediction")
METRICS = schemas.load("tideline.MonitorMetrics")
DRIFT = schemas.load("tideline.DriftEvent")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Reader:
    """Feeds each consumed record to the monitor, by topic."""

    def __init__(self, settings: Settings, definition: project.Project, monitor: Monitor) -> None:
        self.monitor = monitor
        self.features = settings.topic("features")
        self.predictions = settings.topic("predictions")
        self.schemas = {
            self.features: definition.feature_schema,
            self.predictions: PREDICTION,
            settings.topic("labels"): definition.label_schema,
        }
        self.decoder = serde.Decoder(self.schemas.values())

    def read(self, message: ConsumerRecord[bytes, bytes], now: float) -> None:
        try:
            record = self.decoder.decode_as(self.schemas[message.topic], message.value)
        except DecodeError as exc:
            metrics.UNREADABLE.labels(message.topic).inc()
            log.warning(
                "unreadable record %s/%d@%d: %s",
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            return
        if message.topic == self.features:
            self.monitor.vector(record, epoch_millis(record["event_time"]))
        elif message.topic == self.predictions:
            record["event_time"] = epoch_millis(record["event_time"])
            self.monitor.prediction(record, now)
        else:
            record["label_time"] = epoch_millis(record["label_time"])
            self.monitor.label(record, now)


async def serve() -> None:
    settings, own = Settings(), MonitorSettings()
    stop = service.setup("monitor", own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    await kafka.require(
        settings,
        "features",
        "predictions",
        "labels",
        "models.updated",
        "monitor.metrics",
        "monitor.drift",
    )
    name = own.model_name or definition.name
    monitor = Monitor(definition, name, own, _now_ms())
    reader = Reader(settings, definition, monitor)

    def watch(state: Registry) -> None:
        monitor.set_versions([v for v in state.listing() if v["model_name"] == name])
        if monitor.champion is not None:
            metrics.CHAMPION.set(monitor.champion.number)

    consumer = kafka.consumer(
        settings,
        settings.topic("features"),
        settings.topic("predictions"),
        settings.topic("labels"),
        group_id=own.group_id or settings.topic("monitor"),
    )
    producer = kafka.producer(settings)
    async with (
        aclosing(ModelClient(settings).states()) as states,
        kafka.started(consumer, producer),
    ):
        watch(await anext(states))  # the champion as of now, before any prediction is read

        async def follow() -> None:
            async for state in states:
                watch(state)

        following = asyncio.create_task(follow())
        following.add_done_callback(lambda _: stop.set())
        log.info("monitoring %s, every %s", name, own.interval)
        next_tick = time.monotonic() + own.interval.total_seconds()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                service.heartbeat("monitor")
                now = time.monotonic()
                for tp, messages in batches.items():
                    metrics.RECORDS.labels(tp.topic).inc(len(messages))
                    for message in messages:
                        reader.read(message, now)
                out: list[tuple[schemas.Schema, str, Record]] = []
                ticked = now >= next_tick
                if ticked:
                    next_tick = now + own.interval.total_seconds()
                    found = _observed(monitor.tick(now, _now_ms()))
                    out += [(METRICS, "monitor.metrics", r) for r in found]
                for event in monitor.drain(_now_ms()):  # the tick's too: after it
                    metrics.DRIFT_EVENTS.labels(event["kind"]).inc()
                    log.warning("drift: %s", {k: v for k, v in event.items() if k != "details"})
                    out.append((DRIFT, "monitor.drift", event))
                pending = [await _send(producer, settings, *o) for o in out]
                await asyncio.gather(*pending)
                if ticked:
                    await _commit(consumer)
            if following.done():
                await following  # raises what ended it
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following


async def _send(
    producer: AIOKafkaProducer,
    settings: Settings,
    schema: schemas.Schema,
    topic: str,
    record: Record,
) -> asyncio.Future[object]:
    key = str(record["model_name"]).encode()
    future: asyncio.Future[object] = await producer.send(
        settings.topic(topic), serde.encode(schema, record), key=key
    )
    return future


def _observed(records: list[Record]) -> list[Record]:
    """The records, after putting their figures on the Prometheus gauges too."""
    for record in records:
        for metric, value in record["performance"].items():
            metrics.PERFORMANCE.labels(str(record["model_version"]), metric).set(value)
        for feature in record["features"]:
            if feature["psi"] is not None:
                metrics.PSI.labels(feature["feature"]).set(feature["psi"])
    return records


async def _commit(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.commit()
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("offsets not committed, partitions reassigned: %s", exc)


def main() -> None:
    asyncio.run(serve())
