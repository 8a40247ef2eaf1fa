"""Services run as a user runs them (`tideline run NAME`, a real process) against the test's topics."""

import asyncio
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tideline import artifacts, catalog, kafka, registry, serde, signing
from tideline.durations import epoch_millis
from tideline.models import UPDATES, ModelClient
from tideline.project import Project, load
from tideline.scoring import Scorer
from tideline.settings import Settings

from ops import launcher, synthetic

from ...projects import EXAMPLES


def environment(settings: Settings, project: Any = EXAMPLES[0]) -> dict[str, str]:
    """What a `tideline` process needs to reach this test's stack, topics and project."""
    return launcher.environment(settings, project)


class Service(launcher.Process):
    """A service process of the test's: its example project, a free metrics port, and its
    log in a file, whose end a failed wait shows (a service that died says why)."""

    def __init__(self, name: str, settings: Settings, project: Any = EXAMPLES[0]) -> None:
        super().__init__(name, settings, project, port=launcher.free_port())
        self.log = Path(tempfile.mkstemp(prefix=f"tideline-{name}-", suffix=".log")[1])

    def start(self, output: IO[Any] | int | None = None) -> "Service":
        with self.log.open("ab") as log:
            super().start(log if output is None else output)
        return self

    def wait_for(self, sample: str, at_least: float, timeout_s: float = 90, **labels: str) -> float:
        try:
            return super().wait_for(sample, at_least, timeout_s, **labels)
        except (RuntimeError, TimeoutError) as exc:
            tail = self.log.read_text(errors="replace").splitlines()[-25:]
            raise type(exc)(f"{exc}; {self.name}'s log ends:\n" + "\n".join(tail)) from exc


async def produce(
    settings: Settings,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send(
                catalog.topic(topic).full_name(settings),
                value,
                key=None if keys is None else keys[i],
                timestamp_ms=None if timestamps_ms is None else timestamps_ms[i],
                headers=list(headers),
            )
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*sent)  # a record the broker refused fails the test, here
    finally:
        await producer.stop()


async def produce_signed(settings: Settings, records: Sequence[tuple[bytes, bytes]]) -> None:
    """`models.updated` records (value, key) as the registry writes them, signed with its key."""
    signer = signing.signer(settings)
    for value, key in records:
        headers = [signer.header(key, value)]
        await produce(settings, "models.updated", [value], keys=[key], headers=headers)


# The header of a record a test forged on a service's output topic, to see its readers skip
# it: the test's own checks of that topic read past it.
FORGED = ("tideline.test.forged", b"1")


def as_raw(events: Sequence[dict[str, Any]]) -> tuple[list[bytes], list[bytes | None]]:
    """Canonical events as a business system sends them to `events.raw`: JSON values, and
    keys by entity id (as the catalog says, so an event's repeats share its partition)."""
    values = []
    for e in events:
        body = {"event_id": e["event_id"], "event_time": e["event_time"].isoformat()}
        values.append(orjson.dumps(body | e["payload"]))
    return values, [e["entity_id"].encode() for e in events]


async def collect(
    settings: Settings,
    topic: str,
    expected: int,
    timeout_s: float = 60,
    complete: Callable[[list[ConsumerRecord[bytes, bytes]]], bool] | None = None,
    group: str | None = "",
) -> list[ConsumerRecord[bytes, bytes]]:
    """At least `expected` records of `topic`, and all `complete` asks for, plus any that
    follow; read in consumer group `group` ("": a new one of its own; None: no group)."""
    consumer = kafka.consumer(
        settings,
        catalog.topic(topic).full_name(settings),
        group_id=f"t-{uuid.uuid4().hex}" if group == "" else group,
    )
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:  # stopped even when it never started (a refused start leaves its client open)
        await consumer.start()
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
    step: timedelta = timedelta(seconds=1),
) -> list[dict[str, Any]]:
    """`count` events' feature vectors on `features` and their labels on `labels`, as the
    feature store and ingest would have written them, `step` apart; returns the vectors."""
    generator = synthetic.Generator(definition, entities=100, seed=seed)
    events = generator.stream(start, count, step)
    pairs = list(synthetic.labelled_vectors(definition, events, concept))
    vectors = [v for v, _ in pairs]
    await produce(
        settings,
        "features",
        [serde.encode(definition.feature_schema, v) for v in vectors],
        keys=[v["entity_id"].encode() for v in vectors],
        timestamps_ms=[epoch_millis(v["event_time"]) for v in vectors],
        headers=[FORGED],  # not the feature store's: a check of its vectors reads past them
    )
    await produce(
        settings,
        "labels",
        [serde.encode(definition.label_schema, label) for _, label in pairs],
        keys=[label["event_id"].encode() for _, label in pairs],
    )
    return vectors


