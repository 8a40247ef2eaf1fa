"""`tideline monitor tail`: the monitor's topics as an operator reads them, one line a record.

Each `monitor.metrics` record is a line (volume, labels, live performance, the most
drifted features, latency); each `monitor.drift` event stands out in red; the
trainer's statuses, the registry's decisions and dead letters come in between, in
time order across topics, so the whole loop reads in one terminal with no other tool.
Piped, a record is one line, never wrapped; `--json` gives one JSON object a line.
"""

import json
from collections.abc import Callable
from contextlib import aclosing
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from tideline.settings import Settings

from ops import records


class Kind(StrEnum):
    METRICS = "metrics"
    DRIFT = "drift"
    TRAINER = "trainer"
    REGISTRY = "registry"
    DEAD_LETTER = "dead-letter"


KINDS = dict(
    zip(
        ("monitor.metrics", "monitor.drift", "trainer.status", "models.updated", "dead-letters"),
        Kind,
        strict=True,
    )
)
TOPICS = tuple(KINDS)
Record = dict[str, Any]


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3g}{unit}"


def metrics_line(record: Record) -> str:
    performance = " ".join(
        f"{k} {v:.3f}"
        for k, v in sorted(record["performance"].items())
        if k in ("accuracy", "f1", "roc_auc", "mae", "rmse")
    )
    drifted = sorted(
        (f for f in record["features"] if f["psi"] is not None), key=lambda f: -f["psi"]
    )[:3]
    features = ", ".join(f"{f['feature']} {f['psi']:.2f}" for f in drifted)
    scores = record["prediction_drift"]
    return (
        f"{_clock(record['emitted_at'])} [bold]{record['model_name']} v{record['model_version']}[/]"
        f" volume {record['volume']} labelled {record['labelled']}"
        f" | {performance or 'performance: too few labels yet'}"
        + (f" | psi {features}" if features else "")
        + (f" | score psi {_number(scores['psi'])}" if scores is not None else "")
        + f" | latency p50 {_number(record['scoring_latency_ms_p50'], ' ms')}"
        f" p99 {_number(record['scoring_latency_ms_p99'], ' ms')}"
        f" | label delay p50 {_number(record['label_delay_ms_p50'], ' ms')}"
    )


def render(topic: str, record: Record) -> str:
    if topic == "monitor.metrics":
        return metrics_line(record)
    if topic == "monitor.drift":
        features = f" features {', '.join(record['features'])}" if record["features"] else ""
        return (
            f"{_clock(record['detected_at'])} [bold red]DRIFT {record['kind']}[/] "
            f"({record['detector']}) {record['model_name']} v{record['model_version']}"
            f" severity {record['severity']:.3f}{features}"
            f" up to event time {_clock(record['window_end'])} [dim]{record['drift_id']}[/]"
        )
    if topic == "trainer.status":
        return (
            f"{_clock(record['at'])} [cyan]trainer[/] {record['model_name']}: {record['state']}"
            f" ({record['trigger']['kind']}) {record['message']}"
        )
    if topic == "dead-letters":
        return (
            f"{_clock(record['failed_at'])} [magenta]dead letter[/] from {record['service']}:"
            f" {record['source_topic']}/{record['source_partition']}@{record['source_offset']}"
            f" {record['stage']} {record['error_class']}: {escape(_one_line(record['error_message']))}"
            f" [dim]{escape(preview(record['value']))}[/]"
        )
    model = record["model"]
    return (
        f"{_clock(record['at'])} [green]registry[/] {model['model_name']} v{model['version']}:"
        f" {record['action']} -> {model['state']} ({escape(_one_line(record['reason']))})"
    )


def preview(value: bytes | None, width: int = 60) -> str:
    """The start of a refused record's bytes: as text where they are text, else hex."""
    if value is None:
        return "(no value)"
    head = value[:width]
    try:
        shown = _one_line(head.decode())
    except UnicodeDecodeError as exc:  # text cut mid-character is text still
        shown = _one_line(head[: exc.start].decode()) if exc.start >= len(head) - 3 else "\0"
    if not shown.isprintable():
        shown = "0x" + value[: width // 2].hex()
    return shown + ("…" if len(value) > width else "") + f" ({len(value)} bytes)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def model_of(topic: str, record: Record) -> str | None:
    """The model a record concerns; None for dead letters."""
    if topic == "models.updated":
        return str(record["model"]["model_name"])
    return None if topic == "dead-letters" else str(record["model_name"])


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def as_json(topic: str, record: Record) -> str:
    return json.dumps({"topic": topic, "kind": str(KINDS[topic]), "record": record}, default=_plain)


async def tail(
    settings: Settings,
    console: Console,
    from_beginning: bool,
    limit: int | None,
    kinds: set[Kind] | None = None,
    keep: Callable[[str, Record], bool] | None = None,
    as_json_lines: bool = False,
) -> None:
    """Print each record of the loop's topics as it comes: of `kinds`, those `keep` keeps
    (given the catalog topic and the record), if given."""
    names = [t for t in TOPICS if kinds is None or KINDS[t] in kinds]
    shown = 0
    async with aclosing(records.merged(settings, names, history=from_beginning)) as found:
        async for seen in found:
            if seen.record is None:
                line = f"unreadable record on {seen.topic}: {seen.error}"
                if as_json_lines:
                    line = json.dumps({"topic": seen.topic, "error": seen.error})
                console.print(line, markup=False, highlight=False)
            elif keep is not None and not keep(seen.topic, seen.record):
                continue
            elif as_json_lines:
                console.print(as_json(seen.topic, seen.record), markup=False, highlight=False)
            else:
                console.print(render(seen.topic, seen.record))
            shown += 1
            if limit is not None and shown >= limit:
                return
