"""Point-in-time training sets: `features` joined with `labels` by event id.

Each vector on `features` was computed as of its event, so the join is point-in-time
correct by construction: no value in a row saw anything after its event. A training
set is named by the offset ranges it was read from, the schema fingerprints and the
feature definitions' version (a DatasetRef record); `rebuild` re-reads exactly those
offsets and gives the identical DataFrame.
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from tideline import catalog, serde, streams
from tideline.durations import epoch_millis
from tideline.errors import TidelineError
from tideline.project import Project
from tideline.settings import Settings

FEATURES, LABELS = catalog.topic("features"), catalog.topic("labels")


class DatasetError(TidelineError):
    """A dataset reference that this project cannot rebuild."""


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # event_id, entity_id, event_time, the features, the label
    ref: dict[str, Any]  # a tideline.DatasetRef record


def _fingerprints(settings: Settings, project: Project) -> dict[str, str]:
    return {
        FEATURES.full_name(settings): project.feature_schema.fingerprint.hex(),
        LABELS.full_name(settings): project.label_schema.fingerprint.hex(),
    }


async def _reference(
    settings: Settings, project: Project, since_ms: int | None, until_ms: int | None = None
) -> dict[str, Any]:
    ranges = await streams.offset_ranges(settings, FEATURES.full_name(settings), since_ms, until_ms)
    # labels arrive after their events: read them from `since` up to now
    ranges += await streams.offset_ranges(settings, LABELS.full_name(settings), since_ms)
    return {
        "ranges": [vars(r) for r in ranges],
        "schema_fingerprints": _fingerprints(settings, project),
        "feature_version": project.features.version,
        "rows": -1,
    }


async def build(
    settings: Settings,
    project: Project,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TrainingSet:
    """Vectors of events in [since, until) with every label that has arrived for them so far."""
    return await rebuild(
        settings,
        project,
        await _reference(
            settings,
            project,
            None if since is None else epoch_millis(since),
            None if until is None else epoch_millis(until),
        ),
    )


async def rebuild(settings: Settings, project: Project, ref: dict[str, Any]) -> TrainingSet:
    """The training set `ref` names, read again from its offsets."""
    if ref["feature_version"] != project.features.version:
        raise DatasetError(
            f"dataset has feature version {ref['feature_version']},"
            f" the project {project.features.version}"
        )
    if ref["schema_fingerprints"] != _fingerprints(settings, project):
        raise DatasetError("dataset was written with other schemas than this project's")
    await _still_kept(settings, [streams.OffsetRange(**r) for r in ref["ranges"]])
    vectors, labels = await _read(settings, project, ref)
    return _select(project, ref, vectors, labels)


async def _still_kept(settings: Settings, ranges: list[streams.OffsetRange]) -> None:
    """DatasetError if retention has deleted records of `ranges`: a set read without them
    would be another set under the same name."""
    for topic in sorted({r.topic for r in ranges}):
        first = {k.partition: k.start for k in await streams.offset_ranges(settings, topic)}
        for r in ranges:
            if r.topic == topic and r.start < r.end and r.start < first.get(r.partition, 0):
                raise DatasetError(
                    f"{topic} partition {r.partition} now begins at offset"
                    f" {first[r.partition]}, the dataset at {r.start}: records it was built"
                    " from are past the topic's retention, so it cannot be rebuilt exactly"
                )


@dataclass(frozen=True)
class _Vector:
    partition: int
    offset: int
    event_id: str
    row: tuple[Any, ...]  # event id, entity id, event time, the features
    feature_version: str


@dataclass(frozen=True)
class Read:
    """Vectors and their labels, read once; `labelled` and `cut` make training sets of them."""

    project: Project
    features_topic: str
    ref: dict[str, Any]  # the ranges read
    vectors: list[_Vector]  # in log order
    labels: dict[str, Any]  # by event id

    @functools.cached_property
    def labelled(self) -> TrainingSet:
        """Every labelled event read."""
        return _select(self.project, self.ref, self.vectors, self.labels)


async def read(settings: Settings, project: Project, since: datetime | None = None) -> Read:
    """The vectors of events from `since`, with every label that has arrived for them."""
    ref = await _reference(settings, project, None if since is None else epoch_millis(since))
    vectors, labels = await _read(settings, project, ref)
    return Read(project, FEATURES.full_name(settings), ref, vectors, labels)


async def split(
    settings: Settings,
    project: Project,
    since: datetime | None = None,
    max_rows: int | None = None,
    holdout: float = 0.2,
) -> tuple[TrainingSet, TrainingSet]:
    """`cut` of the labelled events from `since`."""
    return cut(await read(settings, project, since), max_rows, holdout)


def cut(
    found: Read, max_rows: int | None = None, holdout: float = 0.2
) -> tuple[TrainingSet, TrainingSet]:
    """The labelled events read (the last `max_rows` of them, if given) as a training set
    and a holdout: the most recent `holdout` share, by event time.

    Both are cut at offsets, per partition, so each has a DatasetRef of its own that
    `rebuild` turns back into exactly the same rows.
    """
    ref, vectors, labels, features = found.ref, found.vectors, found.labels, found.features_topic
    times = found.labelled.frame["event_time"]
    first = 0 if max_rows is None else max(0, len(times) - max_rows)
    held = max(1, round((len(times) - first) * holdout)) if len(times) > first else 0
    start_at, cut_at = times.iloc[first:].min(), times.iloc[len(times) - held :].min()
    train_ranges, holdout_ranges = [], []
    for r in ref["ranges"]:
        if r["topic"] != features:
            train_ranges.append(r)
            holdout_ranges.append(r)
            continue
        mine = [v for v in vectors if v.partition == r["partition"] and v.event_id in labels]
        lo = min((v.offset for v in mine if v.row[2] >= start_at), default=r["end"])
        at = max(lo, min((v.offset for v in mine if v.row[2] >= cut_at), default=r["end"]))
        train_ranges.append(r | {"start": lo, "end": at})
        holdout_ranges.append(r | {"start": at})
    parts = []
    for ranges in (train_ranges, holdout_ranges):
        part = ref | {"ranges": ranges}
        inside = [v for v in vectors if _within(v, ranges, features)]
        parts.append(_select(found.project, part, inside, labels))
    return parts[0], parts[1]


def _within(vector: _Vector, ranges: Sequence[dict[str, Any]], topic: str) -> bool:
    return any(
        r["topic"] == topic
        and r["partition"] == vector.partition
        and r["start"] <= vector.offset < r["end"]
        for r in ranges
    )


async def _read(
    settings: Settings, project: Project, ref: dict[str, Any]
) -> tuple[list[_Vector], dict[str, Any]]:
    """The vectors in `ref`'s features ranges, in log order, and the labels by event id."""
    ranges = [streams.OffsetRange(**r) for r in ref["ranges"]]
    labels = await _labels(
        settings, project, [r for r in ranges if r.topic == LABELS.full_name(settings)]
    )
    decoder, names = serde.Decoder([project.feature_schema]), project.features.names
    vectors = []
    features = [r for r in ranges if r.topic == FEATURES.full_name(settings)]
    async for message in streams.read_ranges(settings, features):
        vector = decoder.decode_as(project.feature_schema, message.value)
        values = vector["values"]
        vectors.append(
            _Vector(
                message.partition,
                message.offset,
                vector["event_id"],
                (
                    vector["event_id"],
                    vector["entity_id"],
                    vector["event_time"],
                    *(values[n] for n in names),
                ),
                vector["feature_version"],
            )
        )
    return vectors, labels


