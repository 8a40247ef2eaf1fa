"""The trainer's configuration, from TIDELINE_TRAINER_* environment variables."""

from datetime import timedelta
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tideline.durations import Duration
from tideline.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_TRAINER_", extra="forbid")

    metrics_port: int = 9104
    model_name: str | None = Field(default=None, description="Default: the project's name.")
    family: str = Field(default="gradient_boosting", description="See tideline.learners.")
    params: dict[str, str] = Field(default={}, description='JSON, e.g. {"max_iter": "200"}.')
    window_rows: int | None = Field(
        default=50_000, description="Train on the last N labelled events (holdout included)."
    )
    window: Duration | None = Field(
        default=None, description="Train only on events of this last stretch of time, e.g. 7d."
    )
    holdout: float = Field(default=0.2, gt=0, lt=1, description="Most recent share held out.")
    min_rows: int = Field(default=200, description="Fewer labelled training rows: the run fails.")
    drift_labels: int = Field(
        default=2_000,
        gt=0,
        description="A drift-triggered run waits for this many labelled events after the"
        " detection point, and trains on them alone.",
    )
    drift_wait: Duration = Field(
        default=timedelta(minutes=30), description="How long it waits before it fails."
    )
    follow_ups: list[Annotated[int, Field(gt=1)]] = Field(
        default=[2, 4],
        description="After a drift run, retrain on all post-drift labels once this many times"
        " DRIFT_LABELS have been written; [] for none. JSON, e.g. [2, 4, 8].",
    )
    online_family: str | None = Field(
        default=None,
        description="A family that keeps learning (river_linear), trained beside"
        " FAMILY: its line is continued on every ONLINE_LABELS new labels and each step"
        " offered to the registry, whose gate keeps the better of the two as champion.",
    )
    online_labels: int = Field(
        default=2_000,
        gt=0,
        description="The online line learns the labels written since its last step once this"
        " many are in: smaller follows a drift sooner, and makes a version (an artifact on"
        " models.artifacts) that much more often.",
    )
    label_poll: Duration = Field(default=timedelta(seconds=2))
    schedule_every: Duration | None = Field(default=None, description="Retrain every so long.")
    schedule_labels: int | None = Field(
        default=None, description="Retrain after every N new labels."
    )
