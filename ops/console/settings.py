"""The console's configuration, from TIDELINE_CONSOLE_* environment variables."""

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tideline.durations import Duration

import services


def _endpoints() -> dict[str, str]:
    return {
        name: f"http://127.0.0.1:{services.metrics_port(name)}/metrics" for name in services.NAMES
    }


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_CONSOLE_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Where the page is served; 0.0.0.0 for all.")
    port: int = 8700
    metrics: dict[str, str] = Field(
        default_factory=_endpoints,
        description='Each service\'s Prometheus endpoint, as JSON: {"ingest": "http://..."}.',
    )
    scrape_interval: Duration = Field(
        default=timedelta(seconds=2), description="How often service health is read."
    )
    points: int = Field(default=5000, description="Metrics points kept per model.")
    operator: str | None = Field(
        default=None, description="Who the orders are from; default: the console's user."
    )
