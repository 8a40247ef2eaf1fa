"""The ingest service's configuration, from TIDELINE_INGEST_* environment variables."""

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tideline.durations import Duration
from tideline.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_INGEST_", extra="forbid")

    metrics_port: int = 9101
    dedup_window: Duration = Field(default=timedelta(hours=1))
