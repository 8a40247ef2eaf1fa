"""Window math with known answers: boundaries, out-of-order events, lateness, replays."""

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from tideline import project, schemas, serde
from tideline.durations import epoch_millis
from tideline.features import AGGREGATIONS, TRANSFORMS, Aggregation, FeatureSet, Transform, Window
from tideline.windows import (
    STATE_BYTES,
    Computer,
    EntityState,
    Event,
    LateEventError,
    OversizedEventError,
    replay,
    window_start,
)

from ops import synthetic

from ..projects import EXAMPLES

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday
SLIDING_10M = Window(kind="sliding", size="10m")
HOUR = Window(kind="sliding", size="1h")

FEATURES = FeatureSet(
    allowed_lateness="30s",
    transforms=(
        Transform(name="log_amount", kind="log1p", field="amount"),
        Transform(name="hour", kind="hour_of_day"),
        Transform(name="weekday", kind="day_of_week"),
        Transform(name="amount", kind="identity", field="amount"),
    ),
    aggregations=(
        Aggregation(name="n_10m", kind="count", window=SLIDING_10M),
        Aggregation(
            name="sum_hour", kind="sum", field="amount", window=Window(kind="tumbling", size="1h")
        ),
        Aggregation(
            name="mean_30m",
            kind="mean",
            field="amount",
            window=Window(kind="hopping", size="30m", step="10m"),
        ),
        Aggregation(name="min_1h", kind="min", field="amount", window=HOUR),
        Aggregation(name="max_1h", kind="max", field="amount", window=HOUR),
        Aggregation(name="last_shop", kind="last", field="shop", window=HOUR),
        Aggregation(name="shops_1h", kind="distinct", field="shop", window=HOUR),
    ),
)


def ms(at: datetime) -> int:
    return epoch_millis(at)


class Entity:
    """One entity's stream, fed event by event with increasing offsets."""

    def __init__(self, features: FeatureSet = FEATURES) -> None:
        self.computer = Computer(features)
        self.state = EntityState()
        self.offset = 0

    def at(
        self, minutes: float, amount: float | None = 1.0, shop: str | None = "a"
    ) -> dict[str, Any]:
        self.offset += 1
        t = ms(T0 + timedelta(minutes=minutes))
        return self.computer.apply(self.state, t, self.offset, {"amount": amount, "shop": shop})


def test_window_starts() -> None:
    t = ms(T0 + timedelta(minutes=25))
    assert window_start(SLIDING_10M, t) == ms(T0 + timedelta(minutes=15)) + 1
    assert window_start(Window(kind="tumbling", size="1h"), t) == ms(T0)
    # hopping windows start every 10m; the earliest that holds 12:25 is [12:00, 12:30)
    assert window_start(Window(kind="hopping", size="30m", step="10m"), t) == ms(T0)
    # at 12:30 the window [12:00, 12:30) has closed: [12:10, 12:40)
    at_half = ms(T0 + timedelta(minutes=30))
    assert window_start(Window(kind="hopping", size="30m", step="10m"), at_half) == ms(
        T0 + timedelta(minutes=10)
    )
    # a size that is no multiple of the step: windows [12:00, 12:25) and [12:10, 12:35)
    odd = Window(kind="hopping", size="25m", step="10m")
    assert window_start(odd, t) == ms(T0 + timedelta(minutes=10))


def test_transforms() -> None:
    values = Entity().at(30, amount=math.e - 1)
    assert values["log_amount"] == pytest.approx(1.0)
    assert (values["hour"], values["weekday"], values["amount"]) == (12, 1, math.e - 1)
    # log1p is undefined at -1: no value rather than an error
    assert Entity().at(0, amount=-1.0)["log_amount"] is None


def test_sliding_window_excludes_its_lower_bound() -> None:
    entity = Entity()
    assert entity.at(0)["n_10m"] == 1
    assert entity.at(10 - 1 / 60000)["n_10m"] == 2  # 12:09:59.999 still sees 12:00
    assert entity.at(10)["n_10m"] == 2  # 12:10 sees (12:00, 12:10]: not 12:00


def test_tumbling_window_restarts_at_the_bucket_boundary() -> None:
    entity = Entity()
    entity.at(0, amount=5)
    assert entity.at(60 - 1 / 60000, amount=7)["sum_hour"] == 12
    assert entity.at(60, amount=1)["sum_hour"] == 1


def test_hopping_mean_aggregates_the_earliest_window_holding_the_event() -> None:
    entity = Entity()
    entity.at(5, amount=10)  # window [12:00, 12:30)
    entity.at(15, amount=20)
    assert entity.at(25, amount=30)["mean_30m"] == 20  # [12:00, 12:30): 10, 20, 30
    assert entity.at(30, amount=40)["mean_30m"] == 30  # [12:10, 12:40): 20, 30, 40


