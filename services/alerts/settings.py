"""The alerts service's configuration, from TIDELINE_ALERTS_* environment variables."""

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from tideline.settings import ServiceSettings

Kind = Literal["drift", "training_failed", "rejected", "rolled_back", "promoted"]


class Webhook(BaseModel):
    url: str
    format: Literal["slack", "alertmanager"] = Field(
        default="slack",
        description='slack: Slack\'s incoming-webhook JSON ({"text": ...}); alertmanager: the'
        " body Alertmanager sends its webhook receivers.",
    )


class AlertsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_ALERTS_", extra="forbid")

    metrics_port: int = 9107
    offset_reset: Literal["earliest", "latest"] = Field(
        default="latest",
        description="A new deployment pages for what happens from now on, not for last week.",
    )
    webhooks: dict[Kind, Webhook] = Field(
        default={},
        description="Where each kind goes, as JSON, e.g."
        ' {"drift": {"url": "https://hooks.slack.com/services/..."},'
        ' "rolled_back": {"url": "http://alertmanager-receiver:9094/hook", "format": "alertmanager"}}.'
        " A kind without one is not sent.",
    )
    attempts: int = Field(
        default=6, description="Tries per alert while the receiver fails (5xx, 429, no answer)."
    )
    backoff_s: float = Field(
        default=0.5, description="The wait before the first retry; doubled for each next one."
    )
    timeout_s: float = Field(default=5.0, description="How long one call may take.")
