"""What changed between two feature definitions, in an operator's words."""

import copy

import yaml
from tideline import definitions, project, serde
from tideline.features import FeatureSet

from ..projects import EXAMPLES

RAW = yaml.safe_load(EXAMPLES[0].read_text())["features"]
CARDS = FeatureSet.model_validate(RAW)


def _with(**changes: object) -> FeatureSet:
    raw = copy.deepcopy(RAW) | changes
    return FeatureSet.model_validate(raw)


def test_each_feature_says_what_it_computes() -> None:
    said = {f.name: definitions.what(f) for f in CARDS.all}
    assert said["amount_log"] == "log1p of amount"
    assert said["tx_count_10m"] == "count over sliding 10m"
    assert said["countries_30m"] == "distinct of country over hopping 30m every 10m"


def test_added_removed_and_changed_features_and_settings_are_named() -> None:
    aggregations = [a for a in RAW["aggregations"] if a["name"] != "last_channel"]
    aggregations[0] = aggregations[0] | {"window": {"kind": "sliding", "size": "20m"}}
    aggregations.append(
        {"name": "n_1h", "kind": "count", "window": {"kind": "tumbling", "size": "1h"}}
    )
    new = _with(aggregations=aggregations, allowed_lateness="1m")
    assert sorted(definitions.changes(CARDS, new)) == [
        ("allowed_lateness", "30s → 1m"),
        ("last_channel", "removed: last of channel over sliding 1d"),
        ("n_1h", "added: count over tumbling 1h"),
        ("tx_count_10m", "count over sliding 10m → count over sliding 20m"),
    ]
    assert definitions.changes(CARDS, _with()) == []
    assert _with().version == CARDS.version


def test_a_definition_entry_carries_the_feature_set_its_version_names() -> None:
    cards = project.load(EXAMPLES[0])
    key, value = definitions.entry(cards)
    record = serde.Decoder([definitions.TOPIC.schema()]).decode(value)[1]
    assert key == f"cards:{cards.features.version}".encode()
    assert FeatureSet.model_validate_json(record["definition"]).version == record["version"]
