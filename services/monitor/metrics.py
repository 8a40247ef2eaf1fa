"""Prometheus metrics of the monitor service: each figure of a model names it and its version."""

from prometheus_client import Counter, Gauge

DRIFT_EVENTS = Counter(
    "tideline_monitor_drift_events_total",
    "Drift events published, by the version they were found on.",
    ["model", "version", "kind"],
)
PSI = Gauge(
    "tideline_monitor_psi",
    "Latest PSI per feature against the champion's reference.",
    ["model", "version", "feature"],
)
PERFORMANCE = Gauge(
    "tideline_monitor_performance",
    "Live performance per model version over the performance window.",
    ["model", "version", "metric"],
)
FLOOR = Gauge(
    "tideline_monitor_performance_floor",
    "The champion's floor on the monitored metric (accuracy; for MAE, a ceiling).",
    ["model", "version", "metric"],
)
LABEL_COVERAGE = Gauge(
    "tideline_monitor_label_coverage",
    "Share of the last interval's scored events whose label has joined (champion).",
    ["model", "version"],
)
LABEL_DELAY = Gauge(
    "tideline_monitor_label_delay_seconds",
    "Median delay from a prediction's event time to its label, over the last interval.",
    ["model", "version"],
)
PENDING = Gauge(
    "tideline_monitor_pending_joins",
    "Predictions and labels waiting for each other (within the label horizon).",
    ["model"],
)
JOINED = Counter(
    "tideline_monitor_joined_total",
    "Predictions joined with their label; coverage is this over it plus the pending and"
    " unlabelled predictions.",
    ["model"],
)
UNLABELLED = Counter(
    "tideline_monitor_unlabelled_total",
    "Predictions let go of unlabelled: no label came within the label horizon.",
    ["model"],
)
ORPHANS = Counter(
    "tideline_monitor_orphan_labels_total",
    "Labels let go of with no prediction: none came within the label horizon.",
    ["model"],
)
LABEL_CORRECTIONS = Counter(
    "tideline_monitor_label_corrections_total",
    "Labels that changed the value of a joined prediction's label: live performance revised.",
    ["model"],
)
CHAMPION = Gauge(
    "tideline_monitor_champion_version", "The champion version being watched.", ["model"]
)
UNREADABLE = Counter(
    "tideline_monitor_unreadable_total",
    "Records read back at start (the last drift events) that could not be decoded, or dated"
    " in the future: skipped.",
    ["topic"],
)
