"""The Kafka side of the trainer: drift events, training requests and a schedule in; one run
at a time in the background; trigger offsets committed once their run has ended."""

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import tideline
from aiokafka import AIOKafkaConsumer, TopicPartition
from tideline import catalog, dlq, kafka, learners, service, streams
from tideline.errors import DecodeError

from services.trainer import metrics, online
from services.trainer.coalesce import Coalescer
from services.trainer.runs import Trainer
from services.trainer.settings import TrainerSettings
from services.trainer.triggers import DRIFT, REQUESTS, Decoder, FollowUps, Schedule, Trigger

log = logging.getLogger(__name__)

LABELS = catalog.topic("labels")


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return f"tideline {tideline.__version__}" + (f" ({commit})" if commit else "")


class Labels:
    """Labels written so far (the sum of `labels`' end offsets): what a label-count
    schedule and the follow-ups count."""

    def __init__(self, watcher: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        self.watcher, self.partitions = watcher, partitions

    async def seen(self) -> int:
        return sum((await self.watcher.end_offsets(self.partitions)).values())


class Triggers:
    def __init__(
        self,
        decoder: Decoder,
        trainer: Trainer,
        schedule: Schedule,
        labels: Labels,
        follow_ups: FollowUps,
        steps: online.Steps | None,
    ) -> None:
        self.decoder, self.trainer, self.schedule, self.labels = decoder, trainer, schedule, labels
        self.follow_ups, self.steps = follow_ups, steps
        self.coalescer = Coalescer()
        self.starts: asyncio.Queue[Trigger] = asyncio.Queue()
        self._cut_at = 0  # labels written when the run in progress read its data
        self._run: asyncio.Task[bool] | None = None  # the run in progress

    async def work(self) -> None:
        """The runs, one at a time, each followed by any run queued meanwhile."""
        while True:
            trigger: Trigger | None = await self.starts.get()
            while trigger is not None:
                metrics.RUNNING.labels(self.trainer.model_name).set(1)
                published = await self._one(trigger)
                metrics.RUNNING.labels(self.trainer.model_name).set(0)
                if published and trigger.kind == "drift":
                    self.follow_ups.start(trigger, self.trainer.own.drift_labels, self._cut_at)
                trigger = self.coalescer.finish()

    async def _one(self, trigger: Trigger) -> bool:
        """`trigger`'s run to its end; False if a drift preempted it (an online step)."""
        self._run = asyncio.create_task(self.trainer.run(trigger, self._cut))
        try:
            return await self._run
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the trainer is stopping
                raise
            return False
        finally:
            self._run = None

    async def _cut(self) -> None:
        self.coalescer.cut()
        self._cut_at = await self.labels.seen()

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        outcome = streams.Outcome()
        for message in messages:
            try:
                trigger = self.decoder.decode(message)
            except DecodeError as exc:
                outcome.rejected.append(
                    (dlq.Source.of(message), dlq.RejectionError.undecodable(exc))
                )
                trigger = None
            if trigger is None:
                self.coalescer.seen((message.topic, message.partition, message.offset))
                metrics.TRIGGERS.labels(self.trainer.model_name, "other", "ignored").inc()
                continue
            await self.offer(trigger)
        return outcome

    async def tick(self) -> streams.Outcome:
        idle = self.coalescer.running is None
        # labels are counted (a round trip to the broker) only when something counts them
        counting = self.schedule.labels is not None or (
            idle and (self.follow_ups.pending or self.steps is not None)
        )
        seen = await self.labels.seen() if counting else 0
        due = self.schedule.due(datetime.now(UTC), seen)
        if due is None and idle:
            due = self.follow_ups.due(seen)
        if due is None and idle and self.steps is not None:
            due = self.steps.due(seen)
        if due is not None:
            await self.offer(due)
        return streams.Outcome()

    def committable(self, handled: streams.Offsets) -> streams.Offsets:
        """Below every trigger whose run has not ended: a crash redoes it."""
        return {TopicPartition(t, p): o for (t, p), o in self.coalescer.commit_offsets().items()}

    async def offer(self, trigger: Trigger) -> None:
        coalescer = self.coalescer
        current = coalescer.running.trigger if coalescer.running is not None else None
        if trigger.kind == "drift":
            self.follow_ups.stop()  # a new concept: its own run, then its own follow-ups
        outcome = coalescer.offer(trigger)
        metrics.TRIGGERS.labels(self.trainer.model_name, trigger.kind, outcome).inc()
        if outcome == "start":
            self.starts.put_nowait(trigger)
            return
        running = current.id if current is not None else "the last run"
        await self.trainer.status(trigger, outcome, f"{outcome}: one run at a time ({running})")
        if (
            trigger.kind == "drift"
            and current is not None
            and current.kind == "online"
            and self._run is not None
            and not self.trainer.publishing
        ):
            # the new concept's run goes first: a step publishes nothing until its end, and
            # the line's next step learns the labels this one would have
            self._run.cancel()
            await self.trainer.status(
                current, "preempted", f"stopped for the drift run {trigger.id}"
            )


@asynccontextmanager
async def job(context: service.Context[TrainerSettings]) -> AsyncIterator[service.Job]:
    settings, own, definition = context.settings, context.own, context.project
    learners.parameters(own.family, own.params)  # an unknown family fails now, not at a run
    name = own.model_name or definition.name
    if own.online_family is not None:
        online.check(own.online_family)
    labels = context.topic(LABELS).name
    watcher = kafka.consumer(settings, group_id=None)  # end offsets of `labels`, for the schedule
    async with kafka.started(watcher):
        partitions = [TopicPartition(labels, p) for p in await kafka.partitions(settings, labels)]
        counted = Labels(watcher, partitions)
        schedule = Schedule(
            own.schedule_every, own.schedule_labels, datetime.now(UTC), await counted.seen()
        )
        trainer = Trainer(settings, own, definition, name, context.producer, code_version())
        steps = None
        if own.online_family is not None:
            trainer.line = await online.restore(settings, definition, name, own.online_family)
            steps = online.Steps(own.online_labels, await counted.seen())
        decoder = Decoder(name, context.topic(REQUESTS), context.topic(DRIFT))
        triggers = Triggers(decoder, trainer, schedule, counted, FollowUps(own.follow_ups), steps)
        context.background(triggers.work())
        log.info(
            "training %s (%s%s) on %s",
            name,
            own.family,
            "" if own.online_family is None else f", online {own.online_family}",
            definition.features.version,
        )
        yield service.Job(triggers.handle, triggers.tick, triggers.committable)
