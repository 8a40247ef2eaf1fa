"""The feature store's and serving's pure handlers, batch in, outputs and refusals out, on
every example project: what their Kafka loops send is exactly this."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tideline import catalog, dlq, learners, project, windows
from tideline.durations import epoch_millis
from tideline.models import LoadedModel
from tideline.project import Project
from tideline.scoring import Scorer
from tideline.settings import Settings

from ops import synthetic
from services.featurestore.handler import FeatureStore
from services.serving.handler import Predictor

from ...examples import example
from ...projects import EXAMPLES

SETTINGS = Settings(topic_prefix="unit.")
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
COMPUTED = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


def _bound(name: str, definition: Project) -> catalog.Bound:
    return catalog.topic(name).bind(SETTINGS, definition.derived_schemas)


def _source(topic: catalog.Bound, offset: int, value: bytes, partition: int = 0) -> dlq.Source:
    return dlq.Source(topic.name, partition, offset, None, None, value)


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.parent.name)
def definition(request: pytest.FixtureRequest) -> Project:
    return project.load(request.param)


def _events(definition: Project, count: int) -> list[dict[str, Any]]:
    generator = synthetic.Generator(definition, entities=7, seed=5)
    return list(generator.stream(START, count, timedelta(seconds=30)))


def test_the_feature_store_emits_the_replays_vectors_and_refuses_what_it_cannot_read(
    definition: Project,
) -> None:
    events, features = _bound("events", definition), _bound("features", definition)
    store = FeatureStore(definition, events, features, clock=lambda: COMPUTED)
    # as read back from Avro (a float field keeps 32 bits), so the replay sees what the stream does
    records = [events.decode(events.encode(e)) for e in _events(definition, 60)]
    sources = [_source(events, i, events.encode(e)) for i, e in enumerate(records)]
    garbage = _source(events, 60, b"\x00 not avro")
    foreign = _source(
        events,
        61,
        _bound("predictions", definition).encode(
            example(_bound("predictions", definition).schema.parsed)
        ),
    )
    states: dict[str, windows.EntityState] = {}

    batch = store.process([*sources[:30], garbage, *sources[30:], foreign], states)

    expected = windows.replay(
        definition.features,
        (
            windows.Event(
                e["entity_id"], epoch_millis(e["event_time"]), i, e["payload"], e["event_id"]
            )
            for i, e in enumerate(records)
        ),
    )
    wanted = [(event.event_id, values) for event, values in expected if values is not None]
    got = [features.decode(v.record) for v in batch.vectors]
    assert [(v["event_id"], v["values"]) for v in got] == wanted
    assert {v["feature_version"] for v in got} == {definition.features.version}
    assert {epoch_millis(v["computed_at"]) for v in got} == {epoch_millis(COMPUTED)}
    assert [(s.offset, r.stage, r.error_class) for s, r in batch.rejected] == [
        (60, "decode", "not_single_object"),
        (61, "decode", "unknown_fingerprint"),
    ]
    assert set(batch.changed) == {e["entity_id"] for e in records}
    latest = {entry.entity: entry.event_id for entry in batch.latest()}
    assert latest == {e["entity_id"]: e["event_id"] for e in records}  # event times rise

    again = store.process(sources[50:], states)  # a batch redone after a crash
    assert again.replays == 10
    assert not again.changed
    assert not again.rejected
    assert [features.decode(v.record)["values"] for v in again.vectors] == [
        values for _, values in wanted[50:]
    ]


def test_a_late_event_is_refused_and_changes_no_window(definition: Project) -> None:
    events, features = _bound("events", definition), _bound("features", definition)
    store = FeatureStore(definition, events, features)
    newer, older = _events(definition, 1)[0], _events(definition, 1)[0]
    older = older | {"event_time": START - timedelta(days=2)}
    states: dict[str, windows.EntityState] = {}
    batch = store.process(
        [_source(events, 0, events.encode(newer)), _source(events, 1, events.encode(older))], states
    )
    assert len(batch.vectors) == 1
    ((source, rejection),) = batch.rejected
    assert (source.offset, rejection.stage, rejection.error_class) == (1, "late", "LateEvent")


def _scorer(definition: Project, version: int) -> Scorer:
    events = _events(definition, 300)
    pairs = list(synthetic.labelled_vectors(definition, events, synthetic.Concept(definition, 3)))
    columns, task = learners.Columns.of(definition), definition.label.task
    model = learners.make("linear", task, columns, {})
    labels = [label["payload"][definition.label.field] for _, label in pairs]
    learners.fit(model, task, columns.frame([v["values"] for v, _ in pairs]), labels)
    record = example(catalog.topic("models.updated").schema().parsed)["model"]
    record |= {"model_name": definition.name, "version": version}
    record |= {"feature_version": definition.features.version}
    return Scorer(LoadedModel(record, model), definition)


def test_serving_scores_each_vector_with_both_models_and_refuses_the_rest(
    definition: Project,
) -> None:
    features, predictions = _bound("features", definition), _bound("predictions", definition)
    predictor = Predictor(definition, features, predictions)
    champion, challenger = _scorer(definition, 1), _scorer(definition, 2)
    events = _events(definition, 20)
    vectors = [
        v
        for v, _ in synthetic.labelled_vectors(definition, events, synthetic.Concept(definition, 3))
    ]
    stale = vectors[0] | {"feature_version": "0123456789abcdef"}
    sources = [_source(features, i, features.encode(v)) for i, v in enumerate(vectors)]
    odd = [_source(features, 20, features.encode(stale)), _source(features, 21, b"")]
    now_ms = epoch_millis(COMPUTED)

    batch = predictor.process([*sources, *odd], champion, challenger, now_ms)

    records = [predictions.decode(p.record) for p in batch.predictions]
    served = [r for r in records if not r["shadow"]]
    shadow = [r for r in records if r["shadow"]]
    assert [r["event_id"] for r in served] == [v["event_id"] for v in vectors]
    assert [r["event_id"] for r in shadow] == [v["event_id"] for v in vectors]
    assert {r["model_version"] for r in served} == {1}
    assert {r["model_version"] for r in shadow} == {2}
    rows = [features.decode(s.value)["values"] for s in sources]  # as serving reads them
    assert [r["score"] for r in served] == pytest.approx(champion.scores(rows), abs=1e-12)
    assert [r["predicted"] for r in served] == [
        champion.predicted(s) for s in champion.scores(rows)
    ]
    assert all(r["scored_at"] == COMPUTED for r in records)
    assert [(s.offset, r.stage, r.error_class) for s, r in batch.rejected] == [
        (20, "schema", "FeatureVersion"),
        (21, "decode", "not_single_object"),
    ]
    alone = predictor.process(sources, champion, None, now_ms)
    assert len(alone.predictions) == len(vectors)
    assert not any(p.shadow for p in alone.predictions)
    assert not predictor.process(odd, champion, None, now_ms).predictions
