"""A training run, from trigger to candidate: wait for labels (after a drift), read the
training set and holdout, fit, publish the candidate; say on `trainer.status` what it
is doing. A run that fails publishes no candidate, only the failure. An `online` run is
a step of the online line (services.trainer.online) instead of a new model."""

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from tideline import artifacts, catalog, service, training
from tideline.project import Project
from tideline.settings import Settings

from services.trainer import metrics
from services.trainer.fitting import Fitted, TrainingError, fit
from services.trainer.online import Line, start_of
from services.trainer.settings import TrainerSettings
from services.trainer.triggers import Trigger

log = logging.getLogger(__name__)

CANDIDATES, STATUS = catalog.topic("models.candidates"), catalog.topic("trainer.status")


class Trainer:
    def __init__(
        self,
        settings: Settings,
        own: TrainerSettings,
        project: Project,
        model_name: str,
        producer: AIOKafkaProducer,
        code_version: str,
    ) -> None:
        self.settings, self.own, self.project = settings, own, project
        self.model_name, self.producer, self.code_version = model_name, producer, code_version
        self.candidates, self.statuses = CANDIDATES.bind(settings), STATUS.bind(settings)
        self.line = Line(None, None, "")  # the online line, restored at start if there is one
        self.publishing = False  # the run in progress has sent its candidate: past stopping

    async def status(self, trigger: Trigger, state: str, message: str, **details: Any) -> None:
        strings = {k: str(v) for k, v in details.items()}
        record = {
            "status_id": uuid.uuid4().hex,
            "model_name": self.model_name,
            "state": state,
            "trigger": trigger.record,
            "message": message,
            "details": strings,
            "at": datetime.now(UTC),
        }
        log.info("%s: %s", state, message, extra={"trigger": trigger.record, **strings})
        await self.producer.send_and_wait(
            self.statuses.name,
            self.statuses.encode(record),
            key=self.model_name.encode(),
        )

    async def run(self, trigger: Trigger, cut: Callable[[], Awaitable[None]]) -> bool:
        """One run to its end; True if a candidate was published. Never raises. `cut` is
        called once its training data is read: a trigger from then on is not in it."""
        started = time.perf_counter()
        self.publishing = False
        online = trigger.kind == "online"
        step = self.line if online else Line(None, None, "")
        family = self.own.online_family if online else self.own.family
        assert family is not None  # online runs are scheduled only with an online family
        if step.model is not None:  # its lineage, in the version's trigger
            trigger = dataclasses.replace(trigger, id=f"{trigger.id}; continues {step.parent}")
        try:
            found = await self._data(trigger, step)
            await cut()
            doing = f"training {family}"
            if step.model is not None:
                doing = f"{family} learning on from {step.parent}"
            await self.status(trigger, "training", doing)
            rows = trigger.max_rows or self.own.window_rows
            train, holdout = training.cut(
                found, None if step.model is not None else rows, self.own.holdout
            )
            fitted = await service.to_thread(
                fit,
                self.project,
                family,
                {} if online else {**self.own.params, **trigger.params},
                train,
                holdout,
                self.own.min_rows,
                step.model,
            )
            for phase, seconds in fitted.seconds.items():
                metrics.PHASE_SECONDS.labels(self.model_name, phase).observe(seconds)
            metrics.FIT_THREADS.labels(self.model_name).set(fitted.openmp_threads)
            publish_from = time.perf_counter()
            candidate = self._candidate(trigger, family, train, holdout, fitted, started)
            self.publishing = True
            await self.producer.send_and_wait(
                self.candidates.name,
                self.candidates.encode(candidate),
                key=self.model_name.encode(),
            )
            metrics.PHASE_SECONDS.labels(self.model_name, "publish").observe(
                time.perf_counter() - publish_from
            )
            if online:  # published: the line's checkpoint, continued by the next step
                self.line = Line(fitted.model, start_of(holdout), candidate["candidate_id"])
        except TrainingError as exc:
            return await self._failed(trigger, str(exc))
        except Exception as exc:  # a library's error fails the run, not the trainer
            log.exception("run failed")
            return await self._failed(trigger, f"{type(exc).__name__}: {exc}")
        metrics.RUNS.labels(self.model_name, "published").inc()
        await self.status(
            trigger,
            "published",
            f"candidate {candidate['candidate_id']} trained on {train.ref['rows']} rows",
            candidate_id=candidate["candidate_id"],
            rows=train.ref["rows"],
            holdout_rows=holdout.ref["rows"],
            seconds=f"{time.perf_counter() - started:.2f}",
            openmp_threads=fitted.openmp_threads,
            **fitted.metrics,
        )
        return True

    async def _failed(self, trigger: Trigger, reason: str) -> bool:
        metrics.RUNS.labels(self.model_name, "failed").inc()
        await self.status(trigger, "failed", reason)
        return False

    async def _data(self, trigger: Trigger, step: Line) -> training.Read:
        if trigger.kind == "drift" and trigger.since is not None:
            return await self._await_labels(trigger, trigger.since)
        started = time.perf_counter()
        # a follow-up: every post-drift label so far, no wait; a step: what it has not learnt
        since = step.since if step.model is not None else trigger.since
        if since is None and self.own.window is not None:
            since = datetime.now(UTC) - self.own.window
        found = await training.read(self.settings, self.project, since)
        metrics.PHASE_SECONDS.labels(self.model_name, "read").observe(time.perf_counter() - started)
        return found

    async def _await_labels(self, trigger: Trigger, since: datetime) -> training.Read:
        """Until `drift_labels` labelled events from after `since` are in, or fail; the
        read that found them is the run's training data, so it is not read twice."""
        needed, started = self.own.drift_labels, time.perf_counter()
        announced = -1
        while True:
            found = await training.read(self.settings, self.project, since)
            have = len(found.labelled.frame)
            metrics.LABELS_AWAITED.labels(self.model_name).set(max(0, needed - have))
            if have >= needed:
                metrics.PHASE_SECONDS.labels(self.model_name, "wait").observe(
                    time.perf_counter() - started
                )
                return found
            if announced < 0:
                await self.status(
                    trigger,
                    "waiting",
                    f"waiting for {needed} labelled events after {since.isoformat()}"
                    f" (the new concept); {have} so far",
                    needed=needed,
                    have=have,
                    since=since.isoformat(),
                )
                announced = have
            if time.perf_counter() - started > self.own.drift_wait.total_seconds():
                raise TrainingError(
                    f"waited {self.own.drift_wait} for {needed} labelled events after"
                    f" {since.isoformat()}; {have} arrived"
                )
            await asyncio.sleep(self.own.label_poll.total_seconds())

    def _candidate(
        self,
        trigger: Trigger,
        family: str,
        train: training.TrainingSet,
        holdout: training.TrainingSet,
        fitted: Fitted,
        started: float,
    ) -> dict[str, Any]:
        return {
            "candidate_id": uuid.uuid4().hex,
            "model_name": self.model_name,
            "task": self.project.label.task,
            "family": family,
            "params": fitted.params,
            "feature_names": self.project.features.names,
            "metrics": fitted.metrics,
            "dataset": train.ref,
            "holdout": holdout.ref,
            "trigger": trigger.record,
            "code_version": self.code_version,
            "trained_at": datetime.now(UTC),
            "duration_ms": round((time.perf_counter() - started) * 1000),
            "reference": fitted.reference,
            "prediction_reference": fitted.prediction_reference,
            "artifact_format": artifacts.FORMAT,
            "artifact_sha256": artifacts.sha256(fitted.artifact),
            "artifact": fitted.artifact,
        }
