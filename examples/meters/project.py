"""Smart electricity meters: how much will a household draw in the next hour?

The same kind of definition as examples/cards/project.yaml, written in Python.
"""

from tideline.features import Aggregation, FeatureSet, Transform, Window
from tideline.project import EventSpec, LabelSpec, Project
from tideline.rules import AllowedRule, EventTimeRule, RangeRule

quarter = Window(kind="tumbling", size="15m")
hour = Window(kind="sliding", size="1h")

project = Project(
    name="meters",
    event=EventSpec(
        name="MeterReading",
        entity_key="meter_id",
        fields={
            "meter_id": "string",
            "kwh": "double",
            "voltage": "double",
            "tariff": "string",
            "outdoor_temp_c": "float",
        },
        optional=frozenset({"outdoor_temp_c"}),
    ),
    label=LabelSpec(field="next_hour_kwh", type="double", task="regression"),
    rules=(
        RangeRule(field="kwh", min=0, max=100),
        RangeRule(field="voltage", min=180, max=260),
        AllowedRule(field="tariff", values=frozenset({"peak", "offpeak", "flat"})),
        EventTimeRule(max_future="1m", max_past="7d"),
    ),
    features=FeatureSet(
        allowed_lateness="2m",
        ttl="6h",
        transforms=(
            Transform(name="hour", kind="hour_of_day"),
            Transform(name="weekday", kind="day_of_week"),
            Transform(name="temp", kind="identity", field="outdoor_temp_c"),
        ),
        aggregations=(
            Aggregation(name="kwh_sum_15m", kind="sum", field="kwh", window=quarter),
            Aggregation(name="kwh_mean_1h", kind="mean", field="kwh", window=hour),
            Aggregation(name="kwh_min_1h", kind="min", field="kwh", window=hour),
            Aggregation(
                name="kwh_max_2h",
                kind="max",
                field="kwh",
                window=Window(kind="hopping", size="2h", step="30m"),
            ),
            Aggregation(name="readings_1h", kind="count", window=hour),
            Aggregation(name="last_tariff", kind="last", field="tariff", window=hour),
        ),
    ),
)
