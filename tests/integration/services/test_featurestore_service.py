"""`tideline run featurestore` on the real broker and Redis: known answers, no skew, SIGKILL."""

import asyncio
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tideline import catalog, kafka, project, schemas, serde, streams, windows
from tideline.durations import epoch_millis
from tideline.online_store import OnlineStore
from tideline.project import Project
from tideline.settings import Settings

from ops import launcher, synthetic

from ...projects import EXAMPLES
from .running import FORGED, Service, collect, produce, wait_committed

pytestmark = pytest.mark.integration


def _encode(definition: Project, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "values": [serde.encode(definition.event_schema, e) for e in events],
        "keys": [e["entity_id"].encode() for e in events],
        "timestamps_ms": [epoch_millis(e["event_time"]) for e in events],
    }


async def _read_events(settings: Settings, definition: Project) -> list[windows.Event]:
    """`events` as the stream saw it: each partition in offset order."""
    decoder = serde.Decoder([definition.event_schema])
    ranges = await streams.offset_ranges(settings, catalog.topic("events").full_name(settings))
    found = []
    async for message in streams.read_ranges(settings, ranges):
        record = decoder.decode(message.value)[1]
        found.append(
            windows.Event(
                record["entity_id"],
                epoch_millis(record["event_time"]),
                message.offset,
                record["payload"],
                record["event_id"],
            )
        )
    return found


async def _vectors(
    settings: Settings, definition: Project, expected_ids: set[str]
) -> dict[str, dict[str, Any]]:
    """Every event's values on `features`; a vector repeated after a restart must repeat exactly."""
    decoder = serde.Decoder([definition.feature_schema])
    found: dict[str, dict[str, Any]] = {}

    def complete(records: list[Any]) -> bool:
        ids = {decoder.decode(m.value)[1]["event_id"] for m in records if FORGED not in m.headers}
        return ids >= expected_ids

    for message in await collect(settings, "features", len(expected_ids), 120, complete):
        if FORGED in message.headers:
            continue
        vector = decoder.decode(message.value)[1]
        assert vector["feature_version"] == definition.features.version
        previous = found.setdefault(vector["event_id"], vector["values"])
        assert previous == vector["values"], f"{vector['event_id']} emitted twice, differently"
    return found


def _offline(definition: Project, events: Sequence[windows.Event]) -> dict[str, Any]:
    return {e.event_id: v for e, v in windows.replay(definition.features, events)}


