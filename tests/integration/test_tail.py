"""`tideline monitor tail` as a script reads it: records of several topics in time order, one
line each however long, filtered by kind and model, and `--json` lines that parse."""

import json
import subprocess
import sys

import pytest
from tideline import catalog, kafka, schema_store, serde
from tideline.settings import Settings

from ops import launcher

from ..examples import ADDED, example, newer_schema
from .services.running import produce

pytestmark = pytest.mark.integration

T0 = 1_796_000_000_000  # ms


def _encoded(topic: str, **fields: object) -> bytes:
    bound = catalog.topic(topic).bind(Settings())
    return bound.encode(example(bound.schema.parsed) | fields)


def _tail(settings: Settings, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "monitor", "tail", "--from-beginning", *args],
        # as an operator of the secured stack: the `ops` principal's grants are enough
        env=launcher.environment(settings) | {"COLUMNS": "60", "TIDELINE_KAFKA_PRINCIPAL": "ops"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


async def test_records_of_every_topic_come_in_time_order_one_line_each(settings: Settings) -> None:
    await kafka.create_topics(settings)
    model = example(catalog.topic("models.updated").schema().parsed)["model"]
    long_reason = "a reason that goes on " * 10  # far wider than the 60 columns
    # written topic by topic, timestamps interleaved: drift, update, drift, update
    await produce(
        settings,
        "monitor.drift",
        [_encoded("monitor.drift", drift_id=f"d{i}", model_name="cards") for i in (0, 2)],
        timestamps_ms=[T0, T0 + 2000],
    )
    await produce(
        settings,
        "models.updated",
        [
            _encoded(
                "models.updated", update_id="u1", action="promoted", reason=long_reason, model=model
            ),
            _encoded(
                "models.updated", update_id="u3", action="archived", reason="old", model=model
            ),
        ],
        keys=[b"m:1", b"m:2"],  # a compacted topic takes no record without a key
        timestamps_ms=[T0 + 1000, T0 + 3000],
    )
    await produce(settings, "dead-letters", [b"\x00 not a dead letter"], timestamps_ms=[T0 + 4000])
    lines = _tail(settings, "--limit", "5", "--json")
    seen = [json.loads(line) for line in lines]
    order = [s["record"].get("drift_id") or s["record"].get("update_id") for s in seen[:4]]
    assert order == ["d0", "u1", "d2", "u3"]
    assert seen[4] == {"topic": "dead-letters", "error": seen[4]["error"]}  # unreadable, said so

    plain = _tail(settings, "--limit", "4", "--kind", "registry", "--kind", "drift")
    assert len(plain) == 4  # one line a record, even the long one
    assert long_reason.strip() in plain[1]
    assert "DRIFT" in plain[0]
    assert "promoted -> " in plain[1]

    name = model["model_name"]
    mine = _tail(settings, "--limit", "2", "--model", name, "--kind", "registry")
    assert all(f"{name} v" in line for line in mine)


async def test_a_newer_release_s_record_is_shown_decoded(settings: Settings) -> None:
    await kafka.create_topics(settings)
    drift = catalog.topic("monitor.drift").schema()
    newer = newer_schema(drift)
    producer = kafka.producer(settings)
    store = schema_store.Store(settings, "a newer monitor", serde.Writers())
    async with kafka.started(producer):
        await store.start()
        await store.register(producer, [newer])  # as a newer monitor does at its start
        await store.stop()
    record = example(drift.parsed) | {"drift_id": "from-the-future", ADDED: "new"}
    await produce(settings, "monitor.drift", [serde.encode(newer, record)], timestamps_ms=[T0])
    (line,) = _tail(settings, "--limit", "1", "--json")
    assert json.loads(line)["record"]["drift_id"] == "from-the-future"
