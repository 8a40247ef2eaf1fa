"""Prometheus metrics of the registry service."""

from prometheus_client import Counter, Gauge, Histogram

CANDIDATES = Counter(
    "tideline_registry_candidates_total",
    "Candidates handled, by outcome: promoted, held (passed while promotion is paused),"
    " challenger, rejected, refused (artifact does not verify), duplicate (a run's"
    " candidate seen again).",
    ["model", "outcome"],
)
COMMANDS = Counter(
    "tideline_registry_commands_total",
    "Operators' commands, by action and outcome.",
    ["model", "action", "outcome"],
)
CHAMPION = Gauge("tideline_registry_champion_version", "The champion's version.", ["model"])
PAUSED = Gauge(
    "tideline_registry_promotion_paused", "1 while automatic promotion is paused.", ["model"]
)
GATE_SECONDS = Histogram(
    "tideline_registry_gate_seconds",
    "Time to judge a candidate: rebuild its holdout, score it and the champion.",
    ["model"],
    buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
)