def _latest(events: Sequence[windows.Event], offline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    newest: dict[str, windows.Event] = {}
    for e in events:
        if offline[e.event_id] is not None:
            seen = newest.get(e.entity)
            if seen is None or (seen.t, seen.offset) <= (e.t, e.offset):
                newest[e.entity] = e
    return {entity: offline[e.event_id] for entity, e in newest.items()}


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await kafka.create_topics(settings)
    return settings


def _featurestore(settings: Settings, path: Path, running: list[Service]) -> Service:
    svc = Service("featurestore", settings, path)
    svc.start()
    running.append(svc)
    return svc


async def test_known_answers_boundaries_and_lateness(
    topics: Settings, tmp_path: Path, running: list[Service]
) -> None:
    settings = topics
    definition_text = {
        "name": "shop",
        "event": {
            "name": "Sale",
            "entity_key": "shop",
            "fields": {"shop": "string", "amount": "double"},
        },
        "label": {"field": "returned", "type": "boolean", "task": "classification"},
        "features": {
            "allowed_lateness": "30s",
            "aggregations": [
                {"name": "n_10m", "kind": "count", "window": {"kind": "sliding", "size": "10m"}},
                {
                    "name": "sum_1h",
                    "kind": "sum",
                    "field": "amount",
                    "window": {"kind": "tumbling", "size": "1h"},
                },
                {
                    "name": "max_30m",
                    "kind": "max",
                    "field": "amount",
                    "window": {"kind": "hopping", "size": "30m", "step": "10m"},
                },
            ],
        },
    }
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(definition_text))
    definition = project.load(path)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    def sale(name: str, minutes: float, amount: float) -> dict[str, Any]:
        at = hour + timedelta(milliseconds=round(minutes * 60_000))
        return {
            "event_id": name,
            "entity_id": "s1",
            "event_time": at,
            "payload": {"shop": "s1", "amount": amount},
        }

    script = [
        # name, minute, amount -> expected (n_10m, sum_1h, max_30m)
        (sale("a", 5, 1.0), (1, 1.0, 1.0)),
        (sale("b", 15 - 1 / 60000, 2.0), (2, 3.0, 2.0)),  # 5 min + 10 min - 1 ms: a still inside
        (sale("c", 15, 4.0), (2, 7.0, 4.0)),  # a is exactly 10 min back: outside
        (sale("d", 14.75, 8.0), (2, 9.0, 8.0)),  # out of order, within 30 s: sees a, not b or c
        (sale("late", 14, 100.0), None),  # 60 s behind c: beyond lateness, to the DLQ
        (sale("e", 30, 16.0), (1, 31.0, 16.0)),  # hopping window [10, 40): b, c, d, e
        (sale("f", 60, 32.0), (1, 32.0, 32.0)),  # a new hour, a new tumbling bucket
    ]
    await produce(settings, "events", **_encode(definition, [s for s, _ in script]))
    svc = _featurestore(settings, path, running)

    letters = await collect(settings, "dead-letters", 1)
    vectors = await _vectors(settings, definition, {s["event_id"] for s, e in script if e})
    got = {k: (v["n_10m"], v["sum_1h"], v["max_30m"]) for k, v in vectors.items()}
    assert got == {s["event_id"]: expected for s, expected in script if expected}
    (letter,) = [
        serde.Decoder([schemas.load("tideline.DeadLetter")]).decode(m.value)[1] for m in letters
    ]
    assert (letter["stage"], letter["error_class"], letter["service"]) == (
        "late",
        "LateEvent",
        "featurestore",
    )
    assert letter["value"] == serde.encode(definition.event_schema, script[4][0])

    store = OnlineStore(settings, definition)
    (online, missing) = store.get(["s1", "nobody"])
    store.close()
    assert (online.event_id, online.values) == ("f", vectors["f"])
    assert (missing.event_time, missing.values) == (
        None,
        {"n_10m": 0, "sum_1h": 0.0, "max_30m": None},
    )
    assert svc.wait_for("tideline_featurestore_events_total", len(script)) == len(script)
    labels = {"service": "featurestore", "stage": "late", "reason": "LateEvent"}
    assert svc.metric("tideline_dead_letters_total", **labels) == 1
    assert svc.stop() == 0


def _stream(definition: Project, count: int, seed: int) -> list[dict[str, Any]]:
    generator = synthetic.Generator(definition, entities=40, seed=seed)
    lateness = definition.features.allowed_lateness
    start = datetime.now(UTC) - timedelta(minutes=30)
    return list(generator.stream(start, count, timedelta(milliseconds=400), jitter=lateness * 1.5))


async def _assert_no_skew(settings: Settings, definition: Project) -> int:
    """`features`, a recompute from `events` and Redis agree; returns the events read."""
    events = await _read_events(settings, definition)
    offline = _offline(definition, events)
    vectors = await _vectors(settings, definition, {k for k, v in offline.items() if v is not None})
    assert {k: v for k, v in offline.items() if v is not None} == vectors
    assert sum(v is None for v in offline.values()) > 0, "the stream should hold late events"
    _assert_online(settings, definition, _latest(events, offline))
    return len(events)


def _assert_online(settings: Settings, definition: Project, latest: dict[str, Any]) -> None:
    """Redis holds `latest` (entity to values) for each entity."""
    online = OnlineStore(settings, definition)
    try:
        assert {f.entity: f.values for f in online.get(sorted(latest))} == latest
    finally:
        online.close()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
async def test_no_skew_between_stream_offline_and_redis(
    topics: Settings, path: Path, running: list[Service]
) -> None:
    settings = topics
    definition = project.load(path)
    raw = _stream(definition, 3000, seed=7)
    await produce(settings, "events", **_encode(definition, raw))
    svc = _featurestore(settings, path, running)
    svc.wait_for("tideline_featurestore_events_total", len(raw))
    await _assert_no_skew(settings, definition)
    assert svc.stop() == 0


