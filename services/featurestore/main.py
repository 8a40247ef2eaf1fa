"""`tideline run featurestore`: events in; feature vectors, window state and Redis out."""

import logging

import faust
from prometheus_client import start_http_server
from pydantic_settings import BaseSettings, SettingsConfigDict
from tideline import project, service
from tideline.online_store import OnlineWriter
from tideline.settings import Settings

from services.featurestore import stream
from services.featurestore.handler import FeatureStore


class FeatureStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_FEATURESTORE_", extra="forbid")

    metrics_port: int = 9102
    batch_size: int = 1000
    batch_within_s: float = 0.002
    log_level: str = "info"


def main() -> None:
    settings, own = Settings(), FeatureStoreSettings()
    if own.metrics_port:
        start_http_server(own.metrics_port)
    definition = project.load(settings.project)
    app = stream.app(
        settings,
        FeatureStore(definition),
        OnlineWriter(settings, definition),
        own.batch_size,
        own.batch_within_s,
    )
    logging.getLogger(__name__).info("feature set %s", definition.features.version)
    service.quiet_gc()
    faust.Worker(app, loglevel=own.log_level, quiet=True).execute_from_commandline()
