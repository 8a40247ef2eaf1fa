"""The `tideline` command: the local stack, topics, and every service's entry point."""

import asyncio
import importlib
import logging
from typing import Annotated

import typer
from redis import RedisError
from rich.console import Console
from rich.table import Table

from tideline import catalog, demo, project
from tideline.errors import TidelineError
from tideline.kafka import create_topics, existing_topics
from tideline.online_store import OnlineStore
from tideline.settings import Settings
from tideline.stack import local

SERVICES = ("ingest", "featurestore", "serving", "monitor", "trainer", "registry")

app = typer.Typer(no_args_is_help=True, help="Tideline: an event-driven MLOps platform.")
stack_app = typer.Typer(no_args_is_help=True, help="A real local Kafka broker and Redis server.")
topics_app = typer.Typer(no_args_is_help=True, help="The catalog's Kafka topics.")
features_app = typer.Typer(no_args_is_help=True, help="The online feature store.")
app.add_typer(stack_app, name="stack")
app.add_typer(topics_app, name="topics")
app.add_typer(features_app, name="features")

console = Console()


def _quiet_kafka_client() -> None:
    # While the broker starts, its client warns on every early metadata request: noise here.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def _fail(exc: TidelineError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


@stack_app.command("up")
def stack_up() -> None:
    """Start Kafka and Redis (fetching Kafka's jars on first use) and wait until both answer."""
    _quiet_kafka_client()
    try:
        with console.status("starting the stack (the first run fetches Kafka's jars)..."):
            lines = local.up(Settings())
    except TidelineError as exc:
        raise _fail(exc) from exc
    for line in lines:
        console.print(line)


@stack_app.command("down")
def stack_down() -> None:
    """Stop Kafka and Redis; nothing is left running."""
    for line in local.down(Settings()):
        console.print(line)


@stack_app.command("status")
def stack_status() -> None:
    """Say what runs where, and which catalog topics exist."""
    settings = Settings()
    table = Table("server", "address", "pid", "state", "log")
    states = local.status(settings)
    for s in states:
        state = "[green]healthy[/green]" if s.healthy else "[red]down[/red]"
        table.add_row(s.name, s.address, str(s.pid or "-"), state, str(s.log))
    console.print(table)
    if not states[0].healthy:
        raise typer.Exit(code=1)
    present = asyncio.run(existing_topics(settings))
    topics = Table("topic", "present")
    for name in catalog.topics():
        full = settings.topic(name)
        topics.add_row(full, "[green]yes[/green]" if full in present else "[yellow]no[/yellow]")
    console.print(topics)
    if not all(s.healthy for s in states):
        raise typer.Exit(code=1)


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalog topic that does not exist yet; running it twice is harmless."""
    try:
        states = asyncio.run(create_topics(Settings()))
    except (TidelineError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    for state in states:
        console.print(f"{state.name}: {'created' if state.created else 'exists'}")


@topics_app.command("list")
def topics_list() -> None:
    """The catalog: every topic with its key, schema and retention."""
    settings = Settings()
    table = Table("topic", "key", "value schema", "partitions", "cleanup", "retention ms")
    for t in catalog.topics().values():
        table.add_row(
            settings.topic(t.name),
            t.key,
            t.value,
            str(t.partitions),
            t.cleanup_policy,
            str(t.retention_ms),
        )
    console.print(table)


@features_app.command("get")
def features_get(
    entities: Annotated[list[str], typer.Argument(help="entity ids, e.g. card ids")],
) -> None:
    """Show entities' online features: the latest values the stream materialized in Redis."""
    settings = Settings()
    try:
        definition = project.load(settings.project)
        store = OnlineStore(settings, definition)
        found = store.get(entities)
        store.close()
    except (TidelineError, RedisError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    for features in found:
        if features.event_time is None:
            console.print(f"[bold]{features.entity}[/bold]: no online features; the defaults")
        else:
            console.print(
                f"[bold]{features.entity}[/bold] as of {features.event_time.isoformat()}"
                f" (event {features.event_id}, feature version {features.feature_version})"
            )
        table = Table("feature", "value")
        for name, value in features.values.items():
            table.add_row(name, repr(value))
        console.print(table)


@app.command("demo")
def demo_command(
    events: Annotated[int, typer.Option(help="card transactions to stream")] = 5000,
    stack: Annotated[bool, typer.Option(help="start and stop Kafka and Redis too")] = True,
) -> None:
    """Stream card transactions through ingest and the feature store, and show the result."""
    _quiet_kafka_client()
    settings = Settings()
    try:
        demo.run(settings, settings.project, events, stack, console)
    except (TidelineError, OSError, TimeoutError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc


@app.command("run")
def run(service: Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]) -> None:
    """Run one service in the foreground."""
    if service not in SERVICES:
        console.print(
            f"[red]error:[/red] unknown service {service!r}; one of {', '.join(SERVICES)}"
        )
        raise typer.Exit(code=2)
    try:
        module = importlib.import_module(f"services.{service}.main")
    except ModuleNotFoundError:
        console.print(f"[red]error:[/red] the {service} service has no entry point yet")
        raise typer.Exit(code=1) from None
    try:
        module.main()
    except TidelineError as exc:
        raise _fail(exc) from exc


if __name__ == "__main__":
    app()
