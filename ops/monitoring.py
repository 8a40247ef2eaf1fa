"""Prometheus for the six services: the scrape configuration, made from the service list and
their ports (so it cannot drift from them), beside the shipped alerting rules.

`ops/prometheus/prometheus.yml` is this module's output (`tideline prometheus config`
writes it; a test keeps the two equal); `ops/prometheus/rules.yml` holds the alerts and
`ops/prometheus/rules_test.yml` their unit tests for `promtool test rules`;
`ops/grafana/tideline.json` is the dashboard.
"""

from collections.abc import Mapping
from pathlib import Path

import yaml

import services

HERE = Path(__file__).parent
CONFIG, RULES = HERE / "prometheus" / "prometheus.yml", HERE / "prometheus" / "rules.yml"
RULE_TESTS, DASHBOARD = HERE / "prometheus" / "rules_test.yml", HERE / "grafana" / "tideline.json"
JOB_PREFIX = "tideline-"


def config(
    targets: Mapping[str, str] | None = None, interval: str = "5s", rules: str = "rules.yml"
) -> str:
    """prometheus.yml scraping each service (`targets`: name to host:port; default: the
    services' own metrics ports on localhost), with the alerting rules of `rules`."""
    targets = targets or {n: f"localhost:{services.metrics_port(n)}" for n in services.NAMES}
    document = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rules],
        "scrape_configs": [
            {
                "job_name": f"{JOB_PREFIX}{name}",
                "static_configs": [{"targets": [target]}],
            }
            for name, target in targets.items()
        ],
    }
    header = "# Made by `tideline prometheus config` from the service list: do not edit by hand.\n"
    return header + yaml.safe_dump(document, sort_keys=False)
