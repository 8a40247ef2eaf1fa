"""Issue 16's failures tried from outside, as its author tried them, against any checkout:
this one, or the main of the day the issue was filed (a worktree of 7aabe7d), whose code
the tests in this folder cannot import. Only Kafka records and `tideline run` processes
are involved, so the same scenario runs on both.

    python tests/reliability/outside.py /tmp/old     # git worktree add /tmp/old 7aabe7d

Needs a running stack (TIDELINE_KAFKA_BOOTSTRAP, TIDELINE_REDIS_URL as for the services);
each scenario uses topics of its own prefix. A scenario passes when what comes after the
bad records is handled and the services still run, and fails when a service exits. Where
no later record shows that a service read the bad one (a service's own state on
`models.updated`), it is watched for `WATCH_S` seconds instead.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

BOOTSTRAP = os.environ.get("TIDELINE_KAFKA_BOOTSTRAP", "localhost:9092")
WATCH_S = 30
BROKER_LIMIT = 1_048_588  # Kafka's default message.max.bytes
WAIT_S = 180
Procs = list[subprocess.Popen[bytes]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Checkout:
    def __init__(self, root: Path, prefix: str, logs: Path) -> None:
        self.root, self.prefix, self.logs = root, prefix, logs
        cli = "ops.cli" if (root / "ops" / "cli.py").exists() else "tideline.cli"
        self.cli = [sys.executable, "-c", f"from {cli} import app; app()"]
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{root / 'libs'}:{root}",
            "TIDELINE_TOPIC_PREFIX": prefix,
            "TIDELINE_PROJECT": str(root / "examples" / "cards" / "project.yaml"),
        }

    def run(self, *args: str) -> None:
        subprocess.run([*self.cli, *args], cwd=self.root, env=self.env, check=True)

    def start(self, service: str) -> subprocess.Popen[bytes]:
        env = self.env | {
            f"TIDELINE_{service.upper()}_METRICS_PORT": str(_free_port()),
            "TIDELINE_SERVING_HTTP_PORT": str(_free_port()),
        }
        log = (self.logs / f"{self.prefix}{service}.log").open("ab")
        return subprocess.Popen(
            [*self.cli, "run", service], cwd=self.root, env=env, stdout=log, stderr=log
        )


def _event(card: str, event_id: str, at: datetime, merchant: str = "m1") -> bytes:
    body = {"event_id": event_id, "event_time": at.isoformat(), "card_id": card}
    payload = {"merchant_id": merchant, "category": "fuel", "amount": 12.5, "country": "FR"}
    return json.dumps(body | payload | {"channel": "web", "card_present": False}).encode()


async def _produce(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, max_request_size=BROKER_LIMIT)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _partitions(topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        (found,) = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in found["partitions"]]
    finally:
        await admin.close()


async def _read(topic: str) -> list[bytes]:
    """Every record on `topic` now."""
    parts = await _partitions(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[bytes] = []
        while [p for p in parts if await consumer.position(p) < ends[p]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                found += [m.value or b"" for m in batch]
        return found
    finally:
        await consumer.stop()


async def _committed_to_end(topic: str) -> bool:
    """Some group has committed every record of `topic` (whatever the release names it)."""
    parts = await _partitions(topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
        for group, _ in await admin.list_consumer_groups():
            offsets = await admin.list_consumer_group_offsets(group)
            # a partition nothing was written to may have no commit at all
            behind = [
                p for p in parts if ends[p] and (p not in offsets or offsets[p].offset < ends[p])
            ]
            if len(offsets) and not behind:
                return True
        return False
    finally:
        await consumer.stop()
        await admin.close()


async def _until(done: Callable[[], Awaitable[bool]], processes: Procs) -> str:
    """'pass' once `done`, 'fail' once a process exits, 'undecided' after WAIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        if any(p.poll() is not None for p in processes):
            return "fail: a service exited"
        if await done():
            alive = all(p.poll() is None for p in processes)
            return "pass" if alive else "fail: a service exited"
        await asyncio.sleep(0.5)
    return "undecided"


