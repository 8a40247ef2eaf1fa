"""Services run as a user runs them (`tideline run NAME`, a real process) against the test's topics."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from tideline import kafka, serde, service, synthetic
from tideline.durations import epoch_millis
from tideline.project import Project
from tideline.settings import Settings

from ...projects import EXAMPLES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(settings: Settings, project: Any = EXAMPLES[0]) -> dict[str, str]:
    """What a `tideline` process needs to reach this test's stack, topics and project."""
    return {
        **os.environ,
        "TIDELINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TIDELINE_REDIS_URL": settings.redis_url,
        "TIDELINE_TOPIC_PREFIX": settings.topic_prefix,
        "TIDELINE_HOME": str(settings.home),
        "TIDELINE_PROJECT": str(project),
        "COLUMNS": "200",  # rich wraps at 80 without a terminal
    }


class Service:
    def __init__(self, name: str, settings: Settings, project: Any = EXAMPLES[0]) -> None:
        self.name = name
        self.metrics_port = _free_port()
        self.env = environment(settings, project) | {
            f"TIDELINE_{name.upper()}_METRICS_PORT": str(self.metrics_port)
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tideline.cli", "run", self.name],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return str(r.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        return service.metric(self.metrics_port, name, **labels)

    def wait_for(self, name: str, at_least: float, timeout_s: float = 90, **labels: str) -> float:
        return service.wait_metric(self.metrics_port, name, at_least, timeout_s, self.alive, labels)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


async def produce(
    settings: Settings,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send(
                settings.topic(topic),
                value,
                key=None if keys is None else keys[i],
                timestamp_ms=None if timestamps_ms is None else timestamps_ms[i],
            )
        await producer.flush()
    finally:
        await producer.stop()


async def collect(
    settings: Settings,
    topic: str,
    expected: int,
    timeout_s: float = 60,
    complete: Callable[[list[ConsumerRecord[bytes, bytes]]], bool] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """At least `expected` records of `topic`, and all `complete` asks for, plus any that follow."""
    consumer = kafka.consumer(settings, settings.topic(topic), group_id=f"t-{uuid.uuid4().hex}")
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            len(found) < expected or (complete is not None and not complete(found))
        ):
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(messages)
        for messages in (await consumer.getmany(timeout_ms=1500)).values():
            found.extend(messages)
    finally:
        await consumer.stop()
    return found


async def publish_labelled(
    settings: Settings,
    definition: Project,
    count: int,
    start: datetime,
    concept: synthetic.Concept,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`count` events' feature vectors on `features` and their labels on `labels`, as the
    feature store and ingest would have written them; returns the vector records."""
    generator = synthetic.Generator(definition, entities=100, seed=seed)
    events = generator.stream(start, count, timedelta(seconds=1))
    pairs = list(synthetic.labelled_vectors(definition, events, concept))
    vectors = [v for v, _ in pairs]
    await produce(
        settings,
        "features",
        [serde.encode(definition.feature_schema, v) for v in vectors],
        keys=[v["entity_id"].encode() for v in vectors],
        timestamps_ms=[epoch_millis(v["event_time"]) for v in vectors],
    )
    await produce(
        settings,
        "labels",
        [serde.encode(definition.label_schema, label) for _, label in pairs],
        keys=[label["event_id"].encode() for _, label in pairs],
    )
    return vectors


WEAK = {"max_iter": "1", "max_depth": "1"}  # one shallow tree: a worse gradient boosting
# Small runs, no waiting between them: what the tests need of a trainer.
TRAINER_ENV = {
    "TIDELINE_TRAINER_COOLDOWN": "0s",
    "TIDELINE_TRAINER_MIN_ROWS": "100",
    "TIDELINE_TRAINER_WINDOW_ROWS": "3000",
    "TIDELINE_TRAINER_DRIFT_LABELS": "400",
    "TIDELINE_TRAINER_LABEL_POLL": "0.5s",
}


def start_service(name: str, settings: Settings, services: list[Service], **env: str) -> Service:
    """`tideline run NAME` with `env` on top, once it polls; the `running` fixture stops it."""
    svc = Service(name, settings)
    svc.env |= (TRAINER_ENV if name == "trainer" else {}) | env
    svc.start()
    services.append(svc)
    svc.wait_for("tideline_last_poll_timestamp_seconds", 1)
    return svc
