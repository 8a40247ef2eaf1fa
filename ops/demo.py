"""`tideline demo`: the whole loop on the real stack; nobody presses anything but start.

Card transactions stream to `events.raw` as a business system sends them (JSON, their
labels a few seconds later, a few broken records among them) through all six services.
Once enough labels are in, the demo asks for a first model. Then the rule behind the
labels changes (a concept drift), and the platform has to notice, retrain, gate,
promote and serve on its own. The demo prints a timeline and the accuracy of the
served predictions before the drift, right after it, and once the new champion
serves; then it stops everything it started.

Each run has topics of its own (prefix `demo-<time>.`), so a run starts from nothing
and leaves its records behind for inspection.
"""

import asyncio
import itertools
import json
import os
import random
import secrets
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from tideline import catalog, dlq, kafka, models, project, streams
from tideline.settings import Settings

import services
from ops import control, launcher, synthetic
from ops.stack import local

HTTP_PORT = 8000
# A demo's scale: metrics every 2 s, verdicts from 300 labels, a drift run trains on
# the 1,000 labelled events after the detection (500 shortens the loop, but left a gradual
# drift unrecovered in one CI run: docs/benchmarks.md).
SERVICE_ENV = {
    "TIDELINE_MONITOR_INTERVAL": "2s",
    "TIDELINE_MONITOR_MIN_SAMPLES": "300",
    "TIDELINE_MONITOR_EVENT_TIME_BUCKET": "5s",
    "TIDELINE_TRAINER_DRIFT_LABELS": "1000",
    "TIDELINE_TRAINER_LABEL_POLL": "0.2s",
}
WATCHED = ("predictions", "monitor.drift", "trainer.status", "models.updated")
RAW_EVENTS, RAW_LABELS = catalog.topic("events.raw"), catalog.topic("labels.raw")
Record = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    rate: int = 400  # events a second
    label_delay_s: float = 3.0
    bootstrap: int = 3000  # labelled events before the first model is asked for
    before: int = 3000  # events under the first concept once it serves
    after: int = 10_000  # events from the drift point on
    drift: bool = True  # False: a control run, the same length, the concept never changes
    gradual: int = 0  # events over which the new concept takes over, linearly; 0: abrupt
    last_window: int = 1000  # served predictions the recovered accuracy is measured on


@dataclass
class Report:
    drift: bool
    topic_prefix: str
    onset: float = 0.0  # wall clock of the first event after the drift point
    drift_events: list[Record] = field(default_factory=list)
    retrains: int = 0  # published runs after the first model, but the online line's
    online_steps: int = 0  # the online line's published steps (docs/models.md)
    promotions: list[int] = field(default_factory=list)  # versions promoted after the first
    first_served: dict[int, float] = field(default_factory=dict)  # version -> wall clock
    accuracy: dict[str, tuple[float, int]] = field(default_factory=dict)  # bucket: (acc, n)
    labelled_to_detection: int | None = None  # events from the drift point to the detection
    loop_s: float | None = None  # drift point to the new champion's first prediction
    events_to_new_champion: int | None = None  # the same, in events sent since the drift point
    timeline: list[tuple[float, str]] = field(default_factory=list)  # s from the drift point
    score_status: dict[str, int] = field(default_factory=dict)  # POST /score, with(out) token

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=1)


# The next event's payload (the project's fields) and its label, for a phase of the run.
Source = Callable[[str], tuple[Record, Any]]


def generated(definition: project.Project, plan: Plan) -> Source:
    """The project's synthetic events; from the drift point on, another concept labels
    them: all at once, or a growing share of them over `plan.gradual` events."""
    # a new seed each run: the demo's data is its own
    seed = time.time_ns()
    generator = synthetic.Generator(definition, entities=500, seed=seed)
    concepts = [synthetic.Concept(definition, seed=s) for s in (11, 12)]
    draws, after = random.Random(seed), itertools.count(1)

    def source(phase: str) -> tuple[Record, Any]:
        record = generator.event(datetime.now(UTC))
        new = plan.drift and phase == "after"
        if new and plan.gradual:
            new = draws.random() < next(after) / plan.gradual
        return record["payload"], concepts[1 if new else 0].label(record)

    return source


