"""Prometheus metrics of the ingest service."""

from prometheus_client import Counter, Histogram

RECORDS_IN = Counter("tideline_ingest_records_in_total", "Records consumed.", ["topic"])
RECORDS_OUT = Counter("tideline_ingest_records_out_total", "Canonical records written.", ["topic"])
DUPLICATES = Counter("tideline_ingest_duplicates_total", "Repeated event ids dropped.", ["topic"])
LABEL_CORRECTIONS = Counter(
    "tideline_ingest_label_corrections_total",
    "Labels written with another value than an earlier label of the same event.",
)
LATENCY = Histogram(
    "tideline_ingest_processing_seconds",
    "Time to validate and encode one record.",
    buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2),
)
