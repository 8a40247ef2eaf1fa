"""`tideline run trainer` and `tideline run registry` on the real broker: a request becomes a
champion any subscriber can load; worse models are kept out; rollback; restart; tampering;
drift runs wait for the new concept; failures are reported, not published."""

import asyncio
import itertools
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from river.preprocessing import StatImputer
from tideline import artifacts, kafka, learners, project, schemas, serde, training
from tideline.models import UPDATES, ModelClient
from tideline.settings import Settings

from ops import control, synthetic
from services.trainer.fitting import fit

from ...examples import example
from ...projects import EXAMPLES
from .running import (
    WEAK,
    Service,
    collect,
    environment,
    produce,
    produce_signed,
    publish_labelled,
    start_service,
)

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
CARDS_CONCEPT = synthetic.Concept(CARDS, seed=7)
NAME = CARDS.name
CANDIDATE = schemas.load("tideline.ModelCandidate")
DRIFT = schemas.load("tideline.DriftEvent")


async def _stack(settings: Settings, services: list[Service], rows: int, **env: str) -> datetime:
    """Topics, `rows` labelled events a second apart from two hours ago, a trainer and a registry."""
    await kafka.create_topics(settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    await publish_labelled(settings, CARDS, rows, start, synthetic.Concept(CARDS, seed=7))
    start_service("trainer", settings, services, **env)
    start_service("registry", settings, services)
    return start


async def _train(
    settings: Settings, params: dict[str, str] | None = None
) -> control.TrainingOutcome:
    return await control.train(
        settings, control.TrainingOrder(NAME, "test", params=params or {}), timeout_s=120
    )


def _decode(schema: schemas.Schema, data: bytes) -> dict[str, Any]:
    return serde.Decoder([schema]).decode_as(schema, data)


def _states(registry: Any) -> dict[int, tuple[str, list[str]]]:
    return {v["version"]: (v["state"], v["aliases"]) for v in registry.listing()}


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_request_to_champion_gate_rollback_and_restart(
    settings: Settings, running: list[Service]
) -> None:
    await _stack(settings, running, rows=2500)

    first = await _train(settings, WEAK)
    assert [s["state"] for s in first.statuses] == ["training", "published"]
    assert first.decision is not None
    assert first.decision["action"] == "promoted"
    assert first.decision["reason"] == "first model of its name, and it passes validation"

    second = await _train(settings)
    assert second.decision is not None
    assert (second.decision["action"], second.decision["model"]["version"]) == ("promoted", 2)
    assert second.decision["reason"].startswith("roc_auc ")
    assert "vs champion" in second.decision["reason"]

    # the champion, from Kafka alone, predicts exactly as the trainer's model did
    (raw,) = [
        _decode(CANDIDATE, m.value)
        for m in await collect(settings, "models.candidates", 2)
        if _decode(CANDIDATE, m.value)["trigger"] == second.decision["model"]["trigger"]
    ]
    trained = artifacts.load(raw["artifact"], raw["artifact_sha256"])
    champion = await ModelClient(settings).load(NAME)
    assert champion.number == 2
    holdout = await training.rebuild(settings, CARDS, champion.version["holdout"])
    x = learners.Columns.of(CARDS).frame(holdout.frame)
    assert learners.scores(champion.model, "classification", x) == learners.scores(
        trained, "classification", x
    )
    assert champion.version["metrics"] == raw["metrics"]
    assert champion.version["artifact"]["sha256"] == raw["artifact_sha256"]

    worse = await _train(settings, WEAK)
    assert worse.decision is not None
    assert worse.decision["action"] == "challenger"
    assert worse.decision["model"]["state"] == "rejected"
    assert "vs champion" in worse.decision["reason"]
    assert worse.decision["reason"].endswith("margin 0.005")
    assert (await ModelClient(settings).load(NAME)).number == 2

    rolled = _cli(settings, "models", "rollback", NAME, "--reason", "v2 misbehaves")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert f"{NAME} v1: rolled_back -> production" in rolled.stdout
    state = await ModelClient(settings).registry()
    assert _states(state) == {
        1: ("production", ["champion"]),
        2: ("staging", []),
        3: ("rejected", ["challenger"]),
    }
    listed = _cli(settings, "models", "list", NAME)
    assert listed.returncode == 0

    # killed and restarted, the registry knows what it knew: a rollback now goes back to v2
    registry = running[1]
    registry.stop(signal.SIGKILL)
    restarted = start_service("registry", settings, running)
    assert restarted.metric("tideline_registry_champion_version", model=NAME) == 1
    assert _cli(settings, "models", "list", NAME).stdout == listed.stdout
    updates = await control.command(settings, "rollback", NAME, None, "test")
    assert [(u["action"], u["model"]["version"]) for u in updates] == [
        ("replaced", 1),
        ("rolled_back", 2),
    ]
    refused = _cli(settings, "models", "promote", NAME, "9")
    assert refused.returncode == 1
    assert f"{NAME} has no version 9" in refused.stdout


async def test_reproducible_from_the_dataset_reference(
    settings: Settings, running: list[Service]
) -> None:
    start = await _stack(settings, running, rows=1500)
    split = await training.split(settings, CARDS, max_rows=3000, holdout=0.2)
    outcome = await _train(settings)
    assert outcome.decision is not None
    version = outcome.decision["model"]
    # more data arrives; the references still name exactly what the model saw
    await publish_labelled(
        settings, CARDS, 300, start + timedelta(hours=1), synthetic.Concept(CARDS, seed=7), seed=1
    )
    train = await training.rebuild(settings, CARDS, version["dataset"])
    holdout = await training.rebuild(settings, CARDS, version["holdout"])
    pd.testing.assert_frame_equal(train.frame, split[0].frame)
    pd.testing.assert_frame_equal(holdout.frame, split[1].frame)
    assert (len(train.frame), len(holdout.frame)) == (1200, 300)
    assert set(train.frame["event_id"]).isdisjoint(holdout.frame["event_id"])
    assert train.frame["event_time"].max() <= holdout.frame["event_time"].min()

    again = fit(CARDS, version["family"], version["params"], train, holdout, min_rows=100)
    assert again.metrics == version["metrics"]
    stored = await ModelClient(settings).load_version(version)
    x = learners.Columns.of(CARDS).frame(holdout.frame)
    assert learners.scores(stored.model, "classification", x) == again.holdout_scores


async def test_tampered_artifacts_are_refused(settings: Settings, running: list[Service]) -> None:
    await _stack(settings, running, rows=800)
    outcome = await _train(settings)
    assert outcome.decision is not None
    (message,) = await collect(settings, "models.candidates", 1)
    candidate = _decode(CANDIDATE, message.value)
    data = candidate["artifact"]
    tampered = candidate | {
        "candidate_id": uuid.uuid4().hex,
        "trigger": {"kind": "request", "id": "tampered"},
        "artifact": data[:-1] + bytes([data[-1] ^ 1]),
    }
    await produce(settings, "models.candidates", [serde.encode(CANDIDATE, tampered)], [b"x"])
    registry = running[1]
    registry.wait_for("tideline_registry_candidates_total", 2)
    assert registry.metric("tideline_registry_candidates_total", outcome="refused") == 1
    assert [v["version"] for v in (await ModelClient(settings).registry()).listing()] == [1]

    # intact, but trained on other feature definitions: registered, and rejected for it
    elsewhere = candidate | {
        "trigger": {"kind": "request", "id": "other-features"},
        "dataset": candidate["dataset"] | {"feature_version": "0123abcd"},
        "holdout": candidate["holdout"] | {"feature_version": "0123abcd"},
    }
    await produce(settings, "models.candidates", [serde.encode(CANDIDATE, elsewhere)], [b"x"])
    registry.wait_for("tideline_registry_candidates_total", 3)
    rejected = (await ModelClient(settings).registry()).version(NAME, 2)
    assert (rejected["state"], rejected["aliases"]) == ("rejected", [])
    (verdict,) = [
        u
        for u in (
            _decode(UPDATES.schema(), m.value) for m in await collect(settings, "models.updated", 4)
        )
        if u["action"] == "rejected"
    ]
    assert verdict["reason"] == (
        f"validation failed: dataset has feature version 0123abcd, the project {CARDS.features.version}"
    )

    # a chunk overwritten on the compacted topic: subscribers refuse the model
    ref = outcome.decision["model"]["artifact"]
    chunk = artifacts.chunks(data, settings)[1][0]
    piece = _decode(artifacts.TOPIC.schema(), chunk.value or b"")
    piece["data"] = bytes([piece["data"][0] ^ 1]) + piece["data"][1:]
    await produce(
        settings, "models.artifacts", [serde.encode(artifacts.TOPIC.schema(), piece)], [chunk.key]
    )
    with pytest.raises(artifacts.ArtifactError, match=f"{ref['sha256']} does not match"):
        await ModelClient(settings).load(NAME)


async def test_a_drift_burst_waits_for_the_new_concept_and_trains_once(
    settings: Settings, running: list[Service]
) -> None:
    start = await _stack(settings, running, rows=600)
    detected = start + timedelta(hours=1)
    drifts: list[dict[str, Any]] = [
        {
            "drift_id": f"drift-{i}",
            "model_name": NAME,
            "model_version": None,
            "kind": "concept",
            "detector": "ADWIN",
            "features": [],
            "severity": 1.0,
            "window_start": start,
            "window_end": detected,
            "detected_at": datetime.now(UTC),
            "details": {},
        }
        for i in range(3)
    ]
    await produce(settings, "monitor.drift", [serde.encode(DRIFT, d) for d in drifts], [b"x"] * 3)
    trainer = running[0]
    trainer.wait_for("tideline_trainer_labels_awaited", 1)  # waiting: nothing after detection yet
    await publish_labelled(settings, CARDS, 500, detected, synthetic.Concept(CARDS, seed=8), seed=1)
    trainer.wait_for("tideline_trainer_runs_total", 1, timeout_s=120)
    await asyncio.sleep(2)
    assert trainer.metric("tideline_trainer_runs_total", outcome="published") == 1
    assert trainer.metric("tideline_trainer_triggers_total", kind="drift", outcome="joined") == 2

    state = await ModelClient(settings).registry()
    (version,) = state.listing()
    assert version["trigger"] == {"kind": "drift", "id": "drift-0"}
    trained_on = await training.rebuild(settings, CARDS, version["dataset"])
    assert trained_on.frame["event_time"].min() >= detected  # the new concept only
    statuses = [s["state"] for s in await _statuses(settings)]
    assert "waiting" in statuses
    assert (statuses.count("joined"), statuses.count("published")) == (2, 1)


def _drift(drift_id: str, start: datetime, detected: datetime) -> bytes:
    return serde.encode(
        DRIFT,
        {
            "drift_id": drift_id,
            "model_name": NAME,
            "model_version": 1,
            "kind": "performance",
            "detector": "floor",
            "features": [],
            "severity": 0.3,
            "window_start": start,
            "window_end": detected,
            "detected_at": datetime.now(UTC),
            "details": {},
        },
    )


async def test_a_drift_after_the_data_cut_is_a_run_of_its_own_then_follow_ups_grow(
    settings: Settings, running: list[Service]
) -> None:
    start = await _stack(settings, running, rows=600)
    detected, new = start + timedelta(hours=1), synthetic.Concept(CARDS, seed=8)
    trainer = running[0]
    await produce(settings, "monitor.drift", [_drift("d0", start, detected)], [b"x"])
    trainer.wait_for("tideline_trainer_labels_awaited", 1)
    await publish_labelled(settings, CARDS, 450, detected, new, seed=1)
    trainer.wait_for("tideline_trainer_runs_total", 1, timeout_s=120, outcome="published")
    # the floor fires again on the same drift once that run has read its data: under a
    # wall-clock cooldown it joined the ended run; now it is a run of its own
    await produce(settings, "monitor.drift", [_drift("d1", start, detected)], [b"x"])
    trainer.wait_for("tideline_trainer_runs_total", 2, timeout_s=120, outcome="published")
    # 400 more labels (the drift run's 400, times 2 less 1): the first follow-up
    await publish_labelled(settings, CARDS, 450, detected + timedelta(seconds=450), new, seed=2)
    trainer.wait_for("tideline_trainer_runs_total", 3, timeout_s=120, outcome="published")
    assert trainer.metric("tideline_trainer_triggers_total", outcome="joined") == 0
    running[1].wait_for("tideline_registry_candidates_total", 3)

    state = await ModelClient(settings).registry()
    versions = sorted(state.listing(), key=lambda v: v["version"])
    kinds = [v["trigger"]["kind"] for v in versions]
    assert kinds == ["drift", "drift", "follow-up"]
    assert [v["trigger"]["id"] for v in versions[:2]] == ["d0", "d1"]
    first, _, follow_up = [await training.rebuild(settings, CARDS, v["dataset"]) for v in versions]
    assert follow_up.frame["event_time"].min() >= detected  # post-drift labels only...
    assert len(follow_up.frame) > 1.5 * len(first.frame)  # ...and more of them
    statuses = [s["state"] for s in await _statuses(settings)]
    assert "joined" not in statuses


async def _statuses(settings: Settings) -> list[dict[str, Any]]:
    schema = schemas.load("tideline.TrainerStatus")
    return [_decode(schema, m.value) for m in await collect(settings, "trainer.status", 1)]


@pytest.mark.parametrize("threads", [1, 2])
async def test_the_fit_runs_under_the_native_thread_limit(
    settings: Settings, running: list[Service], threads: int
) -> None:
    # the fit runs in a worker thread, where OpenMP does not inherit the main thread's limit
    await _stack(settings, running, rows=600, TIDELINE_NATIVE_THREADS=str(threads))
    outcome = await _train(settings)
    published = outcome.statuses[-1]
    assert published["state"] == "published"
    assert published["details"]["openmp_threads"] == str(threads)
    assert running[0].metric("tideline_trainer_fit_openmp_threads") == threads


async def test_a_run_without_enough_labels_fails_and_publishes_nothing(
    settings: Settings, running: list[Service]
) -> None:
    await _stack(settings, running, rows=60)
    outcome = await _train(settings)
    assert outcome.decision is None
    assert outcome.statuses[-1]["state"] == "failed"
    assert "at least 100" in outcome.statuses[-1]["message"]
    assert running[0].alive()
    assert await collect(settings, "models.candidates", 0, timeout_s=2) == []


async def test_a_time_window_trains_on_recent_events_only(
    settings: Settings, running: list[Service]
) -> None:
    start = await _stack(settings, running, rows=1500, TIDELINE_TRAINER_WINDOW="100m")
    asked = datetime.now(UTC)
    outcome = await _train(settings)
    answered = datetime.now(UTC)
    assert outcome.decision is not None
    version = outcome.decision["model"]
    train = await training.rebuild(settings, CARDS, version["dataset"])
    holdout = await training.rebuild(settings, CARDS, version["holdout"])
    assert train.frame["event_time"].min() >= asked - timedelta(minutes=100, seconds=5)

    # events a second apart run to start + 1,500 s; the window is the 100 minutes before
    # the run read them, some moment between asking and the answer (later on a busy
    # machine, so fewer events): about the last 300
    def inside(now: datetime) -> int:
        return sum(
            start + timedelta(seconds=i) >= now - timedelta(minutes=100) for i in range(1500)
        )

    assert inside(answered) - 5 <= len(train.frame) + len(holdout.frame) <= inside(asked) + 5
    assert holdout.frame["event_time"].max() < start + timedelta(seconds=1500)


async def test_without_a_trainer_a_request_says_so_in_time(settings: Settings) -> None:
    await kafka.create_topics(settings)
    with pytest.raises(control.NoAnswerError, match="is `tideline run trainer` running"):
        await control.train(settings, control.TrainingOrder(NAME, "test"), timeout_s=2)


@pytest.mark.parametrize("family", ["river_linear", "river_tree"])
async def test_the_online_line_learns_every_new_label_and_resumes_after_a_restart(
    settings: Settings, running: list[Service], family: str
) -> None:
    online = {
        "TIDELINE_TRAINER_ONLINE_FAMILY": family,
        "TIDELINE_TRAINER_ONLINE_LABELS": "300",
    }
    start = await _stack(settings, running, rows=600, **online)
    concept = synthetic.Concept(CARDS, seed=7)

    async def more(seed: int, service: Service, steps: int) -> None:
        at = start + timedelta(seconds=300 * (seed + 1))
        await publish_labelled(settings, CARDS, 300, at, concept, seed=seed)
        service.wait_for("tideline_trainer_runs_total", steps, timeout_s=120, outcome="published")

    await more(1, running[0], 1)  # the first step: a new model on the window
    await more(2, running[0], 2)  # then it learns on from there
    running[1].wait_for("tideline_registry_candidates_total", 2)
    running[0].stop(signal.SIGKILL)
    restarted = start_service("trainer", settings, running, **online)
    await more(3, restarted, 1)  # from the registry's newest step
    running[1].wait_for("tideline_registry_candidates_total", 3)

    state = await ModelClient(settings).registry()
    versions = sorted(state.listing(), key=lambda v: v["version"])
    assert [(v["family"], v["trigger"]["kind"]) for v in versions] == [(family, "online")] * 3
    assert versions[2]["trigger"]["id"].endswith("; continues v2")
    sets = [
        (
            await training.rebuild(settings, CARDS, v["dataset"]),
            await training.rebuild(settings, CARDS, v["holdout"]),
        )
        for v in versions
    ]
    for (_, holdout), (train, _) in itertools.pairwise(sets):  # each step starts where the
        assert set(holdout.frame["event_id"]) <= set(train.frame["event_id"])  # last stopped
    feature = learners.Columns.of(CARDS).numeric[0]
    learnt_so_far = 0
    for version, (train, _) in zip(versions, sets, strict=True):
        learnt_so_far += int(train.frame[feature].notna().sum())
        model = (await ModelClient(settings).load_version(version)).model
        imputer: Any = next(o for o in learners._objects(model) if type(o) is StatImputer)
        assert int(imputer.stats[feature].n) == learnt_so_far  # none twice
    # a step of the line that is champion replaces it unless it got worse: the linear
    # model gets better on each step of this concept; a tree's step may be worse on its
    # 60 holdout rows by more than the margin (test_gate has the rule itself)
    champion = state.champion(NAME)
    assert champion is not None
    assert champion["version"] == 3 if family == "river_linear" else champion["version"] in (2, 3)


async def test_an_online_version_that_cannot_be_resumed_starts_the_line_over(
    settings: Settings, running: list[Service]
) -> None:
    # signed as the registry signs, its holdout real rows, but its artifact not there
    await kafka.create_topics(settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    await publish_labelled(settings, CARDS, 600, start, CARDS_CONCEPT)
    update = example(UPDATES.schema().parsed)
    update["model"] |= {"model_name": NAME, "family": "river_linear", "version": 1}
    update["model"]["holdout"] = (await training.build(settings, CARDS, start)).ref
    update["model"]["artifact"] |= {"topic": artifacts.TOPIC.full_name(settings)}
    await produce_signed(settings, [(serde.encode(UPDATES.schema(), update), f"{NAME}:1".encode())])
    online = {
        "TIDELINE_TRAINER_ONLINE_FAMILY": "river_linear",
        "TIDELINE_TRAINER_ONLINE_LABELS": "300",
    }
    trainer = start_service("trainer", settings, running, **online)  # it starts: no crash loop
    await publish_labelled(settings, CARDS, 300, start + timedelta(seconds=600), CARDS_CONCEPT)
    trainer.wait_for("tideline_trainer_runs_total", 1, timeout_s=120, outcome="published")
    statuses = [s for s in await _statuses(settings) if s["trigger"]["kind"] == "online"]
    assert "continues" not in statuses[-1]["trigger"]["id"]  # a new line, not the forged one