class Traffic:
    """Events as JSON, their labels `label_delay_s` later, at `rate` a second."""

    def __init__(
        self, settings: Settings, definition: project.Project, plan: Plan, source: Source
    ) -> None:
        self.settings, self.definition, self.plan, self.source = settings, definition, plan, source
        self.run = f"{time.time_ns():x}"
        self.labels: dict[str, Any] = {}
        self.phase: dict[str, str] = {}
        self.event_times: list[tuple[int, str]] = []  # (event time ms, phase), in order
        self._due: deque[tuple[float, bytes, bytes]] = deque()
        self.producer = kafka.producer(settings)

    async def stream(self, count: int, phase: str, progress: Progress) -> None:
        task = progress.add_task(f"streaming: {phase}", total=count)
        started, sent = time.monotonic(), 0
        field_name, entity_key = self.definition.label.field, self.definition.event.entity_key
        while sent < count:
            goal = min(count, int((time.monotonic() - started) * self.plan.rate) + 1)
            for _ in range(goal - sent):
                payload, label = self.source(phase)
                event_id = f"{self.run}-{len(self.event_times)}"
                self.labels[event_id], self.phase[event_id] = label, phase
                at = datetime.now(UTC)
                self.event_times.append((int(at.timestamp() * 1000), phase))
                body = {"event_id": event_id, "event_time": at.isoformat()} | payload
                await self.producer.send(
                    RAW_EVENTS.full_name(self.settings),
                    json.dumps(body).encode(),
                    key=str(payload[entity_key]).encode(),
                )
                value = json.dumps({"event_id": event_id, field_name: label}).encode()
                self._due.append(
                    (time.monotonic() + self.plan.label_delay_s, event_id.encode(), value)
                )
            sent = goal
            await self._send_due()
            progress.update(task, completed=sent)
            await asyncio.sleep(0.02)

    async def _send_due(self, everything: bool = False) -> None:
        now = time.monotonic()
        while self._due and (everything or self._due[0][0] <= now):
            _, key, value = self._due.popleft()
            await self.producer.send(RAW_LABELS.full_name(self.settings), value, key=key)

    async def flush_labels(self) -> None:
        if self._due:
            await asyncio.sleep(max(0.0, self._due[-1][0] - time.monotonic()))
        await self._send_due(everything=True)
        await self.producer.flush()

    async def broken(self) -> int:
        """Records ingest must refuse, each to the dead-letter topic with its reason."""
        records = [b"\x00\xffnot json", json.dumps({"event_id": "no-fields"}).encode()]
        for value in records:
            await self.producer.send(RAW_EVENTS.full_name(self.settings), value)
        return len(records)


class Observer:
    """Follows the platform's output topics and keeps what the report needs."""

    def __init__(self, settings: Settings, console: Console, report: Report) -> None:
        self.settings, self.console, self.report = settings, console, report
        self.served: list[tuple[str, int, bool]] = []  # event id, version, predicted positive
        self.statuses: list[Record] = []
        self.updates: list[Record] = []
        self.topics = {name: catalog.topic(name).bind(settings) for name in WATCHED}

    def note(self, what: str) -> None:
        since = time.time() - self.report.onset if self.report.onset else None
        stamp = f"t={since:+6.1f}s" if since is not None else "        "
        self.report.timeline.append((since if since is not None else 0.0, what))
        self.console.print(f"[dim]{stamp}[/dim] {what}")

    async def follow(self, topic: str) -> None:
        bound = self.topics[topic]
        async with aclosing(streams.follow(self.settings, bound.name)) as found:
            async for message in found:
                self.seen(bound.decode(message.value), topic)

    def seen(self, record: Record, topic: str) -> None:
        if topic == "predictions":
            if record["shadow"]:
                return
            version = record["model_version"]
            if version not in self.report.first_served:
                self.report.first_served[version] = time.time()
                self.note(f"serving: first prediction by v{version}")
            self.served.append((record["event_id"], version, record["score"] >= 0.5))
        elif topic == "monitor.drift":
            self.report.drift_events.append(record)
            self.note(
                f"monitor.drift: {record['kind']} drift ({record['detector']}) on"
                f" v{record['model_version']}, severity {record['severity']:.2f}"
            )
        elif topic == "trainer.status":
            self.statuses.append(record)
            self.note(
                f"trainer: {record['state']} ({record['trigger']['kind']}) {record['message']}"
            )
        else:
            self.updates.append(record)
            model = record["model"]
            if record["action"] in ("promoted", "challenger", "rejected"):
                self.note(f"registry: v{model['version']} {record['action']}: {record['reason']}")

    def settled(self, window: int) -> bool:
        """Whether the loop has caught up with the stream: no run in flight, a registry
        verdict on each published one, and the last `window` predictions all by the
        newest champion."""
        if self.statuses and self.statuses[-1]["state"] not in ("published", "failed"):
            return False
        published = sum(s["state"] == "published" for s in self.statuses)
        decided = [u for u in self.updates if u["action"] in ("promoted", "challenger", "rejected")]
        if len(decided) < published:
            return False
        promoted = [u["model"]["version"] for u in decided if u["action"] == "promoted"]
        recent = {version for _, version, _ in self.served[-window:]}
        return len(self.served) >= window and recent == {max(promoted, default=0)}

    async def scored(self, traffic: "Traffic", phase: str, timeout_s: float = 120) -> None:
        """Until every event of `phase` sent has its champion's prediction (or `timeout_s`)."""
        sent = sum(p == phase for p in traffic.phase.values())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(traffic.phase.get(e) == phase for e, _, _ in self.served) >= sent:
                return
            await asyncio.sleep(0.1)


