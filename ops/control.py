"""What an operator sends, and the answer they wait for: registry commands and training
requests, as records on Kafka (what `tideline models ...` does).

An order is checked against the registry's state first, so a wrong one fails at once
with its reason; then it is sent and the service's answer awaited on its topic.
"""

import asyncio
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tideline import catalog, kafka, streams
from tideline.errors import TidelineError
from tideline.models import UPDATES, ModelClient
from tideline.registry import Record
from tideline.settings import Settings

COMMANDS, REQUESTS = catalog.topic("registry.commands"), catalog.topic("training.requests")
STATUS = catalog.topic("trainer.status")
ENDED = {"published", "failed", "joined"}  # what a run's last status says


class NoAnswerError(TidelineError):
    """The service did not answer in time: is it running?"""


@dataclass
class _Watch:
    """A topic read from where it ends now, for the answer to what we are about to send."""

    settings: Settings
    topic: catalog.Bound
    start: dict[int, int]  # partition to offset

    @classmethod
    async def open(cls, settings: Settings, handle: catalog.Topic) -> "_Watch":
        topic = handle.bind(settings)
        ends = {r.partition: r.end for r in await streams.offset_ranges(settings, topic.name)}
        return cls(settings, topic, ends)

    async def until(
        self, done: Callable[[list[Record]], bool], timeout_s: float, service: str
    ) -> list[Record]:
        found = list[Record]()
        try:
            async with (
                asyncio.timeout(timeout_s),
                aclosing(streams.follow(self.settings, self.topic.name, self.start)) as messages,
            ):
                async for message in messages:
                    found.append(self.topic.decode(message.value))
                    if done(found):
                        return found
        except TimeoutError:
            pass
        raise NoAnswerError(
            f"no answer on {self.topic.name} in {timeout_s:.0f}s: is `tideline run {service}` running?"
        )


async def _send(settings: Settings, handle: catalog.Topic, key: str, record: Record) -> None:
    topic = handle.bind(settings)
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        await producer.send_and_wait(topic.name, topic.encode(record), key=key.encode())


async def command(
    settings: Settings,
    action: str,
    model_name: str,
    version: int | None,
    requested_by: str,
    reason: str | None = None,
    timeout_s: float = 60,
) -> list[Record]:
    """Promote, roll back or archive; returns the `models.updated` records it caused."""
    at = datetime.now(UTC)
    order: dict[str, Any] = {
        "command_id": uuid.uuid4().hex,
        "action": action,
        "model_name": model_name,
        "version": version,
        "requested_by": requested_by,
        "reason": reason,
        "requested_at": at,
    }
    state = await ModelClient(settings).registry()
    expected = len(state.carry_out(order, at))  # raises if it cannot be
    watch = await _Watch.open(settings, UPDATES)
    await _send(settings, COMMANDS, model_name, order)
    prefix = f"{order['command_id']}-"
    found = await watch.until(
        lambda seen: sum(u["update_id"].startswith(prefix) for u in seen) >= expected,
        timeout_s,
        "registry",
    )
    return [u for u in found if u["update_id"].startswith(prefix)]


@dataclass(frozen=True)
class TrainingOrder:
    """What a tideline.TrainingRequest asks for."""

    model_name: str
    requested_by: str
    reason: str = "requested"
    max_rows: int | None = None  # the last N labelled events
    params: dict[str, str] = field(default_factory=dict)  # overrides of the model's

    def record(self) -> Record:
        return {
            "request_id": uuid.uuid4().hex,
            "model_name": self.model_name,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "requested_at": datetime.now(UTC),
            "max_rows": self.max_rows,
            "params": self.params,
        }


async def request_training(settings: Settings, order: TrainingOrder) -> Record:
    """Send the order's tideline.TrainingRequest and return it; its statuses come on
    trainer.status."""
    request = order.record()
    await _send(settings, REQUESTS, order.model_name, request)
    return request


@dataclass(frozen=True)
class TrainingOutcome:
    statuses: list[Record]  # the run's tideline.TrainerStatus records
    decision: Record | None  # the registry's verdict; None if no candidate was published


async def train(
    settings: Settings, order: TrainingOrder, timeout_s: float = 600
) -> TrainingOutcome:
    """Ask for a run and wait for its end: the trainer's statuses and the gate's verdict."""
    statuses = await _Watch.open(settings, STATUS)
    updates = await _Watch.open(settings, UPDATES)
    request = await request_training(settings, order)

    def mine(records: list[Record]) -> list[Record]:
        return [r for r in records if r["trigger"]["id"] == request["request_id"]]

    found = mine(
        await statuses.until(
            lambda seen: any(s["state"] in ENDED for s in mine(seen)), timeout_s, "trainer"
        )
    )
    if found[-1]["state"] != "published":
        return TrainingOutcome(found, None)

    def verdicts(records: list[Record]) -> list[Record]:
        return [
            u
            for u in records
            if u["model"]["trigger"]["id"] == request["request_id"] and u["action"] != "registered"
        ]

    decided = await updates.until(lambda seen: bool(verdicts(seen)), timeout_s, "registry")
    return TrainingOutcome(found, verdicts(decided)[0])
