"""`tideline run serving`: feature vectors in, predictions out; request-time scoring over HTTP."""

from tideline import catalog, service

from services.serving import stream
from services.serving.settings import ServingSettings

SERVICE = service.Service(
    name="serving",
    settings=ServingSettings,
    consumes=(stream.FEATURES,),
    produces=(stream.PREDICTIONS,),
    reads=(catalog.topic("models.updated"), catalog.topic("models.artifacts")),
    job=stream.job,
)
