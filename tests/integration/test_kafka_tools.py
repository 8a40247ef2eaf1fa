"""Kafka's own command-line tools on the stack's jars (`tideline stack kafka TOOL`), as a
business system's engineer follows Kafka's docs: produce with the console producer,
read with the console consumer, look at consumer groups."""

import json
import subprocess
import sys

import pytest
from tideline import catalog, kafka
from tideline.settings import Settings

from .services.running import collect

pytestmark = pytest.mark.integration

TIDELINE = [sys.executable, "-m", "ops.cli", "stack", "kafka"]


def _tool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDELINE, *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


async def test_the_console_clients_and_consumer_groups_run_on_the_stack(
    settings: Settings,
) -> None:
    await kafka.create_topics(settings)
    bootstrap = ["--bootstrap-server", settings.kafka_bootstrap]
    raw = catalog.topic("events.raw").full_name(settings)
    event = json.dumps({"event_id": "from-the-console", "card_id": "c-1"})

    produced = _tool(
        "console-producer",
        *bootstrap,
        "--topic",
        raw,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=|",
        stdin=f"c-1|{event}\n",
    )
    assert produced.returncode == 0, produced.stderr
    (found,) = await collect(settings, "events.raw", 1)
    assert (found.key, found.value) == (b"c-1", event.encode())

    consumed = _tool(
        "console-consumer", *bootstrap, "--topic", raw, "--from-beginning", "--max-messages", "1"
    )
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.strip() == event

    groups = _tool("consumer-groups", *bootstrap, "--list")
    assert groups.returncode == 0, groups.stderr

    unknown = _tool("console-produce")
    assert unknown.returncode == 1
    assert "unknown tool 'console-produce'" in unknown.stdout
