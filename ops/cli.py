"""The `tideline` command: the local stack, topics, and every service's entry point."""

import asyncio
import getpass
import json
import logging
import subprocess
from pathlib import Path
from typing import Annotated, Literal

import typer
from aiokafka.errors import KafkaError
from redis import RedisError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from tideline import catalog, definitions, project, schema_store, schemas, service, signing
from tideline.errors import TidelineError
from tideline.kafka import create_topics, delete_topics, existing_topics, topics_under
from tideline.models import ModelClient
from tideline.online_store import OnlineStore
from tideline.registry import Record, TransitionError
from tideline.settings import Settings

import services
from ops import control, deadletters, demo, monitoring, tail
from ops.stack import local, security
from ops.stack.kafka_broker import TOOLS

app = typer.Typer(no_args_is_help=True, help="Tideline: an event-driven MLOps platform.")
stack_app = typer.Typer(no_args_is_help=True, help="A real local Kafka broker and Redis server.")
topics_app = typer.Typer(no_args_is_help=True, help="The catalog's Kafka topics.")
features_app = typer.Typer(no_args_is_help=True, help="The online feature store.")
app.add_typer(stack_app, name="stack")
app.add_typer(topics_app, name="topics")
models_app = typer.Typer(no_args_is_help=True, help="Model versions: list, train, promote.")
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
monitor_app = typer.Typer(no_args_is_help=True, help="What the monitor sees, for operators.")
app.add_typer(monitor_app, name="monitor")
prometheus_app = typer.Typer(no_args_is_help=True, help="Prometheus for the services.")
app.add_typer(prometheus_app, name="prometheus")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: look at them, resend them.")
schemas_app = typer.Typer(no_args_is_help=True, help="The Avro schemas of every topic.")
project_app = typer.Typer(
    no_args_is_help=True, help="The project: its definition against the running one."
)
app.add_typer(project_app, name="project")
app.add_typer(schemas_app, name="schemas")
app.add_typer(dlq_app, name="dlq")

console = Console()


def _quiet_kafka_client() -> None:
    # While the broker starts, its client warns on every early metadata request: noise here.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


@stack_app.command("up")
def stack_up(
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Kafka brokers, on this machine (default: as this home was first started, else 1)",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="a new home's Kafka in plaintext, with no credentials or ACLs (default: TLS,"
            " SCRAM-SHA-512 and the catalog's ACLs)",
        ),
    ] = False,
) -> None:
    """Start Kafka and Redis (fetching Kafka's jars on first use) and wait until both answer."""
    _quiet_kafka_client()
    try:
        with console.status("starting the stack (the first run fetches Kafka's jars)..."):
            lines = local.up(Settings(), brokers, insecure)
    except TidelineError as exc:
        raise _fail(exc) from exc
    for line in lines:
        console.print(line)


@stack_app.command("credentials")
def stack_credentials(
    principal: Annotated[str, typer.Argument(help=f"one of: {', '.join(security.principals())}")],
    form: Annotated[
        Literal["env", "java", "librdkafka"],
        typer.Option("--format", help="TIDELINE_* lines, a Java client's properties, or kcat's"),
    ] = "env",
) -> None:
    """Print how PRINCIPAL connects to the secured local stack (bootstrap, CA file, user,
    password), for a Tideline process, a Java client (--command-config, --producer.config)
    or kcat (-F)."""
    settings = Settings()
    secrets = security.secured(settings.home)
    if secrets is None:
        raise _fail(TidelineError(f"{settings.home}'s stack is not secured: no credentials"))
    try:
        lines = security.client_config(secrets, principal, settings.kafka_bootstrap, form)
    except ValueError as exc:
        raise _fail(TidelineError(str(exc))) from exc
    print("\n".join(lines))


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
    secrets = security.secured(settings.home)
    console.print(
        "plaintext, no ACLs (--insecure)"
        if secrets is None
        else f"secured: SASL_SSL with {security.MECHANISM}, the catalog's ACLs, Redis users;"
        f" `tideline stack credentials PRINCIPAL` (credentials in {secrets.home / 'credentials'})"
    )
    if not states[0].healthy:
        raise typer.Exit(code=1)
    present = asyncio.run(existing_topics(settings))
    topics = Table("topic", "present")
    for entry in catalog.topics().values():
        full = entry.full_name(settings)
        topics.add_row(full, "[green]yes[/green]" if full in present else "[yellow]no[/yellow]")
    console.print(topics)
    if not all(s.healthy for s in states):
        raise typer.Exit(code=1)


