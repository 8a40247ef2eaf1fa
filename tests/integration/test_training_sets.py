"""Point-in-time training sets on the real broker: the join, and the exact rebuild from a DatasetRef."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from tideline import catalog, kafka, project, schemas, serde, training
from tideline.durations import epoch_millis
from tideline.settings import Settings

from ..projects import EXAMPLES
from .services.running import produce

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _vector(i: int, version: str = CARDS.features.version) -> bytes:
    values = {name: None for name in CARDS.features.names} | {"tx_count_10m": i, "amount": float(i)}
    return serde.encode(
        CARDS.feature_schema,
        {
            "event_id": f"e-{i}",
            "entity_id": f"c-{i % 3}",
            "event_time": T0 + timedelta(minutes=i),
            "feature_version": version,
            "computed_at": T0 + timedelta(minutes=i),
            "values": values,
        },
    )


def _label(i: int, fraud: bool) -> bytes:
    return serde.encode(
        CARDS.label_schema,
        {
            "event_id": f"e-{i}",
            "label_time": T0 + timedelta(minutes=i, seconds=30),
            "payload": {"is_fraud": fraud},
        },
    )


async def test_features_join_labels_by_event_id_and_rebuild_exactly(settings: Settings) -> None:
    await kafka.create_topics(settings)
    vectors = [_vector(i) for i in range(10)]
    vectors += [_vector(3), _vector(10, version="another-version")]  # a replay; another definition
    await produce(
        settings,
        "features",
        vectors,
        keys=[b"c"] * len(vectors),
        timestamps_ms=[epoch_millis(T0 + timedelta(minutes=i)) for i in [*range(10), 3, 10]],
    )
    # labels for even events only, one of them corrected later
    labels = [_label(i, fraud=i == 4) for i in range(0, 10, 2)] + [_label(6, fraud=True)]
    await produce(settings, "labels", labels, keys=[b"e"] * len(labels))

    built = await training.build(settings, CARDS)
    frame = built.frame
    assert list(frame["event_id"]) == ["e-0", "e-2", "e-4", "e-6", "e-8"]
    assert list(frame["is_fraud"]) == [False, False, True, True, False]  # e-6: the correction
    assert list(frame["tx_count_10m"]) == [0, 2, 4, 6, 8]
    assert list(frame.columns) == [
        "event_id",
        "entity_id",
        "event_time",
        *CARDS.features.names,
        "is_fraud",
    ]
    ref = built.ref
    assert ref["rows"] == 5
    assert ref["feature_version"] == CARDS.features.version
    assert {r["topic"] for r in ref["ranges"]} == {
        catalog.topic("features").full_name(settings),
        catalog.topic("labels").full_name(settings),
    }
    # the reference is a valid tideline.DatasetRef record
    dataset_ref = schemas.load("tideline.DatasetRef")
    assert serde.Decoder([dataset_ref]).decode(serde.encode(dataset_ref, ref))[1] == ref

    # more data arrives; the reference still names exactly the old set
    await produce(settings, "features", [_vector(12)], keys=[b"c"])
    await produce(
        settings, "labels", [_label(12, fraud=True), _label(2, fraud=True)], keys=[b"e"] * 2
    )
    again = await training.rebuild(settings, CARDS, ref)
    pd.testing.assert_frame_equal(again.frame, frame)
    assert again.ref == ref


async def test_time_range_and_refusals(settings: Settings) -> None:
    await kafka.create_topics(settings)
    await produce(
        settings,
        "features",
        [_vector(i) for i in range(6)],
        keys=[b"c"] * 6,
        timestamps_ms=[epoch_millis(T0 + timedelta(minutes=i)) for i in range(6)],
    )
    await produce(settings, "labels", [_label(i, fraud=False) for i in range(6)], keys=[b"e"] * 6)
    window = await training.build(
        settings, CARDS, T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    )
    assert list(window.frame["event_id"]) == ["e-2", "e-3", "e-4"]

    with pytest.raises(training.DatasetError, match="feature version"):
        await training.rebuild(settings, CARDS, window.ref | {"feature_version": "0000"})
    # retention takes the oldest vectors: the set is refused, not read shorter
    features = catalog.topic("features").full_name(settings)
    (kept,) = [r for r in window.ref["ranges"] if r["topic"] == features and r["end"] > r["start"]]
    async with kafka.admin_session(settings) as admin:
        gone = RecordsToDelete(before_offset=kept["start"] + 1)
        await admin.delete_records({TopicPartition(features, kept["partition"]): gone})
    with pytest.raises(training.DatasetError, match="past the topic's retention"):
        await training.rebuild(settings, CARDS, window.ref)
    meters = project.load(EXAMPLES[1])
    with pytest.raises(training.DatasetError):
        await training.rebuild(settings, meters, window.ref)