def _served_ok(
    traffic: Traffic, served: list[tuple[str, int, bool]]
) -> list[tuple[str, int, bool]]:
    """(phase, version, correct) of each served prediction, in arrival order."""
    return [
        (traffic.phase[e], v, positive == traffic.labels[e])
        for e, v, positive in served
        if e in traffic.phase
    ]


def _accuracy(rows: list[tuple[str, int, bool]]) -> tuple[float, int]:
    return (sum(ok for *_, ok in rows) / len(rows), len(rows)) if rows else (float("nan"), 0)


def _conclude(traffic: Traffic, observer: Observer, first: int, plan: Plan) -> None:
    report = observer.report
    rows = _served_ok(traffic, observer.served)
    served = (e for e, phase in traffic.phase.items() if phase != "bootstrap")  # in sent order
    planned = set(itertools.islice(served, plan.before + plan.after))
    after = [r for r in rows if r[0] == "after"]
    newer = sorted({v for _, v, _ in after if v != first})
    report.accuracy = {
        "before the drift point": _accuracy([r for r in rows if r[0] == "before"]),
        f"after it, v{first} still serving": _accuracy([r for r in after if r[1] == first]),
        "after it, the new champion": _accuracy([r for r in after if r[1] in newer]),
        f"the last {plan.last_window} served": _accuracy(after[-plan.last_window :]),
        "prequential, from the first model on": _accuracy([r for r in rows if r[0] != "bootstrap"]),
        # the same, over the plan's events only: the stream goes on while the loop lags
        "prequential, the plan's events": _accuracy(
            _served_ok(traffic, [s for s in observer.served if s[0] in planned])
        ),
    }
    published = [s["trigger"]["kind"] for s in observer.statuses if s["state"] == "published"]
    report.retrains = sum(kind not in ("request", "online") for kind in published)
    report.online_steps = published.count("online")
    report.promotions = [
        u["model"]["version"]
        for u in observer.updates
        if u["action"] == "promoted" and u["model"]["version"] != first
    ]
    if report.drift_events:
        detected = report.drift_events[0]["window_end"]
        detected_ms = detected if isinstance(detected, int) else int(detected.timestamp() * 1000)
        report.labelled_to_detection = sum(
            1 for t, phase in traffic.event_times if phase == "after" and t <= detected_ms
        )
    served_new = [report.first_served[v] for v in newer if v in report.first_served]
    if served_new:
        report.loop_s = min(served_new) - report.onset
    after_ids = [e for e, phase in traffic.phase.items() if phase == "after"]  # in sent order
    position = {e: i for i, e in enumerate(after_ids)}
    by_new = [position[e] for e, v, _ in observer.served if v in newer and e in position]
    if by_new:
        report.events_to_new_champion = min(by_new)


async def _first_champion(settings: Settings, name: str, outcome: control.TrainingOutcome) -> int:
    """The champion once the first model is judged: it, or the online line's step that
    came first and that it did not beat (TIDELINE_TRAINER_ONLINE_FAMILY)."""
    action = None if outcome.decision is None else outcome.decision["action"]
    if outcome.decision is not None and action == "promoted":
        return int(outcome.decision["model"]["version"])
    champion = (await models.ModelClient(settings).registry()).champion(name)
    if action != "challenger" or champion is None:
        raise TimeoutError(f"the first model was not promoted: {outcome}")
    return int(champion["version"])


async def _wait_metric(port: int, sample: str, total: float, **labels: str) -> None:
    await asyncio.to_thread(launcher.wait_metric, port, sample, total, labels=labels)


