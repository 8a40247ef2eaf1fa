import json

import pytest
from tideline import schemas
from tideline.compatibility import incompatibility

from ..schema_compat import baseline_revision, check


@pytest.mark.parametrize("name", schemas.names())
def test_schema_is_backward_and_forward_compatible_with_its_baseline(name: str) -> None:
    problem = check(name)
    assert problem is None, f"{name} breaks compatibility with {baseline_revision(name)}: {problem}"


def test_every_committed_schema_has_a_baseline() -> None:
    # In a git checkout, each schema on main was added by some commit.
    assert baseline_revision("tideline.DeadLetter") is not None


OLD = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}


def _with(*fields: dict[str, object]) -> str:
    return json.dumps({**OLD, "fields": [*OLD["fields"], *fields]})


def test_a_new_field_with_a_default_is_compatible() -> None:
    assert (
        incompatibility(_with({"name": "b", "type": "long", "default": 0}), json.dumps(OLD)) is None
    )


def test_a_new_field_without_a_default_breaks() -> None:
    problem = incompatibility(_with({"name": "b", "type": "long"}), json.dumps(OLD))
    assert problem is not None
    assert "b" in problem


def test_a_changed_type_breaks() -> None:
    changed = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    assert incompatibility(json.dumps(changed), json.dumps(OLD)) is not None
