"""The monitor without Kafka: drift statistics with known answers, the detectors on streams
with and without drift, the join, and one drift making exactly one event."""

import math
import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats
from tideline import catalog, distributions, project, serde
from tideline.settings import Settings

from services.monitor import drift
from services.monitor.detectors import Alarm, ErrorStream
from services.monitor.join import Joiner
from services.monitor.monitor import Monitor, _shifted
from services.monitor.settings import MonitorSettings

from ...projects import EXAMPLES

CARDS = project.load(EXAMPLES[0])


def test_psi_known_answer() -> None:
    # actual shares .1 .2 .3 .4 against four equal bins, worked by hand:
    # -.15 ln(.4) - .05 ln(.8) + .05 ln(1.2) + .15 ln(1.6)
    assert drift.psi([0.25] * 4, [10, 20, 30, 40]) == pytest.approx(0.228218, abs=1e-6)
    assert drift.psi([0.25] * 4, [25, 25, 25, 25]) == 0.0
    assert math.isnan(drift.psi([0.5, 0.5], [0, 0]))


def test_psi_of_an_empty_bin_is_finite() -> None:
    # the empty bin is floored at EPSILON, not left at zero (which would make PSI infinite)
    assert math.isfinite(drift.psi([1.0, 0.0], [0, 100]))
    assert drift.psi([1.0, 0.0], [0, 100]) > 5  # everything moved: far above 0.25


def test_ks_distance_known_answer_against_the_uniform_cdf() -> None:
    # quantiles 0 and 1: the CDF of U(0, 1). By hand, D = max(1 - .7, 2/3 - .4, 1/3 - .1) = .3
    assert drift.ks([0.0, 1.0], [0.1, 0.4, 0.7]) == pytest.approx(0.3)


def test_homogeneity_known_answer() -> None:
    # [[50, 50], [30, 70]] expects [[40, 60], [40, 60]]: 2 * (10²/40 + 10²/60) = 25/3
    statistic, p_value = drift.homogeneity([50, 50], [30, 70])
    assert statistic == pytest.approx(25 / 3)
    assert p_value == pytest.approx(stats.chi2.sf(25 / 3, 1))


def test_bins_expecting_too_few_values_are_pooled_before_the_test() -> None:
    # the last two bins expect under 5 live values each: one bin together, and on it no shift
    pooled = drift.homogeneity([500, 500, 20, 10], [50, 50, 0, 3])
    assert pooled == pytest.approx(drift.homogeneity([500, 500, 30], [50, 50, 3]))
    assert drift.homogeneity([1000, 0], [10, 0]) == (0.0, 1.0)  # one bin: nothing to tell


def _normal(rng: np.random.Generator, n: int, shift: float) -> list[Any]:
    return list(rng.normal(shift, 1.0, n))


def _lognormal(rng: np.random.Generator, n: int, shift: float) -> list[Any]:
    return list(rng.lognormal(shift, 1.0, n))


def _poisson(rng: np.random.Generator, n: int, shift: float) -> list[Any]:
    return [float(v) for v in rng.poisson(3.0 * (1 + shift), n)]


CATEGORIES = [f"c{i}" for i in range(30)]  # more than the reference keeps: OTHER pools the rest


def _categorical(rng: np.random.Generator, n: int, shift: float) -> list[Any]:
    weights = 1 / np.arange(1, len(CATEGORIES) + 1) ** (1 + shift)  # Zipf, steeper when shifted
    return list(rng.choice(CATEGORIES, n, p=weights / weights.sum()))


SHAPES = {"normal": _normal, "lognormal": _lognormal, "poisson": _poisson}
SHAPES["categorical"] = _categorical
SEEDS, ALPHA = 200, 0.05
# What 200 windows can show of a rate of ALPHA: three standard errors above it.
ALLOWED = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEEDS)


