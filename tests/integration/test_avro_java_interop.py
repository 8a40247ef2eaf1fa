"""Records Tideline encodes decode with Apache Avro's Java implementation from the .avsc
files alone: the ones in `schemas/` (one parser, dependencies first), and the
self-contained ones `tideline schemas export` writes, a project's own included."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tideline import catalog, kafka, project, schemas, serde
from tideline.settings import Settings

from ops.stack import maven, security
from ops.stack.kafka_broker import KafkaBroker

from ..examples import EXAMPLE_TIME
from ..projects import EXAMPLES
from .services.running import Service, as_raw, collect, produce, start_service

pytestmark = pytest.mark.integration

AVRO_JAVA = "org.apache.avro:avro:1.12.0"
DECODER = Path(__file__).parent / "java" / "DecodeSingleObject.java"
CARD_EVENTS = Path(__file__).resolve().parents[2] / "examples" / "java" / "CardEvents.java"


@pytest.fixture(scope="module")
def avro_classpath() -> str:
    if shutil.which("java") is None:
        pytest.fail("java is required (the CI installs it)")
    lib = Settings().cache / "avro-java-1.12.0"
    maven.fetch([AVRO_JAVA], lib)
    return maven.classpath(lib)


def _decode_with_java(classpath: str, data: bytes, names: list[str], tmp_path: Path) -> object:
    """`data` decoded by Java with the files of `schemas/` named, dependencies first."""
    return _decode_with_files(
        classpath, data, [schemas.schema_dir() / f"{n}.avsc" for n in names], tmp_path
    )


def _decode_with_files(classpath: str, data: bytes, files: list[Path], tmp_path: Path) -> object:
    record_file = tmp_path / "record.bin"
    record_file.write_bytes(data)
    result = subprocess.run(
        ["java", "-cp", classpath, str(DECODER), str(record_file), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_java_decodes_a_dead_letter(avro_classpath: str, tmp_path: Path) -> None:
    schema = schemas.load("tideline.DeadLetter")
    record = {
        "source_topic": "tideline.events.raw",
        "source_partition": 2,
        "source_offset": 41,
        "source_timestamp": EXAMPLE_TIME,
        "key": None,
        "value": b"not avro",
        "headers": [{"key": "trace", "value": None}],
        "stage": "decode",
        "rule": None,
        "error_class": "DecodeError",
        "error_message": "not_single_object: starts with 6e6f",
        "service": "ingest",
        "failed_at": EXAMPLE_TIME,
    }
    decoded = _decode_with_java(
        avro_classpath,
        serde.encode(schema, record),
        ["tideline.Header", "tideline.DeadLetter"],
        tmp_path,
    )
    assert isinstance(decoded, dict)
    millis = int(EXAMPLE_TIME.timestamp() * 1000)
    assert decoded["source_topic"] == "tideline.events.raw"
    assert decoded["source_offset"] == 41
    assert decoded["source_timestamp"] == millis
    assert decoded["headers"] == [{"key": "trace", "value": None}]
    assert decoded["error_message"] == record["error_message"]
    assert decoded["failed_at"] == millis


def test_java_decodes_a_model_update_with_nested_records(
    avro_classpath: str, tmp_path: Path
) -> None:
    from ..examples import example

    schema = schemas.load("tideline.ModelUpdated")
    record = example(schema.parsed)
    names = [
        "tideline.OffsetRange",
        "tideline.DatasetRef",
        "tideline.Trigger",
        "tideline.ArtifactRef",
        "tideline.FeatureReference",
        "tideline.ModelVersion",
        "tideline.ModelUpdated",
    ]
    decoded = _decode_with_java(avro_classpath, serde.encode(schema, record), names, tmp_path)
    assert isinstance(decoded, dict)
    assert decoded["update_id"] == record["update_id"]
    assert decoded["model"]["version"] == record["model"]["version"]
    assert (
        decoded["model"]["dataset"]["ranges"][0]["end"]
        == record["model"]["dataset"]["ranges"][0]["end"]
    )
    assert decoded["model"]["metrics"] == record["model"]["metrics"]


async def test_java_decodes_a_live_event_with_the_exported_schema_alone(
    avro_classpath: str, settings: Settings, running: list[Service], tmp_path: Path
) -> None:
    cards = project.load(EXAMPLES[0])
    exported = tmp_path / "schemas"
    env = {**os.environ, "TIDELINE_PROJECT": str(EXAMPLES[0])}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ops.cli", "schemas", "export", str(exported)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(list(exported.glob("*.avsc"))) == len({t.value for t in catalog.topics().values()})

    await kafka.create_topics(settings)
    start_service("ingest", settings, running)
    event = {
        "event_id": "for-java",
        "entity_id": "c-7",
        "event_time": datetime.now(UTC),
        "payload": {
            "card_id": "c-7",
            "merchant_id": None,
            "category": "fuel",
            "amount": 42.5,
            "country": "FR",
            "channel": "web",
            "card_present": True,
        },
    }
    values, keys = as_raw([event])
    await produce(settings, "events.raw", values, keys)
    (live,) = await collect(settings, "events", 1)
    event_file = exported / f"{cards.event_schema.name}.avsc"
    decoded = _decode_with_files(avro_classpath, live.value, [event_file], tmp_path)
    assert isinstance(decoded, dict)
    assert decoded["event_id"] == "for-java"

    # the documented Java producer and consumer, with the exported file alone
    kafka_jars = KafkaBroker(settings).lib
    connection = tmp_path / "client.properties"
    secrets = security.secured(settings.home)
    if secrets is not None:  # the secured stack: as its owner, who may read `events`
        lines = security.client_config(secrets, "admin", settings.kafka_bootstrap, "java")
        connection.write_text("\n".join(lines) + "\n")
    java = await asyncio.to_thread(
        subprocess.run,
        [
            "java",
            "-cp",
            f"{avro_classpath}:{kafka_jars}/*",
            str(CARD_EVENTS),
            settings.kafka_bootstrap,
            settings.topic_prefix,
            str(event_file),
            "from-java",
            *([str(connection)] if secrets is not None else []),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert java.returncode == 0, java.stderr[-3000:]
    produced = json.loads(java.stdout.strip().splitlines()[-1])
    assert (produced["event_id"], produced["payload"]["channel"]) == ("from-java", "app")
    assert decoded["payload"] == event["payload"]