async def _paced(
    settings: Settings,
    definition: Project,
    raw: Sequence[dict[str, Any]],
    per_s: float,
    halfway: asyncio.Event | None = None,
) -> None:
    """`raw` at `per_s`; if `halfway` is given, its second half waits until it is set."""
    step = 50
    for i in range(0, len(raw), step):
        if halfway is not None and i >= len(raw) // 2:
            await halfway.wait()
        await produce(settings, "events", **_encode(definition, raw[i : i + step]))
        await asyncio.sleep(step / per_s)


async def _mid_stream(
    settings: Settings, running: list[Service], seed: int, halfway: asyncio.Event | None = None
) -> tuple[Project, int, "asyncio.Task[None]", Service]:
    """Events flowing in at 800/s, and a worker a fifth of the way through them."""
    definition = project.load(EXAMPLES[0])
    raw = _stream(definition, 4000, seed=seed)
    producing = asyncio.create_task(_paced(settings, definition, raw, 800, halfway))
    first = _featurestore(settings, EXAMPLES[0], running)
    await asyncio.to_thread(first.wait_for, "tideline_featurestore_events_total", len(raw) / 5)
    return definition, len(raw), producing, first


async def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    topics: Settings, running: list[Service]
) -> None:
    settings = topics
    halfway = asyncio.Event()  # on a busy machine the stream could end before the kill
    definition, count, producing, first = await _mid_stream(settings, running, 11, halfway)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not producing.done(), "the kill should land mid-stream"
    halfway.set()
    second = _featurestore(settings, EXAMPLES[0], running)
    await producing
    assert await _assert_no_skew(settings, definition) == count
    assert second.stop() == 0


async def test_a_second_worker_takes_over_partitions_with_their_state(
    topics: Settings, running: list[Service]
) -> None:
    settings = topics
    halfway = asyncio.Event()  # on a slow machine the stream could end before the second joins
    definition, count, producing, first = await _mid_stream(settings, running, 13, halfway)
    second = _featurestore(settings, EXAMPLES[0], running)  # the group rebalances mid-stream
    await asyncio.to_thread(second.wait_for, "tideline_last_poll_timestamp_seconds", 1)
    halfway.set()
    await producing
    assert await _assert_no_skew(settings, definition) == count
    assert first.metric("tideline_featurestore_events_total") < count
    assert second.metric("tideline_featurestore_events_total") > 0, "the second took no share"
    assert first.stop() == 0
    assert second.stop() == 0


async def test_an_entity_s_state_stays_under_the_changelog_limit(
    topics: Settings, running: list[Service]
) -> None:
    """Two 900 KB events for one card: the second would take its state over the changelog's
    limit and is refused; the service carries on, restores the state, and a recompute agrees."""
    settings = topics
    definition = project.load(EXAMPLES[0])
    raw = _stream(definition, 600, seed=23)
    huge = [
        dict(e, payload=dict(e["payload"])) for e in raw if e["entity_id"] == raw[0]["entity_id"]
    ]
    for event in huge[:2]:
        event["payload"]["merchant_id"] = "m" * 900_000
    stream = huge + [e for e in raw if e["entity_id"] != raw[0]["entity_id"]]
    await produce(settings, "events", **_encode(definition, stream))
    first = _featurestore(settings, EXAMPLES[0], running)
    first.wait_for("tideline_featurestore_events_total", len(stream))
    assert first.wait_for("tideline_dead_letters_total", 1, stage="size") == 1
    # committed once its writes, the state's included, are acknowledged: then killed
    await wait_committed(settings, "featurestore", ["events"])
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    states = catalog.topic("featurestore.state").bind(settings)
    ranges = await streams.offset_ranges(settings, states.name)
    sizes = [len(m.value) async for m in streams.read_ranges(settings, ranges)]
    assert max(sizes) <= catalog.BROKER_MAX_MESSAGE_BYTES
    assert max(sizes) > 800_000  # the large card's state is there, with one large row
    second = _featurestore(settings, EXAMPLES[0], running)  # restores it
    again = dict(huge[-1], event_id=f"{huge[-1]['event_id']}-after")  # one more, after it
    await produce(settings, "events", **_encode(definition, [again]))
    second.wait_for("tideline_featurestore_events_total", 1)
    assert await _assert_no_skew(settings, definition) == len(stream) + 1
    assert second.stop() == 0