def test_min_max_last_distinct_over_the_hour() -> None:
    entity = Entity()
    entity.at(0, amount=3, shop="a")
    entity.at(10, amount=9, shop="b")
    values = entity.at(20, amount=5, shop="a")
    assert (values["min_1h"], values["max_1h"], values["last_shop"], values["shops_1h"]) == (
        3,
        9,
        "a",
        2,
    )
    values = entity.at(61, amount=6, shop="c")  # 12:00 has left the hour
    assert (values["min_1h"], values["max_1h"], values["shops_1h"]) == (5, 9, 3)


def test_missing_values_are_skipped_not_counted_as_zero() -> None:
    entity = Entity()
    entity.at(0, amount=4, shop=None)
    values = entity.at(1, amount=None, shop=None)
    assert values["n_10m"] == 2  # a count counts events
    assert (values["min_1h"], values["shops_1h"], values["last_shop"]) == (4, 0, None)
    assert values["sum_hour"] == 4
    assert values["log_amount"] is None


def test_out_of_order_event_within_lateness_counts_but_sees_no_future() -> None:
    entity = Entity()
    entity.at(0, amount=1)
    entity.at(30, amount=100)  # watermark 12:30
    late = entity.at(29.75, amount=10)  # 15 s behind: within 30 s of lateness
    assert late["max_1h"] == 10  # the 12:30 event is in its future
    assert late["n_10m"] == 1
    after = entity.at(31, amount=2)
    assert after["n_10m"] == 3
    assert after["max_1h"] == 100


def test_event_beyond_lateness_is_refused_and_changes_nothing() -> None:
    entity = Entity()
    entity.at(30, amount=100)
    rows = list(entity.state.rows)
    with pytest.raises(LateEventError):
        entity.at(29, amount=10)  # a minute behind, lateness is 30 s
    assert entity.state.rows == rows
    assert entity.at(31)["n_10m"] == 2


def test_replayed_event_gets_the_same_vector_and_changes_nothing() -> None:
    entity = Entity()
    entity.at(0, amount=1)
    first = entity.at(1, amount=2)
    entity.at(2, amount=3)
    held = EntityState.from_record(entity.state.to_record())
    t = ms(T0 + timedelta(minutes=1))
    again = entity.computer.apply(entity.state, t, 2, {"amount": 2, "shop": "a"})
    assert again == first
    assert entity.state == held


def test_replayed_late_event_is_refused_again() -> None:
    entity = Entity()
    entity.at(30)
    with pytest.raises(LateEventError):
        entity.at(20)
    with pytest.raises(LateEventError):
        entity.computer.apply(entity.state, ms(T0 + timedelta(minutes=20)), 2, {})


def test_state_keeps_only_what_a_future_window_needs() -> None:
    entity = Entity()
    for minute in range(0, 180, 10):
        entity.at(minute)
    # the longest window is an hour, lateness 30 s: nothing older than 1h30s is held
    oldest = ms(T0 + timedelta(minutes=170)) - 3_630_000
    assert min(row[0] for row in entity.state.rows) >= oldest
    assert len(entity.state.rows) == 7


def test_state_round_trips_through_its_avro_record() -> None:
    entity = Entity()
    entity.at(0, shop=None)
    entity.at(1, amount=2.5, shop="x")
    schema = schemas.load("tideline.WindowState")
    record = serde.Decoder([schema]).decode_as(
        schema, serde.encode(schema, entity.state.to_record())
    )
    assert EntityState.from_record(record) == entity.state


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_offline_replay_equals_event_by_event_application(path: Any) -> None:
    definition = project.load(path)
    generator = synthetic.Generator(definition, entities=5, seed=3)
    events = [
        Event(r["entity_id"], ms(r["event_time"]), offset, r["payload"])
        for offset, r in enumerate(
            generator.stream(T0, 400, timedelta(seconds=20), jitter=timedelta(minutes=3))
        )
    ]
    computer, states = Computer(definition.features), dict[str, EntityState]()
    expected: list[dict[str, Any] | None] = []
    for event in events:
        state = states.setdefault(event.entity, EntityState())
        try:
            expected.append(computer.apply(state, event.t, event.offset, event.payload))
        except LateEventError:
            expected.append(None)
    assert [values for _, values in replay(definition.features, events)] == expected
    assert any(v is None for v in expected)
    assert sum(v is not None for v in expected) > 250


EVENT_FIELDS = {"amount": "double", "shop": "string"}


def _feature_record(features: FeatureSet) -> Any:
    return fastavro.parse_schema(
        {"type": "record", "name": "Values", "fields": features.avro_fields(EVENT_FIELDS)}
    )


