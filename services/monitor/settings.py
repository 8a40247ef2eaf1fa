"""The monitor's configuration, from TIDELINE_MONITOR_* environment variables."""

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tideline.durations import Duration
from tideline.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_MONITOR_", extra="forbid")

    metrics_port: int = 9105
    model_name: str | None = Field(default=None, description="Default: the project's name.")
    interval: Duration = Field(
        default=timedelta(seconds=10), description="How often monitor.metrics is published."
    )
    drift_window: int = Field(
        default=2_000, description="Data and prediction drift: the last N vectors and scores."
    )
    performance_window: int = Field(
        default=1_000, description="Live performance: the last N labelled predictions."
    )
    min_samples: int = Field(
        default=500, description="Fewer values (or labels) in a window: no verdict on it."
    )
    label_horizon: Duration = Field(
        default=timedelta(days=30),
        description="How much event time a prediction waits for its label, and a label for its"
        " prediction: labels weeks late still join. Each waiting one is held in memory and"
        " on monitor.joins until then (about 200 bytes a prediction).",
    )
    event_time_bucket: Duration = Field(
        default=timedelta(minutes=1),
        description="Live performance by event time: the width of a bucket of prediction times.",
    )
    psi_threshold: float = Field(default=0.25, description="Data drift above this PSI...")
    psi_clear: float = Field(default=0.1, description="...and over again below this one.")
    drift_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Data and prediction drift: how often a judgement of a stationary stream"
        " may find a shift by chance, shared by the features. A shift is drift when the"
        " chi-squared test says it is this unlikely and its PSI is above PSI_THRESHOLD.",
    )
    check_labels: int = Field(
        default=100,
        gt=0,
        description="The performance floor is judged every N labelled predictions.",
    )
    check_vectors: int = Field(
        default=1_000, gt=0, description="Data and prediction drift are judged every N vectors."
    )
    confirm: int = Field(
        default=3,
        description="Data drift and the performance floor: consecutive judgements that must agree.",
    )
    floor: float | None = Field(
        default=None, description="Live accuracy below this (MAE above it) is drift."
    )
    floor_margin: float = Field(
        default=0.1,
        description="Live accuracy this far below the champion's holdout figure (MAE above) is"
        " drift too.",
    )
    adwin_delta: float = 0.002
    page_hinkley_threshold: float = 50.0
    cooldown_labels: int = Field(
        default=5_000,
        ge=0,
        description="After a drift event, none for the same champion until this many of its"
        " predictions have been labelled; a new champion re-arms at once. Longer than a"
        " retrain takes (the trainer's DRIFT_LABELS and the label delay), or the drift is"
        " reported again while it is being retrained on.",
    )
    cooldown: Duration | None = Field(
        default=None,
        description="...or until this long has passed, if set: whichever comes first.",
    )
    drift_kinds: list[str] = Field(
        default=["concept", "performance"],
        description="Kinds published as monitor.drift (and so retrained on); data and prediction"
        " drift are in monitor.metrics either way. JSON, e.g."
        ' ["concept", "performance", "data"].',
    )
