"""Point-in-time training sets: `features` joined with `labels` by event id.

Each vector on `features` was computed as of its event, so the join is point-in-time
correct by construction: no value in a row saw anything after its event. A training
set is named by the offset ranges it was read from, the schema fingerprints and the
feature definitions' version (a DatasetRef record); `rebuild` re-reads exactly those
offsets and gives the identical DataFrame.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from tideline import serde, streams
from tideline.durations import epoch_millis
from tideline.errors import TidelineError
from tideline.project import Project
from tideline.settings import Settings


class DatasetError(TidelineError):
    """A dataset reference that this project cannot rebuild."""


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # event_id, entity_id, event_time, the features, the label
    ref: dict[str, Any]  # a tideline.DatasetRef record


def _fingerprints(settings: Settings, project: Project) -> dict[str, str]:
    return {
        settings.topic("features"): project.feature_schema.fingerprint.hex(),
        settings.topic("labels"): project.label_schema.fingerprint.hex(),
    }


async def build(
    settings: Settings,
    project: Project,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TrainingSet:
    """Vectors of events in [since, until) with every label that has arrived for them so far."""
    since_ms = None if since is None else epoch_millis(since)
    until_ms = None if until is None else epoch_millis(until)
    ranges = await streams.offset_ranges(settings, settings.topic("features"), since_ms, until_ms)
    # labels arrive after their events: read them from `since` up to now
    ranges += await streams.offset_ranges(settings, settings.topic("labels"), since_ms)
    return await rebuild(
        settings,
        project,
        {
            "ranges": [vars(r) for r in ranges],
            "schema_fingerprints": _fingerprints(settings, project),
            "feature_version": project.features.version,
            "rows": -1,
        },
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
    ranges = [streams.OffsetRange(**r) for r in ref["ranges"]]
    labels = await _labels(
        settings, project, [r for r in ranges if r.topic == settings.topic("labels")]
    )
    rows = await _rows(
        settings, project, [r for r in ranges if r.topic == settings.topic("features")], labels
    )
    frame = pd.DataFrame.from_records(
        rows,
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


async def _rows(
    settings: Settings,
    project: Project,
    ranges: Sequence[streams.OffsetRange],
    labels: dict[str, Any],
) -> list[tuple[Any, ...]]:
    decoder, version, names = (
        serde.Decoder([project.feature_schema]),
        project.features.version,
        project.features.names,
    )
    rows: dict[str, tuple[Any, ...]] = {}
    async for message in streams.read_ranges(settings, list(ranges)):
        vector = decoder.decode_as(project.feature_schema, message.value)
        event_id = vector["event_id"]
        # a replayed vector repeats the first; other definitions' vectors are not this set's
        if event_id in rows or event_id not in labels or vector["feature_version"] != version:
            continue
        values = vector["values"]
        rows[event_id] = (
            event_id,
            vector["entity_id"],
            vector["event_time"],
            *(values[n] for n in names),
            labels[event_id],
        )
    return list(rows.values())
