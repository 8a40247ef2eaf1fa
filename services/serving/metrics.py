"""Prometheus metrics of the serving service."""

from prometheus_client import Counter, Gauge, Histogram

SCORED = Counter(
    "tideline_serving_predictions_total",
    "Predictions written, by version and role (champion, or challenger in shadow).",
    ["model", "version", "role"],
)
LATENCY = Histogram(
    "tideline_serving_latency_seconds",
    "From a feature vector's computation to its score.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SECONDS = Histogram(
    "tideline_serving_batch_seconds",
    "Time to score one poll batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
VERSION = Gauge("tideline_serving_model_version", "The version in use, by role.", ["model", "role"])
SWAPS = Counter(
    "tideline_serving_swaps_total",
    "Models swapped in, by version and role.",
    ["model", "version", "role"],
)
LOAD_FAILURES = Counter(
    "tideline_serving_load_failures_total",
    "Versions that could not be loaded (kept the last).",
    ["model", "version"],
)
REQUESTS = Histogram(
    "tideline_serving_request_seconds",
    "Request-time scoring: time spent in the handler.",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1),
)
UNAUTHORIZED = Counter(
    "tideline_serving_unauthorized_total",
    "POST /score requests refused for a missing or wrong bearer token (401).",
)
