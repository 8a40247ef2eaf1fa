"""Online learners on river's drifting streams, in a plain loop: which one wins where.

Run: .venv/bin/python benchmarks/online.py [--events 20000] [--seeds 3]

Each learner predicts every event, then learns its label at once (prequential
accuracy, labels with no delay: the in-process ceiling the issue compares the platform
with). Streams, each with a drift at the middle where the generator has concepts:

- agrawal: classification function 0 to 2 (numbers and small integer codes);
- sea_noise: SEA variant 0 to 3, 10% of labels flipped;
- stagger: STAGGER function 0 to 2, three categorical fields (size, colour, shape);
- hyperplane, rbf: concepts that move all the time (Hyperplane's weights,
  RandomRBFDrift's centroids); their control does not move;

as `abrupt`, `gradual` (as river's ConceptDriftStream, width events/5), `recurring` (back to
the first concept at three quarters) and `control` (no drift).

Learners: river's Hoeffding Adaptive Tree and Adaptive Random Forest (defaults, ADWIN),
and river_linear, Tideline's family that can be the trainer's online line: its model, a
scaled LogisticRegression with categories one-hot, learning each label.
"""

import itertools
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from river import compose, forest, linear_model, preprocessing, tree
from river.datasets import synth

console = Console()
Point = tuple[dict[str, Any], bool]
Generator = Callable[[int, int], Iterator[Point]]  # (concept, seed) -> points


def _agrawal(concept: int, seed: int) -> Iterator[Point]:
    return iter(synth.Agrawal(classification_function=(0, 2)[concept], seed=seed))


def _sea(concept: int, seed: int) -> Iterator[Point]:
    return iter(synth.SEA(variant=(0, 3)[concept], noise=0.1, seed=seed))


def _stagger(concept: int, seed: int) -> Iterator[Point]:
    # its fields are codes of categories: as text, so that a model reads them as such
    found = synth.STAGGER(classification_function=(0, 2)[concept], seed=seed)
    return (({k: f"{k}{v}" for k, v in x.items()}, y) for x, y in found)


def _hyperplane(concept: int, seed: int) -> Iterator[Point]:
    moving = (0.0, 0.001)[concept]
    found = synth.Hyperplane(seed=seed, n_features=10, mag_change=moving, noise_percentage=0.05)
    return iter(found)


def _rbf(concept: int, seed: int) -> Iterator[Point]:
    moving = (0.0, 0.001)[concept]
    found = synth.RandomRBFDrift(
        seed_model=seed, seed_sample=seed, n_centroids=20, change_speed=moving, n_drift_centroids=10
    )
    return iter(found)


# streams with two concepts drift between them; the moving ones move or stay still
STREAMS: dict[str, tuple[Generator, tuple[str, ...]]] = {
    "agrawal": (_agrawal, ("abrupt", "gradual", "recurring", "control")),
    "sea_noise": (_sea, ("abrupt", "gradual", "recurring", "control")),
    "stagger": (_stagger, ("abrupt", "gradual", "recurring", "control")),
    "hyperplane": (_hyperplane, ("moving", "control")),
    "rbf": (_rbf, ("moving", "control")),
}


def points(stream: str, kind: str, seed: int, events: int) -> list[Point]:
    make, _ = STREAMS[stream]
    middle = events // 2
    if kind in ("control", "moving"):
        found: Iterator[Point] = make(1 if kind == "moving" else 0, seed)
    elif kind == "abrupt":
        found = itertools.chain(itertools.islice(make(0, seed), middle), make(1, seed + 1))
    elif kind == "gradual":
        found = _gradual(make(0, seed), make(1, seed + 1), middle, events // 5, seed)
    else:  # recurring: the first concept again at three quarters
        back = events * 3 // 4
        found = itertools.chain(
            itertools.islice(make(0, seed), middle),
            itertools.islice(make(1, seed + 1), back - middle),
            make(0, seed + 2),
        )
    return [(x, bool(y)) for x, y in itertools.islice(found, events)]


def _gradual(
    before: Iterator[Point], after: Iterator[Point], middle: int, width: int, seed: int
) -> Iterator[Point]:
    # as river's ConceptDriftStream (which takes datasets, not iterators): the new
    # concept's share grows along a sigmoid centred on `middle`, `width` events wide
    rng = random.Random(seed)
    for i in itertools.count():
        share = 1 / (1 + math.exp(-4 * (i - middle) / width))
        yield next(after) if rng.random() < share else next(before)


def _linear() -> Any:
    numbers = compose.SelectType(int, float) | preprocessing.StandardScaler()
    categories = compose.SelectType(str) | preprocessing.OneHotEncoder(drop_zeros=True)
    return (numbers + categories) | linear_model.LogisticRegression()


LEARNERS: dict[str, Callable[[], Any]] = {
    "HAT": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=0),
    "ARF": lambda: forest.ARFClassifier(seed=0),
    "river_linear": _linear,
}


def prequential(make: Callable[[], Any], data: list[Point]) -> tuple[float, float]:
    """Accuracy over every event, each predicted before it is learnt; ms an event."""
    model, right, started = make(), 0, time.perf_counter()
    for x, y in data:
        right += model.predict_one(x) == y
        model.learn_one(x, y)
    return right / len(data), (time.perf_counter() - started) * 1000 / len(data)


def main(
    events: int = typer.Option(20_000, help="events a stream"),
    seeds: int = typer.Option(3, help="runs a stream, each its own seed"),
) -> None:
    table = Table("stream", "drift", *LEARNERS, "best", "river_linear - best")
    cases = [(s, k) for s, (_, kinds) in STREAMS.items() for k in kinds]
    costs: dict[str, list[float]] = {name: [] for name in LEARNERS}
    for stream, kind in track(cases, description="streams", console=console):
        found: dict[str, float] = {}
        for name, make in LEARNERS.items():
            runs = [prequential(make, points(stream, kind, seed, events)) for seed in range(seeds)]
            found[name] = statistics.median(a for a, _ in runs)
            costs[name] += [ms for _, ms in runs]
        best = max(found, key=found.__getitem__)
        table.add_row(
            stream,
            kind,
            *(f"{found[n]:.4f}" for n in LEARNERS),
            best,
            f"{found['river_linear'] - found[best]:+.4f}",
        )
    console.print(table)
    console.print(
        f"{events:,} events a stream, median of {seeds} seeds; ms an event (predict and learn),"
        " median: " + ", ".join(f"{n} {statistics.median(c):.2f}" for n, c in costs.items())
    )


if __name__ == "__main__":
    typer.run(main)