@pytest.mark.parametrize("shape", SHAPES)
def test_drift_holds_its_false_alarm_rate_on_stationary_data_of_every_shape(shape: str) -> None:
    """The reference from 5,000 training rows, a live window of 1,000, 200 seeds: a
    stationary window is judged shifted (p < ALPHA) at most at ALPHA's rate, and so is
    the monitor's verdict; a small shift is found by the test and a large one by the
    verdict, in nearly every seed."""
    draw = SHAPES[shape]
    build = distributions.categorical if shape == "categorical" else distributions.numeric
    found: dict[str, list[bool]] = {"test": [], "verdict": [], "small": [], "large": []}
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        reference = build("x", draw(rng, 5000, 0.0))
        same = drift.compare(reference, draw(rng, 1000, 0.0))
        found["test"].append(same["p_value"] < ALPHA)
        found["verdict"].append(_shifted(same, 0.25, ALPHA))
        found["small"].append(drift.compare(reference, draw(rng, 1000, 0.2))["p_value"] < ALPHA)
        found["large"].append(_shifted(drift.compare(reference, draw(rng, 1000, 1.0)), 0.25, ALPHA))
    rates = {name: sum(hits) / SEEDS for name, hits in found.items()}
    assert rates["test"] <= ALLOWED, rates
    assert rates["verdict"] <= ALLOWED, rates
    assert rates["small"] >= 0.95, rates
    assert rates["large"] == 1.0, rates


def test_a_category_training_never_saw_is_drift() -> None:
    reference = distributions.categorical("channel", ["pos"] * 50 + ["web"] * 50)
    same = drift.compare(reference, ["pos", "web"] * 500)
    new = drift.compare(reference, ["pos", "web", "fax", "fax"] * 250)
    assert same["psi"] == pytest.approx(0.0, abs=1e-6)
    assert same["p_value"] > 0.99
    assert new["psi"] > 0.25
    assert new["p_value"] < 1e-6


def _errors(rate: float, count: int, rng: random.Random) -> list[float]:
    return [float(rng.random() < rate) for _ in range(count)]


def test_detectors_stay_quiet_on_a_steady_error_rate() -> None:
    for seed in range(5):
        detectors = ErrorStream(0.002, 50, warmup=200)
        assert not any(detectors.update(e) for e in _errors(0.05, 20_000, random.Random(seed)))


def test_detectors_catch_an_abrupt_rise_within_a_few_hundred_errors() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        detectors = ErrorStream(0.002, 50, warmup=200)
        assert not any(detectors.update(e) for e in _errors(0.05, 3000, rng))
        found = [i for i, e in enumerate(_errors(0.45, 1000, rng)) if detectors.update(e)]
        assert found
        assert found[0] < 300


def test_a_falling_error_rate_is_not_drift() -> None:
    rng = random.Random(3)
    detectors = ErrorStream(0.002, 50, warmup=200)
    assert not any(detectors.update(e) for e in _errors(0.4, 3000, rng) + _errors(0.05, 3000, rng))


def test_alarm_confirms_and_then_needs_clearing() -> None:
    alarm = Alarm(confirm=3)
    assert [alarm.check(h) for h in (True, True, False, True, True)] == [False] * 5
    assert alarm.check(True)  # three in a row
    assert not alarm.check(True, cleared=False)  # still high: no second event
    assert not alarm.check(False, cleared=True)  # cleared: armed again...
    assert [alarm.check(True) for _ in range(3)] == [False, False, True]  # ...and confirms anew


def _prediction(event_id: str, event_time: int, version: int = 1) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "model_version": version,
        "shadow": version != 1,
        "score": 0.9,
        "event_time": event_time,
        "latency_ms": 1.0,
    }


def test_join_in_either_order_counts_each_version_once() -> None:
    joiner = Joiner(horizon_ms=60_000)
    champion = _prediction("e1", 1000)
    assert joiner.prediction(champion) is None
    (joined,) = joiner.label("e1", True, 4000)
    assert joined.label is True
    assert joined.label_delay_ms == 3000
    assert joiner.prediction(_prediction("e1", 1000, 2)) is not None  # label first, then it
    assert joiner.prediction(champion) is None  # written twice: counted once
    joiner.prediction(_prediction("e2", 2000))
    joiner.prediction(_prediction("e2", 2000))  # a repeat waits once
    joiner.label("e3", False, 5000)
    assert joiner.pending == 2
    joiner.prediction(_prediction("e4", 70_000))  # event time moves past the horizon
    joiner.expire()
    assert (joiner.unlabelled, joiner.orphans, joiner.pending, joiner.joined) == (1, 1, 1, 2)


