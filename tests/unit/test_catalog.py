from pathlib import Path

import pytest
from tideline import catalog, schemas
from tideline.settings import Settings


def test_every_topic_names_a_schema_that_exists_and_parses() -> None:
    for topic in catalog.topics().values():
        assert topic.schema().name == topic.value
        assert topic.key, f"{topic.name} says nothing of its key"
        assert topic.partitions >= 1


def test_design_topics_are_all_there() -> None:
    expected = {
        "events.raw",
        "labels.raw",
        "events",
        "labels",
        "dead-letters",
        "features",
        "predictions",
        "training.requests",
        "models.candidates",
        "models.artifacts",
        "models.updated",
        "registry.commands",
        "monitor.metrics",
        "monitor.drift",
    }
    assert expected <= set(catalog.topics())


def test_registry_and_artifact_topics_are_compacted_and_kept() -> None:
    for name in ("models.updated", "models.artifacts"):
        topic = catalog.topic(name)
        assert topic.cleanup_policy == "compact"
        assert topic.configs(3, Settings())["cleanup.policy"] == "compact"
        assert topic.retention_ms == -1
    assert catalog.topic("events").cleanup_policy == "delete"


@pytest.mark.parametrize(
    ("brokers", "setting", "replicas", "in_sync"),
    [(1, None, 1, 1), (3, None, 3, 2), (5, None, 3, 2), (3, 2, 2, 2)],
)
def test_replicas_follow_the_catalog_capped_at_the_cluster_or_the_setting(
    brokers: int, setting: int | None, replicas: int, in_sync: int
) -> None:
    settings = Settings(replication_factor=setting)
    for topic in catalog.topics().values():
        assert topic.replicas(brokers, settings) == replicas
        assert topic.configs(replicas, Settings())["min.insync.replicas"] == str(in_sync)


def test_every_record_schema_is_used_or_referenced() -> None:
    used = {t.value for t in catalog.topics().values()}
    referenced = " ".join(schemas.load(n).canonical for n in used)
    for name in schemas.names():
        assert name in used or f'"{name}"' in referenced, f"{name} is used nowhere"


def test_consumers_fetch_at_least_the_largest_record() -> None:
    assert catalog.max_message_bytes() >= catalog.topic("models.candidates").max_message_bytes  # type: ignore[operator]


def test_settings_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TIDELINE_KAFKA_BOOTSTRAP", "broker:29092")
    monkeypatch.setenv("TIDELINE_REDIS_URL", "redis://cache:6380/2")
    monkeypatch.setenv("TIDELINE_TOPIC_PREFIX", "acme.")
    settings = Settings()
    assert settings.kafka_host_port == ("broker", 29092)
    assert settings.redis_host_port == ("cache", 6380)
    assert catalog.topic("events").full_name(settings) == "acme.events"


def test_the_topics_reference_in_docs_is_the_catalogs() -> None:
    reference = Path(__file__).resolve().parents[2] / "docs" / "topics.md"
    assert reference.read_text() == catalog.reference(), "run: tideline topics doc > docs/topics.md"


def test_the_topics_training_reads_keep_the_training_retention_when_set() -> None:
    training = {name for name, t in catalog.topics().items() if t.training}
    assert training == {"features", "labels"}
    quarter = Settings(training_retention="90d")
    for name, topic in catalog.topics().items():
        kept = int(topic.configs(3, quarter)["retention.ms"])
        assert kept == (90 * 86_400_000 if name in training else topic.retention_ms)
        assert int(topic.configs(3, Settings())["retention.ms"]) == topic.retention_ms