@stack_app.command(
    "kafka", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def stack_kafka(
    ctx: typer.Context,
    tool: Annotated[str, typer.Argument(help=f"one of: {', '.join(TOOLS)}")],
) -> None:
    """Run one of Kafka's own tools on the stack's jars, as bin/kafka-TOOL.sh with the same
    arguments (e.g. `tideline stack kafka consumer-groups --bootstrap-server
    localhost:9092 --list`); on a secured stack, connected as the principal of
    TIDELINE_KAFKA_PRINCIPAL (default admin) unless a client config is given."""
    if tool not in TOOLS:
        raise _fail(TidelineError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}"))
    settings = Settings()
    broker = local.brokers(settings, 1)[0]
    try:
        broker.ensure_jars()
        argv = broker.tool(tool, *security.tool_config(settings, tool, ctx.args), *ctx.args)
    except TidelineError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code=subprocess.run(argv, check=False).returncode)


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


@topics_app.command("delete")
def topics_delete(
    prefix: Annotated[str, typer.Argument(help="e.g. demo- for every demo run's topics")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask first")] = False,
) -> None:
    """Delete every topic whose name starts with PREFIX, records and all (a demo run's, a
    test's): each run of `tideline demo` leaves its topics for inspection."""
    settings = Settings()
    try:
        names = asyncio.run(topics_under(settings, prefix))
    except (TidelineError, OSError) as exc:
        raise _fail(exc) from exc
    if not names:
        console.print(f"no topic starts with {prefix!r}")
        return
    shown = names if len(names) <= 20 else [*names[:20], f"... and {len(names) - 20} more"]
    console.print("\n".join(shown))
    if not yes and not typer.confirm(f"delete these {len(names)} topics and their records?"):
        raise typer.Exit(code=1)
    try:
        asyncio.run(delete_topics(settings, names))
    except (TidelineError, KafkaError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"deleted {len(names)} topics")


@topics_app.command("doc")
def topics_doc() -> None:
    """Print the topics reference (docs/topics.md) generated from the catalog."""
    print(catalog.reference(), end="")


@topics_app.command("list")
def topics_list() -> None:
    """The catalog: every topic with its key, schema and retention."""
    settings = Settings()
    table = Table("topic", "key", "value schema", "partitions", "cleanup", "retention ms")
    for t in catalog.topics().values():
        table.add_row(
            t.full_name(settings),
            t.key,
            t.value,
            str(t.partitions),
            t.cleanup_policy,
            str(t.retention_ms),
        )
    console.print(table)


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="where the .avsc files go")],
) -> None:
    """Write the value schema of every topic, the project's own (events, labels, feature
    vectors) included, as one self-contained .avsc each, for other languages' clients."""
    settings = Settings()
    try:
        derived = project.load(settings.project).derived_schemas
    except TidelineError as exc:
        raise _fail(exc) from exc
    directory.mkdir(parents=True, exist_ok=True)
    table = Table("topic", "schema file")
    for topic in catalog.topics().values():
        schema = topic.bind(settings, derived).schema
        path = directory / f"{schema.name}.avsc"
        path.write_text(json.dumps(schemas.standalone(schema), indent=2) + "\n")
        table.add_row(topic.full_name(settings), str(path))
    console.print(table)


@project_app.command("check")
def project_check(
    path: Annotated[
        Path | None, typer.Argument(help="the changed definition (default: TIDELINE_PROJECT)")
    ] = None,
) -> None:
    """Hold the project's schemas (events, labels, feature vectors) and every topic's against
    the versions already written on the stack; refuse a change that breaks one."""
    settings = Settings()
    _quiet_kafka_client()
    try:
        derived = project.load(path or settings.project).derived_schemas
        reviews = asyncio.run(schema_store.review(settings, derived))
    except (TidelineError, KafkaError) as exc:
        raise _fail(exc) from exc
    table = Table("record", "fingerprint", "versions written", "verdict")
    for r in reviews:
        verdict = (
            "[red]breaks: " + "; ".join(r.problems) + "[/red]"
            if r.problems
            else "running"
            if r.registered
            else "compatible change"
            if r.versions
            else "new"
        )
        table.add_row(r.schema.name, r.schema.fingerprint.hex(), str(r.versions), verdict)
    console.print(table)
    if any(r.problems for r in reviews):
        console.print("[red]error:[/red] a breaking change: no service would start with it")
        raise typer.Exit(code=1)