def test_the_horizon_is_event_time_not_the_clock() -> None:
    """Labels weeks of event time late still join, however fast the stream is replayed."""
    week = 7 * 86_400_000
    joiner = Joiner(horizon_ms=4 * week)
    for i in range(100):
        joiner.prediction(_prediction(f"e{i}", i * 60_000))
    joiner.expire()
    joined = [
        j for i in range(100) for j in joiner.label(f"e{i}", i % 2 == 0, i * 60_000 + 3 * week)
    ]
    joiner.expire()
    assert len(joined) == 100
    assert {j.label_delay_ms for j in joined} == {3 * week}
    assert (joiner.unlabelled, joiner.pending) == (0, 0)


def test_the_join_restored_from_its_changes_goes_on_as_before() -> None:
    """What `changes` gives the changelog, `restore` takes back: a restarted monitor joins
    the labels of predictions it saw before; what joined within an interval is never
    written, what was written and then joined or left becomes a tombstone."""
    first = Joiner(horizon_ms=10 * 3_600_000)
    for i in range(10):
        first.prediction(_prediction(f"e{i}", i * 1000))
    first.label("e0", True, 5000)  # joined within the interval: nothing to keep
    first.label("orphan", True, 6000)  # no prediction for it yet
    log = dict(first.changes())
    assert set(log) == {f"e{i}" for i in range(1, 10)} | {"orphan"}
    assert first.changes() == []  # each change once
    first.label("e9", False, 7000)
    assert first.changes() == [("e9", None)]  # written, then joined: a tombstone
    del log["e9"]
    schema = catalog.topic("monitor.joins").schema()
    for record in log.values():
        assert record is not None
        assert serde.Decoder([schema]).decode_as(schema, serde.encode(schema, record))

    second = Joiner(horizon_ms=10 * 3_600_000)
    second.restore(r for r in log.values() if r is not None)
    assert second.pending == first.pending == 9  # e1 to e8 and the orphan
    assert second.watermark <= first.watermark  # from what it holds: it lets go no sooner
    late = [j for i in range(1, 9) for j in second.label(f"e{i}", True, 2 * 3_600_000)]
    assert [j.prediction["event_id"] for j in late] == [f"e{i}" for i in range(1, 9)]
    assert second.pending == 1  # the orphan, until its horizon passes
    second.prediction(_prediction("later", 12 * 3_600_000))
    second.expire()
    gone = {event_id for event_id, record in second.changes() if record is None}
    assert gone == {f"e{i}" for i in range(1, 9)} | {"orphan"}
    assert second.orphans == 1


# -- the monitor as a whole, on a generated stream --

SETTINGS = MonitorSettings(min_samples=300, interval=timedelta(seconds=1), confirm=2)


def _version(number: int, accuracy: float = 0.95) -> dict[str, Any]:
    rng = random.Random(number)
    return {
        "version": number,
        "aliases": ["champion"],
        "created_at": 0,
        "metrics": {"accuracy": accuracy},
        "reference": [distributions.numeric("amount", [rng.uniform(0, 100) for _ in range(2000)])],
        "prediction_reference": distributions.numeric("score", [rng.random() for _ in range(2000)]),
    }


def _run(
    monitor: Monitor,
    version: int,
    error_rate: float,
    count: int,
    start: int,
    tick_every: int = 100,
) -> int:
    """`count` scored and labelled events with that error rate, a tick every `tick_every`."""
    rng = random.Random(start)
    for i in range(start, start + count):
        label = rng.random() < 0.5
        wrong = rng.random() < error_rate
        score = rng.uniform(0.5, 1) if label != wrong else rng.uniform(0, 0.5)
        monitor.vector({"values": {"amount": rng.uniform(0, 100)}}, i * 1000, now=i / 100)
        prediction = {
            "event_id": f"e{i}",
            "model_version": version,
            "shadow": False,
            "event_time": i * 1000,
            "score": score,
            "latency_ms": 5.0,
        }
        monitor.prediction(prediction, now=i / 100)
        monitor.label(
            {"event_id": f"e{i}", "label_time": i * 1000 + 3000, "payload": {"is_fraud": label}},
            now=i / 100,
        )
        if i % tick_every == 0:
            monitor.tick(now=i / 100, now_ms=i * 1000)
    return start + count


def test_no_drift_no_event() -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(1)])
    _run(monitor, 1, error_rate=0.05, count=20_000, start=0)
    assert monitor.drain(now_ms=0) == []
    (metrics,) = monitor.tick(now=1000, now_ms=1000)
    assert metrics["performance"]["accuracy"] == pytest.approx(0.95, abs=0.03)
    assert metrics["features"][0]["psi"] < 0.1


