"""Prometheus metrics of the monitor service."""

from prometheus_client import Counter, Gauge

RECORDS = Counter("tideline_monitor_records_total", "Records read, by topic.", ["topic"])
DRIFT_EVENTS = Counter("tideline_monitor_drift_events_total", "Drift events published.", ["kind"])
PSI = Gauge("tideline_monitor_psi", "Latest PSI per feature against the champion.", ["feature"])
PERFORMANCE = Gauge(
    "tideline_monitor_performance",
    "Live performance per model version over the performance window.",
    ["version", "metric"],
)
PENDING = Gauge("tideline_monitor_pending_joins", "Predictions and labels waiting for each other.")
CHAMPION = Gauge("tideline_monitor_champion_version", "The champion version being watched.")
