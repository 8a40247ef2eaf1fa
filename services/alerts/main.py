"""`tideline run alerts`: drift events, failed runs and the registry's verdicts in; webhook calls out."""

from tideline import service

from services.alerts import stream
from services.alerts.settings import AlertsSettings

SERVICE = service.Service(
    name="alerts",
    settings=AlertsSettings,
    consumes=stream.TOPICS,
    produces=(),
    job=stream.job,
)
