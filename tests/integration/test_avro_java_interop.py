"""Records Tideline encodes decode with Apache Avro's Java implementation from the .avsc files alone."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tideline import schemas, serde
from tideline.settings import Settings

from ops.stack import maven

from ..examples import EXAMPLE_TIME

pytestmark = pytest.mark.integration

AVRO_JAVA = "org.apache.avro:avro:1.12.0"
DECODER = Path(__file__).parent / "java" / "DecodeSingleObject.java"


@pytest.fixture(scope="module")
def avro_classpath() -> str:
    if shutil.which("java") is None:
        pytest.fail("java is required (the CI installs it)")
    lib = Settings().cache / "avro-java-1.12.0"
    maven.fetch([AVRO_JAVA], lib)
    return maven.classpath(lib)


def _decode_with_java(classpath: str, data: bytes, names: list[str], tmp_path: Path) -> object:
    record_file = tmp_path / "record.bin"
    record_file.write_bytes(data)
    files = [str(schemas.schema_dir() / f"{n}.avsc") for n in names]
    result = subprocess.run(
        ["java", "-cp", classpath, str(DECODER), str(record_file), *files],
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