async def test_an_unreadable_state_record_is_skipped_at_restore(
    topics: Settings, running: list[Service]
) -> None:
    """The changelog is compacted and kept: a foreign record there must not stop every start."""
    settings = topics
    definition = project.load(EXAMPLES[0])
    garbage = [b"\x00\xffgarbage", b"", b"\xc3\x01" + b"\x00" * 8]
    await produce(settings, "featurestore.state", garbage, keys=[b"card_id-1"] * 3)
    raw = _stream(definition, 300, seed=37)
    await produce(settings, "events", **_encode(definition, raw))
    svc = _featurestore(settings, EXAMPLES[0], running)
    svc.wait_for("tideline_featurestore_events_total", len(raw))
    assert svc.metric("tideline_featurestore_state_unreadable_total") == len(garbage)
    assert await _assert_no_skew(settings, definition) == len(raw)
    assert svc.alive()
    assert svc.stop() == 0


def _describe(settings: Settings, path: Path) -> str:
    """What `tideline features describe` prints for the project at `path`."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "features", "describe"],
        env=launcher.environment(settings, path) | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def _redefined(tmp_path: Path, change: str) -> Path:
    """The cards project with one aggregation added over a field no other aggregates (the
    rows held gain a column) or with `last_channel` removed (they lose one)."""
    raw = yaml.safe_load(EXAMPLES[0].read_text())
    aggregations = raw["features"]["aggregations"]
    if change == "added":
        window = {"kind": "sliding", "size": "1h"}
        aggregations.append(
            {"name": "categories_1h", "kind": "distinct", "field": "category", "window": window}
        )
    else:
        raw["features"]["aggregations"] = [a for a in aggregations if a["name"] != "last_channel"]
    path = tmp_path / f"{change}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("change", ["added", "removed"])
async def test_a_changed_definition_rebuilds_the_state_and_leaves_nothing_stale(
    topics: Settings, tmp_path: Path, running: list[Service], change: str
) -> None:
    settings = topics
    old = project.load(EXAMPLES[0])
    raw = _stream(old, 1600, seed=43)
    half = len(raw) // 2
    await produce(settings, "events", **_encode(old, raw[:half]))
    first = _featurestore(settings, EXAMPLES[0], running)
    first.wait_for("tideline_featurestore_events_total", half)
    assert first.stop() == 0

    path = _redefined(tmp_path, change)
    new = project.load(path)
    assert new.features.version != old.features.version
    described = _describe(settings, path)
    assert f"feature set {new.features.version}" in described
    (line,) = [row for row in described.splitlines() if old.features.version in row]
    what = "added: distinct of category over sliding 1h" if change == "added" else "removed"
    assert what in line
    assert "rebuilds it from `events`" in described
    second = _featurestore(settings, path, running)
    assert second.wait_for("tideline_featurestore_state_rebuilds_total", 1) == 1
    await produce(settings, "events", **_encode(new, raw[half:]))
    second.wait_for("tideline_featurestore_events_total", len(raw) - half)
    assert second.metric("tideline_featurestore_state_rebuild_remaining_events") == 0

    # every vector since the change, and every entity in Redis, is the recompute's
    events = await _read_events(settings, new)
    offline = _offline(new, events)
    later = {e["event_id"] for e in raw[half:]}
    expected = {k: v for k, v in offline.items() if v is not None and k in later}
    mine = serde.Decoder([new.feature_schema])

    def complete(records: list[Any]) -> bool:
        return {mine.decode(m.value)[1]["event_id"] for m in records if _of(m, new)} >= set(
            expected
        )

    vectors = {
        record["event_id"]: record["values"]
        for m in await collect(settings, "features", len(expected), 120, complete)
        if _of(m, new) and (record := mine.decode(m.value)[1])
    }
    assert {k: vectors[k] for k in expected} == expected
    latest = _latest(events, offline)
    _assert_online(settings, new, latest)
    if change == "removed":
        assert all("last_channel" not in values for values in latest.values())
    assert second.stop() == 0

    third = _featurestore(settings, path, running)  # the state is of this definition now
    third.wait_polling()
    assert third.metric("tideline_featurestore_state_rebuilds_total") == 0
    assert third.stop() == 0


def _of(message: Any, definition: Project) -> bool:
    return bool(message.value[2:10] == definition.feature_schema.fingerprint)
