"""Candidates and commands in; artifact chunks and signed `models.updated` records out.

A candidate is verified (its inline artifact must match its sha256 and hold only
trusted types), its artifact chunked onto `models.artifacts` and acknowledged, then
registered, then judged: its holdout rebuilt from its DatasetRef, it and the champion
scored on the same rows, and the gate decides. A candidate seen again (a run redone
after a crash, a batch redone after ours) is not registered twice.
"""

import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tideline import (
    artifacts,
    catalog,
    dlq,
    learners,
    registry,
    service,
    signing,
    streams,
    training,
)
from tideline.errors import DecodeError
from tideline.models import UPDATES
from tideline.project import Project
from tideline.registry import Record, Registry, TransitionError
from tideline.settings import Settings

from services.registry import gate, metrics
from services.registry.settings import RegistrySettings
from services.registry.versions import version_record

log = logging.getLogger(__name__)

CANDIDATES, COMMANDS = catalog.topic("models.candidates"), catalog.topic("registry.commands")
DECIDED_BY = "gate"


class Registrar:
    def __init__(
        self,
        settings: Settings,
        own: RegistrySettings,
        project: Project,
        registry: Registry,
        signer: signing.Signer,
        send_chunks: Callable[[list[streams.Produce]], Awaitable[None]],
    ) -> None:
        self.settings, self.own, self.project = settings, own, project
        self.registry, self.signer, self.send_chunks = registry, signer, send_chunks
        self.columns = learners.Columns.of(project)
        self._models: dict[str, Any] = {}  # sha256 -> loaded model
        self.candidates, self.commands = CANDIDATES.bind(settings), COMMANDS.bind(settings)
        self.updates = UPDATES.bind(settings)
        for name in registry.models:
            self._count_champion(name)

    async def handle(self, messages: streams.Messages) -> streams.Outcome:
        outcome = streams.Outcome()
        for message in messages:
            try:
                if message.topic == self.candidates.name:
                    updates = await self._candidate(self.candidates.decode(message.value))
                else:
                    updates = self._command(self.commands.decode(message.value))
            except DecodeError as exc:  # nothing to register: a dead letter says why
                outcome.rejected.append(
                    (dlq.Source.of(message), dlq.RejectionError.undecodable(exc))
                )
                continue
            outcome.produce += [self._publish(u) for u in updates]
        return outcome

    def _publish(self, update: Record) -> streams.Produce:
        version = update["model"]
        if update["action"] in registry.POLICY:
            log.info("%s: automatic promotion %s", version["model_name"], update["action"])
        else:
            log.info(
                "%s v%d: %s (%s)",
                version["model_name"],
                version["version"],
                update["action"],
                update["reason"],
                extra={"state": version["state"], "aliases": version["aliases"]},
            )
        self._count_champion(version["model_name"])
        key, value = registry.key(update).encode(), self.updates.encode(update)
        return streams.Produce(
            self.updates.name, key, value, headers=(self.signer.header(key, value),)
        )

    def _count_champion(self, name: str) -> None:
        champion = self.registry.champion(name)
        metrics.CHAMPION.labels(name).set(0 if champion is None else champion["version"])
        metrics.PAUSED.labels(name).set(self.registry.paused(name))

    def _command(self, order: dict[str, Any]) -> list[Record]:
        try:
            updates = self.registry.carry_out(order, datetime.now(UTC))
        except TransitionError as exc:
            log.warning("command %s refused: %s", order["command_id"], exc)
            metrics.COMMANDS.labels(order["model_name"], order["action"], "refused").inc()
            return []
        metrics.COMMANDS.labels(order["model_name"], order["action"], "done").inc()
        return [self._apply(u) for u in updates]

    async def _candidate(self, candidate: dict[str, Any]) -> list[Record]:
        name = candidate["model_name"]
        try:
            model = artifacts.load(candidate["artifact"], candidate["artifact_sha256"])
        except artifacts.ArtifactError as exc:
            log.error("candidate %s refused: %s", candidate["candidate_id"], exc)
            metrics.CANDIDATES.labels(name, "refused").inc()
            return []
        updates: list[Record] = []
        found = self.registry.find(name, candidate["trigger"])
        if found is not None and found["state"] != "candidate":
            metrics.CANDIDATES.labels(name, "duplicate").inc()
            return []
        if found is None:
            ref, chunks = artifacts.chunks(candidate["artifact"], self.settings)
            await self.send_chunks(chunks)  # acknowledged before any record names them
            updates = [
                self._apply(u)
                for u in self.registry.register(
                    version_record(candidate, ref), DECIDED_BY, datetime.now(UTC)
                )
            ]
            found = updates[-1]["model"]
        self._models[found["artifact"]["sha256"]] = model
        return updates + await self._judge(found, model)

    def _apply(self, update: Record) -> Record:
        # applied as it is made, so the next step and the next message see it; if its
        # send then fails, the service stops and rebuilds its state from the topic
        self.registry.apply(update)
        return update

    async def _judge(self, version: Record, model: Any) -> list[Record]:
        started = time.perf_counter()
        name, number, task = version["model_name"], version["version"], self.project.label.task
        champion = self.registry.champion(name)
        needed = gate.margin(self.own.margin, version, champion)
        policy = gate.Policy(self.own.gate_metric(task), needed)
        try:
            holdout = await training.rebuild(self.settings, self.project, version["holdout"])
        except training.DatasetError as exc:  # Kafka's own errors stop us instead: redone
            return self._rejected(version, f"validation failed: {exc}", challenger=False)
        if holdout.frame.empty:
            return self._rejected(version, "validation failed: empty holdout", challenger=False)
        x = self.columns.frame(holdout.frame)
        labels = holdout.frame[self.project.label.field].tolist()
        try:
            scores = await service.to_thread(learners.scores, model, task, x)
        except Exception as exc:  # any failure to score its own holdout fails validation
            return self._rejected(version, f"validation failed: {exc}", challenger=False)
        champion_scores = None
        if champion is not None and champion["version"] != number:
            try:
                theirs = await self._model(champion)
                champion_scores = await service.to_thread(learners.scores, theirs, task, x)
            except Exception as exc:  # the gate then says the champion cannot score it
                log.warning("champion v%d cannot score the holdout: %s", champion["version"], exc)
                champion_scores = [math.nan] * len(labels)
        decision = gate.decide(
            policy,
            task,
            labels,
            scores,
            champion_scores,
            self.project.features.version,
            version["feature_version"],
        )
        metrics.GATE_SECONDS.labels(name).observe(time.perf_counter() - started)
        if not decision.promote:
            return self._rejected(version, decision.reason, challenger=bool(decision.candidate))
        at = datetime.now(UTC)
        if self.registry.paused(name):
            metrics.CANDIDATES.labels(name, "held").inc()
            reason = f"{decision.reason}; automatic promotion is paused: promote it by hand"
            return [
                self._apply(u) for u in self.registry.hold(name, number, reason, DECIDED_BY, at)
            ]
        metrics.CANDIDATES.labels(name, "promoted").inc()
        return [
            self._apply(u)
            for u in self.registry.promote(
                name, number, "promoted", decision.reason, DECIDED_BY, at
            )
        ]

    def _rejected(self, version: Record, reason: str, challenger: bool) -> list[Record]:
        challenger = challenger and self.own.challenger
        metrics.CANDIDATES.labels(
            version["model_name"], "challenger" if challenger else "rejected"
        ).inc()
        updates = self.registry.reject(
            version["model_name"],
            version["version"],
            reason,
            DECIDED_BY,
            datetime.now(UTC),
            challenger,
        )
        return [self._apply(u) for u in updates]

    async def _model(self, version: Record) -> Any:
        ref = version["artifact"]
        if ref["sha256"] not in self._models:
            data = await artifacts.fetch(self.settings, ref)
            self._models[ref["sha256"]] = artifacts.load(data, ref["sha256"])
        return self._models[ref["sha256"]]