def _select(
    project: Project, ref: dict[str, Any], vectors: Sequence[_Vector], labels: dict[str, Any]
) -> TrainingSet:
    """The rows of labelled vectors of this feature version, each event once, by time."""
    rows: dict[str, tuple[Any, ...]] = {}
    version = project.features.version
    for vector in vectors:
        # a replayed vector repeats the first; other definitions' vectors are not this set's
        event_id = vector.event_id
        if event_id in rows or event_id not in labels or vector.feature_version != version:
            continue
        rows[event_id] = (*vector.row, labels[event_id])
    frame = pd.DataFrame.from_records(
        list(rows.values()),
        columns=[
            "event_id",
            "entity_id",
            "event_time",
            *project.features.names,
            project.label.field,
        ],
    )
    frame = frame.sort_values(["event_time", "event_id"], ignore_index=True)
    return TrainingSet(frame, {**ref, "rows": len(frame)})


async def _labels(
    settings: Settings, project: Project, ranges: Sequence[streams.OffsetRange]
) -> dict[str, Any]:
    decoder, field = serde.Decoder([project.label_schema]), project.label.field
    labels: dict[str, Any] = {}
    async for message in streams.read_ranges(settings, list(ranges)):
        record = decoder.decode_as(project.label_schema, message.value)
        labels[record["event_id"]] = record["payload"][field]  # a later label corrects
    return labels
