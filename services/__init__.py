"""Tideline services: one package each, declared in its `main.py` as `SERVICE` and started
with `tideline run <service>`. NAMES are the loop's six; `alerts`, which pushes what they
decide to people, runs where someone has configured a webhook."""

import importlib
from typing import Any

from tideline.service import Service

NAMES = ("ingest", "featurestore", "serving", "monitor", "trainer", "registry")
OPTIONAL = ("alerts",)


def declared(name: str) -> Service[Any]:
    """The declaration of service `name` (one of NAMES)."""
    if name not in NAMES + OPTIONAL:
        raise KeyError(f"unknown service {name!r}; one of {', '.join(NAMES + OPTIONAL)}")
    found: Service[Any] = importlib.import_module(f"services.{name}.main").SERVICE
    return found


def metrics_port(name: str) -> int:
    """The port service `name` serves /metrics on unless told otherwise."""
    port: int = declared(name).settings.model_fields["metrics_port"].default
    return port
