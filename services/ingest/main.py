"""`tideline run ingest`: raw events and labels in; canonical records or dead letters out."""

from tideline import service

from services.ingest import stream
from services.ingest.settings import IngestSettings

SERVICE = service.Service(
    name="ingest",
    settings=IngestSettings,
    consumes=(stream.RAW_EVENTS, stream.RAW_LABELS),
    produces=(stream.EVENTS, stream.LABELS),
    reads=(stream.EVENTS, stream.LABELS),  # the ids already written, for dedup
    job=stream.job,
)
