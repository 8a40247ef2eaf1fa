"""The closed loop's time: from the drift point in the stream to the new champion serving.

Run against a running stack: .venv/bin/python benchmarks/loop.py

Each run is `tideline demo --no-stack` (all six services, card transactions at 400 a
second, labels 3 s after their events, an abrupt concept change), on topics of its own.
Reported per run: events from the drift point to the detection, the loop's time
(drift point to the first prediction by the new champion), and accuracy before the
drift and over the last 1,000 served predictions.
"""

import statistics

import typer
from rich.console import Console
from rich.table import Table
from tideline.settings import Settings

from ops import demo

console = Console()


def main(runs: int = typer.Option(3)) -> None:
    settings = Settings()
    reports = [
        demo.run(settings, settings.project, demo.Plan(), False, Console(quiet=True))
        for _ in range(runs)
    ]
    table = Table("run", "drift events", "events to detection", "loop (s)", "before", "last 1000")
    for i, r in enumerate(reports):
        table.add_row(
            str(i + 1),
            str(len(r.drift_events)),
            str(r.labelled_to_detection),
            "-" if r.loop_s is None else f"{r.loop_s:.1f}",
            f"{r.accuracy['before the drift point'][0]:.3f}",
            f"{r.accuracy['the last 1000 served'][0]:.3f}",
        )
    loops = [r.loop_s for r in reports if r.loop_s is not None]
    console.print(table)
    if loops:
        console.print(f"loop time, median of {len(loops)}: {statistics.median(loops):.1f} s")


if __name__ == "__main__":
    typer.run(main)