def test_one_drift_is_one_event_until_a_new_champion_or_the_cooldown() -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(1)])
    t = _run(monitor, 1, error_rate=0.05, count=3000, start=0)
    onset = t
    t = _run(monitor, 1, error_rate=0.5, count=1000, start=t)  # the floor is broken too
    (event,) = monitor.drain(now_ms=123)
    assert event["kind"] == "concept"
    assert event["model_version"] == 1
    assert event["detected_at"] == 123
    assert onset * 1000 < event["window_end"] < (onset + 300) * 1000  # within 300 labels
    monitor.set_versions([_version(2)])
    t = _run(monitor, 2, error_rate=0.05, count=3000, start=t)
    assert monitor.drain(now_ms=0) == []


def test_verdicts_do_not_depend_on_how_often_metrics_are_published() -> None:
    # the event rate only changes how many events fall between two wall-clock ticks
    found = []
    for tick_every in (37, 100, 5_000):
        monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
        monitor.set_versions([_version(1)])
        t = _run(monitor, 1, error_rate=0.05, count=3000, start=0, tick_every=tick_every)
        _run(monitor, 1, error_rate=0.5, count=3000, start=t, tick_every=tick_every)
        found.append([(e["kind"], e["window_end"]) for e in monitor.drain(now_ms=0)])
    assert found[0][0][0] == "concept"
    assert found[0] == found[1] == found[2]  # the same labelled events at every rate


QUICK = SETTINGS.model_copy(update={"cooldown_labels": 1_500})


def _drifted() -> tuple[Monitor, int, dict[str, Any]]:
    """A monitor whose champion v1 broke: it, the next event's number, and its drift event."""
    monitor = Monitor(CARDS, "cards", QUICK, now_ms=0)
    monitor.set_versions([_version(1)])
    t = _run(monitor, 1, error_rate=0.05, count=3000, start=0)
    t = _run(monitor, 1, error_rate=0.5, count=1000, start=t)
    (event,) = monitor.drain(now_ms=0)
    return monitor, t, event


def test_a_champion_left_broken_fires_again_after_the_cooldown_in_labels() -> None:
    monitor, t, first = _drifted()
    _run(monitor, 1, error_rate=0.5, count=2000, start=t)  # no new champion came
    (second,) = monitor.drain(now_ms=0)
    labels_between = (second["window_end"] - first["window_end"]) // 1000
    assert 1_500 <= labels_between < 1_500 + QUICK.check_labels * QUICK.confirm
    assert second["kind"] == "performance"  # the floor, still broken


def test_a_restart_resumes_the_cooldown_of_the_last_drift_event() -> None:
    _, t, event = _drifted()
    # restarted 400 labels after its event, v1 still the champion and still broken
    after = Monitor(CARDS, "cards", QUICK, now_ms=0)
    after.set_versions([_version(1)])
    assert after.resume(event, labels_since=400, age_s=60, now=t / 100)
    t = _run(after, 1, error_rate=0.5, count=1_000, start=t)
    assert after.drain(now_ms=0) == []  # 1,400 labels since the event: the same drift
    _run(after, 1, error_rate=0.5, count=1_000, start=t)
    (again,) = after.drain(now_ms=0)  # past the cooldown, broken still: once more
    assert again["model_version"] == 1
    # an event on another version, or one whose cooldown has passed, leaves it armed
    other = Monitor(CARDS, "cards", QUICK, now_ms=0)
    other.set_versions([_version(2)])
    assert not other.resume(event, labels_since=0, age_s=0, now=0)
    assert not after.resume(event, labels_since=1_500, age_s=60, now=0)


def test_a_corrected_label_revises_live_performance() -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(1)])
    _run(monitor, 1, error_rate=0.0, count=1000, start=0)
    (metrics,) = monitor.tick(now=100, now_ms=0)
    assert metrics["performance"]["accuracy"] == 1.0
    joined = {e: label for label, _, _, e in monitor.performance[1]}
    wrong = [e for e in joined][:250]  # the business finds these labels were wrong
    for event_id in wrong:
        label = {
            "event_id": event_id,
            "label_time": 0,
            "payload": {"is_fraud": not joined[event_id]},
        }
        assert monitor.label(label, now=10)
        assert not monitor.label(label, now=10)  # the same correction again changes nothing
    (metrics,) = monitor.tick(now=200, now_ms=0)
    assert metrics["performance"]["accuracy"] == pytest.approx(0.75)
    assert not monitor.label(
        {"event_id": "e-none", "label_time": 0, "payload": {"is_fraud": True}}, now=10
    )


