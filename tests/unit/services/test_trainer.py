"""The trainer without Kafka: coalescing, preemption, the schedule, and a fit's checks and
results."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesClassifier
from tideline import learners, project
from tideline.training import TrainingSet

from ops import synthetic
from services.trainer.coalesce import Coalescer
from services.trainer.fitting import TrainingError, fit
from services.trainer.online import Steps, check
from services.trainer.settings import TrainerSettings
from services.trainer.stream import Triggers
from services.trainer.triggers import FollowUps, Schedule, Trigger

from ...projects import EXAMPLES

CARDS = project.load(EXAMPLES[0])
T0 = datetime(2026, 11, 24, tzinfo=UTC)


def _trigger(kind: str, offset: int) -> Trigger:
    return Trigger(kind, f"{kind}-{offset}", source=(f"{kind}s", 0, offset))


def test_a_burst_of_drift_events_is_one_run() -> None:
    coalescer = Coalescer()
    assert coalescer.offer(_trigger("drift", 0)) == "start"
    assert coalescer.offer(_trigger("drift", 1)) == "joined"  # still waiting for labels
    assert coalescer.offer(_trigger("drift", 2)) == "joined"
    assert coalescer.commit_offsets() == {("drifts", 0): 0}  # nothing resolved yet
    assert coalescer.finish() is None
    assert coalescer.commit_offsets() == {("drifts", 0): 3}
    assert coalescer.offer(_trigger("drift", 3)) == "start"  # after a run: a run of its own


def test_a_trigger_after_the_data_cut_starts_the_next_run() -> None:
    coalescer = Coalescer()
    assert coalescer.offer(_trigger("drift", 0)) == "start"
    coalescer.cut()  # the run has read its labels: the next drift would not be in it
    assert coalescer.offer(_trigger("drift", 1)) == "queued"
    assert coalescer.offer(_trigger("drift", 2)) == "joined"  # into the queued run
    queued = coalescer.finish()
    assert queued is not None
    assert queued.id == "drift-1"
    assert coalescer.commit_offsets() == {("drifts", 0): 1}
    assert coalescer.finish() is None
    assert coalescer.commit_offsets() == {("drifts", 0): 3}


def test_a_drift_during_another_run_runs_next() -> None:
    coalescer = Coalescer()
    assert coalescer.offer(_trigger("request", 0)) == "start"
    assert coalescer.offer(_trigger("drift", 0)) == "queued"  # that run reads the old concept
    assert coalescer.offer(_trigger("drift", 1)) == "joined"
    assert coalescer.offer(_trigger("request", 1)) == "joined"  # not cut yet: it sees it
    coalescer.cut()
    assert coalescer.offer(_trigger("request", 2)) == "joined"  # into the queued drift run
    assert coalescer.commit_offsets() == {("requests", 0): 0, ("drifts", 0): 0}
    queued = coalescer.finish()
    assert queued is not None
    assert queued.id == "drift-0"
    assert coalescer.commit_offsets() == {("requests", 0): 2, ("drifts", 0): 0}
    assert coalescer.finish() is None
    assert coalescer.commit_offsets() == {("requests", 0): 3, ("drifts", 0): 2}


def test_a_drift_leads_the_queued_run() -> None:
    coalescer = Coalescer()
    assert coalescer.offer(_trigger("request", 0)) == "start"
    coalescer.cut()
    assert coalescer.offer(_trigger("request", 1)) == "queued"
    assert coalescer.offer(_trigger("drift", 0)) == "queued"
    queued = coalescer.finish()
    assert queued is not None
    assert queued.kind == "drift"  # so the next run waits for the new concept's labels
    assert coalescer.finish() is None
    assert coalescer.commit_offsets() == {("requests", 0): 2, ("drifts", 0): 1}


def test_follow_ups_come_at_multiples_of_the_drift_run_labels() -> None:
    drift = Trigger("drift", "d1", since=T0)
    follow_ups = FollowUps([4, 2])
    assert follow_ups.due(seen=10**6) is None  # no drift run yet
    follow_ups.start(drift, labels=1000, seen=5000)
    assert follow_ups.due(seen=5999) is None
    second = follow_ups.due(seen=6000)
    assert second is not None
    assert (second.kind, second.since) == ("follow-up", T0)
    assert "x2" in second.id
    assert follow_ups.due(seen=7999) is None
    fourth = follow_ups.due(seen=8000)
    assert fourth is not None
    assert "x4" in fourth.id
    assert follow_ups.due(seen=10**6) is None  # the series is over
    follow_ups.start(drift, labels=1000, seen=0)
    follow_ups.stop()  # a new drift
    assert follow_ups.due(seen=10**6) is None


def test_the_schedule_counts_time_and_labels() -> None:
    schedule = Schedule(timedelta(minutes=10), 1000, T0, seen=500)
    assert schedule.due(T0 + timedelta(minutes=5), labels_seen=1400) is None
    by_labels = schedule.due(T0 + timedelta(minutes=6), labels_seen=1500)
    assert by_labels is not None
    assert by_labels.kind == "schedule"
    assert "1000 new labels" in by_labels.id
    assert schedule.due(T0 + timedelta(minutes=15), labels_seen=1500) is None
    by_time = schedule.due(T0 + timedelta(minutes=16), labels_seen=1500)
    assert by_time is not None
    assert "every 0:10:00" in by_time.id
    assert Schedule(None, None, T0, 0).due(T0 + timedelta(days=9), 10**9) is None


def _sets(rows: int, concept_seed: int = 7) -> tuple[TrainingSet, TrainingSet]:
    events = synthetic.Generator(CARDS, entities=50, seed=3).stream(T0, rows, timedelta(seconds=5))
    pairs = synthetic.labelled_vectors(CARDS, events, synthetic.Concept(CARDS, concept_seed))
    frame = pd.DataFrame(
        [
            {
                "event_id": v["event_id"],
                "entity_id": v["entity_id"],
                "event_time": v["event_time"],
                **v["values"],
                "is_fraud": label["payload"]["is_fraud"],
            }
            for v, label in pairs
        ]
    )
    cut = int(len(frame) * 0.8)
    return TrainingSet(frame.iloc[:cut], {"rows": cut}), TrainingSet(frame.iloc[cut:], {})


@pytest.mark.parametrize("family", ["gradient_boosting", "linear", "river_linear"])
def test_every_family_learns_the_concept_and_records_references(family: str) -> None:
    train, holdout = _sets(3000)
    fitted = fit(CARDS, family, {}, train, holdout, min_rows=100)
    assert fitted.metrics["roc_auc"] > 0.8, fitted.metrics
    assert set(fitted.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert [r["name"] for r in fitted.reference] == CARDS.features.names
    channel = next(r for r in fitted.reference if r["name"] == "last_channel")
    assert channel["kind"] == "categorical"
    assert set(channel["categories"]) == {"app", "pos", "web"}
    assert fitted.prediction_reference["sample_size"] == len(holdout.frame)
    again = fit(CARDS, family, {}, train, holdout, min_rows=100)
    assert again.metrics == fitted.metrics  # the same rows give the same model


def test_runs_that_cannot_give_a_model_fail_with_the_reason() -> None:
    train, holdout = _sets(300)
    with pytest.raises(TrainingError, match="240 labelled rows to train on, at least 500"):
        fit(CARDS, "linear", {}, train, holdout, min_rows=500)
    one_class = TrainingSet(train.frame.assign(is_fraud=False), train.ref)
    with pytest.raises(TrainingError, match="a single class: False"):
        fit(CARDS, "linear", {}, one_class, holdout, min_rows=10)
    with pytest.raises(TrainingError, match="no labelled rows left for the holdout"):
        fit(CARDS, "linear", {}, train, TrainingSet(holdout.frame.iloc[:0], {}), min_rows=10)


def test_a_model_naming_undeclared_types_fails_its_run_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forest = learners.pipeline(ExtraTreesClassifier)
    monkeypatch.setitem(
        learners.FAMILIES,
        "forest",
        learners.Family(learners.SKLEARN, {"classification": forest}, {"n_estimators": "5"}),
    )
    train, holdout = _sets(300)
    with pytest.raises(TrainingError, match=r"names types no family declares: .*ExtraTrees"):
        fit(CARDS, "forest", {}, train, holdout, min_rows=10)


def test_a_step_of_the_online_line_is_a_run_of_its_own() -> None:
    coalescer = Coalescer()
    assert coalescer.offer(Trigger("online", "300 labels written")) == "start"
    assert coalescer.offer(_trigger("request", 0)) == "queued"  # a step trains no new model
    assert coalescer.offer(_trigger("drift", 0)) == "queued"
    queued = coalescer.finish()
    assert queued is not None
    assert queued.kind == "drift"
    assert coalescer.offer(Trigger("online", "600 labels written")) == "queued"


def test_online_steps_come_every_n_labels_written() -> None:
    steps = Steps(300, seen=1_000)
    assert steps.due(1_299) is None
    first = steps.due(1_300)
    assert first is not None
    assert (first.kind, first.id) == ("online", "1300 labels written")
    assert steps.due(1_599) is None
    assert steps.due(1_650) is not None


def test_a_model_that_cannot_learn_online_is_refused_as_the_online_family() -> None:
    with pytest.raises(learners.LearnerError, match="does not learn online"):
        check("linear")
    check("river_linear")


class _Trainer:
    """The trainer's side a Triggers drives: runs that end when told (a long online step)."""

    model_name = "cards"

    def __init__(self) -> None:
        self.own = TrainerSettings()
        self.publishing = False
        self.runs: list[str] = []
        self.statuses: list[tuple[str, str]] = []
        self.finish = asyncio.Event()

    async def run(self, trigger: Trigger, cut: Callable[[], Awaitable[None]]) -> bool:
        self.runs.append(trigger.kind)
        await cut()
        if trigger.kind == "online":
            await self.finish.wait()
        return True

    async def status(self, trigger: Trigger, state: str, message: str, **_: Any) -> None:
        self.statuses.append((trigger.kind, state))


class _Labels:
    async def seen(self) -> int:
        return 0


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # event-loop turns, not seconds
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached")


def _triggers(trainer: _Trainer) -> Triggers:
    schedule = Schedule(None, None, T0, 0)
    return Triggers(None, trainer, schedule, _Labels(), FollowUps([]), Steps(10, 0))  # type: ignore[arg-type]


@pytest.mark.parametrize("published", [False, True])
async def test_a_drift_preempts_an_online_step_that_has_not_published(published: bool) -> None:
    trainer = _Trainer()
    triggers = _triggers(trainer)
    work = asyncio.create_task(triggers.work())
    try:
        await triggers.offer(Trigger("online", "10 labels written"))
        await _until(lambda: trainer.runs == ["online"])
        trainer.publishing = published
        await triggers.offer(_trigger("drift", 0))
        if published:  # past stopping: the drift run comes once the step has ended
            assert ("online", "preempted") not in trainer.statuses
            trainer.finish.set()
        else:  # the step gives way at once, its labels left for the line's next step
            assert ("online", "preempted") in trainer.statuses
        await _until(lambda: trainer.runs == ["online", "drift"])
        assert ("drift", "queued") in trainer.statuses
    finally:
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
