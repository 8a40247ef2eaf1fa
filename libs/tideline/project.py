"""A user's project definition: event type, entity key, label, data-quality rules, features.

Declared once, in a YAML file or a Python module, and loaded by every service; nothing
about a particular dataset lives in Tideline's code. The Avro schemas of the project's
events, labels and feature vectors are derived from it.
"""

import importlib.util
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tideline import schemas
from tideline.errors import ProjectError
from tideline.features import FeatureSet
from tideline.rules import Rule

FieldType = Literal["string", "int", "long", "float", "double", "boolean"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventSpec(Strict):
    name: str = Field(description="Record name of the event, e.g. CardTransaction.")
    fields: dict[str, FieldType]
    optional: frozenset[str] = Field(
        default=frozenset(), description="Fields that may be missing or null."
    )
    entity_key: str = Field(description="The field that names the entity, e.g. card_id.")

    @model_validator(mode="after")
    def _known_fields(self) -> "EventSpec":
        unknown = (self.optional | {self.entity_key}) - set(self.fields)
        if unknown:
            raise ValueError(f"not among the event's fields: {sorted(unknown)}")
        if self.entity_key in self.optional:
            raise ValueError("the entity key cannot be optional")
        for reserved in ("event_id", "event_time"):
            if reserved in self.fields:
                raise ValueError(f"{reserved} is part of every event's envelope; do not declare it")
        return self


class LabelSpec(Strict):
    field: str = Field(description="Name of the label, e.g. is_fraud.")
    type: FieldType
    task: Literal["classification", "regression"]


class Project(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    event: EventSpec
    label: LabelSpec
    rules: tuple[Rule, ...] = ()
    features: FeatureSet

    @model_validator(mode="after")
    def _rules_name_fields(self) -> "Project":
        for rule in self.rules:
            field = getattr(rule, "field", None)
            if field is not None and field not in self.event.fields:
                raise ValueError(f"rule {rule.name}: no event field {field!r}")
        self.features.check_fields(self.event.fields)
        return self

    @property
    def namespace(self) -> str:
        return f"tideline.projects.{self.name}"

    def _avro_fields(
        self, fields: dict[str, str], optional: frozenset[str]
    ) -> list[dict[str, Any]]:
        return [
            {"name": n, "type": ["null", t], "default": None}
            if n in optional
            else {"name": n, "type": t}
            for n, t in fields.items()
        ]

    @cached_property
    def event_schema(self) -> schemas.Schema:
        fields = self._avro_fields(dict(self.event.fields), self.event.optional)
        return schemas.derive("tideline.Event", fields, self.namespace)

    @cached_property
    def label_schema(self) -> schemas.Schema:
        fields = self._avro_fields({self.label.field: self.label.type}, frozenset())
        return schemas.derive("tideline.Label", fields, self.namespace)

    @cached_property
    def feature_schema(self) -> schemas.Schema:
        return schemas.derive(
            "tideline.FeatureVector", self.features.avro_fields(self.event.fields), self.namespace
        )

    @cached_property
    def derived_schemas(self) -> dict[str, schemas.Schema]:
        """This project's schema for each envelope record: what its topics carry."""
        return {
            "tideline.Event": self.event_schema,
            "tideline.Label": self.label_schema,
            "tideline.FeatureVector": self.feature_schema,
        }


def load(path: str | Path) -> Project:
    """A project from a YAML file, or from a Python module that defines `project`."""
    path = Path(path)
    try:
        if path.suffix == ".py":
            spec = importlib.util.spec_from_file_location(f"tideline_project_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise ProjectError(f"{path}: not a Python module")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            project = getattr(module, "project", None)
            if not isinstance(project, Project):
                raise ProjectError(f"{path}: defines no `project = Project(...)`")
            return project
        return Project.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise ProjectError(f"cannot read project {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise ProjectError(f"{path}: {_short(exc)}") from exc


def _short(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'project'}: {re.sub(r'^Value error, ', '', e['msg'])}"
        for e in exc.errors()
    )
