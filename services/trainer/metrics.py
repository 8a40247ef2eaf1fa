"""Prometheus metrics of the trainer service."""

from prometheus_client import Counter, Gauge, Histogram

TRIGGERS = Counter(
    "tideline_trainer_triggers_total",
    "Triggers received, by kind and what became of them (start, queued, joined, ignored).",
    ["model", "kind", "outcome"],
)
RUNS = Counter(
    "tideline_trainer_runs_total", "Training runs ended, by outcome.", ["model", "outcome"]
)
PHASE_SECONDS = Histogram(
    "tideline_trainer_phase_seconds",
    "Time per phase of a run: wait (for labels; a drift run's read), read, train, evaluate, publish.",
    ["model", "phase"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
RUNNING = Gauge("tideline_trainer_running", "1 while a run is in progress.", ["model"])
LABELS_AWAITED = Gauge(
    "tideline_trainer_labels_awaited",
    "Post-drift labelled events a waiting run still needs.",
    ["model"],
)
FIT_THREADS = Gauge(
    "tideline_trainer_fit_openmp_threads",
    "OpenMP threads the last fit's thread could start: TIDELINE_NATIVE_THREADS, if it holds.",
    ["model"],
)
