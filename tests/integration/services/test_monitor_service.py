"""`tideline run monitor` on the real broker: labels hours of event time late join their
predictions across a restart, from the join's changelog."""

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tideline import catalog, kafka, project, serde
from tideline.durations import epoch_millis
from tideline.settings import Settings

from ...examples import oversized
from ...projects import EXAMPLES
from .running import Service, produce, start_service

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
COUNT = 200
LATE = timedelta(hours=2)  # of event time, between a prediction and its label


def _prediction(i: int, at: datetime) -> bytes:
    record = {
        "event_id": f"p-{i}",
        "entity_id": f"card-{i % 17}",
        "event_time": at,
        "model_name": CARDS.name,
        "model_version": 1,
        "shadow": False,
        "score": 0.8 if i % 3 else 0.1,
        "predicted": None,
        "feature_version": CARDS.features.version,
        "latency_ms": 2.0,
        "scored_at": datetime.now(UTC),
    }
    return serde.encode(catalog.topic("predictions").schema(), record)


def _label(i: int, at: datetime, value: bool) -> bytes:
    record = {"event_id": f"p-{i}", "label_time": at, "payload": {"is_fraud": value}}
    return serde.encode(CARDS.label_schema, record)


def _until(svc: Service, sample: str, equals: float, timeout_s: float = 60) -> float:
    """`sample` once it equals `equals` (a gauge set on the service's ticks)."""
    deadline = time.monotonic() + timeout_s
    while (found := svc.metric(sample, model=CARDS.name)) != equals:
        assert time.monotonic() < deadline, f"{sample} is {found}, not {equals}"
        assert svc.alive()
        time.sleep(0.2)  # between scrapes
    return found


async def test_labels_hours_late_join_across_a_restart(
    settings: Settings, running: list[Any]
) -> None:
    await kafka.create_topics(settings)
    joins = catalog.topic("monitor.joins")
    forged = [b"\x00garbage", *oversized("monitor.joins", joins.schema())]
    keys = [f"{CARDS.name}:forged-{i}".encode() for i in range(len(forged))]
    await produce(settings, "monitor.joins", forged, keys)
    env = {"TIDELINE_MONITOR_INTERVAL": "1s"}
    first = start_service("monitor", settings, running, **env)

    start = datetime.now(UTC) - LATE - timedelta(minutes=30)  # compressed: sent at once
    times = [start + timedelta(seconds=5 * i) for i in range(COUNT)]
    keys = [f"card-{i % 17}".encode() for i in range(COUNT)]
    stamps = [epoch_millis(t) for t in times]
    await produce(
        settings, "predictions", [_prediction(i, t) for i, t in enumerate(times)], keys, stamps
    )
    first.wait_for("tideline_monitor_pending_joins", COUNT, model=CARDS.name)
    assert first.metric("tideline_monitor_unreadable_total") == len(forged)
    # its offsets are committed as of its last tick: what it joins now comes from the changelog
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = start_service("monitor", settings, running, **env)
    values = [i % 5 == 0 for i in range(COUNT)]
    labels = [_label(i, t + LATE, v) for i, (t, v) in enumerate(zip(times, values, strict=True))]
    label_keys = [f"p-{i}".encode() for i in range(COUNT)]
    await produce(
        settings,
        "labels",
        labels,
        label_keys,
        [s + int(LATE.total_seconds() * 1000) for s in stamps],
    )
    assert second.wait_for("tideline_monitor_joined_total", COUNT, model=CARDS.name) == COUNT
    assert _until(second, "tideline_monitor_pending_joins", 0) == 0
    assert second.metric("tideline_monitor_unlabelled_total", model=CARDS.name) == 0
    coverage = COUNT / (COUNT + second.metric("tideline_monitor_unlabelled_total"))
    assert coverage == 1.0

    # the business corrects one label a day later: honoured, and no second join
    corrected = _label(7, times[7] + LATE + timedelta(days=1), not values[7])
    await produce(settings, "labels", [corrected], [b"p-7"])
    assert second.wait_for("tideline_monitor_label_corrections_total", 1, model=CARDS.name) == 1
    assert second.metric("tideline_monitor_joined_total", model=CARDS.name) == COUNT
    assert second.alive()
