"""The ingest service's configuration, from TIDELINE_INGEST_* environment variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tideline.settings import ServiceSettings

from services.ingest.handler import OUTPUT_BYTES


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_INGEST_", extra="forbid")

    metrics_port: int = 9101
    # A repeat is dropped while its first copy is among the last this many records of
    # its output partition: counted in records, so backfills (old event times) too.
    dedup_records: int = Field(default=100_000, gt=0)
    # Larger raw records are refused unread (a dead letter); at most what `events` admits.
    max_record_bytes: int = Field(default=OUTPUT_BYTES, gt=0, le=OUTPUT_BYTES)
