"""Online learners on river's drifting streams, in a plain loop: which one wins where.

Run: .venv/bin/python benchmarks/online.py [--events 10000] [--seeds 3]

Each learner predicts every event, then learns its label at once (prequential
accuracy, labels with no delay: the in-process ceiling the issue compares the platform
with). The streams are benchmarks/drifting.py's, each drifting at the middle (gradual:
2,000 events wide).

Learners: river's Hoeffding Adaptive Tree and Adaptive Random Forest (defaults, ADWIN),
and Tideline's two families that can be the trainer's online line, `river_tree` and
`river_linear`, as the platform makes them (`learners.make`), reading the platform's
rows (`learners.fit`, `learners.row_scorer`).
"""

import statistics
import time
from collections.abc import Callable
from typing import Any

import typer
from drifting import CASES, Point, points
from rich.console import Console
from rich.progress import track
from rich.table import Table
from river import forest, tree
from tideline import learners
from tideline.scoring import THRESHOLD

console = Console()


class Family:
    """A Tideline family as a river learner: one event a call, through the platform's rows."""

    def __init__(self, name: str, data: list[Point]) -> None:
        x, _ = data[0]
        self.columns = learners.Columns(
            [n for n, v in x.items() if not isinstance(v, str)],
            [n for n, v in x.items() if isinstance(v, str)],
        )
        self.model = learners.make(name, "classification", self.columns, {})
        self.score = learners.row_scorer(self.model, "classification", self.columns)

    def predict_one(self, x: dict[str, Any]) -> bool:
        return self.score([x])[0] >= THRESHOLD

    def learn_one(self, x: dict[str, Any], y: bool) -> None:
        learners.fit(self.model, "classification", self.columns.frame([x]), [y])


LEARNERS: dict[str, Callable[[list[Point]], Any]] = {
    "HAT": lambda _: tree.HoeffdingAdaptiveTreeClassifier(seed=0),
    "ARF": lambda _: forest.ARFClassifier(seed=0),
    "river_tree": lambda data: Family("river_tree", data),
    "river_linear": lambda data: Family("river_linear", data),
}


def prequential(make: Callable[[list[Point]], Any], data: list[Point]) -> tuple[float, float]:
    """Accuracy over every event, each predicted before it is learnt; ms an event."""
    model, right, started = make(data), 0, time.perf_counter()
    for x, y in data:
        right += model.predict_one(x) == y
        model.learn_one(x, y)
    return right / len(data), (time.perf_counter() - started) * 1000 / len(data)


def main(
    events: int = typer.Option(10_000, help="events a stream"),
    seeds: int = typer.Option(3, help="runs a stream, each its own seed"),
) -> None:
    table = Table("stream", "drift", *LEARNERS, "best", "river_tree - best")
    costs: dict[str, list[float]] = {name: [] for name in LEARNERS}
    for stream, kind in track(CASES, description="streams", console=console):
        found: dict[str, float] = {}
        for name, make in LEARNERS.items():
            runs = [
                prequential(make, points(stream, kind, seed, events, events // 2, 2000))
                for seed in range(seeds)
            ]
            found[name] = statistics.median(a for a, _ in runs)
            costs[name] += [ms for _, ms in runs]
        best = max(found, key=found.__getitem__)
        table.add_row(
            stream,
            kind,
            *(f"{found[n]:.4f}" for n in LEARNERS),
            best,
            f"{found['river_tree'] - found[best]:+.4f}",
        )
    console.print(table)
    console.print(
        f"{events:,} events a stream, median of {seeds} seeds; ms an event (predict and learn),"
        " median: " + ", ".join(f"{n} {statistics.median(c):.2f}" for n, c in costs.items())
    )


if __name__ == "__main__":
    typer.run(main)
