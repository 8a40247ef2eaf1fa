"""Prometheus metrics of the feature store service."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("tideline_featurestore_events_total", "Events consumed.")
VECTORS = Counter("tideline_featurestore_vectors_total", "Feature vectors written to `features`.")
REPLAYS = Counter(
    "tideline_featurestore_replays_total",
    "Events seen again after a restart; their state was already counted.",
)
ONLINE_WRITES = Counter(
    "tideline_featurestore_online_writes_total", "Entity vectors written to Redis."
)
ONLINE_ERRORS = Counter(
    "tideline_featurestore_online_errors_total", "Failed Redis writes (retried)."
)
STATE_UNREADABLE = Counter(
    "tideline_featurestore_state_unreadable_total",
    "Records of the state changelog skipped at restore: not a window state.",
)
STATE_REBUILDS = Counter(
    "tideline_featurestore_state_rebuilds_total",
    "Times partitions held window state of another feature set and were rebuilt from `events`.",
)
STATE_REBUILD_REMAINING = Gauge(
    "tideline_featurestore_state_rebuild_remaining_events",
    "Events of `events` a window-state rebuild has still to replay (0: none under way).",
)
REBUILDS = Counter(
    "tideline_featurestore_online_rebuilds_total",
    "Times Redis was found to have lost writes and partitions were rewritten from `features`.",
)
REBUILT = Counter(
    "tideline_featurestore_online_rebuilt_total", "Entity vectors rewritten by rebuilds."
)
REBUILD_SKIPPED = Counter(
    "tideline_featurestore_online_rebuild_skipped_total",
    "Records of `features` a rebuild could not use (not a vector of this feature set, or"
    " an offset header it cannot read): skipped.",
)
BATCH_SECONDS = Histogram(
    "tideline_featurestore_batch_seconds",
    "Time to compute, send and materialize one batch.",
    buckets=(1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0),
)
