"""What the secured stack costs: ingest, the feature store and serving on a stack as
`tideline stack up` makes it (TLS, SCRAM-SHA-512, ACLs, Redis users) next to one
started `--insecure`, in the same run, runs alternating between them.

Run: .venv/bin/python benchmarks/security.py [--events N] [--runs R]
It starts both stacks itself, in homes and on ports of their own, and stops them.
Ingest is its batch handler on the service's clients (as benchmarks/ingest.py); the
feature store and serving are `tideline run` processes, each as its own principal.
"""

import asyncio
import contextlib
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import featurestore
import ingest
import serving
import training
import typer
from passthrough import timed
from rich.console import Console
from rich.table import Table
from tideline import project, service
from tideline.settings import Settings

from ops.launcher import free_port
from ops.stack import local

console = Console()
KINDS = ("insecure", "secured")


@contextlib.contextmanager
def stacks(root: Path) -> Iterator[dict[str, Settings]]:
    """Both stacks, up for the length of the block."""
    found: dict[str, Settings] = {}
    try:
        for kind in KINDS:
            settings = Settings(
                home=root / kind,
                kafka_bootstrap=f"localhost:{free_port()}",
                kafka_controller_port=free_port(),
                redis_url=f"redis://localhost:{free_port()}/0",
            )
            found[kind] = settings
            local.up(settings, insecure=kind == "insecure")
            found[kind] = local.reread(settings)
        yield found
    finally:
        for settings in found.values():
            local.down(settings)


def prefixed(settings: Settings) -> Settings:
    return settings.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})


async def ingest_rate(settings: Settings, n: int) -> float:
    settings = prefixed(settings)
    await ingest.fill(settings, ingest.events(n))
    handler = ingest._handler(project.load(ingest.PROJECT), settings)
    return n / await timed(settings, "events.raw", n, handler, "ingest")


async def featurestore_rate(settings: Settings, n: int) -> float:
    settings = prefixed(settings)
    await featurestore.fill(settings, n)
    return n / await featurestore.featurestore_seconds(settings, n)


def main(
    n: int = typer.Option(20_000, "--events", help="events (vectors) in each run"),
    runs: int = typer.Option(3, help="runs of each measure on each stack"),
) -> None:
    service.quiet_gc()
    found: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tideline-bench-") as root, stacks(Path(root)) as on:
        models = {}
        for kind, settings in on.items():  # serving's model, trained once on each stack
            models[kind] = prefixed(settings)
            asyncio.run(training.fill(models[kind], n))  # labelled vectors, as serving.py
            featurestore.first_model(
                models[kind], serving.CARDS.name, TIDELINE_TRAINER_WINDOW_ROWS="10000"
            )
        for run in range(runs):
            order = KINDS if run % 2 == 0 else tuple(reversed(KINDS))
            for kind in order:
                settings = on[kind]
                console.print(f"run {run + 1}/{runs}, {kind}")
                measures = {
                    "ingest: events/s": asyncio.run(ingest_rate(settings, n)),
                    "feature store: events/s": asyncio.run(featurestore_rate(settings, n)),
                    "serving stream: records/s": serving.stream_rate(models[kind], n),
                }
                for measure, value in measures.items():
                    found.setdefault((measure, kind), []).append(value)
    table = Table("measure", *(f"{k} (median)" for k in KINDS), "secured / insecure", "runs")
    for measure in dict.fromkeys(m for m, _ in found):
        medians = [statistics.median(found[measure, k]) for k in KINDS]
        runs_shown = " | ".join(" ".join(f"{v:,.0f}" for v in found[measure, k]) for k in KINDS)
        table.add_row(
            measure, *(f"{m:,.0f}" for m in medians), f"{medians[1] / medians[0]:.2f}", runs_shown
        )
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
