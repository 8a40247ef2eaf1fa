"""The shipped Prometheus configuration is the one the service list makes, and the Grafana
dashboard is one Grafana's own model reads whole."""

import json
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

import services
from ops import monitoring


def test_the_shipped_scrape_config_is_the_generated_one() -> None:
    assert monitoring.CONFIG.read_text() == monitoring.config()
    for name in services.NAMES:
        assert f"localhost:{services.metrics_port(name)}" in monitoring.CONFIG.read_text()


def _lost(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where `theirs` (Grafana's model, encoded back) lacks or changed what `ours` has."""
    if isinstance(ours, dict):
        return [
            p
            for key, value in ours.items()
            for p in (
                [f"{path}/{key}"]
                if key not in theirs
                else _lost(value, theirs[key], f"{path}/{key}")
            )
        ]
    if isinstance(ours, list):
        if len(ours) != len(theirs):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for p in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [path]


def test_grafanas_dashboard_model_reads_every_field_of_the_dashboard() -> None:
    register_default_plugins()  # the panel types' own options and field config
    ours = json.loads(monitoring.DASHBOARD.read_text())
    model = Dashboard.from_json(ours)
    panel = model.panels[1] if model.panels else None
    assert isinstance(panel, Panel)
    assert type(panel.options).__module__.endswith("timeseries")  # typed, not a dict
    assert _lost(ours, json.loads(json.dumps(model, cls=JSONEncoder))) == []


def test_the_dashboards_panels_tile_the_grid_and_draw_with_units() -> None:
    panels = json.loads(monitoring.DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        here = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not here & cells, f"{panel['title']} overlaps another panel"
        cells |= here
        if panel["type"] != "row":
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]
