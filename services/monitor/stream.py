"""The Kafka side of the monitor: features, predictions and labels in; monitor.metrics every
interval and monitor.drift when drift is confirmed.

Its windows and detectors live in memory and refill after a restart (each needs
`min_samples` before it judges); offsets are committed as of the last published
interval, once its records are acknowledged. What must outlive a restart is read back
from Kafka: the prediction-label join, from its changelog `monitor.joins` (labels come
weeks later than their predictions), and the last drift event on the champion, whose
cooldown goes on.
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

from tideline import catalog, dlq, service, streams
from tideline.durations import epoch_millis
from tideline.errors import DecodeError
from tideline.models import ModelClient
from tideline.registry import Registry
from tideline.settings import Settings

from services.monitor import metrics
from services.monitor.monitor import Monitor, Record
from services.monitor.settings import MonitorSettings

log = logging.getLogger(__name__)

FEATURES, PREDICTIONS = catalog.topic("features"), catalog.topic("predictions")
LABELS = catalog.topic("labels")
METRICS, DRIFT = catalog.topic("monitor.metrics"), catalog.topic("monitor.drift")
JOINS = catalog.topic("monitor.joins")
# Drift events are rare: the newest one on a model is among the last of its partition.
RESUME_TAIL = 1_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Watch:
    """Feeds each consumed record to the monitor, by topic; publishes what it finds."""

    def __init__(self, context: service.Context[MonitorSettings], monitor: Monitor) -> None:
        self.monitor = monitor
        self.interval_s = context.own.interval.total_seconds()
        self.next_tick = time.monotonic() + self.interval_s
        self.topics = {t.name: t for t in map(context.topic, (FEATURES, PREDICTIONS, LABELS))}
        self.features, self.predictions = (
            context.topic(FEATURES).name,
            context.topic(PREDICTIONS).name,
        )
        self.metrics, self.drift = context.topic(METRICS), context.topic(DRIFT)
        self.joins = context.topic(JOINS)
        self.published: streams.Offsets = {}  # handled as of the last published interval
        self.ticked = False
        self.counted = (0, 0, 0)  # the join's (joined, unlabelled, orphans) as last counted

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        outcome, now = streams.Outcome(), time.monotonic()
        for message in messages:
            try:
                self.read(message, now)
            except DecodeError as exc:
                outcome.rejected.append(
                    (dlq.Source.of(message), dlq.RejectionError.undecodable(exc))
                )
        outcome.produce += self._drained()
        return outcome

    def read(self, message: streams.Message, now: float) -> None:
        record = self.topics[message.topic].decode(message.value)
        if message.topic == self.features:
            self.monitor.vector(record, epoch_millis(record["event_time"]), now)
        elif message.topic == self.predictions:
            record["event_time"] = epoch_millis(record["event_time"])
            self.monitor.prediction(record, now)
        else:
            record["label_time"] = epoch_millis(record["label_time"])
            if self.monitor.label(record, now):
                metrics.LABEL_CORRECTIONS.labels(self.monitor.name).inc()

    async def tick(self) -> streams.Outcome:
        now = time.monotonic()
        if now < self.next_tick:
            return streams.Outcome()
        self.next_tick, self.ticked = now + self.interval_s, True
        found = _observed(self.monitor.tick(now, _now_ms()), self.monitor.metric)
        self._count_joins()
        # the tick's drift events after its metrics
        out = [self._produce(self.metrics, r) for r in found] + self._drained()
        return streams.Outcome(out + self._joins())

    def committable(self, handled: streams.Offsets) -> streams.Offsets:
        if self.ticked:
            self.published, self.ticked = handled, False
        return self.published

    def _joins(self) -> list[streams.Produce]:
        """The join's changelog as of this tick: each waiting entry changed, a tombstone for
        each written that waits no more."""
        prefix = f"{self.monitor.name}:"
        return [
            streams.Produce(
                self.joins.name,
                (prefix + event_id).encode(),
                None if record is None else self.joins.encode(record),
            )
            for event_id, record in self.monitor.joiner.changes()
        ]

    def _count_joins(self) -> None:
        joiner, name = self.monitor.joiner, self.monitor.name
        now = (joiner.joined, joiner.unlabelled, joiner.orphans)
        for counter, new, old in zip(
            (metrics.JOINED, metrics.UNLABELLED, metrics.ORPHANS), now, self.counted, strict=True
        ):
            counter.labels(name).inc(new - old)
        self.counted = now
        metrics.PENDING.labels(name).set(joiner.pending)

    def _drained(self) -> list[streams.Produce]:
        out = []
        for event in self.monitor.drain(_now_ms()):
            model, version = event["model_name"], str(event["model_version"])
            metrics.DRIFT_EVENTS.labels(model, version, event["kind"]).inc()
            log.warning("drift: %s", {k: v for k, v in event.items() if k != "details"})
            out.append(self._produce(self.drift, event))
        return out

    @staticmethod
    def _produce(topic: catalog.Bound, record: Record) -> streams.Produce:
        return streams.Produce(topic.name, str(record["model_name"]).encode(), topic.encode(record))


def _observed(records: list[Record], metric: str) -> list[Record]:
    """The records, after putting their figures on the Prometheus gauges too (`metric`:
    the one the floor is on)."""
    for record in records:
        model, version = record["model_name"], str(record["model_version"])
        for name, value in record["performance"].items():
            metrics.PERFORMANCE.labels(model, version, name).set(value)
        if not record["features"]:
            continue  # another version's: performance only
        metrics.PSI.clear()  # the champion's features only, not a former champion's
        for feature in record["features"]:
            if feature["psi"] is not None:
                metrics.PSI.labels(model, version, feature["feature"]).set(feature["psi"])
        if record["performance_floor"] is not None:
            metrics.FLOOR.clear()  # the champion's only
            metrics.FLOOR.labels(model, version, metric).set(record["performance_floor"])
        if record["volume"]:
            coverage = min(1.0, record["labelled"] / record["volume"])
            metrics.LABEL_COVERAGE.labels(model, version).set(coverage)
        if record["label_delay_ms_p50"] is not None:
            metrics.LABEL_DELAY.labels(model, version).set(record["label_delay_ms_p50"] / 1000)
    return records


async def restore_joins(settings: Settings, joins: catalog.Bound, model: str) -> list[Record]:
    """The join's entries of `model` on its changelog: each key's last record, unless a
    tombstone; a record that does not decode is skipped and counted."""
    prefix = f"{model}:".encode()
    latest: dict[bytes, bytes | None] = {}
    async for message in streams.read_back(settings, joins.name, 0):
        if message.key is not None and message.key.startswith(prefix):
            latest[message.key] = message.value
    found = []
    for key, value in latest.items():
        if value is None:
            continue
        try:
            record = joins.decode(value)
        except DecodeError as exc:
            metrics.UNREADABLE.labels(joins.name).inc()
            log.warning("skipped an unreadable join entry %r: %s", key, exc)
            continue
        for prediction in record["predictions"]:
            prediction["event_time"] = epoch_millis(prediction["event_time"])
        if record["label"] is not None:
            record["label"]["label_time"] = epoch_millis(record["label"]["label_time"])
        found.append(record)
    return found


async def last_drift(
    settings: Settings, drift: catalog.Bound, labels: catalog.Bound, name: str, now_ms: int
) -> tuple[Record, int] | None:
    """The newest drift event on model `name`, and how many labels came in after it. An
    event dated after `now_ms` is no monitor's: taken, it would silence this one for a
    whole cooldown."""
    ends = await streams.offset_ranges(settings, drift.name)
    tail = [
        streams.OffsetRange(r.topic, r.partition, max(r.start, r.end - RESUME_TAIL), r.end)
        for r in ends
    ]
    newest: Record | None = None
    async for message in streams.read_ranges(settings, tail):
        try:
            event = drift.decode(message.value)
        except DecodeError as exc:  # not ours to stop on: the cooldown is then not resumed
            metrics.UNREADABLE.labels(drift.name).inc()
            log.warning("skipped an unreadable drift event at offset %d: %s", message.offset, exc)
            continue
        event["detected_at"] = epoch_millis(event["detected_at"])
        if event["detected_at"] > now_ms:
            metrics.UNREADABLE.labels(drift.name).inc()
            log.warning("skipped a drift event from the future at offset %d", message.offset)
            continue
        if event["model_name"] == name and (
            newest is None or event["detected_at"] >= newest["detected_at"]
        ):
            newest = event
    if newest is None:
        return None
    since = await streams.offset_ranges(settings, labels.name, since_ms=newest["detected_at"])
    return newest, sum(r.end - r.start for r in since)


@asynccontextmanager
async def job(context: service.Context[MonitorSettings]) -> AsyncIterator[service.Job]:
    own = context.own
    name = own.model_name or context.project.name
    monitor = Monitor(context.project, name, own, _now_ms())

    def watch(state: Registry) -> None:
        monitor.set_versions([v for v in state.listing() if v["model_name"] == name])
        if monitor.champion is not None:
            metrics.CHAMPION.labels(name).set(monitor.champion.number)

    restored = await restore_joins(context.settings, context.topic(JOINS), name)
    monitor.joiner.restore(restored)
    log.info("restored %d entries of the prediction-label join", len(restored))
    async with aclosing(ModelClient(context.settings).states()) as states:
        watch(await anext(states))  # the champion as of now, before any prediction is read
        found = await last_drift(
            context.settings, context.topic(DRIFT), context.topic(LABELS), name, _now_ms()
        )
        if found is not None:
            event, labels_since = found
            age_s = max(0.0, (_now_ms() - event["detected_at"]) / 1000)
            if monitor.resume(event, labels_since, age_s, time.monotonic()):
                log.info(
                    "drift %s on version %d: still cooling down (%d labels since)",
                    event["drift_id"],
                    event["model_version"],
                    labels_since,
                )

        async def follow() -> None:
            async for state in states:
                watch(state)

        context.background(follow())
        log.info("monitoring %s, every %s", name, own.interval)
        watching = Watch(context, monitor)
        yield service.Job(watching.handle, watching.tick, watching.committable, max_records=5000)