def test_a_version_is_not_judged_on_its_own_training_data() -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(1) | {"created_at": 3_000_000}])  # trained at event 3000
    _run(monitor, 1, error_rate=0.0, count=3000, start=0)  # in-sample: no errors at all
    _run(monitor, 1, error_rate=0.05, count=3000, start=3000)  # what it really does
    assert monitor.drain(now_ms=0) == []  # no rise: the first 3000 were never counted
    (metrics,) = monitor.tick(now=100, now_ms=0)
    assert metrics["performance"]["accuracy"] == pytest.approx(0.95, abs=0.03)


def test_a_champion_that_stays_below_its_holdout_is_performance_drift() -> None:
    # what the detectors miss: a new champion that is bad from its first prediction on
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(2, accuracy=0.95)])
    _run(monitor, 2, error_rate=0.3, count=3000, start=0)
    event, *later = monitor.drain(now_ms=0)
    assert all(e["kind"] == "performance" for e in later)  # again each cooldown, while bad
    assert (event["kind"], event["detector"]) == ("performance", "floor")
    assert float(event["details"]["live_accuracy"]) == pytest.approx(0.7, abs=0.05)


def test_metrics_carry_what_a_console_draws_and_fit_their_schema() -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_version(1)])
    _run(monitor, 1, error_rate=0.2, count=1150, start=1)  # the last tick was at event 1100
    (metrics,) = monitor.tick(now=1000, now_ms=1_151_000)
    topic = catalog.topic("monitor.metrics").bind(Settings())
    decoded = topic.decode(topic.encode(metrics))
    assert [b["labelled"] for b in decoded["by_event_time"]] == [39, 11]
    (amount,) = metrics["features"]
    assert len(amount["proportions"]) == 10
    assert sum(amount["proportions"]) == pytest.approx(1)
    assert metrics["psi_threshold"] == SETTINGS.psi_threshold
    assert metrics["performance_floor"] == pytest.approx(0.95 - SETTINGS.floor_margin)
    # the interval's 50 labels by their event time (1101 to 1150 s): minutes 18 and 19
    first, second = metrics["by_event_time"]
    assert (first["start"], first["width_ms"], first["labelled"]) == (1_080_000, 60_000, 39)
    assert (second["start"], second["labelled"]) == (1_140_000, 11)
    assert 0 < first["errors"] + second["errors"] < 25  # about a fifth are wrong


def _step(number: int) -> dict[str, Any]:
    """A version that is a step of the online line (docs/models.md)."""
    return _version(number) | {"trigger": {"kind": "online", "id": f"s{number}"}, "family": "t"}


@pytest.mark.parametrize("line", [True, False])
def test_steps_of_the_online_line_are_judged_as_one_model(line: bool) -> None:
    monitor = Monitor(CARDS, "cards", SETTINGS, now_ms=0)
    monitor.set_versions([_step(2)])
    t = _run(monitor, 2, error_rate=0.05, count=3000, start=0)
    before = monitor.champion
    monitor.set_versions([_step(3) if line else _version(3)])  # a step, or a batch model
    after = monitor.champion
    assert after is not None
    assert before is not None
    assert (after.errors is before.errors) == line
    assert after.earlier == ({2} if line else set())
    # the concept changes at once; the old step's predictions are still being labelled
    onset = t
    t = _run(monitor, 2, error_rate=0.5, count=100, start=t)
    _run(monitor, 3, error_rate=0.5, count=1000, start=t)
    (event,) = monitor.drain(now_ms=0)
    assert event["model_version"] == 3
    if line:  # its detectors saw the errors rise from the first one on
        assert event["kind"] == "concept"
        assert onset * 1000 < event["window_end"] < (onset + 300) * 1000
    else:  # a new model: its own predictions only, after `min_samples` of them
        assert event["window_end"] >= (onset + 100 + SETTINGS.min_samples) * 1000
    monitor.set_versions([_version(4)])  # a batch model after the line: judged afresh
    assert monitor.champion is not None
    assert monitor.champion.earlier == frozenset()
