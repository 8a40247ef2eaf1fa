"""The Python examples in README.md and docs/ run as written, against the real stack."""

import re
from pathlib import Path
from typing import Any

import pytest
from tideline import features, kafka, learners
from tideline.settings import Settings

from ..projects import EXAMPLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    pytest.param(block, id=f"{path.name}-{i}")
    for path in DOCS
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S))
]


def test_there_are_examples() -> None:
    assert BLOCKS


@pytest.fixture
async def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """An example's `Settings()` reaches this test's stack, topics and the cards project."""
    await kafka.create_topics(settings)
    monkeypatch.setenv("TIDELINE_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("TIDELINE_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("TIDELINE_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("TIDELINE_PROJECT", str(EXAMPLES[0]))
    # as the stack's owner: the examples' own services have no principal of their own
    monkeypatch.setenv("TIDELINE_KAFKA_PRINCIPAL", "admin")


@pytest.mark.parametrize("code", BLOCKS)
def test_example_runs(code: str, environment: None) -> None:
    # an example may add an entry to a table (contributing.md does): it goes with the test
    tables: list[dict[str, Any]] = [features.AGGREGATIONS, features.TRANSFORMS, learners.FAMILIES]
    saved = [(table, dict(table)) for table in tables]
    try:
        exec(compile(code, "<doc example>", "exec"), {})
    finally:
        for table, entries in saved:
            table.clear()
            table.update(entries)
