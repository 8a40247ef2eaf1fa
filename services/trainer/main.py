"""`tideline run trainer`: drift events, training requests and a schedule in; candidates out."""

import asyncio
import logging
import subprocess
import time
from datetime import UTC, datetime

import tideline
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from tideline import kafka, learners, project, service
from tideline.errors import TidelineError
from tideline.settings import Settings

from services.trainer import metrics
from services.trainer.coalesce import Coalescer
from services.trainer.runs import Trainer
from services.trainer.settings import TrainerSettings
from services.trainer.triggers import Decoder, Schedule, Trigger

log = logging.getLogger(__name__)


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return f"tideline {tideline.__version__}" + (f" ({commit})" if commit else "")


async def _labels_seen(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    """Labels written so far (the sum of end offsets): what a label-count schedule counts."""
    return sum((await consumer.end_offsets(partitions)).values()) if partitions else 0


async def serve() -> None:
    settings, own = Settings(), TrainerSettings()
    stop = service.setup("trainer", own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    learners.parameters(own.family, own.params)  # an unknown family fails now, not at a run
    await kafka.require(
        settings,
        "features",
        "labels",
        "training.requests",
        "monitor.drift",
        "trainer.status",
        "models.candidates",
    )
    name = own.model_name or definition.name
    requests = settings.topic("training.requests")
    decoder = Decoder(name, requests)
    coalescer = Coalescer(own.cooldown.total_seconds())
    consumer = kafka.consumer(
        settings,
        requests,
        settings.topic("monitor.drift"),
        group_id=own.group_id or settings.topic("trainer"),
    )
    watcher = kafka.consumer(settings, group_id=None)  # end offsets of `labels`, for the schedule
    producer = kafka.producer(settings)
    async with kafka.started(consumer, watcher, producer):
        trainer = Trainer(settings, own, definition, name, producer, code_version())
        starts: asyncio.Queue[Trigger] = asyncio.Queue()

        async def commit() -> None:
            offsets = {TopicPartition(t, p): o for (t, p), o in coalescer.commit_offsets().items()}
            if offsets:
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as exc:
                    log.warning("trigger offsets not committed: %s", exc)

        async def work() -> None:
            while True:
                trigger: Trigger | None = await starts.get()
                while trigger is not None:
                    metrics.RUNNING.set(1)
                    await trainer.run(trigger)
                    metrics.RUNNING.set(0)
                    trigger = coalescer.finish(time.monotonic())
                    await commit()

        async def offer(trigger: Trigger) -> None:
            outcome = coalescer.offer(trigger, time.monotonic())
            metrics.TRIGGERS.labels(trigger.kind, outcome).inc()
            if outcome == "start":
                starts.put_nowait(trigger)
            else:
                running = coalescer.running.trigger.id if coalescer.running else "the last run"
                await trainer.status(trigger, outcome, f"{outcome}: one run at a time ({running})")

        labels = (
            [
                TopicPartition(settings.topic("labels"), p)
                for p in await kafka.partitions(settings, settings.topic("labels"))
            ]
            if own.schedule_labels is not None
            else []
        )
        schedule = Schedule(
            own.schedule_every,
            own.schedule_labels,
            datetime.now(UTC),
            await _labels_seen(watcher, labels),
        )
        worker = asyncio.create_task(work())
        log.info("training %s (%s) on %s", name, own.family, definition.features.version)
        try:
            while not stop.is_set() and not worker.done():
                batches = await consumer.getmany(timeout_ms=500)
                service.heartbeat("trainer")
                for message in (m for batch in batches.values() for m in batch):
                    try:
                        trigger = decoder.decode(message)
                    except TidelineError as exc:
                        log.warning(
                            "unreadable trigger at %s/%d: %s", message.topic, message.offset, exc
                        )
                        trigger = None
                    if trigger is None:
                        coalescer.seen((message.topic, message.partition, message.offset))
                        metrics.TRIGGERS.labels("other", "ignored").inc()
                        continue
                    await offer(trigger)
                due = schedule.due(datetime.now(UTC), await _labels_seen(watcher, labels))
                if due is not None:
                    await offer(due)
                await commit()
            if worker.done():
                await worker  # raises what ended it
        finally:
            worker.cancel()


def main() -> None:
    asyncio.run(serve())