async def _watched(processes: Procs) -> str:
    for _ in range(WATCH_S * 2):
        if any(p.poll() is not None for p in processes):
            return "fail: a service exited"
        await asyncio.sleep(0.5)
    return f"pass (still running after {WATCH_S} s)"


def _past(inputs: list[str], output: str, needle: bytes) -> Callable[[], Awaitable[bool]]:
    """Done when the record with `needle` is on `output` and every record of `inputs` is
    committed: the services read past the bad ones and went on."""

    async def check() -> bool:
        if not any(needle in value for value in await _read(output)):
            return False
        return all([await _committed_to_end(topic) for topic in inputs])

    return check


async def oversized_record_on_events_raw(co: Checkout, started: Procs) -> str:
    ingest = co.start("ingest")
    started.append(ingest)
    now = datetime.now(UTC)
    await _produce(f"{co.prefix}events.raw", [(b"c1", b"\x01" * (BROKER_LIMIT - 512))])
    await _produce(f"{co.prefix}events.raw", [(b"c1", _event("c1", "after-it", now))])
    raw, events = f"{co.prefix}events.raw", f"{co.prefix}events"
    return await _until(_past([raw], events, b"after-it"), [ingest])


async def two_900kb_events_for_one_card(co: Checkout, started: Procs) -> str:
    procs = [co.start("ingest"), co.start("featurestore")]
    started += procs
    now = datetime.now(UTC)
    big = [(b"big", _event("big", f"big-{i}", now, merchant=str(i) * 900_000)) for i in range(2)]
    await _produce(f"{co.prefix}events.raw", big)
    after = [(b"big", _event("big", "big-after", now)), (b"c2", _event("c2", "c2-after", now))]
    await _produce(f"{co.prefix}events.raw", after)
    inputs = [f"{co.prefix}events.raw", f"{co.prefix}events"]
    return await _until(_past(inputs, f"{co.prefix}features", b"c2-after"), procs)


async def backfill_repeats_after_a_restart(co: Checkout, started: Procs) -> str:
    old = datetime.now(UTC) - timedelta(days=21)
    events = [(f"c{i % 30}".encode(), _event(f"c{i % 30}", f"bf-{i}", old)) for i in range(300)]
    ingest = co.start("ingest")
    started.append(ingest)
    await _produce(f"{co.prefix}events.raw", events)
    verdict = await _until(lambda: _committed_to_end(f"{co.prefix}events.raw"), [ingest])
    if verdict != "pass":
        return f"first pass: {verdict}"
    ingest.terminate()
    ingest.wait(60)
    again = co.start("ingest")
    started.append(again)
    await _produce(f"{co.prefix}events.raw", events)
    verdict = await _until(lambda: _committed_to_end(f"{co.prefix}events.raw"), [again])
    copies = sum(b"bf-" in v for v in await _read(f"{co.prefix}events"))
    if verdict != "pass":
        return verdict
    return "pass (300 on events)" if copies == 300 else f"fail: {copies} of 300 on events"


async def undecodable_model_record_then_serving(co: Checkout, started: Procs) -> str:
    serving = co.start("serving")
    started.append(serving)
    await _produce(f"{co.prefix}models.updated", [(b"cards", b"garbage-record")])
    return await _watched([serving])


async def undecodable_model_record_then_registry(co: Checkout, started: Procs) -> str:
    await _produce(f"{co.prefix}models.updated", [(b"cards", b"garbage-record")])
    registry = co.start("registry")
    started.append(registry)
    return await _watched([registry])


SCENARIOS = [
    oversized_record_on_events_raw,
    two_900kb_events_for_one_card,
    backfill_repeats_after_a_restart,
    undecodable_model_record_then_serving,
    undecodable_model_record_then_registry,
]


@contextmanager
def _stopped(started: Procs) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--logs", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    root = args.checkout.resolve()
    for scenario in SCENARIOS:
        co = Checkout(root, f"out-{uuid.uuid4().hex[:8]}.", args.logs)
        co.run("topics", "create")
        started: Procs = []
        with _stopped(started):
            verdict = asyncio.run(scenario(co, started))
        print(f"{scenario.__name__}: {verdict}  (logs {args.logs}/{co.prefix}*.log)", flush=True)


if __name__ == "__main__":
    main()
