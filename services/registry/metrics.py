"""Prometheus metrics of the registry service."""

from prometheus_client import Counter, Gauge, Histogram

CANDIDATES = Counter(
    "tideline_registry_candidates_total",
    "Candidates handled, by outcome: promoted, challenger, rejected, refused (artifact"
    " does not verify), duplicate (a run's candidate seen again).",
    ["outcome"],
)
COMMANDS = Counter(
    "tideline_registry_commands_total",
    "Operators' commands, by action and outcome.",
    ["action", "outcome"],
)
CHAMPION = Gauge("tideline_registry_champion_version", "The champion's version.", ["model"])
GATE_SECONDS = Histogram(
    "tideline_registry_gate_seconds",
    "Time to judge a candidate: rebuild its holdout, score it and the champion.",
    buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
