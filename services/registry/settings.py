"""The registry's configuration, from TIDELINE_REGISTRY_* environment variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tideline.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_REGISTRY_", extra="forbid")

    metrics_port: int = 9106
    metric: str | None = Field(
        default=None,
        description="What the gate compares; default roc_auc (classification), rmse (regression).",
    )
    margin: float = Field(
        default=0.005, description="How much better than the champion, in the metric's units."
    )
    challenger: bool = Field(
        default=True,
        description="A candidate that passes validation but not the margin becomes the challenger.",
    )

    def gate_metric(self, task: str) -> str:
        return self.metric or ("roc_auc" if task == "classification" else "rmse")
