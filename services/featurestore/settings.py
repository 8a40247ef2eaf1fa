"""The feature store's configuration, from TIDELINE_FEATURESTORE_* environment variables."""

from pydantic_settings import SettingsConfigDict
from tideline.settings import ServiceSettings


class FeatureStoreSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_FEATURESTORE_", extra="forbid")

    metrics_port: int = 9102
