"""Serving and the monitor killed (kill -9) mid-stream and restarted: every event is scored by
the champion, a repeat repeats its score exactly, every score equals the model's own on the
vector, and one drift is one drift event, however many times the monitor restarts on it."""

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tideline import catalog, project, schemas, serde
from tideline.settings import Settings

from ops import control, synthetic

from ..examples import example, newer_version, oversized
from ..integration.services.running import (
    Service,
    assert_scored,
    collect,
    produce,
    publish_labelled,
    start_service,
    wait_committed,
)
from ..integration.services.test_trainer_registry import _stack
from ..projects import EXAMPLES

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CARDS = project.load(EXAMPLES[0])
NAME = CARDS.name.encode()
CHUNK, STEP = 100, timedelta(milliseconds=500)  # 40 chunks: under the broker's hour ahead
# Verdicts in a few hundred labels; one interval a second, so commits follow closely.
MONITOR_ENV = {
    "TIDELINE_MONITOR_MIN_SAMPLES": "200",
    "TIDELINE_MONITOR_CHECK_LABELS": "50",
    "TIDELINE_MONITOR_PERFORMANCE_WINDOW": "300",
    "TIDELINE_MONITOR_INTERVAL": "1s",
}
DRIFT = catalog.topic("monitor.drift").schema()
JUDGED = ["features", "predictions", "labels"]


async def _chunk(settings: Settings, at: datetime, concept: synthetic.Concept, seed: int) -> Any:
    return await publish_labelled(settings, CARDS, CHUNK, at, concept, seed=seed, step=STEP)


async def _drifted(settings: Settings, monitor: Service) -> bool:
    """Once the monitor has judged all there is (or as soon as it publishes a drift event,
    so a kill then lands before it commits): has it published one?"""
    await wait_committed(settings, "serving", ["features"])
    judged = asyncio.create_task(wait_committed(settings, "monitor", JUDGED))
    while monitor.metric("tideline_monitor_drift_events_total") < 1:
        if (await asyncio.wait([judged], timeout=0.05))[0]:
            break
    if judged.done():
        judged.result()  # a timeout: the monitor stopped reading
    judged.cancel()
    return monitor.metric("tideline_monitor_drift_events_total") >= 1


def _unreadable(schema: schemas.Schema) -> list[bytes]:
    """A stranger's bytes, small and as large as the topic takes, a record a newer release
    would write, and an event on the model dated in the future."""
    future = example(schema.parsed) | {
        "model_name": CARDS.name,
        "detected_at": datetime.now(UTC) + timedelta(days=1),
    }
    return [
        b"\x00garbage",
        *oversized("monitor.drift", schema),
        newer_version(schema),
        serde.encode(schema, future),
    ]


FORGED = len(_unreadable(DRIFT))


def _restart(svc: Service, settings: Settings, running: list[Service], **env: str) -> Service:
    assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
    return start_service(svc.name, settings, running, **env)


async def test_serving_and_the_monitor_killed_mid_stream(
    settings: Settings, running: list[Service]
) -> None:
    await _stack(settings, running, rows=1500)
    order = control.TrainingOrder(CARDS.name, "test")
    first = await control.train(settings, order, timeout_s=120)
    assert first.decision is not None
    assert first.decision["action"] == "promoted"
    for svc in [s for s in running if s.name == "trainer"]:
        assert svc.stop() == 0  # no retrain: the drift stays on v1 for the monitor to judge
    serving = start_service("serving", settings, running, TIDELINE_SERVING_HTTP_PORT="0")
    monitor = start_service("monitor", settings, running, **MONITOR_ENV)
    # after v1 was trained (it is judged on later events only), a second apart
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    old, new = synthetic.Concept(CARDS, seed=7), synthetic.Concept(CARDS, seed=8)

    vectors: list[dict[str, Any]] = []
    for i in range(10):  # the old concept; serving killed after the 4th chunk is half scored
        vectors += await _chunk(settings, start + i * CHUNK * STEP, old, 100 + i)
        if i == 3:
            await asyncio.to_thread(
                serving.wait_for, "tideline_serving_predictions_total", 1500 + 3.5 * CHUNK
            )
            serving = _restart(serving, settings, running, TIDELINE_SERVING_HTTP_PORT="0")
    killed_after: int | None = None
    for i in range(10, 40):  # the new one: killed at its first drift event, restarted
        at = start + i * CHUNK * STEP
        vectors += await _chunk(settings, at, new, 100 + i)
        if killed_after is None and await _drifted(settings, monitor):
            # what the restarted monitor reads back besides its event: skipped, counted
            await produce(settings, "monitor.drift", _unreadable(DRIFT), [NAME] * FORGED)
            monitor, killed_after = _restart(monitor, settings, running, **MONITOR_ENV), i
    assert killed_after is not None, "v1 should drift within 3,000 labels"
    assert killed_after < 38, "the kill should land mid-drift, with more to come"

    await wait_committed(settings, "serving", ["features"])
    await wait_committed(settings, "monitor", JUDGED)

    # every event scored by v1; a repeat (the batch in flight at the kill) is the same score
    await assert_scored(settings, {v["event_id"]: v["values"] for v in vectors}, 1)

    # one drift, one event: the restarted monitor resumed its cooldown
    found = await collect(settings, "monitor.drift", 1 + FORGED)
    events = [
        serde.Decoder([DRIFT]).decode_as(DRIFT, m.value) for m in found[:1] + found[1 + FORGED :]
    ]
    assert len(found[1 : 1 + FORGED]) == FORGED
    assert monitor.metric("tideline_monitor_unreadable_total") == FORGED
    assert [e["model_version"] for e in events] == [1], [
        (e["kind"], e["detected_at"]) for e in events
    ]
    assert monitor.alive()
    assert serving.alive()
    assert monitor.metric("tideline_monitor_drift_events_total") == 0
    assert monitor.stop() == 0
    assert serving.stop() == 0
