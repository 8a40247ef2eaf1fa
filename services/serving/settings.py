"""The serving service's configuration, from TIDELINE_SERVING_* environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_SERVING_", extra="forbid")

    metrics_port: int = 9103
    group_id: str | None = None  # default: "<topic prefix>serving"
    model_name: str | None = Field(default=None, description="Default: the project's name.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, description="Request-time scoring; 0 turns it off.")
    shadow: bool = Field(default=True, description="Score with the challenger too, in shadow.")