async def loop(
    settings: Settings,
    definition: project.Project,
    plan: Plan,
    ports: dict[str, int],
    console: Console,
    source: Source | None = None,
) -> Report:
    """Stream, bootstrap a first model, change the concept, watch the platform adapt."""
    report = Report(drift=plan.drift, topic_prefix=settings.topic_prefix)
    traffic = Traffic(settings, definition, plan, source or generated(definition, plan))
    observer = Observer(settings, console, report)
    watching = [asyncio.create_task(observer.follow(t)) for t in WATCHED]
    try:
        async with kafka.started(traffic.producer):
            with Progress(console=console, transient=True) as progress:
                broken = await traffic.broken()
                await traffic.stream(plan.bootstrap, "bootstrap", progress)
                await traffic.flush_labels()
                await _wait_metric(
                    ports["ingest"],
                    "tideline_ingest_records_out_total",
                    plan.bootstrap,
                    topic="labels",
                )
                await _wait_metric(
                    ports["featurestore"],
                    "tideline_featurestore_events_total",
                    plan.bootstrap,
                )
                await _wait_metric(
                    ports["ingest"], "tideline_dead_letters_total", broken, service="ingest"
                )
                observer.note(
                    f"ingest refused {broken} broken records: see {dlq.TOPIC.full_name(settings)}"
                )
                observer.note(f"{plan.bootstrap} labelled events in: asking for a first model")
                outcome = await control.train(
                    settings, control.TrainingOrder(definition.name, "demo", "bootstrap")
                )
                first = await _first_champion(settings, definition.name, outcome)
                await _wait_metric(
                    ports["serving"],
                    "tideline_serving_model_version",
                    first,
                    role="champion",
                )
                await traffic.stream(plan.before, "before", progress)
                report.onset = time.time()
                observer.note(
                    "drift point: the rule behind the labels changes"
                    if plan.drift
                    else "control run: the rule never changes"
                )
                await traffic.stream(plan.after, "after", progress)
                # Ended by the stream, not a clock: on a busy machine the loop lags the
                # stream, so the stream goes on (up to as many events again) until the
                # loop has caught up with it.
                for _ in range(plan.after // plan.rate):
                    if observer.settled(plan.last_window):
                        break
                    await traffic.stream(plan.rate, "after", progress)
                await traffic.flush_labels()
                await observer.scored(traffic, "after")
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
    _conclude(traffic, observer, first, plan)
    return report


def show(report: Report, console: Console) -> None:
    table = Table("served predictions", "accuracy", "count")
    for bucket, (accuracy, count) in report.accuracy.items():
        table.add_row(bucket, "-" if count == 0 else f"{accuracy:.3f}", str(count))
    console.print(table)
    if report.drift:
        delay = report.labelled_to_detection
        console.print(
            f"drift events: {len(report.drift_events)}"
            + (f", detected {delay} events after the drift point" if delay is not None else "")
            + f"; retrains: {report.retrains}; promoted: {report.promotions}"
            + (
                f"; from the drift point to the new champion serving: {report.loop_s:.1f} s"
                f" ({report.events_to_new_champion} events)"
                if report.loop_s is not None
                else ""
            )
        )
    else:
        console.print(
            f"control run: {len(report.drift_events)} drift events, {report.retrains} retrains"
        )
    if report.score_status:
        console.print(
            "POST /score: "
            + ", ".join(f"{status} {how}" for how, status in report.score_status.items())
        )
    console.print(
        f"its topics ({report.topic_prefix}*) stay for inspection;"
        f" `tideline topics delete {report.topic_prefix}` removes them"
    )


def _score_status(token: str | None) -> int:
    """The HTTP status POST /score answers one entity's request with."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{HTTP_PORT}/score", b'{"entity_id": "demo"}', headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def run(
    settings: Settings,
    definition_path: Path,
    plan: Plan,
    with_stack: bool,
    console: Console,
    report_path: Path | None = None,
    source: Source | None = None,
) -> Report:
    definition = project.load(definition_path)
    settings = settings.model_copy(update={"topic_prefix": f"demo-{time.time_ns() // 1_000_000}."})
    # stop afterwards only what the demo started
    with_stack = with_stack and not all(server.healthy for server in local.status(settings))
    if with_stack:
        with console.status("starting Kafka and Redis"):
            for line in local.up(settings):
                console.print(line)
        settings = local.reread(settings)
    try:
        asyncio.run(kafka.create_topics(settings))
        console.print(f"topics: {settings.topic_prefix}*; six services starting")
        console.print(
            f"to watch it in a browser: TIDELINE_TOPIC_PREFIX={settings.topic_prefix}"
            " .venv/bin/tideline console, then http://127.0.0.1:8700/"
        )
        # POST /score behind a bearer token of this run's, unless one is given
        token = os.environ.get("TIDELINE_SERVING_TOKEN") or secrets.token_urlsafe(24)
        env = SERVICE_ENV | {
            "TIDELINE_SERVING_HTTP_PORT": str(HTTP_PORT),
            "TIDELINE_SERVING_TOKEN": token,
        }
        console.print(
            f"POST http://127.0.0.1:{HTTP_PORT}/score needs 'Authorization: Bearer {token}'"
        )
        logs = settings.home / "logs"
        with launcher.running(services.NAMES, settings, definition_path, env, logs) as running:
            ports = {name: process.metrics_port for name, process in running.items()}
            report = asyncio.run(loop(settings, definition, plan, ports, console, source))
            report.score_status = {
                "without token": _score_status(None),
                "with token": _score_status(token),
            }
        show(report, console)
        if report_path is not None:
            report_path.write_text(report.to_json())
        return report
    finally:
        if with_stack:
            for line in local.down(settings):
                console.print(line)
