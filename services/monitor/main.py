"""`tideline run monitor`: features, predictions and labels in; monitor.metrics and monitor.drift out."""

from tideline import catalog, service

from services.monitor import stream
from services.monitor.settings import MonitorSettings

SERVICE = service.Service(
    name="monitor",
    settings=MonitorSettings,
    consumes=(stream.FEATURES, stream.PREDICTIONS, stream.LABELS),
    produces=(stream.METRICS, stream.DRIFT, stream.JOINS),
    reads=(catalog.topic("models.updated"),),
    job=stream.job,
)
