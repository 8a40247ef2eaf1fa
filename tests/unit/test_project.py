from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tideline import project, serde
from tideline.errors import ProjectError
from tideline.rules import (
    AllowedRule,
    EventTimeRule,
    NotEmptyRule,
    RangeRule,
    Rule,
    first_violation,
)

from ..examples import example
from ..projects import EXAMPLES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(params=EXAMPLES, ids=lambda p: p.parent.name)
def proj(request: pytest.FixtureRequest) -> project.Project:
    return project.load(request.param)


def test_example_projects_derive_their_own_schemas(proj: project.Project) -> None:
    for schema in (proj.event_schema, proj.label_schema, proj.feature_schema):
        assert schema.name.startswith(f"tideline.projects.{proj.name}.")
        record = example(schema.parsed)
        assert serde.Decoder([schema]).decode(serde.encode(schema, record))[1] == record
    payload = proj.event_schema.parsed["fields"][-1]["type"]
    assert [f["name"] for f in payload["fields"]] == list(proj.event.fields)
    values = proj.feature_schema.parsed["fields"][-1]["type"]
    assert [f["name"] for f in values["fields"]] == proj.features.names


def test_feature_version_is_a_hash_of_the_declaration(proj: project.Project) -> None:
    assert len(proj.features.version) == 16
    changed = proj.features.model_copy(update={"ttl": timedelta(hours=99)})
    assert changed.version != proj.features.version
    assert project.load(EXAMPLES[0]).features.version == project.load(EXAMPLES[0]).features.version


def test_the_two_examples_differ() -> None:
    cards, meters = (project.load(p) for p in EXAMPLES)
    assert cards.label.task == "classification"
    assert meters.label.task == "regression"
    assert cards.event_schema.fingerprint != meters.event_schema.fingerprint


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\n", "event: Field required"),
        ("name: Bad-Name\n", "name: String should match"),
        ("{{{", "not valid YAML"),
    ],
)
def test_bad_projects_are_clear_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ProjectError, match=message):
        project.load(path)


def test_a_rule_on_an_unknown_field_is_refused(tmp_path: Path) -> None:
    text = EXAMPLES[0].read_text().replace("field: amount, min: 0", "field: amont, min: 0")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ProjectError, match="amont"):
        project.load(tmp_path / "p.yaml")


def test_a_mean_of_a_string_is_refused(tmp_path: Path) -> None:
    text = (
        EXAMPLES[0].read_text().replace("kind: mean, field: amount", "kind: mean, field: country")
    )
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ProjectError, match="numeric"):
        project.load(tmp_path / "p.yaml")


def test_a_hopping_window_needs_a_step(tmp_path: Path) -> None:
    text = EXAMPLES[0].read_text().replace("size: 30m, step: 10m", "size: 30m")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ProjectError, match="step"):
        project.load(tmp_path / "p.yaml")


def test_missing_project_file() -> None:
    with pytest.raises(ProjectError, match="cannot read"):
        project.load("/nonexistent/project.yaml")


@pytest.mark.parametrize(
    ("payload", "event_time", "violated"),
    [
        ({"amount": 10.0, "channel": "web", "card_id": "c1"}, NOW, None),
        ({"amount": -1.0, "channel": "web", "card_id": "c1"}, NOW, "range:amount"),
        ({"amount": 1e6, "channel": "web", "card_id": "c1"}, NOW, "range:amount"),
        ({"amount": 1.0, "channel": "fax", "card_id": "c1"}, NOW, "allowed:channel"),
        ({"amount": 1.0, "channel": "pos", "card_id": "  "}, NOW, "not_empty:card_id"),
        ({"amount": 1.0, "channel": "pos", "card_id": "c"}, NOW + timedelta(hours=1), "event_time"),
        ({"amount": 1.0, "channel": "pos", "card_id": "c"}, NOW - timedelta(days=60), "event_time"),
        ({"amount": None, "channel": None, "card_id": "c"}, NOW, None),
    ],
)
def test_rules(payload: dict[str, object], event_time: datetime, violated: str | None) -> None:
    rules: list[Rule] = [
        RangeRule(field="amount", min=0, max=50_000),
        AllowedRule(field="channel", values=frozenset({"pos", "web", "app"})),
        NotEmptyRule(field="card_id"),
        EventTimeRule(max_future="5m", max_past="30d"),
    ]
    found = first_violation(rules, payload, event_time, NOW)
    assert (found[0] if found else None) == violated


def test_a_rule_can_be_named() -> None:
    rule = RangeRule.model_validate({"kind": "range", "field": "amount", "max": 5, "name": "small"})
    assert rule.name == "small"


@pytest.mark.parametrize("text", ["30s", "10m", "1.5h", "30d", "250ms", "365d"])
def test_durations_survive_a_round_trip(text: str) -> None:
    from tideline import durations

    value = durations.parse(text)
    assert durations.parse(durations.render(value)) == value