@features_app.command("describe")
def features_describe() -> None:
    """The running feature definition and its version; the versions the stack holds window
    state of, and what changed since each (a feature store rebuilds such state at start)."""
    settings = Settings()
    _quiet_kafka_client()
    try:
        running = project.load(settings.project)
        with console.status("reading featurestore.definitions and featurestore.state..."):
            known = asyncio.run(definitions.history(settings, running.name))
            states = asyncio.run(definitions.state_versions(settings))
    except (TidelineError, KafkaError) as exc:
        raise _fail(exc) from exc
    features = running.features
    console.print(f"[bold]{running.name}[/bold]: feature set {features.version}")
    table = Table("feature", "computes")
    for feature in features.all:
        table.add_row(feature.name, definitions.what(feature))
    console.print(table)
    table = Table("version", "first run", "entities in window state", "changes to the running one")
    for version in dict.fromkeys([*known, *states]):
        first = f"{known[version].registered_at:%Y-%m-%d %H:%M}" if version in known else "-"
        if version == features.version:
            changed = "running"
        elif version in known:
            changed = (
                "; ".join(
                    f"{n}: {c}" for n, c in definitions.changes(known[version].features, features)
                )
                or "none"
            )
        else:
            changed = "not known (from before definitions were kept, or not a state)"
        table.add_row(version or "none (older)", first, str(states.get(version, 0)), changed)
    console.print(table)
    stale = sum(n for v, n in states.items() if v != features.version)
    if stale:
        console.print(
            f"{stale} entities' window state is of another version: the feature store"
            " rebuilds it from `events` when it starts, before it takes a new event"
        )


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


def _operator() -> str:
    return getpass.getuser()


def _versions(name: str | None) -> list[Record]:
    try:
        registry = asyncio.run(ModelClient(Settings()).registry())
    except (TidelineError, OSError) as exc:
        raise _fail(exc) from exc
    return [v for v in registry.listing() if name is None or v["model_name"] == name]


def _summary(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="one model; default: all")] = None,
) -> None:
    """Every version: state, aliases, family, holdout metrics, what triggered it."""
    table = Table("model", "version", "state", "aliases", "family", "trigger", "created", "metrics")
    for v in _versions(name):
        table.add_row(
            v["model_name"],
            str(v["version"]),
            v["state"],
            ",".join(v["aliases"]),
            v["family"],
            f"{v['trigger']['kind']} {v['trigger']['id'][:20]}",
            v["created_at"].isoformat(timespec="seconds"),
            _summary(v["metrics"]),
        )
    console.print(table)


@models_app.command("show")
def models_show(name: str, version: int) -> None:
    """One version's whole record: lineage, parameters, metrics, artifact."""
    found = [v for v in _versions(name) if v["version"] == version]
    if not found:
        raise _fail(TransitionError(f"{name} has no version {version}"))
    record = {k: v for k, v in found[0].items() if k not in ("reference", "prediction_reference")}
    record["reference"] = [r["name"] for r in found[0]["reference"]]
    console.print_json(data=record, default=str)


def _order(action: str, name: str, version: int | None, reason: str | None) -> None:
    try:
        updates = asyncio.run(
            control.command(Settings(), action, name, version, _operator(), reason)
        )
    except (TidelineError, TransitionError, OSError) as exc:
        raise _fail(exc) from exc
    for u in updates:
        m = u["model"]
        console.print(f"{m['model_name']} v{m['version']}: {u['action']} -> {m['state']}")


@models_app.command("promote")
def models_promote(
    name: str, version: int, reason: Annotated[str | None, typer.Option()] = None
) -> None:
    """Make a version the champion (the current one steps down to staging)."""
    _order("promote", name, version, reason)