@pytest.mark.parametrize("kind", sorted(AGGREGATIONS))
def test_every_aggregation_kind_keeps_the_table_s_contract(kind: str) -> None:
    spec = AGGREGATIONS[kind]
    field = "amount" if spec.numeric or kind != "last" else "shop"
    declared = FeatureSet(
        aggregations=(
            Aggregation(
                name="f", kind=kind, field=field if spec.reads_field else None, window=HOUR
            ),
        )
    )
    declared.check_fields(EVENT_FIELDS)
    if spec.numeric:  # a numeric kind refuses a text field
        with pytest.raises(ValueError, match="numeric"):
            FeatureSet(
                aggregations=(Aggregation(name="f", kind=kind, field="shop", window=HOUR),)
            ).check_fields(EVENT_FIELDS)
    entity = Entity(declared)
    values = [
        entity.at(m, amount=a, shop=s)
        for m, a, s in ((0, 2.0, "a"), (1, None, None), (2, 5.0, "b"))
    ]
    # its values fit the schema derived from the table's output type, and so does its empty value
    record = _feature_record(declared)
    for found in [*values, {"f": spec.empty()}]:
        assert fastavro.validate(found, record, raise_errors=True)
    if spec.reads_field:  # a missing value is skipped, not counted
        assert values[1]["f"] == values[0]["f"]
    # the window's reduction is the table's, over what the window holds
    rows = [
        (ms(T0), 1, 2.0, "a"),
        (ms(T0) + 60_000, 2, None, None),
        (ms(T0) + 120_000, 3, 5.0, "b"),
    ]
    column = 2 if field == "amount" else 3
    assert values[2]["f"] == spec.reduce(rows, column)


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
def test_every_transform_kind_keeps_the_table_s_contract(kind: str) -> None:
    spec = TRANSFORMS[kind]
    declared = FeatureSet(
        transforms=(Transform(name="f", kind=kind, field="amount" if spec.reads_field else None),)
    )
    declared.check_fields(EVENT_FIELDS)
    values = [Entity(declared).at(30, amount=a) for a in (3.0, None)]
    record = _feature_record(declared)
    for found in values:
        assert fastavro.validate(found, record, raise_errors=True)


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown aggregation 'median'; one of count"):
        Aggregation(name="f", kind="median", field="amount", window=HOUR)
    with pytest.raises(ValueError, match="unknown transform 'sqrt'"):
        Transform(name="f", kind="sqrt", field="amount")


def test_an_entity_s_state_stays_under_its_byte_bound_new_events_refused() -> None:
    bound = 2_000
    entity = Entity()
    entity.computer = Computer(FEATURES, state_bytes=bound)
    refused = 0
    for minute in range(40):  # all inside the hour: only the bound keeps rows out
        try:
            entity.at(minute * 0.5, shop="s" * 90)
        except OversizedEventError:
            refused += 1
        held = entity.state.to_record()["rows"]
        assert entity.state.size == len(held.encode()) <= bound
    assert refused > 0
    # the first rows are kept, the later refused, and the windows count what is held
    offsets = [row[1] for row in entity.state.rows]
    assert offsets == list(range(1, len(offsets) + 1))
    # once the old rows leave the windows (an hour and the lateness later), it takes events
    assert entity.at(70, shop="s")["n_10m"] == 1


def test_an_event_too_large_for_any_state_changes_nothing() -> None:
    entity = Entity()
    entity.computer = Computer(FEATURES, state_bytes=500)
    entity.at(0, shop="small")
    before = list(entity.state.rows)
    with pytest.raises(OversizedEventError, match="500"):
        entity.at(1, shop="x" * 600)
    assert entity.state.rows == before
    assert entity.at(2)["n_10m"] == 2  # and the entity carries on


def test_a_bounded_stream_its_replays_and_its_offline_replay_agree() -> None:
    # 3 MB of rows inside the hour: over the real bound, which replay uses too
    events = [
        Event("e", ms(T0 + timedelta(seconds=i)), i, {"amount": 1.0, "shop": "y" * 10_000})
        for i in range(300)
    ]
    computer, state = Computer(FEATURES), EntityState()
    online: list[dict[str, Any] | None] = []
    for e in events:
        try:
            online.append(computer.apply(state, e.t, e.offset, e.payload))
        except LateEventError:
            online.append(None)
    assert [values for _, values in replay(FEATURES, events)] == online
    assert 0 < sum(v is None for v in online) < len(online)
    assert len(state.to_record()["rows"]) <= STATE_BYTES
    # a replay after a crash recomputes every vector it emitted, exactly
    for e, values in zip(events, online, strict=True):
        if values is not None:
            assert computer.apply(state, e.t, e.offset, e.payload) == values
