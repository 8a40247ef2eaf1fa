"""Prometheus metrics of the alerts service."""

from prometheus_client import Counter

SENT = Counter("tideline_alerts_sent_total", "Alerts a webhook took, by kind.", ["model", "kind"])
RETRIES = Counter(
    "tideline_alerts_retries_total", "Calls that failed and were tried again.", ["kind"]
)
FAILED = Counter(
    "tideline_alerts_failed_total",
    "Alerts no call delivered (written to the dead-letter topic).",
    ["kind"],
)
REPEATS = Counter(
    "tideline_alerts_repeats_total", "Records seen again whose alert was already sent."
)