async def forge_champion(settings: Settings, genuine: dict[str, Any], model: Any) -> int:
    """A stranger with write access to the topics, no ACLs in the way: `model` as a validly
    chunked artifact (right sha256), and `genuine`'s record, renumbered, naming it as the
    champion: once unsigned, once signed by a key of the stranger's. Returns the records
    written to `models.updated` (each one every reader must refuse)."""
    ref = await artifacts.publish(settings, artifacts.dump(model))
    version = genuine | {"version": genuine["version"] + 100, "artifact": ref}
    version |= {"state": "production", "aliases": ["champion"]}
    update = {
        "update_id": uuid.uuid4().hex,
        "action": "promoted",
        "model": version,
        "reason": "forged",
        "decided_by": "gate",
        "at": datetime.now(UTC),
    }
    key = registry.key(update).encode()
    value = serde.encode(UPDATES.schema(), update)
    stranger = signing.Signer(Ed25519PrivateKey.generate())
    for headers in ([], [stranger.header(key, value)]):
        await produce(settings, "models.updated", [value], keys=[key], headers=headers)
    return 2


WEAK = {"max_iter": "1", "max_depth": "1"}  # one shallow tree: a worse gradient boosting
# Small runs, no waiting between them: what the tests need of a trainer.
TRAINER_ENV = {
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


async def wait_committed(
    settings: Settings, service: str, topics: Sequence[str], project: Project | None = None
) -> None:
    """Until the service's group has committed every record of `topics` there is now."""
    full = [catalog.topic(t).full_name(settings) for t in topics]
    name = (project or load(EXAMPLES[0])).name
    group = f"{settings.topic_prefix}{service}.{name}"
    probe = kafka.consumer(settings, group_id=None)
    async with kafka.started(probe), kafka.admin_session(settings) as client:
        partitions = [
            TopicPartition(t, p) for t in full for p in await kafka.partitions(settings, t)
        ]
        ends = await probe.end_offsets(partitions)
        async with asyncio.timeout(240):
            while True:
                done = await client.list_consumer_group_offsets(group)
                if all(tp in done and done[tp].offset >= ends[tp] for tp in partitions):
                    return
                await asyncio.sleep(0.2)


async def assert_scored(
    settings: Settings, vectors: dict[str, dict[str, Any]], version: int
) -> None:
    """Each of `vectors` (event id to values) scored by champion `version` as the model itself
    scores those values; a repeat (a batch redone after a kill) with the very same score."""
    schema = catalog.topic("predictions").schema()
    decoder = serde.Decoder([schema])
    served: dict[str, set[tuple[int, float]]] = defaultdict(set)

    def complete(found: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return {decoder.decode_as(schema, m.value)["event_id"] for m in found} >= set(vectors)

    for message in await collect(settings, "predictions", len(vectors), 120, complete):
        p = decoder.decode_as(schema, message.value)
        if not p["shadow"]:
            served[p["event_id"]].add((p["model_version"], p["score"]))
    assert set(served) >= set(vectors)
    assert all(len(found) == 1 for found in served.values()), "a repeat scored differently"
    definition = load(EXAMPLES[0])
    client = ModelClient(settings)
    model = await client.load_version((await client.registry()).version(definition.name, version))
    ids = sorted(vectors)
    expected = Scorer(model, definition).scores([vectors[e] for e in ids])
    found = [next(iter(served[e])) for e in ids]
    assert {number for number, _ in found} == {version}
    assert [score for _, score in found] == pytest.approx(expected, abs=1e-12)