@models_app.command("rollback")
def models_rollback(
    name: str,
    version: Annotated[int | None, typer.Option(help="default: the champion before")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Back to an earlier champion."""
    _order("rollback", name, version, reason)


@models_app.command("archive")
def models_archive(
    name: str, version: int, reason: Annotated[str | None, typer.Option()] = None
) -> None:
    """Take a version out of service (not the champion)."""
    _order("archive", name, version, reason)


@models_app.command("public-key")
def models_public_key(
    pem: Annotated[bool, typer.Option(help="as PEM (openssl, Java), not one base64 line")] = False,
) -> None:
    """The key model records are signed with: give it to subscribers elsewhere as
    TIDELINE_MODELS_PUBLIC_KEY. Made here, as the registry would, if there is none yet."""
    try:
        key = signing.signer(Settings()).key.public_key()
    except (TidelineError, OSError) as exc:
        raise _fail(exc) from exc
    typer.echo(signing.pem(key) if pem else signing.encoded(key), nl=not pem)


@models_app.command("train")
def models_train(
    name: str,
    reason: Annotated[str, typer.Option()] = "requested by hand",
    max_rows: Annotated[int | None, typer.Option(help="the last N labelled events")] = None,
    param: Annotated[list[str] | None, typer.Option(help="override, as key=value")] = None,
) -> None:
    """Ask the trainer for a run, and show what it and the gate made of it."""
    params = dict(p.split("=", 1) for p in param or [])
    with console.status(f"training {name}..."):
        try:
            outcome = asyncio.run(
                control.train(
                    Settings(),
                    control.TrainingOrder(name, _operator(), reason, max_rows, params),
                )
            )
        except (TidelineError, OSError) as exc:
            raise _fail(exc) from exc
    for status in outcome.statuses:
        console.print(f"trainer: {status['state']}: {status['message']}")
    if outcome.decision is None:
        raise typer.Exit(code=1)
    m = outcome.decision["model"]
    console.print(
        f"registry: v{m['version']} {outcome.decision['action']}: {outcome.decision['reason']}"
    )


@monitor_app.command("tail")
def monitor_tail(
    from_beginning: Annotated[
        bool, typer.Option(help="from the first record kept (in time order), not from now")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many records")] = None,
    kind: Annotated[
        list[tail.Kind] | None, typer.Option(help="only these kinds (repeat the option)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="only this model's records")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
) -> None:
    """Follow monitor.metrics and monitor.drift, with the trainer's, the registry's and the
    dead letters in between: one line a record, never wrapped."""
    _quiet_kafka_client()
    out = Console(soft_wrap=True, highlight=False)
    try:
        asyncio.run(
            tail.tail(
                Settings(),
                out,
                from_beginning,
                limit,
                set(kind or tail.Kind),
                None if model is None else lambda t, r: tail.model_of(t, r) == model,
                as_json,
            )
        )
    except KeyboardInterrupt:
        pass
    except TidelineError as exc:
        raise _fail(exc) from exc


FromService = Annotated[str | None, typer.Option(help="only letters this service wrote")]
FromTopic = Annotated[
    str | None, typer.Option("--topic", help="only letters from this topic (catalog name)")
]
AtStage = Annotated[str | None, typer.Option(help="only this stage: decode, schema, rule, size...")]
ForReason = Annotated[str | None, typer.Option(help="only this error class or rule")]


@dlq_app.command("tail")
def dlq_tail(
    service: FromService = None,
    topic: FromTopic = None,
    stage: AtStage = None,
    reason: ForReason = None,
    from_beginning: Annotated[
        bool, typer.Option(help="from the first letter kept, not from now")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="stop after this many letters")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line")] = False,
) -> None:
    """Follow the dead letters: where each came from, why, and the start of its bytes."""
    _quiet_kafka_client()
    settings = Settings()
    select = deadletters.Select(service, topic, stage, reason, settings.topic_prefix)
    out = Console(soft_wrap=True, highlight=False)
    try:
        asyncio.run(
            tail.tail(
                settings,
                out,
                from_beginning,
                limit,
                {tail.Kind.DEAD_LETTER},
                lambda _, letter: select(letter),
                as_json,
            )
        )
    except KeyboardInterrupt:
        pass
    except TidelineError as exc:
        raise _fail(exc) from exc


@dlq_app.command("replay")
def dlq_replay(
    service: FromService = None,
    topic: FromTopic = None,
    stage: AtStage = None,
    reason: ForReason = None,
    start: Annotated[
        int, typer.Option("--from", help="the first dead-letters offset to look at")
    ] = 0,
    yes: Annotated[bool, typer.Option("--yes", help="resend; without it, only count")] = False,
) -> None:
    """Resend the chosen letters' original records to the topics they came from, once the
    cause is fixed. Without --yes it says what it would resend."""
    _quiet_kafka_client()
    settings = Settings()
    select = deadletters.Select(service, topic, stage, reason, settings.topic_prefix)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("dead letters", total=None)
        try:
            outcome = asyncio.run(
                deadletters.replay(
                    settings,
                    select,
                    start,
                    send=yes,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            )
        except (TidelineError, KafkaError) as exc:
            raise _fail(exc) from exc
    table = Table("source topic", "letters")
    for source, count in sorted(outcome.chosen.items()):
        table.add_row(source, str(count))
    console.print(table)
    verb = "resent" if yes else "would resend (--yes to do it)"
    console.print(
        f"{verb}: {outcome.sent if yes else sum(outcome.chosen.values()) - outcome.truncated}"
    )
    if outcome.truncated:
        console.print(f"[yellow]skipped {outcome.truncated} cut to fit: not resendable[/]")
    if outcome.unreadable:
        console.print(f"[yellow]{outcome.unreadable} records on the topic are not dead letters[/]")
    if outcome.last_offset is not None:
        console.print(f"next run: --from {outcome.last_offset + 1}")


@prometheus_app.command("config")
def prometheus_config(
    interval: Annotated[str, typer.Option(help="scrape and rule evaluation interval")] = "5s",
) -> None:
    """Print a prometheus.yml that scrapes the six services on their metrics ports and loads
    the shipped alerting rules (ops/prometheus/rules.yml, beside it)."""
    print(monitoring.config(interval=interval), end="")


@app.command("console")
def console_command(
    port: Annotated[int | None, typer.Option(help="default: TIDELINE_CONSOLE_PORT or 8700")] = None,
) -> None:
    """The ops console: a web page of the loop's topics and the services' health, live."""
    from ops.console import app as console_app  # FastAPI and plotly: only for this command
    from ops.console.settings import ConsoleSettings

    _quiet_kafka_client()
    settings = Settings()
    own = ConsoleSettings() if port is None else ConsoleSettings(port=port)
    try:
        asyncio.run(console_app.check(settings))
    except (TidelineError, KafkaError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"the console is on http://{own.host}:{own.port}/ (Ctrl-C stops it)")
    console_app.serve(settings, own)


@app.command("demo")
def demo_command(
    stack: Annotated[bool, typer.Option(help="start and stop Kafka and Redis too")] = True,
    drift: Annotated[
        bool, typer.Option(help="change the concept mid-stream; --no-drift: a control run")
    ] = True,
    gradual: Annotated[
        int,
        typer.Option(min=0, help="events over which the new concept takes over; 0: at once"),
    ] = demo.Plan.gradual,
    rate: Annotated[int, typer.Option(help="card transactions a second")] = demo.Plan.rate,
    report: Annotated[Path | None, typer.Option(help="write the report here, as JSON")] = None,
) -> None:
    """The whole loop: stream, first model, concept drift, retrain, promotion, recovery."""
    _quiet_kafka_client()
    settings = Settings()
    plan = demo.Plan(rate=rate, drift=drift, gradual=gradual)
    try:
        demo.run(settings, settings.project, plan, stack, console, report)
    except (TidelineError, OSError, TimeoutError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc


@app.command("run")
def run(
    name: Annotated[
        str, typer.Argument(help=f"one of: {', '.join(services.NAMES + services.OPTIONAL)}")
    ],
) -> None:
    """Run one service in the foreground."""
    known = services.NAMES + services.OPTIONAL
    if name not in known:
        console.print(f"[red]error:[/red] unknown service {name!r}; one of {', '.join(known)}")
        raise typer.Exit(code=2)
    try:
        service.run(services.declared(name))
    except TidelineError as exc:
        raise _fail(exc) from exc


if __name__ == "__main__":
    app()
